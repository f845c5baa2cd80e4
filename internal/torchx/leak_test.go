package torchx

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/procmem"
)

func rss(t *testing.T) int64 {
	n, err := procmem.RSS()
	if err != nil {
		t.Skip(err)
	}
	return n
}

// TestNoLeakPerOperation guards the adapter's fixes to gotch: before them a
// matmul leaked 153 bytes of C memory and a dropped scalar 101 bytes.
func TestNoLeakPerOperation(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x := ts.MustRandn([]int64{8, 8}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	var a Arena
	for name, op := range map[string]func(){
		"matmul":      func() { x.MustMatmul(x, false).MustDrop() },
		"two outputs": func() { v, i := x.MustMaxDim(1, false, false); v.MustDrop(); i.MustDrop() },
		"scalar":      func() { ts.FloatScalar(1).MustDrop() },
		"arena":       func() { a.Keep(x.MustMulScalar(a.KeepScalar(ts.FloatScalar(2)), false)); a.Free() },
	} {
		const n = 100000
		for i := 0; i < n/10; i++ {
			op()
		}
		debug.FreeOSMemory()
		before := rss(t)
		for i := 0; i < n; i++ {
			op()
		}
		debug.FreeOSMemory()
		perCall := float64(rss(t)-before) / n
		t.Logf("%s: %.1f bytes of RSS per call", name, perCall)
		if perCall > 32 {
			t.Errorf("%s leaks %.0f bytes per call", name, perCall)
		}
	}
}
