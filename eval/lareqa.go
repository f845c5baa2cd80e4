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
	Depth  int      // results wanted: the pool's size when it is ranked whole
}

// WholePool is the depth that ranks every candidate of a setting's pool,
// as LAReQA and the hybrid-batch paper do: mAP over the complete ranking,
// and a language bias that no cut caps.
const WholePool = 0

// RecallDepth is where recall is cut when the whole pool is ranked.
const RecallDepth = 100

// DepthLabel is "" for the whole pool and "@N" for rankings cut at N, for
// the headers of tables and charts.
func DepthLabel(depth int) string {
	if depth == WholePool {
		return ""
	}
	return fmt.Sprintf("@%d", depth)
}

// RecallAt is where recall is cut for rankings of depth.
func RecallAt(depth int) int {
	if depth == WholePool {
		return RecallDepth
	}
	return depth
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
	// Ranking and Scores hold the first TRECDepth results (Evaluate keeps
	// no more: whole-pool rankings would take tens of gigabytes), or a
	// ranking given to Score whole.
	Ranking []int
	Scores  []float64
	// Found maps each relevant candidate the complete ranking holds to its
	// rank (1-based): what the metrics need. Nil means: read it from
	// Ranking.
	Found map[int]int
}

// TRECDepth is how many results of a ranking Evaluate keeps for the TREC
// run files: enough for nDCG@10, MRR@10 and Recall@100, while the full
// XQuAD-R protocol (157,000 rankings a model) stays at 250 MB in memory.
const TRECDepth = 100

// keep records, from a complete or cut ranking of hits, the ranks of r's
// relevant candidates and r's first TRECDepth results; hits of other
// languages than r's target are skipped.
func (r *Run) keep(hits []Hit, relevant map[int]bool, ds *qa.Dataset) {
	r.Found = map[int]int{}
	r.Ranking, r.Scores = make([]int, 0, min(len(hits), TRECDepth)), make([]float64, 0, min(len(hits), TRECDepth))
	rank := 0
	for _, h := range hits {
		if r.Target != "all" && ds.Candidates[h.Key].Lang != r.Target {
			continue
		}
		rank++
		if relevant[h.Key] {
			r.Found[h.Key] = rank
		}
		if len(r.Ranking) < TRECDepth {
			r.Ranking, r.Scores = append(r.Ranking, h.Key), append(r.Scores, h.Score)
		}
	}
}

// relevantTo returns the candidates relevant to run r: the question's
// answer in the target language, or in every language (multi).
func relevantTo(rel map[string]map[string]int, ds *qa.Dataset, r Run) map[int]bool {
	q := ds.Questions[r.Question]
	relevant := map[int]bool{}
	if r.Setting == Multi {
		for _, key := range rel[q.ID] {
			relevant[key] = true
		}
	} else {
		relevant[rel[q.ID][r.Target]] = true
	}
	return relevant
}

// foundRanks maps the relevant candidates in ranking to their ranks.
func foundRanks(ranking []int, relevant map[int]bool) map[int]int {
	found := map[int]int{}
	for i, c := range ranking {
		if relevant[c] {
			found[c] = i + 1
		}
	}
	return found
}

// Scores are one setting's mean metrics.
type Scores struct {
	MAP      float64 `json:"map"` // over all relevant candidates, ranking cut at Depth
	MRR10    float64 `json:"mrr@10"`
	NDCG10   float64 `json:"ndcg@10"`
	Recall   float64 `json:"recall@depth"` // at RecallAt(Depth)
	Queries  int     `json:"queries"`
	Averaged int     `json:"averaged_over"` // languages or language pairs
}

