// Package vectorizer turns text into vectors: a tokenizer, an encoder (a
// transformer on libtorch, or a static embedding in Go) and pooling, loaded
// from a HuggingFace-layout model directory.
package vectorizer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer/static"
	"github.com/xling-ir/xling/vectorizer/tokenize"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// Kind says whether a text is a query or a passage: they may get different
// prefixes or encoders.
type Kind int

const (
	Passage Kind = iota
	Query
)

func (k Kind) String() string {
	if k == Query {
		return "query"
	}
	return "passage"
}

// ParseKind reads Weaviate's task_type names.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "passage", "":
		return Passage, nil
	case "query":
		return Query, nil
	}
	return 0, fmt.Errorf("unknown task type %q (want query or passage)", s)
}

// LoadOptions tunes a Vectorizer without changing its vectors.
type LoadOptions struct {
	Threads   int // libtorch intra-op threads; 0 means libtorch's default
	BatchSize int // texts per forward pass; 0 means 32
	Logger    *slog.Logger
}

// Vectorizer encodes texts with one model directory. It is safe for
// concurrent use; forward passes run one at a time on a dedicated OS thread.
type Vectorizer struct {
	Dir     string
	Config  transformer.Config
	Options Options

	tok            *tokenize.Tokenizer
	passage, query encoder
	batch          int
	log            *slog.Logger

	work chan func() // the libtorch worker; nil for static models
	done sync.WaitGroup
}

// encoder is one model's forward pass over tokenised texts.
type encoder interface {
	encode(ctx context.Context, toks [][]int64) ([][]float32, error)
	close()
}

// Tokens is one tokenised text ready for the encoder.
type Tokens struct {
	IDs       []int64
	Truncated bool // the text was cut to the maximum length
}

// Load reads a model directory and starts its worker.
func Load(dir string, lo LoadOptions) (*Vectorizer, error) {
	log := lo.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := transformer.ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	opts, err := readOptions(dir)
	if err != nil {
		return nil, err
	}
	if err := opts.validate(cfg); err != nil {
		return nil, fmt.Errorf("model directory %s: %s: %w", dir, OptionsFile, err)
	}
	tok, err := tokenize.Load(filepath.Join(dir, TokenizerFile), opts.MaxSeqLength)
	if err != nil {
		return nil, err
	}
	if tok.MaxID() >= int(cfg.VocabSize) {
		return nil, fmt.Errorf("model directory %s: tokenizer.json can produce token id %d but config.json's vocab_size is %d (ids 0-%d)", dir, tok.MaxID(), cfg.VocabSize, cfg.VocabSize-1)
	}
	if lo.BatchSize <= 0 {
		lo.BatchSize = 32
	}
	v := &Vectorizer{Dir: dir, Config: cfg, Options: opts, tok: tok, batch: lo.BatchSize, log: log}
	dirs := []string{dir}
	if opts.QueryModel != "" {
		qdir := filepath.Join(dir, opts.QueryModel)
		qcfg, err := transformer.ReadConfig(filepath.Join(qdir, ConfigFile))
		if err != nil {
			return nil, err
		}
		if qcfg.ModelType != cfg.ModelType || qcfg.VocabSize != cfg.VocabSize || qcfg.HiddenSize != cfg.HiddenSize {
			return nil, fmt.Errorf("query encoder %s: model_type %s, vocab_size %d, hidden_size %d differ from the passage encoder's %s, %d, %d",
				qdir, qcfg.ModelType, qcfg.VocabSize, qcfg.HiddenSize, cfg.ModelType, cfg.VocabSize, cfg.HiddenSize)
		}
		dirs = append(dirs, qdir)
	}
	if cfg.ModelType == transformer.Static {
		encs := make([]encoder, len(dirs))
		for i, d := range dirs {
			if encs[i], err = loadStatic(d, opts.Normalize); err != nil {
				return nil, err
			}
		}
		v.passage, v.query = encs[0], encs[len(encs)-1]
		return v, nil
	}
	v.work = make(chan func())
	v.done.Add(1)
	go v.worker(lo.Threads)
	err = v.do(context.Background(), func() error {
		for i, d := range dirs {
			m, err := loadModel(d, log)
			if err != nil {
				return err
			}
			enc := &torchEncoder{v: v, m: m}
			if i == 0 {
				v.passage = enc
			}
			v.query = enc
		}
		return nil
	})
	if err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func loadStatic(dir string, normalize bool) (encoder, error) {
	cfg, err := transformer.ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	if err := CheckWeights(cfg, filepath.Join(dir, WeightsFile)); err != nil {
		return nil, err
	}
	m, err := static.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", dir, err)
	}
	if err := m.Load(filepath.Join(dir, WeightsFile)); err != nil {
		return nil, err
	}
	return staticEncoder{m: m, normalize: normalize}, nil
}

// staticEncoder runs a static model in Go on the caller's goroutine: a text
// costs microseconds, so neither the worker thread nor batching helps.
type staticEncoder struct {
	m         *static.Model
	normalize bool
}

func (s staticEncoder) encode(_ context.Context, toks [][]int64) ([][]float32, error) {
	return s.m.Encode(toks, s.normalize)
}

func (staticEncoder) close() {}

