package indexer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/qa"
)

// Ranker ranks a collection's objects in Weaviate for package eval: each
// hit is mapped back to the candidate key the collection was indexed with.
type Ranker struct {
	search *Searcher
	class  string
	method eval.Method
	keys   map[string]int // object id -> candidate key
	pool   map[string]int // objects per language
	holds  string         // what the keys describe, for errors
}

// Ranker returns a Ranker over class by method, for the candidates of ds
// (indexed by Docs).
func (s *Searcher) Ranker(class string, method eval.Method, ds *qa.Dataset) *Ranker {
	keys, pool := map[string]int{}, map[string]int{}
	for _, d := range Docs(ds, Sentence) {
		keys[d.ID.String()] = d.Key
		pool[d.Lang]++
	}
	return &Ranker{search: s, class: class, method: method, keys: keys, pool: pool,
		holds: fmt.Sprintf("%s (%s)", ds.Name, strings.Join(ds.Languages, ","))}
}

// MIRACLRanker returns a Ranker over class by method for the MIRACL
// passages docids[lang] loaded; a hit's key indexes the returned docids.
func (s *Searcher) MIRACLRanker(class string, method eval.Method, loaded map[string]map[string]bool) (*Ranker, []string) {
	keys, pool := map[string]int{}, map[string]int{}
	var docids []string
	for _, lang := range slices.Sorted(maps.Keys(loaded)) {
		for _, d := range slices.Sorted(maps.Keys(loaded[lang])) {
			keys[MIRACLID(lang, d).String()] = len(docids)
			docids = append(docids, d)
		}
		pool[lang] = len(loaded[lang])
	}
	return &Ranker{search: s, class: class, method: method, keys: keys, pool: pool, holds: "the MIRACL passages loaded"}, docids
}

// Rank runs q in Weaviate. Equal scores are ordered by key, and a cut
// never splits them by Weaviate's order: results are fetched past the cut
// until the scores there differ.
func (r *Ranker) Rank(ctx context.Context, q eval.Query) ([]eval.Hit, error) {
	pool := 0
	for _, l := range q.Langs {
		pool += r.pool[l]
	}
	for extra := 8; ; extra *= 4 {
		limit := min(q.Depth+extra, max(pool, q.Depth))
		hits, err := r.rank(ctx, q, limit)
		if err != nil {
			return nil, err
		}
		if len(hits) <= q.Depth {
			return hits, nil
		}
		if len(hits) < limit || limit == max(pool, q.Depth) || hits[len(hits)-1].Score != hits[q.Depth-1].Score {
			return hits[:q.Depth], nil
		}
	}
}

func (r *Ranker) rank(ctx context.Context, q eval.Query, limit int) ([]eval.Hit, error) {
	wq := Query{Class: r.class, Limit: limit, Langs: q.Langs}
	switch r.method {
	case eval.BM25:
		wq.Text = q.Text
	case eval.Hybrid:
		wq.Text, wq.Vector, wq.Hybrid, wq.Alpha = q.Text, q.Vector, true, 0.5
	default:
		wq.Vector = q.Vector
	}
	hits, err := r.search.Search(ctx, wq)
	if err != nil {
		return nil, err
	}
	out := make([]eval.Hit, len(hits))
	for i, h := range hits {
		key, ok := r.keys[h.ID]
		if !ok {
			return nil, fmt.Errorf("collection %s holds object %s, which is none of %s: index it from the same data", r.class, h.ID, r.holds)
		}
		out[i] = eval.Hit{Key: key, Score: h.Score}
	}
	// Weaviate orders equal scores differently from query to query (a
	// static model gives identical vectors to texts of identical tokens):
	// the lower key first, as eval.Rank does, makes a ranking reproducible.
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Score != out[b].Score {
			return out[a].Score > out[b].Score
		}
		return out[a].Key < out[b].Key
	})
	return out, nil
}
