package static

import (
	"fmt"
	"math"
	"slices"

	"github.com/xling-ir/xling/internal/safetensors"
)

// Grad holds the gradients of one optimiser step: a row per token the
// batches touched (nothing for the rest of the table), and the projection's.
// They accumulate in float64: a row sums hundreds of texts' shares, and in
// float32 the order of that sum (one process's, or data-parallel ranks'
// partial sums) changed the trained weights by more than 1e-5.
type Grad struct {
	Rows map[int64][]float64
	Proj []float64
	Bias []float64
}

// NewGrad returns an empty gradient for m.
func (m *Model) NewGrad() *Grad {
	g := &Grad{Rows: map[int64][]float64{}}
	if m.projected() {
		g.Proj = make([]float64, len(m.Proj))
		g.Bias = make([]float64, len(m.Bias))
	}
	return g
}

// Contrastive is the InfoNCE objective of a batch: queries[i] belongs with
// passages[i]; the other passages (and extra negatives) are its negatives.
type Contrastive struct {
	Queries, Passages, Negatives [][]int64
	Temperature                  float64
	Symmetric                    bool // add the passage-to-query direction
	// Gather, if set, joins this process's unit vectors of one kind
	// ("queries", "passages", "negatives") with those of the other
	// data-parallel ranks, in rank order, and says where this process's
	// start. The loss is then the global batch's, and the gradient this
	// process adds is its own texts' share of it: summed over the ranks,
	// it is the global batch's gradient.
	Gather func(kind string, local [][]float32) (all [][]float32, start int, err error)
}

// LossBackward computes the batch's InfoNCE loss over cosine similarities,
// and adds its gradient, times weight, to g. The math is the transformer
// trainer's (trainer.infoNCE), differentiated by hand: the pieces are a
// softmax over logits, L2 normalisation, a linear layer and a mean.
func (m *Model) LossBackward(c Contrastive, weight float64, g *Grad) (float64, error) {
	gather := c.Gather
	if gather == nil {
		gather = func(_ string, local [][]float32) ([][]float32, int, error) { return local, 0, nil }
	}
	// traces of this process's texts, and every rank's unit vectors.
	type part struct {
		traces  []trace
		vectors [][]float32
		start   int
	}
	encode := func(kind string, ids [][]int64) (part, error) {
		t, err := m.encodeAll(ids, true)
		if err != nil {
			return part{}, err
		}
		local := make([][]float32, len(t))
		for i := range t {
			local[i] = t[i].vector
		}
		all, start, err := gather(kind, local)
		return part{t, all, start}, err
	}
	qs, err := encode("queries", c.Queries)
	if err != nil {
		return 0, err
	}
	ps, err := encode("passages", c.Passages)
	if err != nil {
		return 0, err
	}
	ns, err := encode("negatives", c.Negatives)
	if err != nil {
		return 0, err
	}
	b := len(qs.vectors)
	if b == 0 || len(ps.vectors) != b {
		return 0, fmt.Errorf("static loss: %d queries and %d passages", b, len(ps.vectors))
	}
	keys := append(append([][]float32{}, ps.vectors...), ns.vectors...)
	k := len(keys)
	invT := 1 / c.Temperature
	// logits[i][j] = q_i . key_j / T
	logits := make([][]float64, b)
	parallel(b, func(i int) {
		logits[i] = make([]float64, k)
		for j := range keys {
			logits[i][j] = float64(dot(qs.vectors[i], keys[j])) * invT
		}
	})
	// dLogits of the mean cross-entropy of each row against its diagonal.
	dl := make([][]float64, b)
	loss := 0.0
	for i := range logits {
		p, lse := softmax(logits[i])
		loss += lse - logits[i][i]
		p[i]--
		for j := range p {
			p[j] /= float64(b)
		}
		dl[i] = p
	}
	loss /= float64(b)
	if c.Symmetric {
		// Passages against queries: column j of the first b keys.
		col := make([]float64, b)
		back := 0.0
		for j := 0; j < b; j++ {
			for i := 0; i < b; i++ {
				col[i] = logits[i][j]
			}
			p, lse := softmax(col)
			back += lse - col[j]
			p[j]--
			for i := 0; i < b; i++ {
				dl[i][j] += p[i] / float64(b)
			}
		}
		loss = (loss + back/float64(b)) / 2
		for i := range dl {
			for j := range dl[i] {
				dl[i][j] /= 2
			}
		}
	}
	// Gradients of this process's unit vectors, scaled by the accumulation
	// weight: its queries' rows of dl, its keys' columns.
	scale := weight * invT
	h := int(m.Config.HiddenSize)
	mine := make([]int, 0, len(ps.traces)+len(ns.traces)) // key columns
	for j := range ps.traces {
		mine = append(mine, ps.start+j)
	}
	for j := range ns.traces {
		mine = append(mine, b+ns.start+j)
	}
	dq := make([][]float64, len(qs.traces))
	dk := make([][]float64, len(mine))
	parallel(len(dq), func(i int) {
		dq[i] = make([]float64, h)
		for j := range keys {
			axpy(dq[i], dl[qs.start+i][j]*scale, keys[j])
		}
	})
	parallel(len(dk), func(c int) {
		dk[c] = make([]float64, h)
		j := mine[c]
		for i := range qs.vectors {
			axpy(dk[c], dl[i][j]*scale, qs.vectors[i])
		}
	})
	for i, t := range qs.traces {
		m.backward(t, dq[i], g)
	}
	for c, t := range append(append([]trace{}, ps.traces...), ns.traces...) {
		m.backward(t, dk[c], g)
	}
	return loss, nil
}

