package trainer

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/static"
	"github.com/xling-ir/xling/vectorizer/tokenize"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// net is a run's shared-weight dual encoder and its optimiser: one model,
// with the query and passage prefixes of xling.json telling the two apart.
// torchNet is a transformer on libtorch, staticNet a static embedding in Go.
type net interface {
	// lossBackward adds the gradient of one batch's InfoNCE loss, times
	// weight (for accumulation), and returns the unscaled loss.
	lossBackward(batch []Pair, cfg Config, weight float64) (float64, error)
	// step applies the gradients accumulated since the last step at
	// learning rate lr, clipped to a global norm of clip (if > 0), and
	// returns their norm before clipping.
	step(lr, clip float64) float64
	// vectors encodes texts without gradients, batch at a time.
	vectors(texts []string, kind vectorizer.Kind, batch int) ([][]float32, error)
	config() transformer.Config
	weights() vectorizer.Weights
	tokens() *tokenCache
	// load reads checkpointed weights; optimizer reads and writes the
	// optimiser's state.
	load(path string) error
	saveOptimizer(path string) error
	loadOptimizer(path string, step int) error
	close()
}

// tokenCache tokenises texts with a kind's prefix, remembering them: the
// same texts recur across steps.
type tokenCache struct {
	tok   *tokenize.Tokenizer
	opts  vectorizer.Options
	cache map[string][]int64 // prefixed text -> ids
}

func (e *tokenCache) tokens() *tokenCache { return e }

func newTokenCache(tok *tokenize.Tokenizer, opts vectorizer.Options) tokenCache {
	return tokenCache{tok: tok, opts: opts, cache: map[string][]int64{}}
}

func (e *tokenCache) ids(text string, kind vectorizer.Kind) ([]int64, error) {
	prefix := e.opts.PassagePrefix
	if kind == vectorizer.Query {
		prefix = e.opts.QueryPrefix
	}
	key := prefix + text
	if ids, ok := e.cache[key]; ok {
		return ids, nil
	}
	raw, _, err := e.tok.Encode(key)
	if err != nil {
		return nil, fmt.Errorf("tokenize %q: %w", text, err)
	}
	ids := make([]int64, len(raw))
	for i, id := range raw {
		ids[i] = int64(id)
	}
	e.cache[key] = ids
	return ids, nil
}

func (e *tokenCache) batch(texts []string, kind vectorizer.Kind) ([][]int64, error) {
	out := make([][]int64, len(texts))
	for i, t := range texts {
		var err error
		if out[i], err = e.ids(t, kind); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// splitPairs returns a batch's queries, passages and (with hard negatives)
// negatives.
func splitPairs(batch []Pair, cfg Config) (queries, passages, negatives []string) {
	for _, p := range batch {
		queries, passages = append(queries, p.Query), append(passages, p.Passage)
		if cfg.HardNegatives && p.Negative != "" {
			negatives = append(negatives, p.Negative)
		}
	}
	return queries, passages, negatives
}

// torchNet trains a transformer with libtorch's autograd and the Go AdamW.
type torchNet struct {
	tokenCache
	model *transformer.Model
	opt   *adamW
}

func newTorchNet(m *transformer.Model, tok *tokenize.Tokenizer, opts vectorizer.Options, weightDecay float64) *torchNet {
	return &torchNet{tokenCache: newTokenCache(tok, opts), model: m, opt: newAdamW(m.Names(), m.Params(), weightDecay)}
}

func (e *torchNet) step(lr, clip float64) float64 { return e.opt.clipAndStep(lr, clip) }
func (e *torchNet) config() transformer.Config    { return e.model.Config }
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
	pad := e.model.Config.PadTokenID
	if id := e.tok.PadID(); id >= 0 {
		pad = int64(id)
	}
	return embedIDs(a, e.model, batch, pad, e.opts.Pooling, train), nil
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
func (e *torchNet) lossBackward(batch []Pair, cfg Config, weight float64) (float64, error) {
	var a torchx.Arena
	defer a.Free()
	queries, passages, negatives := splitPairs(batch, cfg)
	q, err := e.embed(&a, queries, vectorizer.Query, true)
	if err != nil {
		return 0, err
	}
	p, err := e.embed(&a, passages, vectorizer.Passage, true)
	if err != nil {
		return 0, err
	}
	var n *ts.Tensor
	if len(negatives) > 0 {
		if n, err = e.embed(&a, negatives, vectorizer.Passage, true); err != nil {
			return 0, err
		}
	}
	loss := infoNCE(&a, q, p, n, cfg.Temperature, cfg.Symmetric)
	value := loss.Float64Values()[0]
	scaled := a.Keep(loss.MustMulScalar(a.KeepScalar(ts.FloatScalar(weight)), false))
	scaled.MustBackward()
	return value, nil
}

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

// staticNet trains a static embedding in Go: hand-written gradients and a
// sparse AdamW, so a step costs what the batch's tokens cost, whatever the
// vocabulary's size.
type staticNet struct {
	tokenCache
	model *static.Model
	opt   *static.AdamW
	grad  *static.Grad
}

func newStaticNet(m *static.Model, tok *tokenize.Tokenizer, opts vectorizer.Options, weightDecay float64) *staticNet {
	return &staticNet{tokenCache: newTokenCache(tok, opts), model: m, opt: static.NewAdamW(m, weightDecay), grad: m.NewGrad()}
}

func (e *staticNet) lossBackward(batch []Pair, cfg Config, weight float64) (float64, error) {
	queries, passages, negatives := splitPairs(batch, cfg)
	c := static.Contrastive{Temperature: cfg.Temperature, Symmetric: cfg.Symmetric}
	var err error
	if c.Queries, err = e.batch(queries, vectorizer.Query); err != nil {
		return 0, err
	}
	if c.Passages, err = e.batch(passages, vectorizer.Passage); err != nil {
		return 0, err
	}
	if c.Negatives, err = e.batch(negatives, vectorizer.Passage); err != nil {
		return 0, err
	}
	return e.model.LossBackward(c, weight, e.grad)
}

func (e *staticNet) step(lr, clip float64) float64 {
	norm := e.opt.Step(e.grad, lr, clip)
	e.grad = e.model.NewGrad()
	return norm
}

func (e *staticNet) vectors(texts []string, kind vectorizer.Kind, _ int) ([][]float32, error) {
	ids, err := e.batch(texts, kind)
	if err != nil {
		return nil, err
	}
	return e.model.Encode(ids, true)
}

func (e *staticNet) config() transformer.Config  { return e.model.Config }
func (e *staticNet) weights() vectorizer.Weights { return e.model }
func (e *staticNet) close()                      {}
func (e *staticNet) load(path string) error      { return e.model.Load(path) }

func (e *staticNet) saveOptimizer(path string) error {
	t, err := e.opt.Tensors()
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, t, nil)
}

func (e *staticNet) loadOptimizer(path string, step int) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	return e.opt.Load(f.Tensors, step)
}
