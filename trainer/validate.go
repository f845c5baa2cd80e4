package trainer

import (
	"context"
	"sort"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/vectorizer"
)

// Scores are the mean metrics of one retrieval setting.
type Scores struct {
	MAP   float64 `json:"map"`
	MRR10 float64 `json:"mrr@10"`
	Runs  int     `json:"runs"` // language pairs (mono, cross) or query languages (multi)
}

// Evaluation is one in-memory validation: LAReQA's three settings over the
// validation items' passages.
type Evaluation struct {
	Step  int    `json:"step"`
	Mono  Scores `json:"mono"`  // query language X, pool of X
	Cross Scores `json:"cross"` // X -> Y for every ordered pair X != Y
	Multi Scores `json:"multi"` // pool of every language
}

// evaluate encodes the validation queries and passages with the model in
// training and scores them.
func evaluate(e dualEncoder, items []Item) (*Evaluation, error) {
	queries, passages := texts(items)
	qv, err := e.vectors(queries, vectorizer.Query, 64)
	if err != nil {
		return nil, err
	}
	pv, err := e.vectors(passages, vectorizer.Passage, 64)
	if err != nil {
		return nil, err
	}
	return score(items, qv, pv), nil
}

// EvaluateDir scores a model directory on items, as validation does.
func EvaluateDir(ctx context.Context, dir string, items []Item) (*Evaluation, error) {
	v, err := vectorizer.Load(dir, vectorizer.LoadOptions{BatchSize: 64})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	queries, passages := texts(items)
	qv, err := v.Encode(ctx, queries, vectorizer.Query)
	if err != nil {
		return nil, err
	}
	pv, err := v.Encode(ctx, passages, vectorizer.Passage)
	if err != nil {
		return nil, err
	}
	return score(items, qv, pv), nil
}

func texts(items []Item) (queries, passages []string) {
	queries = make([]string, len(items))
	passages = make([]string, len(items))
	for i, it := range items {
		queries[i], passages[i] = it.Query, it.Passage
	}
	return queries, passages
}

// score ranks each setting's pools: a query's relevant passages are those of
// its group. mAP is averaged per language pair (or query language), then
// over them.
func score(items []Item, qv, pv [][]float32) *Evaluation {
	byLang := map[string][]int{}
	for i, it := range items {
		byLang[it.Lang] = append(byLang[it.Lang], i)
	}
	langs := make([]string, 0, len(byLang))
	for l := range byLang {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	all := make([]int, len(items))
	for i := range all {
		all[i] = i
	}

	// run ranks pool for every query of qs and averages AP and RR@10.
	run := func(qs, pool []int) (ap, rr float64, n int) {
		scores := make([]float32, len(pool))
		for _, qi := range qs {
			rel := map[int]bool{}
			for k, pi := range pool {
				var dot float32
				for d, x := range qv[qi] {
					dot += x * pv[pi][d]
				}
				scores[k] = dot
				if items[pi].Group == items[qi].Group {
					rel[k] = true
				}
			}
			if len(rel) == 0 {
				continue // no answer in this pool's language
			}
			ranking := eval.Rank(scores)
			ap += eval.AveragePrecision(ranking, rel)
			rr += eval.ReciprocalRank(ranking, rel, 10)
			n++
		}
		if n == 0 {
			return 0, 0, 0
		}
		return ap / float64(n), rr / float64(n), n
	}
	ev := &Evaluation{}
	add := func(s *Scores, ap, rr float64) {
		s.MAP += ap
		s.MRR10 += rr
		s.Runs++
	}
	for _, x := range langs {
		for _, y := range langs {
			ap, rr, n := run(byLang[x], byLang[y])
			if n == 0 {
				continue
			}
			if x == y {
				add(&ev.Mono, ap, rr)
			} else {
				add(&ev.Cross, ap, rr)
			}
		}
		ap, rr, n := run(byLang[x], all)
		if n > 0 {
			add(&ev.Multi, ap, rr)
		}
	}
	for _, s := range []*Scores{&ev.Mono, &ev.Cross, &ev.Multi} {
		if s.Runs > 0 {
			s.MAP /= float64(s.Runs)
			s.MRR10 /= float64(s.Runs)
		}
	}
	return ev
}