// backward takes the gradient of a unit output vector back to the token
// rows and the projection, adding into g.
func (m *Model) backward(t trace, du []float64, g *Grad) {
	e, _ := m.dims()
	// u = x/|x|  =>  dx = (du - u (u.du)) / |x|
	var ud float64
	for i, u := range t.vector {
		ud += float64(u) * du[i]
	}
	inv := 1 / math.Max(t.norm, 1e-12)
	dx := make([]float64, len(du))
	for i, u := range t.vector {
		dx[i] = (du[i] - float64(u)*ud) * inv
	}
	dmean := dx
	if m.projected() {
		dmean = make([]float64, e)
		for i, d := range dx {
			g.Bias[i] += d
			row := m.Proj[i*e : (i+1)*e]
			grow := g.Proj[i*e : (i+1)*e]
			for j := range row {
				grow[j] += d * float64(t.mean[j])
				dmean[j] += d * float64(row[j])
			}
		}
	}
	n := 0
	for _, id := range t.ids {
		if id != m.Config.PadTokenID {
			n++
		}
	}
	if n == 0 {
		return
	}
	per := 1 / float64(n)
	for _, id := range t.ids {
		if id == m.Config.PadTokenID {
			continue
		}
		row, ok := g.Rows[id]
		if !ok {
			row = make([]float64, e)
			g.Rows[id] = row
		}
		for j, d := range dmean {
			row[j] += d * per
		}
	}
}

