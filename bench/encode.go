// Package bench measures xling against a baseline measured in the same run:
// PyTorch for the encoder and trainer, an unbatched server for the sidecar.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xling-ir/xling/internal/pytorchref"
	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// EncodeOptions configures an encoder benchmark.
type EncodeOptions struct {
	ModelOptions
	Batch int           // texts per forward pass
	Seq   int           // tokens per text
	Time  time.Duration // measuring time per side, in three rounds
	// Int8 measures xling's dynamic int8 encoder against its float32 one
	// instead of float32 against PyTorch.
	Int8 bool
}

// ModelOptions say which model a bench measures, on how many threads.
type ModelOptions struct {
	Model   string // a model directory; empty means a random one of Arch and Size
	Arch    string // transformer or static
	Size    string // tiny, small or base
	Threads int    // libtorch threads (on both sides, against python3-torch)
	Workers int    // forward passes at once (vectorizer.LoadOptions); 0 means one
}

// load opens the model (writing a random one if no directory is given);
// cleanup closes it and removes what was written.
func (o ModelOptions) load(ctx context.Context) (dir string, v *vectorizer.Vectorizer, cleanup func(), err error) {
	dir, remove, err := ModelDir(ctx, o.Model, o.Arch, o.Size)
	if err != nil {
		return "", nil, nil, err
	}
	if v, err = vectorizer.Load(dir, vectorizer.LoadOptions{Threads: o.Threads, Workers: o.Workers, BatchSize: 64}); err != nil {
		remove()
		return "", nil, nil, err
	}
	return dir, v, func() { v.Close(); remove() }, nil
}

// ModelDir returns model, or writes a random model of arch (transformer or
// static) and size (with a tokenizer trained on the shared XQuAD-R
// sentences) into a temporary directory that cleanup removes.
func ModelDir(ctx context.Context, model, arch, size string) (dir string, cleanup func(), err error) {
	if model != "" {
		return model, func() {}, nil
	}
	data, err := shareddata.Dir()
	if err != nil {
		return "", nil, fmt.Errorf("a random %s model needs a tokenizer trained on ../shared/data: %w (or give --model)", size, err)
	}
	xquad, err := qa.LoadLAReQA(filepath.Join(data, "xquad-r"), nil)
	if err != nil {
		return "", nil, err
	}
	sentences := xquad.CandidateTexts()
	tok, err := tokenize.TrainWordPiece(ctx, strings.NewReader(strings.Join(sentences, "\n")), tokenize.TrainOptions{VocabSize: 8000})
	if err != nil {
		return "", nil, err
	}
	vocab := int64(8000)
	if size == "base" {
		vocab = 30522 // BERT-base's embedding table, for a faithful shape
	}
	var cfg modelconfig.Config
	switch arch {
	case "transformer", "":
		cfg, err = vectorizer.SizeConfig(size, vocab)
	case "static":
		cfg, err = vectorizer.StaticSizeConfig(size, vocab)
	default:
		err = fmt.Errorf("unknown architecture %q (want transformer or static)", arch)
	}
	if err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp("", "xling-bench-model-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if err := vectorizer.WriteRandom(dir, cfg, vectorizer.DefaultOptions(), tok, 1); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// bestRate runs fn once to warm up, then for three rounds of total/3 each,
// and returns the best round's items per second: on a shared machine the
// fastest round is the one least disturbed by other work. The PyTorch side
// measures the same way.
func bestRate(total time.Duration, perCall int, fn func() error) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	best := 0.0
	for r := 0; r < 3; r++ {
		n, start := 0, time.Now()
		for time.Since(start) < total/3 {
			if err := fn(); err != nil {
				return 0, err
			}
			n += perCall
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best, nil
}

// Describe is a model's shape in a few words.
func Describe(c modelconfig.Config) string {
	if c.ModelType == modelconfig.Static {
		if c.EmbeddingSize != c.HiddenSize {
			return fmt.Sprintf("static, %d tokens x %d, projected to %d", c.VocabSize, c.EmbeddingSize, c.HiddenSize)
		}
		return fmt.Sprintf("static, %d tokens x %d", c.VocabSize, c.HiddenSize)
	}
	return fmt.Sprintf("%s, %d layers, %d hidden, %d heads", c.ModelType, c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads)
}

// sharedModelDir returns the model directory both sides measure, once
// python3-torch is known to be there.
func sharedModelDir(ctx context.Context, opts EncodeOptions) (string, func(), error) {
	if err := pytorchref.Available(ctx); err != nil {
		return "", nil, err
	}
	return ModelDir(ctx, opts.Model, opts.Arch, opts.Size)
}

// Encode measures xling's encoder throughput and PyTorch's for the same
// model, batch and sequence length, and writes both and their ratio to w.
// The last line is "ratio <xling/pytorch>".
func Encode(ctx context.Context, w io.Writer, opts EncodeOptions) error {
	dir, cleanup, err := sharedModelDir(ctx, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	v, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: opts.Threads, BatchSize: opts.Batch})
	if err != nil {
		return err
	}
	defer v.Close()
	if opts.Seq > v.MaxTokens() {
		return fmt.Errorf("--seq %d exceeds the model's maximum of %d tokens", opts.Seq, v.MaxTokens())
	}
	c := v.Config
	fmt.Fprintf(w, "model %s: %s; batch %d, %d tokens per text, %d thread(s)\n", dir, Describe(c), opts.Batch, opts.Seq, opts.Threads)

	rng := rand.New(rand.NewPCG(1, 1))
	toks := make([]vectorizer.Tokens, opts.Batch)
	for i := range toks {
		ids := make([]int64, opts.Seq)
		for j := range ids {
			ids[j] = 5 + rng.Int64N(c.VocabSize-5)
		}
		toks[i] = vectorizer.Tokens{IDs: ids}
	}
	rate := func(v *vectorizer.Vectorizer) (float64, error) {
		return bestRate(opts.Time, len(toks), func() error {
			_, err := v.EncodeTokens(ctx, toks, vectorizer.Passage)
			return err
		})
	}
	if opts.Int8 {
		q, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: opts.Threads, BatchSize: opts.Batch, Quantize: vectorizer.Int8})
		if err != nil {
			return err
		}
		defer q.Close()
		// Alternate the two, so that drift on a shared machine hits both.
		var fp, i8 float64
		for range 3 {
			a, err := rate(v)
			if err != nil {
				return err
			}
			b, err := rate(q)
			if err != nil {
				return err
			}
			fp, i8 = max(fp, a), max(i8, b)
		}
		fmt.Fprintf(w, "float32  %10.1f sentences/s\nint8     %10.1f sentences/s (dynamic int8 linear layers, %s)\nratio %.3f\n", fp, i8, torchx.Int8Engine, i8/fp)
		return nil
	}
	ours, err := rate(v)
	if err != nil {
		return err
	}
	return compare(w, "sentences/s", ours, func() (float64, error) {
		return pytorchref.BenchEncode(ctx, dir, opts.Batch, opts.Seq, max(opts.Threads, 1), opts.Time.Seconds())
	})
}