func loadModel(dir string, log *slog.Logger) (*transformer.Model, error) {
	cfg, err := transformer.ReadConfig(filepath.Join(dir, ConfigFile))
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

// worker runs every libtorch call on one locked OS thread: libtorch's grad
// mode is per thread, and a goroutine may otherwise move between threads
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

// Close stops the worker and frees the models.
func (v *Vectorizer) Close() {
	if v.query != nil && v.query != v.passage {
		v.query.close()
	}
	if v.passage != nil {
		v.passage.close()
	}
	v.passage, v.query = nil, nil
	if v.work != nil {
		close(v.work)
		v.done.Wait()
		v.work = nil
	}
}

// Dims is the length of the vectors.
func (v *Vectorizer) Dims() int { return int(v.Config.HiddenSize) }

// MaxTokens is the longest tokenised text; longer ones are truncated.
func (v *Vectorizer) MaxTokens() int { return v.tok.MaxLen() }

// Tokenize prepares one text: the kind's prefix, then the tokenizer.
func (v *Vectorizer) Tokenize(text string, kind Kind) (Tokens, error) {
	prefix := v.Options.PassagePrefix
	if kind == Query {
		prefix = v.Options.QueryPrefix
	}
	// Checked before the prefix is added, or the prefix would hide it.
	if err := tokenize.Check(text); err != nil {
		return Tokens{}, err
	}
	ids, truncated, err := v.tok.Encode(prefix + text)
	if err != nil {
		return Tokens{}, err
	}
	t := Tokens{IDs: make([]int64, len(ids)), Truncated: truncated}
	for i, id := range ids {
		t.IDs[i] = int64(id)
	}
	return t, nil
}

// TextError reports which text of a batch could not be encoded.
type TextError struct {
	Index int // position in the batch
	Err   error
}

func (e *TextError) Error() string { return fmt.Sprintf("text %d: %v", e.Index, e.Err) }
func (e *TextError) Unwrap() error { return e.Err }

// Encode returns one L2-normalised vector per text (unless xling.json turns
// normalisation off). Truncated texts are logged; see Tokenize for a count.
func (v *Vectorizer) Encode(ctx context.Context, texts []string, kind Kind) ([][]float32, error) {
	toks := make([]Tokens, len(texts))
	errs := make([]error, len(texts))
	// Tokenisation is CPU-bound Go: spread it over the cores.
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(texts); i += workers {
				toks[i], errs[i] = v.Tokenize(texts[i], kind)
			}
		}(w)
	}
	wg.Wait()
	truncated := 0
	for i, err := range errs {
		if err != nil {
			return nil, &TextError{Index: i, Err: err}
		}
		if toks[i].Truncated {
			truncated++
		}
	}
	if truncated > 0 {
		v.log.Warn("texts truncated to the maximum length", "count", truncated, "of", len(texts), "max_tokens", v.MaxTokens())
	}
	return v.EncodeTokens(ctx, toks, kind)
}

// EncodeTokens encodes tokenised texts.
func (v *Vectorizer) EncodeTokens(ctx context.Context, toks []Tokens, kind Kind) ([][]float32, error) {
	if v.passage == nil {
		return nil, errors.New("vectorizer is closed")
	}
	ids := make([][]int64, len(toks))
	for i, t := range toks {
		ids[i] = t.IDs
	}
	if kind == Query {
		return v.query.encode(ctx, ids)
	}
	return v.passage.encode(ctx, ids)
}

// torchEncoder runs a transformer on the Vectorizer's libtorch worker.
type torchEncoder struct {
	v *Vectorizer
	m *transformer.Model
}

func (t *torchEncoder) close() {
	_ = t.v.do(context.Background(), func() error { t.m.Close(); return nil })
}

// encode sorts texts by length and cuts them into forward passes so that
// little work goes to padding: see splitByLength.
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
	order := make([]int, len(toks))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(toks[order[a]]) > len(toks[order[b]]) })
	lengths := make([]int, len(order))
	for i, j := range order {
		lengths[i] = len(toks[j])
	}
	out := make([][]float32, len(toks))
	for _, r := range splitByLength(lengths, t.v.batch, passOverheadTokens) {
		idx := order[r[0]:r[1]]
		batch := make([][]int64, len(idx))
		for i, j := range idx {
			batch[i] = toks[j]
		}
		var vecs [][]float32
		err := t.v.do(ctx, func() error {
			var err error
			vecs, err = t.v.forward(t.m, batch)
			return err
		})
		if err != nil {
			return nil, err
		}
		for i, j := range idx {
			out[j] = vecs[i]
		}
	}
	return out, nil
}

// passOverheadTokens is the fixed cost of a forward pass, in tokens' worth
// of work: measured on the 4-layer, 256-wide model, one pass of one 40-token
// text took 10 ms and a pass costs about 0.05 ms a token, so about 160.
const passOverheadTokens = 160

// splitByLength cuts lengths (sorted longest first) into consecutive
// batches of at most maxBatch that minimise the padded tokens plus a fixed
// overhead per pass: one long text must not make 31 short ones pad to its
// length, and many tiny passes must not cost more than the padding saves.
// It returns [start, end) ranges.
func splitByLength(lengths []int, maxBatch, overhead int) [][2]int {
	n := len(lengths)
	cost := make([]int, n+1) // cost[i]: best cost of lengths[i:]
	cut := make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		cost[i] = -1
		for j := i + 1; j <= n && j-i <= maxBatch; j++ {
			// lengths[i] is the longest of lengths[i:j].
			c := overhead + (j-i)*lengths[i] + cost[j]
			if cost[i] < 0 || c < cost[i] {
				cost[i], cut[i] = c, j
			}
		}
	}
	var out [][2]int
	for i := 0; i < n; i = cut[i] {
		out = append(out, [2]int{i, cut[i]})
	}
	return out
}

// forward pads a batch, runs the encoder without gradients and pools.
func (v *Vectorizer) forward(model *transformer.Model, batch [][]int64) ([][]float32, error) {
	var a torchx.Arena
	defer a.Free()
	ids, mask := Pad(batch, v.padID())
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

func (v *Vectorizer) padID() int64 {
	if id := v.tok.PadID(); id >= 0 {
		return int64(id)
	}
	return v.Config.PadTokenID
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
