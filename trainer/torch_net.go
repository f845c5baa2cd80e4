//go:build cgo

package trainer

import (
	"context"
	"path/filepath"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// newTorchNet builds a transformer of shape mc on libtorch, with the
// weights of the file weights or, if it is empty, initialised from seed.
func newTorchNet(mc modelconfig.Config, weights string, seed uint64, text *vectorizer.TextTokenizer, weightDecay float64) (dualEncoder, error) {
	m, err := transformer.New(mc, gotch.CPU)
	if err != nil {
		return nil, err
	}
	if weights != "" {
		if _, err := m.Load(weights); err != nil {
			m.Close()
			return nil, err
		}
	} else {
		m.Init(seed)
	}
	return &torchNet{tokenCache: newTokenCache(text), model: m, opt: newAdamW(m.Names(), m.Params(), weightDecay)}, nil
}

// torchNet trains a transformer with libtorch's autograd and the Go AdamW.
type torchNet struct {
	tokenCache
	model *transformer.Model
	opt   *adamW
}

func (e *torchNet) step(lr, clip float64) float64 { return e.opt.clipAndStep(lr, clip) }
func (e *torchNet) config() modelconfig.Config    { return e.model.Config }
func (e *torchNet) weights() vectorizer.Weights   { return e.model }
func (e *torchNet) close()                        { e.opt.close(); e.model.Close() }
func (e *torchNet) load(path string) error        { _, err := e.model.Load(path); return err }
func (e *torchNet) saveOptimizer(path string) error {
	t, err := e.opt.tensors()
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, t, nil)
}

func (e *torchNet) loadOptimizer(path string, step int) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	return e.opt.load(f, step)
}

// embed encodes texts into unit vectors [B, H] (kept in a).
func (e *torchNet) embed(a *torchx.Arena, texts []string, kind vectorizer.Kind, train bool) (*ts.Tensor, error) {
	batch, err := e.batch(texts, kind)
	if err != nil {
		return nil, err
	}
	return embedIDs(a, e.model, batch, e.text.PadID(), e.text.Options().Pooling, train), nil
}

// embedIDs encodes token ids into unit vectors [B, H] (kept in a).
func embedIDs(a *torchx.Arena, m *transformer.Model, batch [][]int64, pad int64, pooling string, train bool) *ts.Tensor {
	ids, mask := vectorizer.Pad(batch, pad)
	a.Keep(ids)
	a.Keep(mask)
	h := a.Keep(m.Forward(ids, mask, train))
	return vectorizer.Pool(a, h, mask, pooling, true)
}

// infoNCE is the contrastive loss of queries q against passages p (row i
// of each is a pair) and optional extra negatives n, over cosine
// similarities divided by the temperature; symmetric adds the
// passage-to-query direction.
func infoNCE(a *torchx.Arena, q, p, n *ts.Tensor, temperature float64, symmetric bool) *ts.Tensor {
	invT := a.KeepScalar(ts.FloatScalar(1 / temperature))
	targets := a.Keep(ts.MustArange(a.KeepScalar(ts.IntScalar(q.MustSize()[0])), gotch.Int64, gotch.CPU))
	keys := p
	if n != nil {
		keys = a.Keep(ts.MustCat([]*ts.Tensor{p, n}, 0))
	}
	logits := a.Keep(a.Keep(q.MustMatmul(a.Keep(keys.MustT(false)), false)).MustMulScalar(invT, false))
	loss := a.Keep(logits.CrossEntropyForLogits(targets))
	if symmetric {
		back := a.Keep(a.Keep(p.MustMatmul(a.Keep(q.MustT(false)), false)).MustMulScalar(invT, false))
		loss = a.Keep(a.Keep(loss.MustAdd(a.Keep(back.CrossEntropyForLogits(targets)), false)).MustMulScalar(a.KeepScalar(ts.FloatScalar(0.5)), false))
	}
	return loss
}

