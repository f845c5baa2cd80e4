//go:build cgo

package torchx

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// gotch's OfSlice and CopyData check a slice element by element through
// reflection: a quarter of a data-parallel step went there, copying a small
// transformer's gradients (2.3 MB) in and out. These go straight to
// libtorch's copies.

// ReadFloat32s copies the values of t, a contiguous float32 tensor, into
// dst, which must hold exactly as many.
func ReadFloat32s(t *ts.Tensor, dst []float32) error {
	if t.DType() != gotch.Float {
		return fmt.Errorf("read float32s: the tensor holds %v", t.DType())
	}
	if n := int(t.Numel()); n != len(dst) {
		return fmt.Errorf("read float32s: the tensor holds %d values, the slice %d", n, len(dst))
	}
	if len(dst) == 0 {
		return nil
	}
	lib.AtCopyData(lib.Ctensor(t.Ctensor()), unsafe.Pointer(&dst[0]), uint(len(dst)), 4)
	return ts.TorchErr()
}

// Float32Tensor returns a new float32 tensor of shape holding a copy of v.
func Float32Tensor(v []float32, shape []int64) (*ts.Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if n != int64(len(v)) {
		return nil, fmt.Errorf("float32 tensor: %d values for shape %v", len(v), shape)
	}
	var p unsafe.Pointer
	if len(v) > 0 {
		p = unsafe.Pointer(&v[0])
	}
	c := lib.AtTensorOfData(p, shape, uint(len(shape)), 4, int(gotch.Float.CKind()))
	if err := ts.TorchErr(); err != nil {
		return nil, err
	}
	return ts.FromCtensor(unsafe.Pointer(c)), nil
}