// Report is an evaluation of one method on one dataset.
type Report struct {
	Dataset string             `json:"dataset"`
	Method  Method             `json:"method"`
	Depth   int                `json:"depth"` // WholePool (0), or where rankings are cut
	Mono    Scores             `json:"mono"`
	Cross   Scores             `json:"cross"`
	Multi   Scores             `json:"multi"`
	PairMAP map[string]float64 `json:"pair_map"` // "X->Y": mAP, mono pairs included
	// LanguageBias is, in the multilingual pool, the spread (max rank - min
	// rank) of a question's relevant candidates, averaged per question
	// language then over languages. Candidates outside the ranking (beyond
	// Depth, or never retrieved by BM25) count at its length+1, so with a
	// Depth it is a lower bound, and a model that finds nothing scores 0.
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
// concurrency queries at a time, and scores the rankings: each setting's
// whole pool with depth WholePool, else the first depth results.
// vectors holds one query vector per question, or is nil for a method
// without vectors (BM25).
func Evaluate(ctx context.Context, r Ranker, ds *qa.Dataset, method Method, vectors [][]float32, depth, concurrency int) (*Report, []Run, error) {
	if vectors != nil && len(vectors) != len(ds.Questions) {
		return nil, nil, fmt.Errorf("evaluate: %d query vectors for %d questions", len(vectors), len(ds.Questions))
	}
	if depth < 0 {
		return nil, nil, fmt.Errorf("evaluate: depth %d (want %d for the whole pool, or a positive cut)", depth, WholePool)
	}
	pool := map[string]int{} // candidates per language
	for _, c := range ds.Candidates {
		pool[c.Lang]++
	}
	limit := func(langs []string) int {
		if depth != WholePool {
			return depth
		}
		n := 0
		for _, l := range langs {
			n += pool[l]
		}
		return n
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
	// A dense or BM25 score does not depend on the rest of the pool (BM25's
	// statistics are the collection's), so a pool's complete ranking is
	// the multilingual ranking restricted to the pool's language: one
	// ranking a question serves all its settings. Hybrid's fusion scales
	// scores by the results it fuses, and a cut ranking cannot be
	// restricted, so those rank every setting's pool on its own.
	shared := depth == WholePool && method != Hybrid
	type job struct {
		query Query
		runs  []*Run // one ranking, restricted to each run's target
	}
	var jobs []job
	for i := range runs {
		run := &runs[i]
		q := ds.Questions[run.Question]
		query := Query{Text: q.Text, Langs: ds.Languages}
		if vectors != nil {
			query.Vector = vectors[run.Question]
		}
		if shared {
			if n := len(jobs); n > 0 && jobs[n-1].runs[0].Question == run.Question {
				jobs[n-1].runs = append(jobs[n-1].runs, run)
				continue
			}
		} else if run.Target != "all" {
			query.Langs = []string{run.Target}
		}
		query.Depth = limit(query.Langs)
		jobs = append(jobs, job{query: query, runs: []*Run{run}})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, j := range jobs {
		g.Go(func() error {
			hits, err := r.Rank(gctx, j.query)
			if err != nil {
				run := j.runs[0]
				q := ds.Questions[run.Question]
				target := strings.Join(j.query.Langs, ",")
				if len(j.runs) == 1 {
					target = run.Target
				}
				return fmt.Errorf("question %s (%s), pool %s of %d results: %w", q.ID, q.Lang, target, j.query.Depth, err)
			}
			for _, run := range j.runs {
				run.keep(hits, relevantTo(rel, ds, *run), ds)
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
		relevant := relevantTo(rel, ds, r)
		found := r.Found
		if found == nil {
			found = foundRanks(r.Ranking, relevant)
		}
		ranks := slices.Sorted(maps.Values(found))
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
		a.ap += averagePrecision(ranks, len(relevant))
		a.rr += reciprocalRank(ranks, 10)
		a.ndcg += ndcg(ranks, len(relevant), 10)
		a.rec += recall(ranks, len(relevant), RecallAt(depth))
		a.n++
		if r.Setting == Multi {
			missing := depth + 1
			if depth == WholePool {
				missing = len(ds.Candidates) + 1
			}
			lo, hi := missing, 0
			for c := range relevant {
				p, ok := found[c]
				if !ok {
					p = missing
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
