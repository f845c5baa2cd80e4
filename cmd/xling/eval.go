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

// runEval evaluates a collection made by `xling index`: dense retrieval
// with --model's query vectors, and Weaviate's BM25 and hybrid search on the
// same collection.
func runEval(ctx context.Context, fs *flag.FlagSet, args []string) error {
	coll := addCollectionFlags(fs)
	model := addModelFlags(fs, "model directory for query vectors; empty evaluates BM25 only")
	bm25 := fs.Bool("bm25", true, "also evaluate Weaviate's BM25 as a baseline")
	hybrid := fs.Bool("hybrid", true, "with --model, also evaluate Weaviate's hybrid search (BM25 + vector, alpha 0.5)")
	depth := fs.Int("depth", eval.WholePool, "0 ranks each setting's whole pool (LAReQA's protocol; recall at 100); N cuts every ranking at N results, and the report says @N")
	concurrency := fs.Int("concurrency", 8, "queries in flight")
	sample := fs.Int("max-questions", 0, "evaluate the questions of the first N question ids only (every pool whole), as a sampled study does; 0 means all")
	out := fs.String("out", "eval", "directory for report.json, report.md and TREC run/qrels files")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *model.dir == "" && !*bm25 {
		return fmt.Errorf("%w: give --model, --bm25, or both", cli.ErrUsage)
	}
	ds, conn, class, err := coll.open()
	if err != nil {
		return err
	}
	ds = ds.Sample(*sample)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	db, err := indexer.Open(ctx, conn, localweaviate.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CheckReplicas(ctx, class); err != nil {
		return err
	}
	var reports []*eval.Report
	evaluate := func(method eval.Method, vecs [][]float32) error {
		log.Info("evaluating in weaviate", "method", method, "questions", len(ds.Questions), "collection", class)
		rep, runs, err := eval.Evaluate(ctx, db.Search.Ranker(class, method, ds), ds, method, vecs, *depth, *concurrency)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
		name := string(method)
		return eval.WriteTREC(filepath.Join(*out, name+".run"), filepath.Join(*out, name+".qrels"), ds, runs, name)
	}
	if *model.dir != "" {
		v, err := model.load(64, log)
		if err != nil {
			return err
		}
		vecs, err := v.Encode(ctx, ds.QuestionTexts(), vectorizer.Query)
		v.Close()
		if err != nil {
			return err
		}
		if err := evaluate(eval.Dense, vecs); err != nil {
			return err
		}
		if *hybrid {
			if err := evaluate(eval.Hybrid, vecs); err != nil {
				return err
			}
		}
	}
	if *bm25 {
		if err := evaluate(eval.BM25, nil); err != nil {
			return err
		}
	}
	if _, err := eval.WriteCharts(*out, ds, reports); err != nil {
		return err
	}
	md := eval.Markdown(reports)
	if err := eval.WriteReport(*out, reports, md); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}