// softmax returns the probabilities of logits and their log-sum-exp.
func softmax(logits []float64) ([]float64, float64) {
	hi := math.Inf(-1)
	for _, x := range logits {
		hi = math.Max(hi, x)
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, x := range logits {
		p[i] = math.Exp(x - hi)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p, hi + math.Log(sum)
}

func axpy(dst []float64, a float64, x []float32) {
	for i, v := range x {
		dst[i] += a * float64(v)
	}
}

// AdamW is AdamW with lazy (sparse) updates of the embedding table: a step
// updates the moments and weights of the rows its gradient touched and
// nothing else, as PyTorch's SparseAdam does, so its cost follows the batch,
// not the vocabulary. The projection is updated densely. Weight decay is
// decoupled and, like the update, applied to touched rows only.
type AdamW struct {
	model                  *Model
	m, v                   []float32 // embedding moments, vocab x embedding
	pm, pv, bm, bv         []float32 // projection and bias moments
	Beta1, Beta2, Eps, Dec float64
	Steps                  int
}

// NewAdamW returns an optimiser for m with the usual betas.
func NewAdamW(m *Model, weightDecay float64) *AdamW {
	o := &AdamW{model: m, m: make([]float32, len(m.Emb)), v: make([]float32, len(m.Emb)),
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Dec: weightDecay}
	if m.projected() {
		o.pm, o.pv = make([]float32, len(m.Proj)), make([]float32, len(m.Proj))
		o.bm, o.bv = make([]float32, len(m.Bias)), make([]float32, len(m.Bias))
	}
	return o
}

// Norm is the global L2 norm of g.
func (g *Grad) Norm() float64 {
	var s float64
	// In id order: a sum in map order differs in its last bits from run to
	// run, and the norm decides clipping.
	for _, id := range g.ids() {
		for _, x := range g.Rows[id] {
			s += x * x
		}
	}
	for _, x := range g.Proj {
		s += x * x
	}
	for _, x := range g.Bias {
		s += x * x
	}
	return math.Sqrt(s)
}

// ids are the touched rows in order: float sums must not depend on map
// order, or a resumed run would drift from an uninterrupted one.
func (g *Grad) ids() []int64 {
	ids := make([]int64, 0, len(g.Rows))
	for id := range g.Rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Step clips g to a global norm of clip (if clip > 0), applies one update at
// learning rate lr and returns the norm before clipping.
func (o *AdamW) Step(g *Grad, lr, clip float64) float64 {
	norm := g.Norm()
	scale := 1.0
	if clip > 0 && norm > clip {
		scale = clip / (norm + 1e-6)
	}
	o.Steps++
	c1 := 1 - math.Pow(o.Beta1, float64(o.Steps))
	c2 := 1 - math.Pow(o.Beta2, float64(o.Steps))
	e, _ := o.model.dims()
	ids := g.ids()
	parallel(len(ids), func(i int) {
		id := int(ids[i])
		lo, hi := id*e, (id+1)*e
		o.update(o.model.Emb[lo:hi], g.Rows[ids[i]], o.m[lo:hi], o.v[lo:hi], lr, scale, c1, c2, true)
	})
	if g.Proj != nil {
		o.update(o.model.Proj, g.Proj, o.pm, o.pv, lr, scale, c1, c2, true)
		o.update(o.model.Bias, g.Bias, o.bm, o.bv, lr, scale, c1, c2, false)
	}
	return norm
}

func (o *AdamW) update(w []float32, g []float64, m, v []float32, lr, scale, c1, c2 float64, decay bool) {
	for j := range w {
		gj := g[j] * scale
		mj := o.Beta1*float64(m[j]) + (1-o.Beta1)*gj
		vj := o.Beta2*float64(v[j]) + (1-o.Beta2)*gj*gj
		m[j], v[j] = float32(mj), float32(vj)
		wj := float64(w[j])
		if decay {
			wj -= lr * o.Dec * wj
		}
		w[j] = float32(wj - lr*(mj/c1)/(math.Sqrt(vj/c2)+o.Eps))
	}
}

// Tensors returns the optimiser state for a checkpoint.
func (o *AdamW) Tensors() (map[string]safetensors.Tensor, error) {
	out := map[string]safetensors.Tensor{}
	add := func(name string, v []float32) error {
		if v == nil {
			return nil
		}
		t, err := safetensors.FromFloat32([]int64{int64(len(v))}, v)
		out[name] = t
		return err
	}
	for name, v := range map[string][]float32{"m": o.m, "v": o.v, "proj.m": o.pm, "proj.v": o.pv, "bias.m": o.bm, "bias.v": o.bv} {
		if err := add(name, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Moments are the optimiser's state buffers (nil where the model has no
// projection), for data-parallel ranks to start from the same state.
func (o *AdamW) Moments() [][]float32 { return [][]float32{o.m, o.v, o.pm, o.pv, o.bm, o.bv} }

// Load restores the state written by Tensors, at the given step.
func (o *AdamW) Load(tensors map[string]safetensors.Tensor, steps int) error {
	for name, dst := range map[string][]float32{"m": o.m, "v": o.v, "proj.m": o.pm, "proj.v": o.pv, "bias.m": o.bm, "bias.v": o.bv} {
		if dst == nil {
			continue
		}
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("optimizer state %s is missing", name)
		}
		v, err := t.Float32()
		if err != nil {
			return err
		}
		if len(v) != len(dst) {
			return fmt.Errorf("optimizer state %s holds %d values, want %d", name, len(v), len(dst))
		}
		copy(dst, v)
	}
	o.Steps = steps
	return nil
}