// compare prints xling's rate, measures and prints PyTorch's, and ends with
// the ratio line.
func compare(w io.Writer, unit string, ours float64, theirs func() (float64, error)) error {
	fmt.Fprintf(w, "xling    %10.1f %s\n", ours, unit)
	t, err := theirs()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "pytorch  %10.1f %s (python3-torch, same model and batch)\n", t, unit)
	fmt.Fprintf(w, "ratio %.3f\n", ours/t)
	return nil
}

// withConfig adds a bench model directory's config to what ModelDir or
// sharedModelDir returned; on an error it has already cleaned up.
func withConfig(dir string, cleanup func(), err error) (string, modelconfig.Config, func(), error) {
	if err != nil {
		return "", modelconfig.Config{}, nil, err
	}
	cfg, err := modelconfig.Read(filepath.Join(dir, vectorizer.ConfigFile))
	if err != nil {
		cleanup()
		return "", modelconfig.Config{}, nil, err
	}
	return dir, cfg, cleanup, nil
}

// Train measures xling's training throughput and PyTorch's for the same
// model, batch and length. The last line is "ratio <xling/pytorch>".
func Train(ctx context.Context, w io.Writer, opts EncodeOptions, step func(ctx context.Context, dir string, batch, seq, threads int, d time.Duration) (float64, error)) error {
	dir, cfg, cleanup, err := withConfig(sharedModelDir(ctx, opts))
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(w, "model %s: %s; batch %d pairs, %d tokens per text, %d thread(s); InfoNCE + backward + clip + AdamW\n", dir, Describe(cfg), opts.Batch, opts.Seq, opts.Threads)
	ours, err := step(ctx, dir, opts.Batch, opts.Seq, opts.Threads, opts.Time)
	if err != nil {
		return err
	}
	return compare(w, "pairs/s", ours, func() (float64, error) {
		return pytorchref.BenchTrain(ctx, dir, opts.Batch, opts.Seq, max(opts.Threads, 1), opts.Time.Seconds())
	})
}
