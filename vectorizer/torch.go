//go:build cgo

package vectorizer

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// loadTorch starts workers libtorch threads and loads the transformer of
// each directory: the passage encoder from dirs[0], the query encoder from
// the last. The workers share the weights: a forward pass without
// gradients only reads them.
func loadTorch(v *Vectorizer, dirs []string, threads, workers int) error {
	v.work = make(chan func())
	v.workers = workers
	for range workers {
		v.done.Add(1)
		go v.worker(threads)
	}
	return v.do(context.Background(), func() error {
		for i, d := range dirs {
			m, err := loadModel(d, v.log)
			if err != nil {
				return err
			}
			if v.Options.Quantize == Int8 {
				if err := m.Quantize(); err != nil {
					m.Close()
					return fmt.Errorf("model directory %s: %w", d, err)
				}
			}
			enc := &torchEncoder{v: v, m: m}
			if i == 0 {
				v.passage = enc
			}
			v.query = enc
		}
		return nil
	})
}

func loadModel(dir string, log *slog.Logger) (*transformer.Model, error) {
	cfg, err := modelconfig.Read(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	if err := CheckWeights(cfg, filepath.Join(dir, WeightsFile)); err != nil {
		return nil, err
	}
	m, err := transformer.New(cfg, gotch.CPU)
	if err != nil {
		return nil, err
	}
	ignored, err := m.Load(filepath.Join(dir, WeightsFile))
	if err != nil {
		m.Close()
		return nil, err
	}
	if len(ignored) > 0 {
		log.Info("checkpoint tensors the encoder does not use", "dir", dir, "count", len(ignored), "first", ignored[0])
	}
	return m, nil
}

// worker runs libtorch calls on one locked OS thread: libtorch's grad mode
// is per thread, and a goroutine may otherwise move between threads
// mid-pass.
func (v *Vectorizer) worker(threads int) {
	defer v.done.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if threads > 0 {
		torchx.SetThreads(threads)
	}
	for fn := range v.work {
		fn()
	}
}

// do runs fn on the worker, turning a libtorch panic into an error.
func (v *Vectorizer) do(ctx context.Context, fn func() error) error {
	errc := make(chan error, 1)
	job := func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("libtorch: %v", r)
			}
		}()
		if ctx.Err() != nil {
			errc <- ctx.Err()
			return
		}
		errc <- fn()
	}
	select {
	case v.work <- job:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-errc
}

// torchEncoder runs a transformer on the Vectorizer's libtorch worker.
type torchEncoder struct {
	v *Vectorizer
	m *transformer.Model
}

func (t *torchEncoder) close() {
	_ = t.v.do(context.Background(), func() error { t.m.Close(); return nil })
}

// encode runs one forward pass over the batch as given.
func (t *torchEncoder) encode(ctx context.Context, toks [][]int64) ([][]float32, error) {
	// Load checked the tokenizer against the table; ids from EncodeTokens'
	// callers are checked here, as libtorch would fail on them mid-pass.
	vocab := t.m.Config.VocabSize
	for i, ids := range toks {
		for _, id := range ids {
			if id < 0 || id >= vocab {
				return nil, &TextError{Index: i, Err: fmt.Errorf("token id %d is outside the vocabulary of %d", id, vocab)}
			}
		}
	}
	var vecs [][]float32
	err := t.v.do(ctx, func() error {
		var err error
		vecs, err = t.v.forward(t.m, toks)
		return err
	})
	return vecs, err
}

// forward pads a batch, runs the encoder without gradients and pools.
func (v *Vectorizer) forward(model *transformer.Model, batch [][]int64) ([][]float32, error) {
	var a torchx.Arena
	defer a.Free()
	ids, mask := Pad(batch, v.text.PadID())
	var vecs *ts.Tensor
	ts.NoGrad(func() {
		idsT := a.Keep(ids)
		maskT := a.Keep(mask)
		h := a.Keep(model.Forward(idsT, maskT, false))
		vecs = a.Keep(Pool(&a, h, maskT, v.Options.Pooling, v.Options.Normalize))
	})
	n, dims := len(batch), v.Dims()
	flat := make([]float32, n*dims)
	if err := vecs.CopyData(flat, uint(n*dims)); err != nil {
		return nil, err
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*dims : (i+1)*dims : (i+1)*dims]
	}
	return out, nil
}

// Pad builds the [B, T] id and attention-mask tensors of a batch. The caller
// drops them.
func Pad(batch [][]int64, pad int64) (ids, mask *ts.Tensor) {
	longest := 0
	for _, b := range batch {
		longest = max(longest, len(b))
	}
	flat := make([]int64, len(batch)*longest)
	m := make([]int64, len(batch)*longest)
	for i, b := range batch {
		row := flat[i*longest : (i+1)*longest]
		for j := range row {
			if j < len(b) {
				row[j] = b[j]
				m[i*longest+j] = 1
			} else {
				row[j] = pad
			}
		}
	}
	shape := []int64{int64(len(batch)), int64(longest)}
	return ts.MustOfSlice(flat).MustView(shape, true), ts.MustOfSlice(m).MustView(shape, true)
}

// Pool reduces hidden states [B, T, H] to vectors [B, H]: the mean over real
// tokens (masked_mean) or the first token (cls), then optionally L2
// normalisation. Intermediates go to a; the result too.
func Pool(a *torchx.Arena, h, mask *ts.Tensor, pooling string, normalize bool) *ts.Tensor {
	var v *ts.Tensor
	if pooling == PoolCLS {
		v = a.Keep(h.MustSelect(1, 0, false))
	} else {
		m := a.Keep(mask.MustTotype(gotch.Float, false))
		m3 := a.Keep(m.MustUnsqueeze(-1, false))
		sum := a.Keep(a.Keep(h.MustMul(m3, false)).MustSumDimIntlist([]int64{1}, false, gotch.Float, false))
		count := a.Keep(m.MustSumDimIntlist([]int64{1}, true, gotch.Float, false))
		count = a.Keep(count.MustClampMin(a.KeepScalar(ts.FloatScalar(1e-9)), false))
		v = a.Keep(sum.MustDiv(count, false))
	}
	if !normalize {
		return v
	}
	norm := a.Keep(v.MustNormScalaroptDim(a.KeepScalar(ts.FloatScalar(2)), []int64{1}, true, false))
	norm = a.Keep(norm.MustClampMin(a.KeepScalar(ts.FloatScalar(1e-12)), false))
	return a.Keep(v.MustDiv(norm, false))
}

// writeRandomTorch is WriteRandom for a transformer.
func writeRandomTorch(dir string, cfg modelconfig.Config, opts Options, tokenizerJSON []byte, seed uint64) error {
	m, err := transformer.New(cfg, gotch.CPU)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Init(seed)
	return WriteDir(dir, Files{Config: cfg, Options: opts, Tokenizer: tokenizerJSON, Model: m})
}
