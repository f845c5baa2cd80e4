package vectorizer

import "context"

// ForwardUnchecked runs a transformer forward pass on the worker past
// encode's id guard, so that tests reach libtorch's own errors.
func ForwardUnchecked(v *Vectorizer, ids [][]int64) error {
	model := v.passage.(*torchEncoder).m
	return v.do(context.Background(), func() error {
		_, err := v.forward(model, ids)
		return err
	})
}
