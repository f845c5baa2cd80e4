package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
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

// MIRACLEval evaluates a model on MIRACL inside Weaviate: the corpus
// loaded into a collection, the dev topics ranked monolingually.
type MIRACLEval struct {
	Corpus  string   // JSON lines {lang, docid, title, text}, optionally .gz
	Topics  string   // directory of dev topics and qrels
	Langs   []string // empty: every language of the corpus
	Partial bool     // the corpus is not MIRACL's whole corpus
	Depth   int      // results per query; recall is cut there
	Log     *slog.Logger
}

// Encode is a model's vectors for texts (passages or queries).
type Encode func(texts []string) ([][]float32, error)

// Run loads the corpus into im's collection with passage vectors (nil:
// none, BM25 only), keeps the dev topics with a judged-relevant passage
// loaded, and ranks them densely with query vectors (when passages is not
// nil) and by BM25 (when bm25). It returns the report and each method's
// rankings.
func (m MIRACLEval) Run(ctx context.Context, im *Importer, search *Searcher, passages, queries Encode, bm25 bool) (*eval.MIRACLReport, map[eval.Method][]eval.MIRACLRun, error) {
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none", Index: "flat", DenseOnly: !bm25}); err != nil {
		return nil, nil, err
	}
	loaded, err := ImportMIRACL(ctx, im, m.Corpus, m.Langs, passages, log)
	if err != nil {
		return nil, nil, err
	}
	var all []miracl.Judged
	totals := map[string]int{}
	for _, lang := range slices.Sorted(maps.Keys(loaded)) {
		kept, n, err := miracl.JudgedTopics(m.Topics, lang, loaded[lang])
		if errors.Is(err, os.ErrNotExist) {
			log.Warn("no dev topics for a corpus language", "lang", lang)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		totals[lang] = n
		all = append(all, kept...)
	}
	var methods []eval.Method
	if passages != nil {
		methods = append(methods, eval.Dense)
	}
	if bm25 {
		methods = append(methods, eval.BM25)
	}
	rep := &eval.MIRACLReport{Depth: m.Depth, Partial: m.Partial, Results: map[eval.Method][]eval.MIRACLScores{}}
	runs := map[eval.Method][]eval.MIRACLRun{}
	for _, method := range methods {
		var vecs [][]float32
		if method == eval.Dense {
			texts := make([]string, len(all))
			for i, t := range all {
				texts[i] = t.Query
			}
			if vecs, err = queries(texts); err != nil {
				return nil, nil, err
			}
		}
		ranker, docids := search.MIRACLRanker(im.Class, method, loaded)
		scores, rs, err := eval.EvaluateMIRACL(ctx, ranker, all, vecs, docids, m.Depth, 8, m.Partial)
		if err != nil {
			return nil, nil, err
		}
		for i := range scores {
			scores[i].All = totals[scores[i].Lang]
		}
		rep.Results[method], runs[method] = scores, rs
	}
	return rep, runs, nil
}
