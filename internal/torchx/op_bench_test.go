package torchx

import (
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// BenchmarkTinyOp measures gotch's fixed cost per tensor operation: an add
// of two one-element tensors, where libtorch's own work is negligible.
func BenchmarkTinyOp(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x := ts.MustOnes([]int64{1}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	for i := 0; i < b.N; i++ {
		x.MustAdd(x, false).MustDrop()
	}
}
