package eval

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/xling-ir/xling/miracl"
)

// MIRACLScores is one language's monolingual evaluation.
type MIRACLScores struct {
	Lang    string  `json:"lang"`
	Topics  int     `json:"topics"`     // evaluated: with a judged-relevant passage loaded
	All     int     `json:"all_topics"` // dev topics of the language
	NDCG10  float64 `json:"ndcg@10"`
	Recall  float64 `json:"recall@depth"`
	Partial bool    `json:"partial_corpus"`
}

// MIRACLRun is one topic's ranking, as docids.
type MIRACLRun struct {
	Topic   miracl.Judged
	Ranking []string
	Scores  []float64
}

// EvaluateMIRACL ranks each topic's language pool through r (by
// vectors[i] for topics[i], or by its text when vectors is nil), where a
// hit's key indexes docids, and scores nDCG@10 and recall at depth against
// the loaded relevant passages.
func EvaluateMIRACL(ctx context.Context, r Ranker, topics []miracl.Judged, vectors [][]float32, docids []string, depth, concurrency int, partial bool) ([]MIRACLScores, []MIRACLRun, error) {
	if depth <= 0 {
		depth = 100
	}
	runs := make([]MIRACLRun, len(topics))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for i, t := range topics {
		q := Query{Text: t.Query, Langs: []string{t.Lang}, Depth: depth}
		if vectors != nil {
			q.Vector = vectors[i]
		}
		g.Go(func() error {
			hits, err := r.Rank(gctx, q)
			if err != nil {
				return fmt.Errorf("miracl %s topic %s: %w", t.Lang, t.QID, err)
			}
			run := MIRACLRun{Topic: t}
			for _, h := range hits {
				run.Ranking = append(run.Ranking, docids[h.Key])
				run.Scores = append(run.Scores, h.Score)
			}
			runs[i] = run
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	per := map[string]*MIRACLScores{}
	for _, r := range runs {
		s := per[r.Topic.Lang]
		if s == nil {
			s = &MIRACLScores{Lang: r.Topic.Lang, Partial: partial}
			per[r.Topic.Lang] = s
		}
		// The eval package ranks integers: number the docids of this run.
		keys := map[string]int{}
		key := func(d string) int {
			if k, ok := keys[d]; ok {
				return k
			}
			keys[d] = len(keys)
			return keys[d]
		}
		ranking := make([]int, len(r.Ranking))
		for i, d := range r.Ranking {
			ranking[i] = key(d)
		}
		relevant := map[int]bool{}
		for d := range r.Topic.Relevant {
			relevant[key(d)] = true
		}
		s.NDCG10 += NDCG(ranking, relevant, 10)
		s.Recall += Recall(ranking, relevant, depth)
		s.Topics++
	}
	out := make([]MIRACLScores, 0, len(per))
	for _, s := range per {
		s.NDCG10 /= float64(s.Topics)
		s.Recall /= float64(s.Topics)
		out = append(out, *s)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Lang < out[b].Lang })
	return out, runs, nil
}

// MIRACLReport is a MIRACL evaluation: each method's scores per language.
type MIRACLReport struct {
	Depth   int                       `json:"depth"`
	Partial bool                      `json:"partial_corpus"`
	Results map[Method][]MIRACLScores `json:"results"`
}

// Markdown renders the report as a table, saying how far a partial corpus
// is from the published protocol.
func (r *MIRACLReport) Markdown() string {
	var b strings.Builder
	label := "the whole corpus"
	if r.Partial {
		label = "a PARTIAL corpus: only dev topics with a judged-relevant passage in it are scored, against the relevant passages it holds; not comparable with published MIRACL numbers"
	}
	fmt.Fprintf(&b, "# MIRACL dev, monolingual, in Weaviate (%s)\n\n| method | lang | topics scored | dev topics | nDCG@10 | Recall@%d |\n|---|---|---|---|---|---|\n", label, r.Depth)
	for _, m := range []Method{Dense, Hybrid, BM25} {
		for _, s := range r.Results[m] {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %.4f | %.4f |\n", m, s.Lang, s.Topics, s.All, s.NDCG10, s.Recall)
		}
	}
	return b.String()
}
