package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/miracl"
	"github.com/xling-ir/xling/vectorizer"
)

// runMIRACL streams a MIRACL corpus into Weaviate and evaluates the dev
// topics monolingually (nDCG@10, recall at the depth), dense and BM25.
func runMIRACL(ctx context.Context, fs *flag.FlagSet, args []string) error {
	corpus := fs.String("corpus", "", "MIRACL corpus: JSON lines {lang, docid, title, text}, optionally .gz (e.g. miracl-partial/corpus.jsonl)")
	topics := fs.String("topics", "", "directory of MIRACL dev topics and qrels (topics.miracl-v1.0-<lang>-dev.tsv, qrels...)")
	partial := fs.Bool("partial", true, "the corpus is not the whole MIRACL corpus: say so in the report (its numbers are not comparable with published ones)")
	langs := fs.String("langs", "", "comma-separated languages; empty means every language in the corpus")
	class := fs.String("class", "Miracl", "collection name")
	wv := addWeaviateFlags(fs)
	model := addModelFlags(fs, "model directory for passage and query vectors; empty evaluates BM25 only")
	depth := fs.Int("depth", 100, "results per query; recall is cut there")
	out := fs.String("out", "eval-miracl", "directory for report.json, report.md and TREC run files")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *corpus == "" || *topics == "" {
		return fmt.Errorf("%w: give --corpus and --topics", cli.ErrUsage)
	}
	conn, err := wv.connection(false)
	if err != nil {
		return err
	}
	client, err := indexer.Connect(conn)
	if err != nil {
		return err
	}
	var v *vectorizer.Vectorizer
	var encode func([]string) ([][]float32, error)
	if *model.dir != "" {
		if v, err = model.load(64, log); err != nil {
			return err
		}
		defer v.Close()
		encode = func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Passage) }
	}
	im := &indexer.Importer{Client: client, Class: *class, Logger: log}
	if err := im.EnsureCollection(ctx, indexer.Schema{Vectorizer: "none", Index: "flat"}); err != nil {
		return err
	}
	loaded, err := indexer.ImportMIRACL(ctx, im, *corpus, splitList(*langs), encode, log)
	if err != nil {
		return err
	}
	var all []miracl.Judged
	totals := map[string]int{}
	for lang := range loaded {
		kept, n, err := miracl.JudgedTopics(*topics, lang, loaded[lang])
		if errors.Is(err, os.ErrNotExist) {
			log.Warn("no dev topics for a corpus language", "lang", lang)
			continue
		}
		if err != nil {
			return err
		}
		totals[lang] = n
		all = append(all, kept...)
	}
	search, err := indexer.DialSearch(conn)
	if err != nil {
		return err
	}
	defer search.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	rep := &eval.MIRACLReport{Depth: *depth, Partial: *partial, Results: map[eval.Method][]eval.MIRACLScores{}}
	methods := []eval.Method{eval.BM25}
	if v != nil {
		methods = append([]eval.Method{eval.Dense}, methods...)
	}
	for _, method := range methods {
		var vecs [][]float32
		if method == eval.Dense {
			queries := make([]string, len(all))
			for i, t := range all {
				queries[i] = t.Query
			}
			if vecs, err = v.Encode(ctx, queries, vectorizer.Query); err != nil {
				return err
			}
		}
		ranker, docids := search.MIRACLRanker(*class, method, loaded)
		scores, runs, err := eval.EvaluateMIRACL(ctx, ranker, all, vecs, docids, *depth, 8, *partial)
		if err != nil {
			return err
		}
		for i := range scores {
			scores[i].All = totals[scores[i].Lang]
		}
		rep.Results[method] = scores
		if err := eval.WriteMIRACLRun(filepath.Join(*out, string(method)+".run"), runs, string(method)); err != nil {
			return err
		}
	}
	md := rep.Markdown()
	if err := eval.WriteReport(*out, rep, md); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}
