package trainer

import (
	"fmt"

	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// dualEncoder is a run's shared-weight dual encoder and its optimiser: one model,
// with the query and passage prefixes of xling.json telling the two apart.
// torchNet is a transformer on libtorch, staticNet a static embedding in Go.
type dualEncoder interface {
	// lossBackward adds the gradient of one batch's InfoNCE loss, times
	// weight (for accumulation), and returns the unscaled loss.
	lossBackward(batch []Pair, cfg Config, weight float64) (float64, error)
	// step applies the gradients accumulated since the last step at
	// learning rate lr, clipped to a global norm of clip (if > 0), and
	// returns their norm before clipping.
	step(lr, clip float64) float64
	// vectors encodes texts without gradients, batch at a time.
	vectors(texts []string, kind vectorizer.Kind, batch int) ([][]float32, error)
	config() modelconfig.Config
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
