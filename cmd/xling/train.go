package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/xling-ir/xling/internal/c10d"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/torchrun"
	"github.com/xling-ir/xling/trainer"
)

// runTrain trains an encoder on pairs from xling prepare, resuming from the
// newest checkpoint with --resume.
func runTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	c := trainer.DefaultConfig()
	data := fs.String("data", "", "directory from xling prepare (train.jsonl, valid.jsonl) (env XLING_DATA)")
	out := fs.String("out", "", "run directory: checkpoints, logs, exported models")
	resume := fs.Bool("resume", false, "continue the run in --out from its latest checkpoint")
	alpha := fs.String("alpha", "0.5", `hybrid: probability of a monolingual batch, or "size"`)
	fs.StringVar(&c.Arch, "arch", c.Arch, "encoder: transformer or static (token embeddings, mean pooled; fast on CPU)")
	mode := fs.String("batch-mode", string(c.Mode), "mono, x-x, cross or hybrid")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "pairs per batch (distinct question groups)")
	fs.IntVar(&c.Steps, "steps", c.Steps, "optimiser steps")
	fs.IntVar(&c.Accumulate, "accumulate", c.Accumulate, "batches per optimiser step")
	fs.Float64Var(&c.LR, "lr", 0, fmt.Sprintf("peak learning rate; 0 means %g for --arch static, 1e-3 for a transformer from scratch, 3e-5 from --init", trainer.StaticLR))
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&c.Warmup, "warmup", c.Warmup, "share of steps with a rising learning rate")
	fs.Float64Var(&c.Clip, "clip", c.Clip, "global gradient-norm clip; 0 disables")
	fs.Float64Var(&c.Temperature, "temperature", c.Temperature, "InfoNCE temperature")
	fs.BoolVar(&c.Symmetric, "symmetric", c.Symmetric, "add the passage-to-query loss")
	fs.BoolVar(&c.HardNegatives, "hard-negatives", c.HardNegatives, "add another sentence of each positive's paragraph as a negative")
	fs.StringVar(&c.Init, "init", "", "start from this HuggingFace-layout model directory (else from scratch)")
	fs.StringVar(&c.Size, "size", c.Size, "from scratch: tiny, small or base")
	fs.IntVar(&c.VocabSize, "vocab-size", c.VocabSize, "from scratch: WordPiece vocabulary trained on the training text")
	fs.IntVar(&c.MaxLength, "max-length", c.MaxLength, "tokens per text")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of initialisation, sampling and dropout")
	threads := addThreadsFlag(fs) // a resumed run may change it
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "steps between checkpoints")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "steps between validations; 0 disables")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "steps between progress lines")
	nproc := fs.Int("nproc", 1, "start this many local worker processes, each on --threads threads (torchrun's --nproc-per-node); a process started with torchrun's WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT set is one worker of such a run")
	dist := c10d.Config{Backend: c10d.BackendAuto}
	fs.DurationVar(&dist.Timeout, "dist-timeout", c10d.DefaultTimeout, "data-parallel runs: how long a rendezvous or collective may wait before every rank fails, naming the rank that stopped (env XLING_DIST_TIMEOUT)")
	fs.StringVar(&dist.Backend, "dist-backend", dist.Backend, "data-parallel runs: gloo (CPU), nccl (CUDA libtorch) or auto (env XLING_DIST_BACKEND)")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("%w: --data and --out are required", cli.ErrUsage)
	}
	env, launched, err := c10d.FromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	if !launched && *nproc > 1 {
		return launchWorkers(ctx, *nproc, log)
	}
	if launched && *nproc > 1 && *nproc != env.WorldSize {
		return fmt.Errorf("%w: --nproc %d, but this worker's WORLD_SIZE is %d", cli.ErrUsage, *nproc, env.WorldSize)
	}
	c.Mode = trainer.Mode(*mode)
	if c.Init != "" {
		c.Size, c.VocabSize = "", 0
	}
	train, err := trainer.ReadItems(filepath.Join(*data, "train.jsonl"))
	if err != nil {
		return err
	}
	var valid []trainer.Item
	if _, err := os.Stat(filepath.Join(*data, "valid.jsonl")); err == nil {
		if valid, err = trainer.ReadItems(filepath.Join(*data, "valid.jsonl")); err != nil {
			return err
		}
	}
	if c.Alpha, err = trainer.ParseAlpha(*alpha, train); err != nil {
		return fmt.Errorf("%w: --alpha: %v", cli.ErrUsage, err)
	}
	if _, err := os.Stat(filepath.Join(*out, "checkpoints", "LATEST")); err == nil && !*resume {
		return fmt.Errorf("%s already holds a run with checkpoints: pass --resume to continue it, or choose another --out", *out)
	}
	run := &trainer.Run{Dir: *out, Config: c, Train: train, Valid: valid, Logger: log, Threads: *threads}
	if launched {
		env.Backend, env.Timeout = dist.Backend, dist.Timeout
		g, err := c10d.Join(ctx, env, log)
		if err != nil {
			return err
		}
		defer g.Close()
		run.Group = g
		log = log.With("rank", g.Rank())
		run.Logger = log
		res, err := run.Execute(ctx)
		if err != nil {
			g.Fail(err)
			return fmt.Errorf("rank %d: %w", g.Rank(), err)
		}
		if g.Rank() == 0 {
			log.Info("trained", "step", res.Step, "loss", res.Loss, "model", res.ModelDir, "best", res.BestDir, "world_size", g.Size())
		}
		return nil
	}
	res, err := run.Execute(ctx)
	if err != nil {
		return err
	}
	log.Info("trained", "step", res.Step, "loss", res.Loss, "model", res.ModelDir, "best", res.BestDir)
	return nil
}

// launchWorkers runs this same command as n local workers of one
// data-parallel run (torchrun --standalone --nproc-per-node n), with their
// output on stderr prefixed by rank.
func launchWorkers(ctx context.Context, n int, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--nproc: find this program: %w", err)
	}
	return torchrun.Run(ctx, torchrun.Options{NProc: n, Path: exe, Args: os.Args[1:], Output: os.Stderr, Grace: workerGrace, Logger: log})
}

// workerGrace is how long the other workers get, once one has failed, to
// notice through c10d and exit naming it, before the launcher kills them.
const workerGrace = 30 * time.Second