// lossBackward computes InfoNCE over in-batch negatives for one batch,
// back-propagates it scaled by weight (for gradient accumulation) and
// returns the unscaled loss.
func (e *torchNet) lossBackward(batch []Pair, cfg Config, weight float64, peers *peers) (float64, error) {
	var a torchx.Arena
	defer a.Free()
	queries, passages, negatives := splitPairs(batch, cfg)
	h := int(e.model.Config.HiddenSize)
	q, err := e.embed(&a, queries, vectorizer.Query, true)
	if err == nil {
		q, err = gathered(&a, peers, "queries", q, h)
	}
	if err != nil {
		return 0, err
	}
	p, err := e.embed(&a, passages, vectorizer.Passage, true)
	if err == nil {
		p, err = gathered(&a, peers, "passages", p, h)
	}
	if err != nil {
		return 0, err
	}
	var n *ts.Tensor
	if len(negatives) > 0 {
		if n, err = e.embed(&a, negatives, vectorizer.Passage, true); err != nil {
			return 0, err
		}
	}
	// Every rank gathers negatives, whether or not its share has any.
	if cfg.HardNegatives {
		if n, err = gathered(&a, peers, "negatives", n, h); err != nil {
			return 0, err
		}
	}
	loss := infoNCE(&a, q, p, n, cfg.Temperature, cfg.Symmetric)
	value := loss.Float64Values()[0]
	scaled := a.Keep(loss.MustMulScalar(a.KeepScalar(ts.FloatScalar(weight)), false))
	scaled.MustBackward()
	return value, nil
}

// gathered returns the global batch's rows of one kind: the other ranks'
// rows, as constants, around this rank's own (nil if it has none), which
// keep their gradient. A rank's gradient is then its own texts' share of the
// global loss's, and the shares sum to it (as sentence-transformers'
// gather_across_devices, with the loss taken over every row). A nil peers
// returns local.
func gathered(a *torchx.Arena, peers *peers, kind string, local *ts.Tensor, h int) (*ts.Tensor, error) {
	if peers == nil {
		return local, nil
	}
	var flat []float32
	if local != nil {
		flat = make([]float32, local.MustSize()[0]*int64(h))
		if err := torchx.ReadFloat32s(a.Keep(local.MustDetach(false)), flat); err != nil {
			return nil, err
		}
	}
	all, start, end, err := peers.gather(kind, flat, h)
	if err != nil {
		return nil, err
	}
	total := len(all) / h
	var parts []*ts.Tensor
	constant := func(lo, hi int) error {
		t, err := torchx.Float32Tensor(all[lo*h:hi*h], []int64{int64(hi - lo), int64(h)})
		parts = append(parts, a.Keep(t))
		return err
	}
	if start > 0 {
		if err := constant(0, start); err != nil {
			return nil, err
		}
	}
	if local != nil {
		parts = append(parts, local)
	}
	if end < total {
		if err := constant(end, total); err != nil {
			return nil, err
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return a.Keep(ts.MustCat(parts, 0)), nil
}

func (e *torchNet) reduce(g Group) error              { return e.opt.sumGrads(g) }
func (e *torchNet) broadcast(g Group, step int) error { return e.opt.broadcast(g, step) }

// vectors encodes texts without gradients, in batches, into Go slices.
func (e *torchNet) vectors(texts []string, kind vectorizer.Kind, batch int) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	dims := int(e.model.Config.HiddenSize)
	for start := 0; start < len(texts); start += batch {
		chunk := texts[start:min(start+batch, len(texts))]
		var a torchx.Arena
		var v *ts.Tensor
		var err error
		ts.NoGrad(func() { v, err = e.embed(&a, chunk, kind, false) })
		if err != nil {
			a.Free()
			return nil, err
		}
		flat := make([]float32, len(chunk)*dims)
		err = v.CopyData(flat, uint(len(flat)))
		a.Free()
		if err != nil {
			return nil, err
		}
		for i := range chunk {
			out = append(out, flat[i*dims:(i+1)*dims])
		}
	}
	return out, nil
}

// transformerThroughput is Throughput for a transformer.
func transformerThroughput(ctx context.Context, modelDir string, cfg modelconfig.Config, queries, passages [][]int64, d time.Duration) (float64, error) {
	batch := len(queries)
	m, err := transformer.New(cfg, gotch.CPU)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	if _, err := m.Load(filepath.Join(modelDir, vectorizer.WeightsFile)); err != nil {
		return 0, err
	}
	opt := newAdamW(m.Names(), m.Params(), 0.01)
	defer opt.close()
	step := func() {
		var a torchx.Arena
		defer a.Free()
		q := embedIDs(&a, m, queries, cfg.PadTokenID, vectorizer.PoolMean, true)
		p := embedIDs(&a, m, passages, cfg.PadTokenID, vectorizer.PoolMean, true)
		infoNCE(&a, q, p, nil, 0.05, false).MustBackward()
		opt.clipAndStep(3e-5, 1)
	}
	return bestOfThree(ctx, d, batch, func() error { step(); return nil })
}
