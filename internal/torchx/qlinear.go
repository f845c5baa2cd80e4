package torchx

// #include <stdlib.h>
// const char *xling_q_error();
// int xling_q_use_engine(const char *name);
// void *xling_q_prepack(void *w, void *b);
// void *xling_q_linear(void *x, void *packed);
// void xling_q_free(void *packed);
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// QLinear is a linear layer with int8 weights and float activations,
// quantised dynamically per call: the layer that
// torch.ao.quantization.quantize_dynamic puts in place of nn.Linear.
type QLinear struct {
	packed unsafe.Pointer
}

// NewQLinear quantises w [out, in] (and keeps the float bias b [out], which
// may be nil) into a packed int8 layer.
func NewQLinear(w, b *ts.Tensor) (*QLinear, error) {
	name := C.CString(Int8Engine)
	defer C.free(unsafe.Pointer(name))
	if C.xling_q_use_engine(name) == 0 {
		return nil, fmt.Errorf("int8: %s", C.GoString(C.xling_q_error()))
	}
	var bias unsafe.Pointer
	if b != nil {
		bias = b.Ctensor()
	}
	p := C.xling_q_prepack(w.Ctensor(), bias)
	if p == nil {
		return nil, fmt.Errorf("int8: pack a linear layer: %s", C.GoString(C.xling_q_error()))
	}
	return &QLinear{packed: p}, nil
}

// Forward applies the layer to x [..., in]; the caller drops the result.
func (q *QLinear) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	if q.packed == nil {
		return nil, errors.New("int8: the layer was freed")
	}
	y := C.xling_q_linear(x.Ctensor(), q.packed)
	if y == nil {
		return nil, fmt.Errorf("int8 linear: %s", C.GoString(C.xling_q_error()))
	}
	return ts.FromCtensor(y), nil
}

// Free releases the packed weights.
func (q *QLinear) Free() {
	if q.packed != nil {
		C.xling_q_free(q.packed)
		q.packed = nil
	}
}
