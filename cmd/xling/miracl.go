package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/vectorizer"
)

// runMIRACL streams a MIRACL corpus into Weaviate and evaluates the dev
// topics monolingually (nDCG@10, recall at the depth), dense and BM25.
func runMIRACL(ctx context.Context, fs *flag.FlagSet, args []string) error {
	m := indexer.MIRACLEval{}
	fs.StringVar(&m.Corpus, "corpus", "", "MIRACL corpus: JSON lines {lang, docid, title, text}, optionally .gz (e.g. miracl-partial/corpus.jsonl)")
	fs.StringVar(&m.Topics, "topics", "", "directory of MIRACL dev topics and qrels (topics.miracl-v1.0-<lang>-dev.tsv, qrels...)")
	fs.BoolVar(&m.Partial, "partial", true, "the corpus is not the whole MIRACL corpus: say so in the report (its numbers are not comparable with published ones)")
	langs := fs.String("langs", "", "comma-separated languages; empty means every language in the corpus")
	class := fs.String("class", "Miracl", "collection name")
	wv := addWeaviateFlags(fs)
	model := addModelFlags(fs, "model directory for passage and query vectors; empty evaluates BM25 only")
	fs.IntVar(&m.Depth, "depth", 100, "results per query; recall is cut there")
	out := fs.String("out", "eval-miracl", "directory for report.json, report.md and TREC run files")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if m.Corpus == "" || m.Topics == "" {
		return fmt.Errorf("%w: give --corpus and --topics", cli.ErrUsage)
	}
	m.Langs, m.Log = splitList(*langs), log
	conn, err := wv.connection(false)
	if err != nil {
		return err
	}
	db, err := indexer.Open(ctx, conn, localweaviate.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	var passages, queries indexer.Encode
	if *model.dir != "" {
		v, err := model.load(64, log)
		if err != nil {
			return err
		}
		defer v.Close()
		passages = func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Passage) }
		queries = func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Query) }
	}
	im := db.Importer(*class)
	im.Logger = log
	rep, runs, err := m.Run(ctx, im, db.Search, passages, queries, true)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for method, rs := range runs {
		if err := eval.WriteMIRACLRun(filepath.Join(*out, string(method)+".run"), rs, string(method)); err != nil {
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
