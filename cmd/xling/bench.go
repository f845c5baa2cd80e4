package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xling-ir/xling/bench"
	"github.com/xling-ir/xling/internal/c10d"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/torchrun"
	"github.com/xling-ir/xling/trainer"
	"github.com/xling-ir/xling/vectorizer"
)

// The bench commands measure xling against a baseline in the same run:
// python3-torch for the encoder and training, HuggingFace's tokenizers for
// the tokenizer, unbatched serving for the sidecar, and the flat index for
// HNSW.

func runBenchEncode(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.EncodeOptions
	addBenchModelFlags(fs, &o.ModelOptions, "transformer", "transformer, or static (against nn.EmbeddingBag)")
	fs.IntVar(&o.Batch, "batch", 32, "texts per forward pass")
	fs.IntVar(&o.Seq, "seq", 64, "tokens per text")
	fs.DurationVar(&o.Time, "time", 10*time.Second, "measuring time per side")
	fs.BoolVar(&o.Int8, "int8", false, "measure xling's dynamic int8 encoder against its float32 one instead of against PyTorch")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if o.Batch <= 0 || o.Seq <= 2 || strings.TrimSpace(o.Size) == "" {
		return fmt.Errorf("%w: --batch must be positive and --seq above 2", cli.ErrUsage)
	}
	return bench.Encode(ctx, os.Stdout, o)
}

func runBenchServe(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.ServeOptions
	addBenchModelFlags(fs, &o.ModelOptions, "transformer", "transformer, or static (then also measured against a transformer of --size)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "load time per concurrency level")
	fs.DurationVar(&o.Soak, "soak", 0, "also run concurrency 32 this long and report RSS growth (e.g. 10m)")
	levels := fs.String("concurrency", "1,8,32,64", "comma-separated concurrency levels")
	fs.StringVar(&o.Texts, "texts", "questions", "questions (sent as queries) or sentences (sent as passages), from XQuAD-R")
	workers := addWorkersFlag(fs)
	fs.StringVar(&o.Against, "against", "", "t2v: against a server built as weaviate/t2v-transformers-models is (FastAPI, python3-torch), questions and sentences, 3 interleaved rounds")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --concurrency %q", cli.ErrUsage, *levels)
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	if o.Workers = *workers; o.Workers <= 0 {
		o.Workers = vectorizer.AutoWorkers(o.Threads)
	}
	return bench.Serve(ctx, os.Stdout, o)
}

func runBenchTokenize(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.TokenizeOptions
	fs.StringVar(&o.Model, "model", "", "model directory or tokenizer.json; empty means the WordPiece random bench models get (env XLING_MODEL)")
	fs.StringVar(&o.Texts, "texts", "sentences", "questions or sentences, from XQuAD-R")
	fs.DurationVar(&o.Time, "time", 15*time.Second, "measuring time per side and mode, in three interleaved rounds")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	return bench.Tokenize(ctx, os.Stdout, o)
}

func runBenchTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.EncodeOptions
	addBenchModelFlags(fs, &o.ModelOptions, "transformer", "transformer, or static (against nn.EmbeddingBag + SparseAdam)")
	fs.IntVar(&o.Batch, "batch", 32, "pairs per step")
	fs.IntVar(&o.Seq, "seq", 64, "tokens per text")
	fs.DurationVar(&o.Time, "time", 15*time.Second, "measuring time per side, in three rounds")
	nproc := fs.Int("nproc", 1, "above 1: measure N processes on --threads threads each, a c10d group sharing the batch, against 1 process on N x --threads threads (no PyTorch side)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if o.Batch < 2 || o.Seq <= 2 {
		return fmt.Errorf("%w: --batch must be at least 2 and --seq above 2", cli.ErrUsage)
	}
	env, launched, err := c10d.FromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	switch {
	case launched:
		return benchTrainRank(ctx, env, o)
	case *nproc > 1:
		return bench.TrainParallel(ctx, os.Stdout, o, *nproc, func(ctx context.Context, dir string, threads int) (bench.StepRate, error) {
			r, err := trainer.DataParallelThroughput(ctx, nil, dir, o.Batch, o.Seq, threads, o.Time)
			return bench.StepRate{PairsPerSecond: r.PairsPerSecond}, err
		}, func(ctx context.Context, dir string) (bench.StepRate, error) {
			return benchTrainGroup(ctx, *nproc, dir, o)
		})
	}
	return bench.Train(ctx, os.Stdout, o, trainer.Throughput)
}

