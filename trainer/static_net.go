package trainer

import (
	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
)

// staticNet trains a static embedding in Go: hand-written gradients and a
// sparse AdamW, so a step costs what the batch's tokens cost, whatever the
// vocabulary's size.
type staticNet struct {
	tokenCache
	model *static.Model
	opt   *static.AdamW
	grad  *static.Grad
}

func newStaticNet(m *static.Model, text *vectorizer.TextTokenizer, weightDecay float64) *staticNet {
	return &staticNet{tokenCache: newTokenCache(text), model: m, opt: static.NewAdamW(m, weightDecay), grad: m.NewGrad()}
}

func (e *staticNet) lossBackward(batch []Pair, cfg Config, weight float64, peers *peers) (float64, error) {
	queries, passages, negatives := splitPairs(batch, cfg)
	c := static.Contrastive{Temperature: cfg.Temperature, Symmetric: cfg.Symmetric}
	if peers != nil {
		h := int(e.model.Config.HiddenSize)
		c.Gather = func(kind string, local [][]float32) ([][]float32, int, error) {
			flat := make([]float32, 0, len(local)*h)
			for _, v := range local {
				flat = append(flat, v...)
			}
			all, start, _, err := peers.gather(kind, flat, h)
			rows := make([][]float32, len(all)/h)
			for i := range rows {
				rows[i] = all[i*h : (i+1)*h]
			}
			return rows, start, err
		}
	}
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

func (e *staticNet) reduce(g Group) error {
	var dense [][]float64
	if e.grad.Proj != nil {
		dense = [][]float64{e.grad.Proj, e.grad.Bias}
	}
	rows, err := sumRows(g, e.grad.Rows, dense, int(e.model.Config.EmbeddingSize))
	e.grad.Rows = rows
	return err
}

func (e *staticNet) broadcast(g Group, step int) error {
	bufs := append([][]float32{e.model.Emb, e.model.Proj, e.model.Bias}, e.opt.Moments()...)
	e.opt.Steps = step
	return broadcastFloats(g, "static weights and optimiser state", bufs...)
}

func (e *staticNet) vectors(texts []string, kind vectorizer.Kind, _ int) ([][]float32, error) {
	ids, err := e.batch(texts, kind)
	if err != nil {
		return nil, err
	}
	return e.model.Encode(ids, true)
}

func (e *staticNet) config() modelconfig.Config  { return e.model.Config }
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
