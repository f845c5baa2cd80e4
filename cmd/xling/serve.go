package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/sidecar"
	"github.com/xling-ir/xling/vectorizer"
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(cli.Env(name, def.String())); err == nil {
		return d
	}
	return def
}

func runServe(ctx context.Context, fs *flag.FlagSet, args []string) error {
	def := sidecar.DefaultOptions()
	model := fs.String("model", cli.Env("XLING_MODEL", ""), "model directory for passages, and queries unless --query-model (env XLING_MODEL)")
	queryModel := fs.String("query-model", cli.Env("XLING_QUERY_MODEL", ""), "separate model directory for queries (env XLING_QUERY_MODEL)")
	addr := fs.String("addr", cli.Env("XLING_ADDR", ":8080"), "listen address (env XLING_ADDR)")
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads per model (env XLING_THREADS)")
	maxBatch := fs.Int("max-batch", envInt("XLING_MAX_BATCH", def.Limits.MaxTexts), "texts per forward pass (env XLING_MAX_BATCH)")
	maxTokens := fs.Int("max-batch-tokens", envInt("XLING_MAX_BATCH_TOKENS", def.Limits.MaxTokens), "padded tokens per forward pass (env XLING_MAX_BATCH_TOKENS)")
	queue := fs.Int("queue", envInt("XLING_QUEUE", def.Limits.Queue), "texts that may wait; beyond, 503 with Retry-After (env XLING_QUEUE)")
	bodyLimit := fs.Int64("body-limit", int64(envInt("XLING_BODY_LIMIT", int(def.MaxBodyBytes))), "largest request body in bytes (env XLING_BODY_LIMIT)")
	readTimeout := fs.Duration("read-timeout", envDuration("XLING_READ_TIMEOUT", 30*time.Second), "request read timeout (env XLING_READ_TIMEOUT)")
	writeTimeout := fs.Duration("write-timeout", envDuration("XLING_WRITE_TIMEOUT", 60*time.Second), "response write timeout (env XLING_WRITE_TIMEOUT)")
	shutdown := fs.Duration("shutdown-timeout", envDuration("XLING_SHUTDOWN_TIMEOUT", 30*time.Second), "time to finish queued work on SIGTERM (env XLING_SHUTDOWN_TIMEOUT)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("%w: --model is required", cli.ErrUsage)
	}
	log := logger()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	opts := def
	opts.Limits = sidecar.BatchLimits{MaxTexts: *maxBatch, MaxTokens: *maxTokens, Queue: *queue}
	opts.MaxBodyBytes, opts.Logger = *bodyLimit, log
	load := func(ctx context.Context) (sidecar.Options, func(), error) {
		var closers []func()
		cleanup := func() {
			for _, c := range closers {
				c()
			}
		}
		open := func(dir string) (sidecar.Model, error) {
			v, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: *threads, BatchSize: *maxBatch, Logger: log})
			if err != nil {
				return sidecar.Model{}, err
			}
			closers = append(closers, v.Close)
			return sidecar.FromVectorizer(filepath.Base(filepath.Clean(dir)), v), nil
		}
		var err error
		if opts.Passage, err = open(*model); err != nil {
			return opts, nil, err
		}
		if *queryModel != "" {
			q, err := open(*queryModel)
			if err != nil {
				cleanup()
				return opts, nil, err
			}
			opts.Query = &q
		}
		return opts, cleanup, nil
	}
	log.Info("listening; loading the model", "addr", l.Addr().String(), "model", *model)
	return sidecar.Run(ctx, l, sidecar.Timeouts{Read: *readTimeout, Write: *writeTimeout, Idle: 2 * time.Minute, Shutdown: *shutdown}, log, load)
}
