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

	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// ErrNeedsLibtorch is what a build without cgo (the static-only binary)
// returns for work only the libtorch encoder can do.
var ErrNeedsLibtorch = errors.New("transformer models need the libtorch build of xling (this binary was built with CGO_ENABLED=0 and handles static models only)")

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
	Threads int // libtorch intra-op threads; 0 means libtorch's default
	// Workers is how many forward passes run at once, each on its own OS
	// thread with Threads intra-op threads; 0 means one. (Static models
	// run on the caller's goroutine, as many at once as there are callers.)
	Workers   int
	BatchSize int // texts per forward pass; 0 means 32
	// Quantize, when set, overrides xling.json's quantize ("none" for
	// float32, or Int8), so that one directory can be measured both ways.
	Quantize string
	Logger   *slog.Logger
}

// AutoWorkers is the number of workers of threads intra-op threads each
// that fill the cores Go may use: a server's default.
func AutoWorkers(threads int) int { return max(1, runtime.GOMAXPROCS(0)/max(threads, 1)) }

// Vectorizer encodes texts with one model directory. It is safe for
// concurrent use; forward passes run on dedicated OS threads, as many at
// once as LoadOptions.Workers says.
type Vectorizer struct {
	Dir     string
	Config  modelconfig.Config
	Options Options

	text           *TextTokenizer
	passage, query encoder
	batch          int
	log            *slog.Logger

	work    chan func() // the libtorch workers' jobs; nil for static models
	workers int
	done    sync.WaitGroup
}

// encoder is one model's forward pass over a batch of tokenised texts,
// run as given.
type encoder interface {
	encode(ctx context.Context, toks [][]int64) ([][]float32, error)
	close()
}

// Load reads a model directory and starts its worker.
func Load(dir string, lo LoadOptions) (*Vectorizer, error) {
	log := lo.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lay, err := readLayout(dir)
	if err != nil {
		return nil, err
	}
	var cfg modelconfig.Config
	var opts Options
	tokPath := filepath.Join(dir, TokenizerFile)
	if lay != nil {
		cfg, opts, tokPath = lay.cfg, lay.opts, lay.tokenizer
	} else {
		if cfg, err = modelconfig.Read(filepath.Join(dir, ConfigFile)); err != nil {
			return nil, err
		}
		if opts, err = readOptions(dir); err != nil {
			return nil, err
		}
		switch lo.Quantize {
		case "":
		case "none":
			opts.Quantize = ""
		default:
			opts.Quantize = lo.Quantize
		}
		if err := opts.validate(cfg); err != nil {
			return nil, fmt.Errorf("model directory %s: %s: %w", dir, OptionsFile, err)
		}
	}
	tok, err := tokenize.Load(tokPath, opts.MaxSeqLength)
	if err != nil {
		return nil, err
	}
	if lay != nil && lay.rules.plain {
		tok = tok.WithoutSpecialTokens()
	}
	text, err := NewTextTokenizer(tok, opts, cfg)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", dir, err)
	}
	if lo.BatchSize <= 0 {
		lo.BatchSize = 32
	}
	v := &Vectorizer{Dir: dir, Config: cfg, Options: opts, text: text, batch: lo.BatchSize, log: log}
	if lay != nil {
		text.rules = lay.rules
		m, err := lay.model()
		if err != nil {
			return nil, fmt.Errorf("model directory %s: %w", dir, err)
		}
		v.passage = staticEncoder{m: m, normalize: opts.Normalize}
		v.query = v.passage
		return v, nil
	}
	dirs := []string{dir}
	if opts.QueryModel != "" {
		qdir := filepath.Join(dir, opts.QueryModel)
		qcfg, err := modelconfig.Read(filepath.Join(qdir, ConfigFile))
		if err != nil {
			return nil, err
		}
		if qcfg.ModelType != cfg.ModelType || qcfg.VocabSize != cfg.VocabSize || qcfg.HiddenSize != cfg.HiddenSize {
			return nil, fmt.Errorf("query encoder %s: model_type %s, vocab_size %d, hidden_size %d differ from the passage encoder's %s, %d, %d",
				qdir, qcfg.ModelType, qcfg.VocabSize, qcfg.HiddenSize, cfg.ModelType, cfg.VocabSize, cfg.HiddenSize)
		}
		dirs = append(dirs, qdir)
	}
	if cfg.ModelType == modelconfig.Static {
		encs := make([]encoder, len(dirs))
		for i, d := range dirs {
			if encs[i], err = loadStatic(d, opts.Normalize); err != nil {
				return nil, err
			}
		}
		v.passage, v.query = encs[0], encs[len(encs)-1]
		return v, nil
	}
	if err := loadTorch(v, dirs, lo.Threads, max(lo.Workers, 1)); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
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

// Workers is how many EncodeTokens calls run at once: the libtorch
// workers, or for a static model (encoded on the caller's goroutine) the
// cores Go may use.
func (v *Vectorizer) Workers() int {
	if v.work == nil {
		return runtime.GOMAXPROCS(0)
	}
	return v.workers
}

// Dims is the length of the vectors.
func (v *Vectorizer) Dims() int { return int(v.Config.HiddenSize) }

// MaxTokens is the longest tokenised text; longer ones are truncated.
func (v *Vectorizer) MaxTokens() int { return v.text.MaxTokens() }

// Tokenize prepares one text: the kind's prefix, then the tokenizer.
func (v *Vectorizer) Tokenize(text string, kind Kind) (Tokens, error) {
	return v.text.Tokenize(text, kind)
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
	// Texts of similar length share a forward pass, so that little work
	// goes to padding: see splitByLength.
	order := make([]int, len(toks))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(toks[order[a]].IDs) > len(toks[order[b]].IDs) })
	lengths := make([]int, len(order))
	for i, j := range order {
		lengths[i] = len(toks[j].IDs)
	}
	out := make([][]float32, len(toks))
	for _, r := range splitByLength(lengths, v.batch, passOverheadTokens) {
		idx := order[r[0]:r[1]]
		batch := make([]Tokens, len(idx))
		for i, j := range idx {
			batch[i] = toks[j]
		}
		vecs, err := v.EncodeTokens(ctx, batch, kind)
		var bad *TextError
		if errors.As(err, &bad) {
			return nil, &TextError{Index: idx[bad.Index], Err: bad.Err}
		}
		if err != nil {
			return nil, err
		}
		for i, j := range idx {
			out[j] = vecs[i]
		}
	}
	return out, nil
}

// EncodeTokens encodes tokenised texts in one forward pass, as given: the
// caller has formed the batch (Encode by length, the sidecar's batcher by
// arrival).
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
