package eval

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/xling-ir/xling/qa"
)

// Setting is one of the LAReQA protocol's retrieval settings.
type Setting string

// Settings of the LAReQA protocol.
const (
	Mono  Setting = "mono"  // question language X, pool filtered to X
	Cross Setting = "cross" // X -> Y for every ordered pair X != Y
	Multi Setting = "multi" // pool of every language
)

// Method is how a query is run: dense vectors, Weaviate's BM25, or both fused.
type Method string

// Methods a Ranker may implement.
const (
	Dense  Method = "dense"  // nearest vectors to the question's
	Hybrid Method = "hybrid" // Weaviate's hybrid: BM25 and the vector, relative-score fusion, alpha 0.5
	BM25   Method = "bm25"   // Weaviate's bm25 on the text property
)

// Query is one ranking to make: a question's text and vector (a Ranker
// uses what its method needs) over the candidates of some languages.
type Query struct {
	Text   string
	Vector []float32
	Langs  []string // the pool: candidates of these languages
	Depth  int      // results wanted
}

// Hit is one ranked candidate: its key (qa.Candidate index, or a MIRACL
// passage's number) and score.
type Hit struct {
	Key   int
	Score float64
}

// Ranker ranks a pool for one query, best first: Weaviate in the indexer,
// dot products in the trainer's validation.
type Ranker interface {
	Rank(ctx context.Context, q Query) ([]Hit, error)
}

// Run is one query's ranking: candidate keys, best first.
type Run struct {
	Question int // index into Dataset.Questions
	Setting  Setting
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

// Evaluate ranks every question of ds in the three settings through r,
// concurrency queries at a time, and scores the rankings cut at depth.
// vectors holds one query vector per question, or is nil for a method
// without vectors (BM25).
func Evaluate(ctx context.Context, r Ranker, ds *qa.Dataset, method Method, vectors [][]float32, depth, concurrency int) (*Report, []Run, error) {
	if vectors != nil && len(vectors) != len(ds.Questions) {
		return nil, nil, fmt.Errorf("evaluate: %d query vectors for %d questions", len(vectors), len(ds.Questions))
	}
	if depth <= 0 {
		depth = 100
	}
	rel := relevance(ds)
	var runs []Run
	for qi, q := range ds.Questions {
		for _, lang := range ds.Languages {
			if _, ok := rel[q.ID][lang]; !ok {
				continue // MLQA-R: no answer in that language
			}
			setting := Cross
			if lang == q.Lang {
				setting = Mono
			}
			runs = append(runs, Run{Question: qi, Setting: setting, Target: lang})
		}
		runs = append(runs, Run{Question: qi, Setting: Multi, Target: "all"})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for i := range runs {
		run := &runs[i]
		q := ds.Questions[run.Question]
		query := Query{Text: q.Text, Langs: ds.Languages, Depth: depth}
		if vectors != nil {
			query.Vector = vectors[run.Question]
		}
		if run.Target != "all" {
			query.Langs = []string{run.Target}
		}
		g.Go(func() error {
			hits, err := r.Rank(gctx, query)
			if err != nil {
				return fmt.Errorf("question %s (%s) in the %s pool: %w", q.ID, q.Lang, run.Target, err)
			}
			run.Ranking = make([]int, len(hits))
			run.Scores = make([]float64, len(hits))
			for k, h := range hits {
				run.Ranking[k], run.Scores[k] = h.Key, h.Score
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return Score(ds, runs, method, depth), runs, nil
}

// Score aggregates runs as LAReQA does: metrics averaged per language pair
// (mono and cross) or per query language (multi), then over them.
func Score(ds *qa.Dataset, runs []Run, method Method, depth int) *Report {
	rel := relevance(ds)
	type acc struct {
		ap, rr, ndcg, rec float64
		n                 int
	}
	type spread struct {
		sum float64
		n   int
	}
	pairs := map[string]*acc{}
	multi := map[string]*acc{}
	bias := map[string]*spread{}
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
		a.ap += AveragePrecision(r.Ranking, relevant)
		a.rr += ReciprocalRank(r.Ranking, relevant, 10)
		a.ndcg += NDCG(r.Ranking, relevant, 10)
		a.rec += Recall(r.Ranking, relevant, depth)
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
				b = &spread{}
				bias[q.Lang] = b
			}
			b.sum += float64(hi - lo)
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
	for _, k := range slices.Sorted(maps.Keys(multi)) {
		mean(&rep.Multi, multi[k])
	}
	biasSum := 0.0
	for _, k := range slices.Sorted(maps.Keys(bias)) {
		biasSum += bias[k].sum / float64(bias[k].n)
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
