package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xling-ir/xling/bench"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/trainer"
)

// runPrepare turns SQuAD-format data into train.jsonl and valid.jsonl.
func runPrepare(ctx context.Context, fs *flag.FlagSet, args []string) error {
	out := fs.String("out", "", "directory for train.jsonl and valid.jsonl")
	valid := fs.Float64("valid", 0.1, "share of question groups held out for validation")
	seed := fs.Uint64("seed", 1, "seed of the split")
	langs := fs.String("langs", "", "comma-separated languages to keep (LAReQA directories); empty means all")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xling prepare --out DIR SOURCE...\n  SOURCE is a LAReQA directory of <lang>.json files (xquad-r, mlqa-r),\n  or FILE.json:LANG for a plain SQuAD file in one language")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return fmt.Errorf("%w: give --out and at least one source", cli.ErrUsage)
	}
	var keep []string
	if *langs != "" {
		keep = strings.Split(*langs, ",")
	}
	var items []trainer.Item
	for _, src := range fs.Args() {
		ds, err := qa.LoadSource(src, keep)
		if err != nil {
			return err
		}
		items = append(items, trainer.Items(ds)...)
	}
	if len(items) == 0 {
		return fmt.Errorf("no question-passage pairs in %v", fs.Args())
	}
	train, val := trainer.Split(items, *valid, *seed)
	if err := trainer.WriteItems(filepath.Join(*out, "train.jsonl"), train); err != nil {
		return err
	}
	if err := trainer.WriteItems(filepath.Join(*out, "valid.jsonl"), val); err != nil {
		return err
	}
	logger().Info("prepared", "train_pairs", len(train), "valid_pairs", len(val), "languages", strings.Join(trainer.Languages(items), ","), "out", *out)
	return nil
}

func runTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	c := trainer.DefaultConfig()
	data := fs.String("data", cli.Env("XLING_DATA", ""), "directory from xling prepare (train.jsonl, valid.jsonl) (env XLING_DATA)")
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
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS); a resumed run may change it")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "steps between checkpoints")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "steps between validations; 0 disables")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "steps between progress lines")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("%w: --data and --out are required", cli.ErrUsage)
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
	run := &trainer.Run{Dir: *out, Config: c, Train: train, Valid: valid, Logger: logger(), Threads: *threads}
	res, err := run.Execute(ctx)
	if err != nil {
		return err
	}
	logger().Info("trained", "step", res.Step, "loss", res.Loss, "model", res.ModelDir, "best", res.BestDir)
	return nil
}

func runBenchTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.EncodeOptions
	fs.StringVar(&o.Model, "model", "", "model directory; empty means a random model of --arch and --size")
	fs.StringVar(&o.Arch, "arch", "transformer", "random model when no --model: transformer, or static (against nn.EmbeddingBag + SparseAdam)")
	fs.StringVar(&o.Size, "size", "small", "random model size when no --model: tiny, small or base")
	fs.IntVar(&o.Batch, "batch", 32, "pairs per step")
	fs.IntVar(&o.Seq, "seq", 64, "tokens per text")
	fs.IntVar(&o.Threads, "threads", envInt("XLING_THREADS", 1), "libtorch threads, both sides (env XLING_THREADS)")
	fs.DurationVar(&o.Time, "time", 15*time.Second, "measuring time per side, in three rounds")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if o.Batch < 2 || o.Seq <= 2 {
		return fmt.Errorf("%w: --batch must be at least 2 and --seq above 2", cli.ErrUsage)
	}
	return bench.Train(ctx, os.Stdout, o, trainer.Throughput)
}
