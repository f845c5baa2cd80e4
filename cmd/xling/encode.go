package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xling-ir/xling/bench"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(cli.Env(name, strconv.Itoa(def))); err == nil {
		return n
	}
	return def
}

// logger writes to stderr at XLING_LOG_LEVEL (debug, info, warn, error),
// as text, or as JSON lines with XLING_LOG_FORMAT=json for log pipelines.
func logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cli.Env("XLING_LOG_LEVEL", "info"))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cli.Env("XLING_LOG_FORMAT", "text") == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// runEncode reads one text per line on stdin and writes one JSON object
// {"text", "vector"} per line on stdout, in order.
func runEncode(ctx context.Context, fs *flag.FlagSet, args []string) error {
	model := fs.String("model", cli.Env("XLING_MODEL", ""), "model directory (env XLING_MODEL)")
	kind := fs.String("kind", "passage", "query or passage: picks the prefix or encoder")
	batch := fs.Int("batch", envInt("XLING_BATCH", 32), "texts per forward pass (env XLING_BATCH)")
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("%w: --model is required", cli.ErrUsage)
	}
	k, err := vectorizer.ParseKind(*kind)
	if err != nil {
		return fmt.Errorf("%w: --kind: %v", cli.ErrUsage, err)
	}
	v, err := vectorizer.Load(*model, vectorizer.LoadOptions{Threads: *threads, BatchSize: *batch, Logger: logger()})
	if err != nil {
		return err
	}
	defer v.Close()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var lines []string
	first := 1 // line number of lines[0]
	flush := func() error {
		vecs, err := v.Encode(ctx, lines, k)
		var bad *vectorizer.TextError
		if errors.As(err, &bad) {
			return fmt.Errorf("line %d: %w", first+bad.Index, bad.Err)
		}
		if err != nil {
			return err
		}
		for i, vec := range vecs {
			if err := enc.Encode(map[string]any{"text": lines[i], "vector": vec}); err != nil {
				return err
			}
		}
		first += len(lines)
		lines = lines[:0]
		return nil
	}
	for in.Scan() {
		lines = append(lines, in.Text())
		if len(lines) == 8*(*batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if len(lines) > 0 {
		return flush()
	}
	return nil
}

func runTokenizerTrain(ctx context.Context, fs *flag.FlagSet, args []string) error {
	out := fs.String("out", "tokenizer.json", "where to write tokenizer.json")
	vocab := fs.Int("vocab-size", 30000, "vocabulary size, special tokens included")
	minFreq := fs.Int("min-frequency", 2, "fewest occurrences of a merged piece (wordpiece)")
	kind := fs.String("type", "wordpiece", "wordpiece (BERT-style, xling's trainer) or unigram (XLM-R-style, through spm_train)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xling tokenizer train [flags] FILE...  (text files, one sentence or paragraph per line)")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: give at least one text file", cli.ErrUsage)
	}
	log := logger()
	start := time.Now()
	var err error
	switch *kind {
	case "unigram":
		err = tokenize.TrainUnigramFiles(ctx, fs.Args(), *out, *vocab)
	case "wordpiece":
		err = tokenize.TrainWordPieceFiles(ctx, fs.Args(), *out, tokenize.TrainOptions{
			VocabSize: *vocab, MinFrequency: *minFreq,
			Progress: func(done, total int) {
				log.Info("training tokenizer", "merges", done, "of_at_most", total, "elapsed", time.Since(start).Round(time.Second))
			},
		})
	default:
		return fmt.Errorf("%w: --type %q (want wordpiece or unigram)", cli.ErrUsage, *kind)
	}
	if err != nil {
		return err
	}
	log.Info("wrote tokenizer", "path", *out, "seconds", time.Since(start).Seconds())
	return nil
}

func runBenchEncode(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.EncodeOptions
	fs.StringVar(&o.Model, "model", cli.Env("XLING_MODEL", ""), "model directory; empty means a random model of --arch and --size")
	fs.StringVar(&o.Arch, "arch", "transformer", "random model when no --model: transformer, or static (against nn.EmbeddingBag)")
	fs.StringVar(&o.Size, "size", "small", "random model size when no --model: tiny, small (4x256) or base (12x768); static: its width")
	fs.IntVar(&o.Batch, "batch", 32, "texts per forward pass")
	fs.IntVar(&o.Seq, "seq", 64, "tokens per text")
	fs.IntVar(&o.Threads, "threads", envInt("XLING_THREADS", 1), "libtorch threads, both sides (env XLING_THREADS)")
	fs.DurationVar(&o.Time, "time", 10*time.Second, "measuring time per side")
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
	fs.StringVar(&o.Model, "model", cli.Env("XLING_MODEL", ""), "model directory; empty means a random model of --arch and --size")
	fs.StringVar(&o.Arch, "arch", "transformer", "random model when no --model: transformer, or static (then also measured against a transformer of --size)")
	fs.StringVar(&o.Size, "size", "small", "random model size when no --model: tiny, small or base")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "load time per concurrency level")
	fs.DurationVar(&o.Soak, "soak", 0, "also run concurrency 32 this long and report RSS growth (e.g. 10m)")
	fs.IntVar(&o.Threads, "threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	levels := fs.String("concurrency", "1,8,32,64", "comma-separated concurrency levels")
	fs.StringVar(&o.Texts, "texts", "questions", "questions (sent as queries) or sentences (sent as passages), from XQuAD-R")
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
	return bench.Serve(ctx, os.Stdout, o)
}
