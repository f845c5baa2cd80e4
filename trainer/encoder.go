package trainer

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/tokenize"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// encoder runs the shared-weight dual encoder: one model, with the query and
// passage prefixes of xling.json telling the two apart.
type encoder struct {
	model *transformer.Model
	tok   *tokenize.Tokenizer
	opts  vectorizer.Options
	cache map[string][]int64 // prefixed text -> ids: texts recur across steps
}

func (e *encoder) ids(text string, kind vectorizer.Kind) ([]int64, error) {
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

// embed encodes texts into unit vectors [B, H] (kept in a).
func (e *encoder) embed(a *torchx.Arena, texts []string, kind vectorizer.Kind, train bool) (*ts.Tensor, error) {
	batch := make([][]int64, len(texts))
	for i, t := range texts {
		var err error
		if batch[i], err = e.ids(t, kind); err != nil {
			return nil, err
		}
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
func (e *encoder) lossBackward(batch []Pair, cfg Config, weight float64) (float64, error) {
	var a torchx.Arena
	defer a.Free()
	queries := make([]string, len(batch))
	passages := make([]string, len(batch))
	var negatives []string
	for i, p := range batch {
		queries[i], passages[i] = p.Query, p.Passage
		if cfg.HardNegatives && p.Negative != "" {
			negatives = append(negatives, p.Negative)
		}
	}
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
func (e *encoder) vectors(texts []string, kind vectorizer.Kind, batch int) ([][]float32, error) {
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
