package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xling-ir/xling/internal/hftokenizers"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// TokenizeOptions configures a tokenizer benchmark.
type TokenizeOptions struct {
	Model string        // a model directory or a tokenizer.json; empty: a WordPiece trained on XQuAD-R
	Texts string        // questions or sentences of XQuAD-R
	Time  time.Duration // per side and mode, in three interleaved rounds
}

// Tokenize measures xling's tokenizer against HuggingFace's own (the npm
// package make deps installs) on the same tokenizer.json and texts: one
// text a call on one thread, and in parallel (xling: a goroutine per core;
// HuggingFace: encodeBatch). The last line is "ratio <x>", xling's
// single-thread texts/s over HuggingFace's.
func Tokenize(ctx context.Context, w io.Writer, o TokenizeOptions) error {
	ref, err := hftokenizers.Find(ctx)
	if err != nil {
		return err
	}
	texts, _, err := benchTexts(o.Texts)
	if err != nil {
		return err
	}
	path, cleanup, err := tokenizerFile(ctx, o.Model)
	if err != nil {
		return err
	}
	defer cleanup()
	// 512 tokens: long enough that no XQuAD-R text is truncated, as the
	// reference, which is not told to truncate, does not.
	tk, err := tokenize.Load(path, 512)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "tokenizer %s, %d %s of XQuAD-R, %d cores; HuggingFace tokenizers %s through node\n", path, len(texts), o.Texts, runtime.GOMAXPROCS(0), ref.Version)

	round := o.Time / 3
	var best struct{ hfSingle, hfBatch, single, parallel float64 }
	for r := 0; r < 3; r++ {
		hf, err := ref.Bench(ctx, path, texts, round)
		if err != nil {
			return err
		}
		single, err := tokenizeRate(ctx, tk, texts, 1, round)
		if err != nil {
			return err
		}
		parallel, err := tokenizeRate(ctx, tk, texts, runtime.GOMAXPROCS(0), round)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "round %d: texts/s  one a call: xling %.0f, HuggingFace %.0f   parallel: xling %.0f, HuggingFace batch %.0f\n",
			r+1, single, hf.Single, parallel, hf.Batch)
		best.hfSingle, best.hfBatch = max(best.hfSingle, hf.Single), max(best.hfBatch, hf.Batch)
		best.single, best.parallel = max(best.single, single), max(best.parallel, parallel)
	}
	fmt.Fprintf(w, "best rounds: one a call %.0f against %.0f (%.2fx); parallel %.0f against batched %.0f (%.2fx)\n",
		best.single, best.hfSingle, best.single/best.hfSingle, best.parallel, best.hfBatch, best.parallel/best.hfBatch)
	fmt.Fprintf(w, "ratio %.2f\n", best.single/best.hfSingle)
	return nil
}

// tokenizeRate encodes texts on workers goroutines for d and returns texts/s.
func tokenizeRate(ctx context.Context, tk *tokenize.Tokenizer, texts []string, workers int, d time.Duration) (float64, error) {
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d && ctx.Err() == nil {
				i := next.Add(1)
				if _, _, err := tk.Encode(texts[int(i)%len(texts)]); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / time.Since(start).Seconds(), ctx.Err()
}

// tokenizerFile returns the tokenizer.json of model (a directory or the
// file), or writes the WordPiece that random bench models get.
func tokenizerFile(ctx context.Context, model string) (string, func(), error) {
	if model != "" {
		if st, err := os.Stat(model); err == nil && st.IsDir() {
			model = filepath.Join(model, "tokenizer.json")
		}
		return model, func() {}, nil
	}
	dir, cleanup, err := ModelDir(ctx, "", "static", "tiny")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "tokenizer.json"), cleanup, nil
}
