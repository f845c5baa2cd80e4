package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/sidecar"
	"github.com/xling-ir/xling/vectorizer"
)

// runServe serves a model to Weaviate as its text2vec-transformers
// inference container.
func runServe(ctx context.Context, fs *flag.FlagSet, args []string) error {
	opts := sidecar.DefaultOptions()
	model := addModelFlags(fs, "model directory for passages, and queries unless --query-model")
	queryModel := fs.String("query-model", "", "separate model directory for queries (env XLING_QUERY_MODEL)")
	workers := addWorkersFlag(fs)
	addr := fs.String("addr", ":8080", "listen address (env XLING_ADDR)")
	fs.IntVar(&opts.Limits.MaxTexts, "max-batch", opts.Limits.MaxTexts, "texts per forward pass (env XLING_MAX_BATCH)")
	fs.IntVar(&opts.Limits.MaxTokens, "max-batch-tokens", opts.Limits.MaxTokens, "padded tokens per forward pass (env XLING_MAX_BATCH_TOKENS)")
	fs.IntVar(&opts.Limits.Queue, "queue", opts.Limits.Queue, "texts that may wait; beyond, 503 with Retry-After (env XLING_QUEUE)")
	fs.Int64Var(&opts.MaxBodyBytes, "body-limit", opts.MaxBodyBytes, "largest request body in bytes (env XLING_BODY_LIMIT)")
	t := sidecar.Timeouts{Idle: 2 * time.Minute}
	fs.DurationVar(&t.Read, "read-timeout", 30*time.Second, "request read timeout (env XLING_READ_TIMEOUT)")
	fs.DurationVar(&t.Write, "write-timeout", 60*time.Second, "response write timeout (env XLING_WRITE_TIMEOUT)")
	fs.DurationVar(&t.Shutdown, "shutdown-timeout", 30*time.Second, "time to finish queued work on SIGTERM (env XLING_SHUTDOWN_TIMEOUT)")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *model.dir == "" {
		return fmt.Errorf("%w: --model is required", cli.ErrUsage)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	opts.Logger = log
	if *workers <= 0 {
		*workers = vectorizer.AutoWorkers(*model.threads)
	}
	log.Info("listening; loading the model", "addr", l.Addr().String(), "model", *model.dir, "workers", *workers, "threads", *model.threads)
	load := sidecar.LoadDirs(opts, *model.dir, *queryModel, vectorizer.LoadOptions{Threads: *model.threads, Workers: *workers, Logger: log})
	return sidecar.Run(ctx, l, t, log, load)
}
