package trainer

import (
	"fmt"

	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// dualEncoder is a run's shared-weight dual encoder and its optimiser: one model,
// with the query and passage prefixes of xling.json telling the two apart.
// torchNet is a transformer on libtorch, staticNet a static embedding in Go.
type dualEncoder interface {
	// lossBackward adds the gradient of one batch's InfoNCE loss, times
	// weight (for accumulation), and returns the unscaled loss. With peers,
	// batch is this rank's share: the loss is the global batch's and the
	// gradient this rank's share of it.
	lossBackward(batch []Pair, cfg Config, weight float64, peers *peers) (float64, error)
	// reduce sums the accumulated gradients across a group.
	reduce(g Group) error
	// broadcast copies rank 0's weights and optimiser state to every rank,
	// setting the optimiser's step count to step.
	broadcast(g Group, step int) error
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

// tokenCache tokenises texts as the served model will (the vectorizer's
// TextTokenizer), remembering them: the same texts recur across steps.
type tokenCache struct {
	text  *vectorizer.TextTokenizer
	cache map[cacheKey][]int64
}

type cacheKey struct {
	kind vectorizer.Kind
	text string
}

func (e *tokenCache) tokens() *tokenCache { return e }

func newTokenCache(text *vectorizer.TextTokenizer) tokenCache {
	return tokenCache{text: text, cache: map[cacheKey][]int64{}}
}

func (e *tokenCache) ids(text string, kind vectorizer.Kind) ([]int64, error) {
	key := cacheKey{kind, text}
	if ids, ok := e.cache[key]; ok {
		return ids, nil
	}
	t, err := e.text.Tokenize(text, kind)
	if err != nil {
		return nil, fmt.Errorf("tokenize %q: %w", text, err)
	}
	e.cache[key] = t.IDs
	return t.IDs, nil
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