// rankResult is the line rank 0 of `bench train --nproc` prints for the
// launching process.
const rankResult = "data-parallel step:"

// benchTrainRank is one rank of `bench train --nproc`.
func benchTrainRank(ctx context.Context, env c10d.Config, o bench.EncodeOptions) error {
	if o.Model == "" {
		return fmt.Errorf("%w: a rank of bench train needs --model (the launching process passes it)", cli.ErrUsage)
	}
	g, err := c10d.Join(ctx, env, nil)
	if err != nil {
		return err
	}
	defer g.Close()
	r, err := trainer.DataParallelThroughput(ctx, g, o.Model, o.Batch, o.Seq, o.Threads, o.Time)
	if err != nil {
		return err
	}
	if err := g.Barrier("end of bench"); err != nil {
		return err
	}
	if g.Rank() == 0 {
		fmt.Printf("%s %g %g %d\n", rankResult, r.PairsPerSecond, r.CommShare, r.BytesPerStep)
	}
	return nil
}

// benchTrainGroup launches n ranks of bench train on dir and reads rank
// 0's result.
func benchTrainGroup(ctx context.Context, n int, dir string, o bench.EncodeOptions) (bench.StepRate, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.StepRate{}, err
	}
	var out bytes.Buffer
	args := []string{"bench", "train", "--model", dir, "--batch", strconv.Itoa(o.Batch), "--seq", strconv.Itoa(o.Seq),
		"--threads", strconv.Itoa(o.Threads), "--time", o.Time.String()}
	if err := torchrun.Run(ctx, torchrun.Options{NProc: n, Path: exe, Args: args, Output: &out, Grace: workerGrace}); err != nil {
		return bench.StepRate{}, fmt.Errorf("%w\n%s", err, out.String())
	}
	var r bench.StepRate
	for _, line := range strings.Split(out.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "[rank 0] "+rankResult); ok {
			if _, err := fmt.Sscan(rest, &r.PairsPerSecond, &r.CommShare, &r.BytesPerStep); err != nil {
				return r, fmt.Errorf("rank 0's result %q: %w", line, err)
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("rank 0 printed no result:\n%s", out.String())
}

func runBenchIndex(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.IndexOptions
	addBenchModelFlags(fs, &o.ModelOptions, "static", "static (encodes fastest, so Weaviate is what is measured) or transformer")
	fs.IntVar(&o.Questions, "questions", 0, "evaluate the questions of the first N question ids; 0 means the full protocol (~157,000 queries per index)")
	wv := addWeaviateFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	var err error
	if o.Weaviate, err = wv.connection(true); err != nil {
		return err
	}
	return bench.Index(ctx, os.Stdout, o)
}

// addBenchModelFlags adds the flags that pick a bench's model: a directory,
// or a random model of an architecture (arch by default, archUsage saying
// what it is measured against) and size.
func addBenchModelFlags(fs *flag.FlagSet, o *bench.ModelOptions, arch, archUsage string) {
	fs.StringVar(&o.Model, "model", "", "model directory; empty means a random model of --arch and --size (env XLING_MODEL)")
	fs.StringVar(&o.Arch, "arch", arch, "random model when no --model: "+archUsage)
	fs.StringVar(&o.Size, "size", "small", "random model size when no --model: tiny, small (4x256) or base (12x768); static: its width")
	fs.IntVar(&o.Threads, "threads", 1, threadsUsage)
}
