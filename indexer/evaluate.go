package indexer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/qa"
)

// Settings of the LAReQA protocol.
const (
	Mono  = "mono"  // question language X, pool filtered to X
	Cross = "cross" // X -> Y for every ordered pair X != Y
	Multi = "multi" // pool of every language
)

// Method is how a query is run: dense vectors, Weaviate's BM25, or both fused.
type Method string

const (
	Dense  Method = "dense"  // nearVector with the question's vector
	Hybrid Method = "hybrid" // Weaviate's hybrid: BM25 and the vector, relative-score fusion, alpha 0.5
	BM25   Method = "bm25"   // Weaviate's bm25 on the text property
)

// Evaluator ranks a dataset's questions inside Weaviate.
type Evaluator struct {
	Search      *Searcher
	Class       string
	Depth       int // results per query; metrics are cut there (default 100)
	Concurrency int // queries in flight (default 8)
}

// Run is one query's ranking: candidate keys, best first.
type Run struct {
	Question int // index into Dataset.Questions
	Setting  string
	Target   string // the pool's language, or "all"
	Ranking  []int
	Scores   []float64
}

// Scores are one setting's mean metrics.
type Scores struct {
	MAP      float64 `json:"map"` // over all relevant candidates, ranking cut at Depth
	MRR10    float64 `json:"mrr@10"`
	NDCG10   float64 `json:"ndcg@10"`
	Recall   float64 `json:"recall@depth"`
	Queries  int     `json:"queries"`
	Averaged int     `json:"averaged_over"` // languages or language pairs
}

// Report is an evaluation of one method on one dataset.
type Report struct {
	Dataset string             `json:"dataset"`
	Method  Method             `json:"method"`
	Depth   int                `json:"depth"`
	Mono    Scores             `json:"mono"`
	Cross   Scores             `json:"cross"`
	Multi   Scores             `json:"multi"`
	PairMAP map[string]float64 `json:"pair_map"` // "X->Y": mAP, mono pairs included
	// LanguageBias is, in the multilingual pool, the spread (max rank - min
	// rank) of a question's relevant candidates, averaged per question
	// language then over languages. Candidates beyond Depth count at
	// Depth+1, so it is a lower bound when any fall outside.
	LanguageBias float64 `json:"language_bias"`
	// Top10Share is the share of each language among the multilingual
	// pool's top 10 results.
	Top10Share map[string]float64 `json:"top10_share"`
}

// relevance maps a question id to its answer candidate key per language.
func relevance(ds *qa.Dataset) map[string]map[string]int {
	rel := map[string]map[string]int{}
	for _, q := range ds.Questions {
		if rel[q.ID] == nil {
			rel[q.ID] = map[string]int{}
		}
		rel[q.ID][q.Lang] = q.Answer
	}
	return rel
}

type task struct {
	q       int
	setting string
	target  string
}

// Evaluate runs every question of ds in the three settings. vectors holds
// one query vector per question for Dense, and is ignored for BM25.
func (e *Evaluator) Evaluate(ctx context.Context, ds *qa.Dataset, method Method, vectors [][]float32) (*Report, []Run, error) {
	depth, conc := e.Depth, e.Concurrency
	if depth <= 0 {
		depth = 100
	}
	if conc <= 0 {
		conc = 8
	}
	if method == Dense && len(vectors) != len(ds.Questions) {
		return nil, nil, fmt.Errorf("evaluate: %d query vectors for %d questions", len(vectors), len(ds.Questions))
	}
	rel := relevance(ds)
	// Hits name objects by id; the candidate they are is found by the id
	// Docs gives it, whatever the collection holds besides.
	keys := map[string]int{}
	for _, d := range Docs(ds, Sentence) {
		keys[d.ID.String()] = d.Key
	}
	var tasks []task
	for qi, q := range ds.Questions {
		for _, lang := range ds.Languages {
			if _, ok := rel[q.ID][lang]; !ok {
				continue // MLQA-R: no answer in that language
			}
			setting := Cross
			if lang == q.Lang {
				setting = Mono
			}
			tasks = append(tasks, task{qi, setting, lang})
		}
		tasks = append(tasks, task{qi, Multi, "all"})
	}
	runs := make([]Run, len(tasks))
	errs := make(chan error, conc)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t := tasks[i]
				ranking, scores, err := e.query(ctx, method, ds, keys, ds.Questions[t.q].Text, vectorOf(vectors, t.q), t.target, depth)
				if err != nil {
					select {
					case errs <- fmt.Errorf("question %s (%s) in the %s pool: %w", ds.Questions[t.q].ID, ds.Questions[t.q].Lang, t.target, err):
					default:
					}
					continue
				}
				runs[i] = Run{Question: t.q, Setting: t.setting, Target: t.target, Ranking: ranking, Scores: scores}
			}
		}()
	}
	for i := range tasks {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return nil, nil, err
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return nil, nil, ctx.Err()
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, nil, err
	default:
	}
	return Score(ds, runs, method, depth), runs, nil
}

