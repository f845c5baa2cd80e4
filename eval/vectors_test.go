package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/xling-ir/xling/qa"
)

// countingRanker counts the rankings asked of it.
type countingRanker struct {
	Ranker
	calls atomic.Int64
}

func (c *countingRanker) Rank(ctx context.Context, q Query) ([]Hit, error) {
	c.calls.Add(1)
	return c.Ranker.Rank(ctx, q)
}

// parallelSet is a random 3-language parallel dataset: n questions per
// language, each answered by a candidate of its own, with extra
// candidates so that pools differ in size, and vectors of dim 8 where a
// question lies near its answers.
func parallelSet(n int) (*qa.Dataset, [][]float32, [][]float32) {
	r := rand.New(rand.NewPCG(1, 2))
	ds := &qa.Dataset{Name: "toy", Languages: []string{"de", "en", "zh"}}
	var qv, cv [][]float32
	noise := func(base []float32, s float32) []float32 {
		v := make([]float32, len(base))
		for i := range v {
			v[i] = base[i] + s*float32(r.NormFloat64())
		}
		return v
	}
	for i := range n {
		topic := noise(make([]float32, 8), 1)
		for li, lang := range ds.Languages {
			ds.Questions = append(ds.Questions, qa.Question{ID: fmt.Sprint(i), Lang: lang, Text: "q", Answer: len(ds.Candidates), Negative: -1})
			ds.Candidates = append(ds.Candidates, qa.Candidate{Lang: lang, Text: "c"})
			qv, cv = append(qv, noise(topic, 0.8)), append(cv, noise(topic, 0.8))
			for range li { // distractors: de 0, en 1, zh 2 a question
				ds.Candidates = append(ds.Candidates, qa.Candidate{Lang: lang, Text: "d"})
				cv = append(cv, noise(make([]float32, 8), 1))
			}
		}
	}
	return ds, qv, cv
}

// TestSharedWholePool checks that ranking a question's multilingual pool
// once and restricting it to each language gives the scores of ranking
// every setting's pool on its own.
func TestSharedWholePool(t *testing.T) {
	ds, qv, cv := parallelSet(40)
	exact, err := NewVectorRanker(ds, cv)
	if err != nil {
		t.Fatal(err)
	}
	shared := &countingRanker{Ranker: exact}
	got, gotRuns, err := Evaluate(context.Background(), shared, ds, Dense, qv, WholePool, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Hybrid's scores depend on the pool, so it ranks each setting apart;
	// the vector ranker ignores the method, which makes it the reference.
	apart := &countingRanker{Ranker: exact}
	want, wantRuns, err := Evaluate(context.Background(), apart, ds, Hybrid, qv, WholePool, 4)
	if err != nil {
		t.Fatal(err)
	}
	if shared.calls.Load() != int64(len(ds.Questions)) || apart.calls.Load() != int64(len(gotRuns)) {
		t.Errorf("%d shared rankings for %d questions; %d apart for %d runs", shared.calls.Load(), len(ds.Questions), apart.calls.Load(), len(wantRuns))
	}
	for i := range gotRuns {
		g, w := gotRuns[i], wantRuns[i]
		if !reflect.DeepEqual(g.Found, w.Found) || !reflect.DeepEqual(g.Ranking, w.Ranking) {
			t.Fatalf("run %d (%s, %s): shared found %v first %v; apart %v first %v", i, g.Setting, g.Target, g.Found, g.Ranking[:3], w.Found, w.Ranking[:3])
		}
	}
	got.Method = want.Method
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shared report %+v\napart report %+v", got, want)
	}
	if got.Multi.MAP <= 0.2 || got.Mono.MAP >= 1 {
		t.Errorf("multi mAP %.3f, mono %.3f: the fixture does not separate answers from distractors as intended", got.Multi.MAP, got.Mono.MAP)
	}

	if _, err := NewVectorRanker(ds, cv[1:]); err == nil {
		t.Error("a vector ranker with a vector missing was built")
	}
	if _, err := exact.Rank(context.Background(), Query{Vector: []float32{1}, Langs: []string{"de"}, Depth: 1}); err == nil {
		t.Error("a query of another dimension was ranked")
	}
}
