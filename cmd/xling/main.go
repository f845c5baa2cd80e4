// Command xling trains, serves, indexes and evaluates cross-lingual
// retrieval encoders for Weaviate. Each subcommand has one file here named
// after it (the bench subcommands share bench.go) that parses its flags and
// calls the package doing the work; flags.go holds the flag groups they
// share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xling-ir/xling/internal/cli"
)

func main() {
	passiveOpenMP()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Dispatch(ctx, "xling", commands(), os.Args[1:], os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp): // the usage is printed already
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "xling:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "xling:", err)
		os.Exit(1)
	}
}

// passiveOpenMP re-executes xling with OMP_WAIT_POLICY=PASSIVE unless it is
// set. libgomp reads it when it loads, before main runs, and its default
// keeps idle OpenMP threads spinning, which starves Go's own threads: with 2
// libtorch threads on 2 cores, encoding ran at 126 instead of 267
// sentences/s.
func passiveOpenMP() {
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); set {
		return
	}
	os.Setenv("OMP_WAIT_POLICY", "PASSIVE")
	if exe, err := os.Executable(); err == nil {
		_ = syscall.Exec(exe, os.Args, os.Environ()) // returns only on failure
	}
}

func commands() []cli.Command {
	return []cli.Command{
		{Name: "encode", Summary: "encode lines of stdin into JSON vectors with a model directory", Run: runEncode},
		{Name: "fetch", Summary: "download XQuAD-R, MLQA-R and the MIRACL dev topics from their official sources, checking SHA-256", Run: runFetch},
		{Name: "prepare", Summary: "turn SQuAD-format data into training pairs with a group-wise validation split", Run: runPrepare},
		{Name: "train", Summary: "train a retrieval encoder with mono, x-x, cross or hybrid batches", Run: runTrain},
		{Name: "bench train", Summary: "training pairs/s against python3-torch, same run", Run: runBenchTrain},
		{Name: "index", Summary: "load a LAReQA dataset's candidates into a Weaviate collection", Run: runIndex},
		{Name: "eval", Summary: "evaluate an indexed dataset inside Weaviate: mono, cross, multilingual; dense and BM25", Run: runEval},
		{Name: "experiment", Summary: "the study: train every batch mode, evaluate zero-shot inside Weaviate, write the report", Run: runExperiment},
		{Name: "miracl", Summary: "stream a MIRACL corpus into Weaviate and evaluate its dev topics (nDCG@10, recall), dense and BM25", Run: runMIRACL},
		{Name: "serve", Summary: "serve a model to Weaviate as its text2vec-transformers inference container", Run: runServe},
		{Name: "export", Summary: "write a static model in model2vec's layout, which sentence-transformers loads too", Run: runExport},
		{Name: "tokenizer train", Summary: "train a WordPiece tokenizer.json on text files", Run: runTokenizerTrain},
		{Name: "bench encode", Summary: "encoder throughput against python3-torch, same run", Run: runBenchEncode},
		{Name: "bench index", Summary: "objects/s importing all of XQuAD-R and queries/s evaluating it, flat against hnsw", Run: runBenchIndex},
		{Name: "bench tokenize", Summary: "tokenizer texts/s against HuggingFace's own tokenizers, same run", Run: runBenchTokenize},
		{Name: "bench serve", Summary: "sidecar requests/s and latency, batched against unbatched, same run", Run: runBenchServe},
		{Name: "version", Summary: "print the versions of xling, Go and libtorch", Run: runVersion},
	}
}
