package eval

import (
	"context"
	"fmt"
	"math"

	"github.com/xling-ir/xling/qa"
)

// VectorRanker ranks candidates exactly, in memory, by the cosine of their
// vectors with the query's, as Weaviate's cosine distance orders them; ties
// go to the lower key. It ranks whole pools in seconds where Weaviate
// returns about 64,000 results a second (flat index, 2 cores): the
// validation in training, and the study's dense rankings, which Weaviate
// then checks on a sample.
type VectorRanker struct {
	langs   []string    // per candidate
	vectors [][]float32 // unit length
}

// NewVectorRanker ranks ds's candidates by vectors, one per candidate.
func NewVectorRanker(ds *qa.Dataset, vectors [][]float32) (*VectorRanker, error) {
	if len(vectors) != len(ds.Candidates) {
		return nil, fmt.Errorf("vector ranker: %d vectors for %d candidates", len(vectors), len(ds.Candidates))
	}
	r := &VectorRanker{langs: make([]string, len(vectors)), vectors: make([][]float32, len(vectors))}
	for i, v := range vectors {
		r.langs[i], r.vectors[i] = ds.Candidates[i].Lang, unit(v)
	}
	return r, nil
}

// unit is v scaled to length 1 in float32, as Weaviate stores a vector
// for cosine distance.
func unit(v []float32) []float32 {
	var sum float32
	for _, x := range v {
		sum += x * x
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	n := float32(math.Sqrt(float64(sum)))
	for i, x := range v {
		out[i] = x / n
	}
	return out
}

// Rank ranks the candidates of q.Langs by q.Vector.
func (r *VectorRanker) Rank(_ context.Context, q Query) ([]Hit, error) {
	in := map[string]bool{}
	for _, l := range q.Langs {
		in[l] = true
	}
	qv := unit(q.Vector)
	var pool []int
	var scores []float32
	for i, v := range r.vectors {
		if !in[r.langs[i]] {
			continue
		}
		if len(v) != len(qv) {
			return nil, fmt.Errorf("vector ranker: query of %d dimensions, candidate %d of %d", len(qv), i, len(v))
		}
		var dot float32
		for d, x := range qv {
			dot += x * v[d]
		}
		pool, scores = append(pool, i), append(scores, dot)
	}
	ranking := Rank(scores)
	hits := make([]Hit, min(len(ranking), q.Depth))
	for k := range hits {
		hits[k] = Hit{Key: pool[ranking[k]], Score: float64(scores[ranking[k]])}
	}
	return hits, nil
}
