//go:build cgo

package trainer

import (
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/internal/torchx"
)

// adamW is AdamW (decoupled weight decay) over named parameters, kept in Go
// so that its moments can be checkpointed: gotch exposes no way to save the
// state of libtorch's own optimisers.
type adamW struct {
	names        []string
	params       map[string]*ts.Tensor
	m, v         map[string]*ts.Tensor
	beta1, beta2 float64
	eps          float64
	weightDecay  float64
	step         int
}

func newAdamW(names []string, params map[string]*ts.Tensor, weightDecay float64) *adamW {
	o := &adamW{names: names, params: params, m: map[string]*ts.Tensor{}, v: map[string]*ts.Tensor{},
		beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: weightDecay}
	for _, n := range names {
		o.m[n] = params[n].MustZerosLike(false)
		o.v[n] = params[n].MustZerosLike(false)
	}
	return o
}

// decays says whether weight decay applies: not to biases and LayerNorm
// weights, as in BERT's recipe.
func decays(name string) bool {
	return !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "LayerNorm")
}

// clipAndStep scales gradients to a global norm of at most clip (if clip >
// 0), applies one update at learning rate lr and zeroes the gradients. It
// returns the norm before clipping.
func (o *adamW) clipAndStep(lr, clip float64) float64 {
	var a torchx.Arena
	defer a.Free()
	grads := map[string]*ts.Tensor{}
	total := 0.0
	for _, n := range o.names {
		g := a.Keep(o.params[n].MustGrad(false))
		if !g.MustDefined() {
			continue
		}
		grads[n] = g
		sq := a.Keep(a.Keep(g.MustSquare(false)).MustSum(g.DType(), false))
		total += sq.Float64Values()[0]
	}
	norm := math.Sqrt(total)
	scale := 1.0
	if clip > 0 && norm > clip {
		scale = clip / (norm + 1e-6)
	}
	o.step++
	bc1 := 1 - math.Pow(o.beta1, float64(o.step))
	bc2 := 1 - math.Pow(o.beta2, float64(o.step))
	ts.NoGrad(func() {
		for _, n := range o.names {
			g, ok := grads[n]
			if !ok {
				continue
			}
			p := o.params[n]
			if scale != 1 {
				g = a.Keep(g.MustMulScalar(a.KeepScalar(ts.FloatScalar(scale)), false))
			}
			if o.weightDecay > 0 && decays(n) {
				p.MustMulScalar_(a.KeepScalar(ts.FloatScalar(1 - lr*o.weightDecay)))
			}
			// m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g²
			o.m[n].MustMulScalar_(a.KeepScalar(ts.FloatScalar(o.beta1)))
			o.m[n].MustAdd_(a.Keep(g.MustMulScalar(a.KeepScalar(ts.FloatScalar(1-o.beta1)), false)))
			o.v[n].MustMulScalar_(a.KeepScalar(ts.FloatScalar(o.beta2)))
			o.v[n].MustAdd_(a.Keep(a.Keep(g.MustSquare(false)).MustMulScalar(a.KeepScalar(ts.FloatScalar(1-o.beta2)), false)))
			// p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
			denom := a.Keep(a.Keep(o.v[n].MustMulScalar(a.KeepScalar(ts.FloatScalar(1/bc2)), false)).MustSqrt(false))
			denom = a.Keep(denom.MustAddScalar(a.KeepScalar(ts.FloatScalar(o.eps)), false))
			update := a.Keep(a.Keep(o.m[n].MustDiv(denom, false)).MustMulScalar(a.KeepScalar(ts.FloatScalar(lr/bc1)), false))
			p.MustSub_(update)
			grads[n].MustZero_()
		}
	})
	return norm
}

// sumGrads sums every gradient across a group, in buckets of about
// bucketFloats values (as DDP does), not one collective per tensor.
// Parameters without a gradient have none on every rank: the graph is the
// same everywhere.
func (o *adamW) sumGrads(g Group) error {
	var a torchx.Arena
	defer a.Free()
	var (
		bucket []float32
		grads  []*ts.Tensor
	)
	flush := func() error {
		if len(grads) == 0 {
			return nil
		}
		if err := g.SumFloat32("gradients", bucket); err != nil {
			return err
		}
		off := 0
		for _, gr := range grads {
			n := int(gr.Numel())
			src, err := torchx.Float32Tensor(bucket[off:off+n], gr.MustSize())
			if err != nil {
				return err
			}
			ts.NoGrad(func() { gr.Copy_(a.Keep(src)) })
			off += n
		}
		bucket, grads = bucket[:0], grads[:0]
		return nil
	}
	for _, n := range o.names {
		gr := a.Keep(o.params[n].MustGrad(false))
		if !gr.MustDefined() {
			continue
		}
		size := int(gr.Numel())
		if len(bucket)+size > bucketFloats {
			if err := flush(); err != nil {
				return err
			}
		}
		at := len(bucket)
		bucket = append(bucket, make([]float32, size)...)
		if err := torchx.ReadFloat32s(gr, bucket[at:]); err != nil {
			return err
		}
		grads = append(grads, gr)
	}
	return flush()
}

// broadcast copies rank 0's parameters and moments to every rank and sets
// the step count.
func (o *adamW) broadcast(g Group, step int) error {
	var a torchx.Arena
	defer a.Free()
	for _, n := range o.names {
		for _, t := range []*ts.Tensor{o.params[n], o.m[n], o.v[n]} {
			vals := make([]float32, t.Numel())
			if err := torchx.ReadFloat32s(t, vals); err != nil {
				return err
			}
			if err := g.BroadcastFloat32("weights and optimiser state", vals, 0); err != nil {
				return err
			}
			src, err := torchx.Float32Tensor(vals, t.MustSize())
			if err != nil {
				return err
			}
			ts.NoGrad(func() { t.Copy_(a.Keep(src)) })
		}
	}
	o.step = step
	return nil
}

// tensors returns the moments for a checkpoint, as safetensors.
func (o *adamW) tensors() (map[string]safetensors.Tensor, error) {
	out := map[string]safetensors.Tensor{}
	for _, n := range o.names {
		for prefix, src := range map[string]*ts.Tensor{"m.": o.m[n], "v.": o.v[n]} {
			vals := make([]float32, src.Numel())
			if err := src.CopyData(vals, src.Numel()); err != nil {
				return nil, err
			}
			t, err := safetensors.FromFloat32(src.MustSize(), vals)
			if err != nil {
				return nil, err
			}
			out[prefix+n] = t
		}
	}
	return out, nil
}

// load restores the moments saved by tensors.
func (o *adamW) load(f *safetensors.File, step int) error {
	for _, n := range o.names {
		for prefix, dst := range map[string]*ts.Tensor{"m.": o.m[n], "v.": o.v[n]} {
			t, ok := f.Tensors[prefix+n]
			if !ok {
				return fmt.Errorf("optimiser state lacks %s%s", prefix, n)
			}
			want := dst.MustSize()
			if fmt.Sprint(t.Shape) != fmt.Sprint(want) {
				return fmt.Errorf("optimiser state %s%s has shape %v, the model %v", prefix, n, t.Shape, want)
			}
			vals, err := t.Float32()
			if err != nil {
				return err
			}
			src := ts.MustOfSlice(vals).MustView(want, true)
			ts.NoGrad(func() { dst.Copy_(src) })
			src.MustDrop()
		}
	}
	o.step = step
	return nil
}

func (o *adamW) close() {
	for _, n := range o.names {
		o.m[n].MustDrop()
		o.v[n].MustDrop()
	}
}