func vectorOf(v [][]float32, i int) []float32 {
	if v == nil {
		return nil
	}
	return v[i]
}

// query ranks the pool of target ("all": every language of ds) for one
// question, as candidate keys with their scores.
func (e *Evaluator) query(ctx context.Context, method Method, ds *qa.Dataset, keys map[string]int, text string, vector []float32, target string, depth int) ([]int, []float64, error) {
	q := Query{Class: e.Class, Limit: depth, Langs: ds.Languages}
	if target != "all" {
		q.Langs = []string{target}
	}
	switch method {
	case BM25:
		q.Text = text
	case Hybrid:
		q.Text, q.Vector, q.Hybrid, q.Alpha = text, vector, true, 0.5
	default:
		q.Vector = vector
	}
	hits, err := e.Search.Search(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	ranking := make([]int, 0, len(hits))
	scores := make([]float64, 0, len(hits))
	for _, h := range hits {
		key, ok := keys[h.ID]
		if !ok {
			return nil, nil, fmt.Errorf("collection %s holds object %s, which is no candidate of %s (%s): index it from the same dataset", e.Class, h.ID, ds.Name, strings.Join(ds.Languages, ","))
		}
		ranking = append(ranking, key)
		scores = append(scores, h.Score)
	}
	return ranking, scores, nil
}

// Score aggregates runs as LAReQA does: metrics averaged per language pair
// (mono and cross) or per query language (multi), then over them.
func Score(ds *qa.Dataset, runs []Run, method Method, depth int) *Report {
	rel := relevance(ds)
	type acc struct {
		ap, rr, ndcg, rec float64
		n                 int
	}
	pairs := map[string]*acc{}
	multi := map[string]*acc{}
	bias := map[string]*acc{}
	share := map[string]float64{}
	shareN := 0
	for _, r := range runs {
		q := ds.Questions[r.Question]
		relevant := map[int]bool{}
		if r.Setting == Multi {
			for _, key := range rel[q.ID] {
				relevant[key] = true
			}
		} else {
			relevant[rel[q.ID][r.Target]] = true
		}
		key := q.Lang + "->" + r.Target
		table := pairs
		if r.Setting == Multi {
			table, key = multi, q.Lang
		}
		a := table[key]
		if a == nil {
			a = &acc{}
			table[key] = a
		}
		a.ap += eval.AveragePrecision(r.Ranking, relevant)
		a.rr += eval.ReciprocalRank(r.Ranking, relevant, 10)
		a.ndcg += eval.NDCG(r.Ranking, relevant, 10)
		a.rec += eval.Recall(r.Ranking, relevant, depth)
		a.n++
		if r.Setting == Multi {
			lo, hi := depth+1, 0
			pos := map[int]int{}
			for i, c := range r.Ranking {
				pos[c] = i + 1
			}
			for c := range relevant {
				p, ok := pos[c]
				if !ok {
					p = depth + 1
				}
				lo, hi = min(lo, p), max(hi, p)
			}
			b := bias[q.Lang]
			if b == nil {
				b = &acc{}
				bias[q.Lang] = b
			}
			b.ap += float64(hi - lo)
			b.n++
			for i, c := range r.Ranking {
				if i == 10 {
					break
				}
				share[ds.Candidates[c].Lang]++
				shareN++
			}
		}
	}
	rep := &Report{Dataset: ds.Name, Method: method, Depth: depth, PairMAP: map[string]float64{}, Top10Share: map[string]float64{}}
	mean := func(s *Scores, a *acc) {
		s.MAP += a.ap / float64(a.n)
		s.MRR10 += a.rr / float64(a.n)
		s.NDCG10 += a.ndcg / float64(a.n)
		s.Recall += a.rec / float64(a.n)
		s.Queries += a.n
		s.Averaged++
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := pairs[k]
		rep.PairMAP[k] = a.ap / float64(a.n)
		if from, to, _ := strings.Cut(k, "->"); from == to {
			mean(&rep.Mono, a)
		} else {
			mean(&rep.Cross, a)
		}
	}
	// Sums in sorted order: a float sum in map order would differ in its
	// last bits from run to run, and the report must recompute exactly.
	for _, k := range sortedKeys(multi) {
		mean(&rep.Multi, multi[k])
	}
	biasSum := 0.0
	for _, k := range sortedKeys(bias) {
		biasSum += bias[k].ap / float64(bias[k].n)
	}
	if len(bias) > 0 {
		rep.LanguageBias = biasSum / float64(len(bias))
	}
	for _, s := range []*Scores{&rep.Mono, &rep.Cross, &rep.Multi} {
		if s.Averaged > 0 {
			s.MAP /= float64(s.Averaged)
			s.MRR10 /= float64(s.Averaged)
			s.NDCG10 /= float64(s.Averaged)
			s.Recall /= float64(s.Averaged)
		}
	}
	for lang, n := range share {
		rep.Top10Share[lang] = n / float64(shareN)
	}
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
