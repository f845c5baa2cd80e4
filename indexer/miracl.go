package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/go-openapi/strfmt"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/miracl"
)

// MIRACLSource names MIRACL objects' dataset in their ids.
const MIRACLSource = "miracl"

// MIRACLID is a MIRACL passage's object id.
func MIRACLID(lang, docid string) strfmt.UUID { return ObjectID(MIRACLSource, lang, docid) }

// ImportMIRACL streams a MIRACL corpus (JSON lines, optionally gzipped)
// into the importer's collection chunk by chunk, never holding it whole:
// each chunk is encoded (encode nil: Weaviate vectorises) and imported. It
// keeps the passages of langs (empty: all) and returns, per language, the
// docids it loaded.
func ImportMIRACL(ctx context.Context, im *Importer, corpus string, langs []string, encode func([]string) ([][]float32, error), log *slog.Logger) (map[string]map[string]bool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keep := map[string]bool{}
	for _, l := range langs {
		keep[l] = true
	}
	loaded := map[string]map[string]bool{}
	const chunk = 2000
	var docs []Doc
	total, start := 0, time.Now()
	flush := func() error {
		if len(docs) == 0 {
			return nil
		}
		var vecs [][]float32
		if encode != nil {
			texts := Texts(docs)
			var err error
			if vecs, err = encode(texts); err != nil {
				return err
			}
		}
		if err := im.Import(ctx, docs, vecs); err != nil {
			return err
		}
		total += len(docs)
		log.Info("miracl import", "passages", total, "per_s", fmt.Sprintf("%.0f", float64(total)/time.Since(start).Seconds()))
		docs = docs[:0]
		return nil
	}
	err := miracl.StreamCorpus(corpus, func(p miracl.Passage) error {
		if len(keep) > 0 && !keep[p.Lang] {
			return nil
		}
		if loaded[p.Lang] == nil {
			loaded[p.Lang] = map[string]bool{}
		}
		loaded[p.Lang][p.DocID] = true
		text := p.Text
		if p.Title != "" {
			text = p.Title + "\n" + p.Text
		}
		docs = append(docs, Doc{ID: MIRACLID(p.Lang, p.DocID), Key: total + len(docs), Lang: p.Lang, Text: text, Parallel: p.DocID, Source: MIRACLSource})
		if len(docs) == chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loaded, flush()
}

// MIRACLTopic is one dev query to evaluate: its language, text and the
// judged-relevant passages that the loaded corpus holds.
type MIRACLTopic struct {
	Lang, QID, Query string
	Relevant         map[string]bool // docids
}

// MIRACLTopics keeps the dev topics of a language with at least one
// judged-relevant passage in loaded: on a partial corpus the rest cannot be
// scored. It also returns how many topics the language has in all.
func MIRACLTopics(dir, lang string, loaded map[string]bool) (kept []MIRACLTopic, all int, err error) {
	topics, err := miracl.ReadTopics(miracl.TopicsPath(dir, lang))
	if err != nil {
		return nil, 0, err
	}
	qrels, err := miracl.ReadQrels(miracl.QrelsPath(dir, lang))
	if err != nil {
		return nil, 0, err
	}
	rel := map[string]map[string]bool{}
	for _, j := range qrels {
		if j.Relevance > 0 && loaded[j.DocID] {
			if rel[j.QID] == nil {
				rel[j.QID] = map[string]bool{}
			}
			rel[j.QID][j.DocID] = true
		}
	}
	for _, t := range topics {
		if len(rel[t.ID]) > 0 {
			kept = append(kept, MIRACLTopic{Lang: lang, QID: t.ID, Query: t.Query, Relevant: rel[t.ID]})
		}
	}
	return kept, len(topics), nil
}

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
	Topic   MIRACLTopic
	Ranking []string
	Scores  []float64
}

// EvaluateMIRACL ranks each topic's language pool in the collection (by
// vectors[i] for topics[i], or BM25 when vectors is nil) and scores nDCG@10
// and recall at the search depth against the loaded relevant passages.
func (e *Evaluator) EvaluateMIRACL(ctx context.Context, topics []MIRACLTopic, vectors [][]float32, docids map[string]map[string]bool, partial bool) ([]MIRACLScores, []MIRACLRun, error) {
	depth := e.Depth
	if depth <= 0 {
		depth = 100
	}
	// Hits name objects by id; map the loaded passages' ids back.
	byID := map[string]string{}
	for lang, ids := range docids {
		for d := range ids {
			byID[MIRACLID(lang, d).String()] = d
		}
	}
	runs := make([]MIRACLRun, len(topics))
	errs := make([]error, len(topics))
	sem := make(chan struct{}, max(e.Concurrency, 1))
	var wg sync.WaitGroup
	for i, t := range topics {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			q := Query{Class: e.Class, Limit: depth, Langs: []string{t.Lang}, Text: t.Query}
			if vectors != nil {
				q.Vector = vectors[i]
			}
			hits, err := e.Search.Search(ctx, q)
			if err != nil {
				errs[i] = fmt.Errorf("miracl %s topic %s: %w", t.Lang, t.QID, err)
				return
			}
			r := MIRACLRun{Topic: t}
			for _, h := range hits {
				r.Ranking = append(r.Ranking, byID[h.ID])
				r.Scores = append(r.Scores, h.Score)
			}
			runs[i] = r
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
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
		s.NDCG10 += eval.NDCG(ranking, relevant, 10)
		s.Recall += eval.Recall(ranking, relevant, depth)
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
