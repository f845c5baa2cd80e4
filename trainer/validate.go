package trainer

import (
	"context"
	"fmt"
	"runtime"
	"sort"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
)

// Evaluation is one in-memory validation: LAReQA's three settings over the
// validation items' passages, every pool ranked whole, scored by package
// eval as the evaluation in Weaviate is.
type Evaluation struct {
	Step         int         `json:"step"`
	Mono         eval.Scores `json:"mono"`  // query language X, pool of X
	Cross        eval.Scores `json:"cross"` // X -> Y for every ordered pair X != Y
	Multi        eval.Scores `json:"multi"` // pool of every language
	LanguageBias float64     `json:"language_bias"`
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
	return score(items, qv, pv)
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
	return score(items, qv, pv)
}

func texts(items []Item) (queries, passages []string) {
	queries = make([]string, len(items))
	passages = make([]string, len(items))
	for i, it := range items {
		queries[i], passages[i] = it.Query, it.Passage
	}
	return queries, passages
}

// score ranks each setting's pools by cosine: a query's relevant
// passages are its group's, one per language.
func score(items []Item, qv, pv [][]float32) (*Evaluation, error) {
	ds, err := asDataset(items)
	if err != nil {
		return nil, err
	}
	ranker, err := eval.NewVectorRanker(ds, pv)
	if err != nil {
		return nil, err
	}
	rep, _, err := eval.Evaluate(context.Background(), ranker, ds, eval.Dense, qv, eval.WholePool, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	return &Evaluation{Mono: rep.Mono, Cross: rep.Cross, Multi: rep.Multi, LanguageBias: rep.LanguageBias}, nil
}

// asDataset is items as a LAReQA dataset: each item a question of its
// group and a candidate passage of its own.
func asDataset(items []Item) (*qa.Dataset, error) {
	ds := &qa.Dataset{Name: "validation"}
	seen := map[[2]string]bool{}
	langs := map[string]bool{}
	for i, it := range items {
		if seen[[2]string{it.Group, it.Lang}] {
			return nil, fmt.Errorf("validation: group %s has two items in %s (a group holds one question per language)", it.Group, it.Lang)
		}
		seen[[2]string{it.Group, it.Lang}] = true
		if !langs[it.Lang] {
			langs[it.Lang] = true
			ds.Languages = append(ds.Languages, it.Lang)
		}
		ds.Questions = append(ds.Questions, qa.Question{ID: it.Group, Lang: it.Lang, Text: it.Query, Answer: i, Negative: -1})
		ds.Candidates = append(ds.Candidates, qa.Candidate{Lang: it.Lang, Text: it.Passage})
	}
	sort.Strings(ds.Languages)
	return ds, nil
}
