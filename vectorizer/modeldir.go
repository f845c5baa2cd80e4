package vectorizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// The files of a model directory (HuggingFace's layout plus xling.json).
const (
	ConfigFile    = "config.json"
	TokenizerFile = "tokenizer.json"
	WeightsFile   = "model.safetensors"
	OptionsFile   = "xling.json"
)

// Pooling strategies, named as Weaviate names them.
const (
	PoolMean = "masked_mean"
	PoolCLS  = "cls"
)

// Options is xling.json: how a model directory turns hidden states into
// vectors, and how queries differ from passages.
type Options struct {
	Pooling       string `json:"pooling"`        // masked_mean or cls
	Normalize     bool   `json:"normalize"`      // L2-normalise vectors
	MaxSeqLength  int    `json:"max_seq_length"` // tokens, special tokens included
	QueryPrefix   string `json:"query_prefix"`   // prepended to queries, e.g. "Query: "
	PassagePrefix string `json:"passage_prefix"` // prepended to passages, e.g. "Passage: "
	// QueryModel names a subdirectory holding a separate query encoder
	// (config.json and model.safetensors; the tokenizer is shared). Empty
	// means one shared encoder.
	QueryModel string `json:"query_model,omitempty"`
	// Languages the model was trained on, and how, reported by /meta.
	Languages []string       `json:"languages,omitempty"`
	Training  map[string]any `json:"training,omitempty"`
	// Quantize "int8" serves a transformer with dynamic int8 linear layers
	// (weights int8, activations quantised per call), as
	// torch.ao.quantization.quantize_dynamic does; "" keeps float32.
	Quantize string `json:"quantize,omitempty"`
}

// Int8 is the Quantize setting for dynamic int8 linear layers.
const Int8 = "int8"

// DefaultOptions are the paper's: mean pooling, normalised vectors, E5-style
// prefixes on one shared encoder.
func DefaultOptions() Options {
	return Options{Pooling: PoolMean, Normalize: true, MaxSeqLength: 128, QueryPrefix: "Query: ", PassagePrefix: "Passage: "}
}

func (o Options) validate(cfg modelconfig.Config) error {
	if o.Pooling != PoolMean && o.Pooling != PoolCLS {
		return fmt.Errorf("pooling %q is not supported (want %s or %s)", o.Pooling, PoolMean, PoolCLS)
	}
	if cfg.ModelType == modelconfig.Static && o.Pooling != PoolMean {
		return fmt.Errorf("a static model pools by %s only, not %q", PoolMean, o.Pooling)
	}
	switch {
	case o.Quantize != "" && o.Quantize != Int8:
		return fmt.Errorf("quantize %q is not supported (want %s, or nothing for float32)", o.Quantize, Int8)
	case o.Quantize != "" && cfg.ModelType == modelconfig.Static:
		return fmt.Errorf("quantize %q: a static model has no linear layers to quantise", o.Quantize)
	}
	if o.MaxSeqLength < 3 {
		return fmt.Errorf("max_seq_length %d is too small", o.MaxSeqLength)
	}
	if int64(o.MaxSeqLength) > cfg.MaxTokens() {
		return fmt.Errorf("max_seq_length %d exceeds the %d positions config.json gives", o.MaxSeqLength, cfg.MaxTokens())
	}
	return nil
}

func readOptions(dir string) (Options, error) {
	path := filepath.Join(dir, OptionsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultOptions(), nil // a plain HuggingFace directory
	}
	if err != nil {
		return Options{}, fmt.Errorf("read %s: %w", OptionsFile, err)
	}
	o := DefaultOptions()
	if err := json.Unmarshal(b, &o); err != nil {
		return Options{}, fmt.Errorf("read %s: %w", path, err)
	}
	return o, nil
}

// CheckWeights compares a weights file's header with what cfg implies,
// before anything is allocated: a config.json that asks for more
// parameters than the file holds (a million layers, a hidden size of 1e9)
// is refused instead of exhausting memory.
func CheckWeights(cfg modelconfig.Config, path string) error {
	hdr, err := safetensors.ReadHeader(path)
	if err != nil {
		return err
	}
	var held float64
	for _, t := range hdr.Tensors {
		n := 1.0
		for _, d := range t.Shape {
			n *= float64(d)
		}
		held += n
	}
	if want := cfg.Params(); want > held {
		shape := fmt.Sprintf("vocab_size %d, embedding_size %d, hidden_size %d", cfg.VocabSize, cfg.EmbeddingSize, cfg.HiddenSize)
		if cfg.ModelType != modelconfig.Static {
			shape = fmt.Sprintf("vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d, max_position_embeddings %d",
				cfg.VocabSize, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.MaxPositionEmbeddings)
		}
		return fmt.Errorf("%s holds %.0f values but config.json implies %.0f parameters (%s %s): the config does not describe these weights",
			path, held, want, cfg.ModelType, shape)
	}
	return nil
}

// Weights is an encoder whose parameters WriteDir saves:
// *transformer.Model or *static.Model.
type Weights interface {
	Save(path string) error
}

// Files is what WriteDir writes: a complete model directory.
type Files struct {
	Config    modelconfig.Config
	Options   Options
	Tokenizer []byte  // tokenizer.json
	Model     Weights // the passage (or shared) encoder
	Query     Weights // a separate query encoder of the same Config, or nil
}

// WriteDir writes a model directory that Load, the sidecar and HuggingFace
// transformers all read.
func WriteDir(dir string, f Files) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write model directory: %w", err)
	}
	if f.Query != nil && f.Options.QueryModel == "" {
		f.Options.QueryModel = "query"
	}
	if err := modelconfig.Write(filepath.Join(dir, ConfigFile), f.Config); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, TokenizerFile), f.Tokenizer, 0o644); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	b, _ := json.MarshalIndent(f.Options, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, OptionsFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write options: %w", err)
	}
	if err := f.Model.Save(filepath.Join(dir, WeightsFile)); err != nil {
		return err
	}
	if f.Query != nil {
		qdir := filepath.Join(dir, f.Options.QueryModel)
		if err := os.MkdirAll(qdir, 0o755); err != nil {
			return err
		}
		if err := modelconfig.Write(filepath.Join(qdir, ConfigFile), f.Config); err != nil {
			return err
		}
		return f.Query.Save(filepath.Join(qdir, WeightsFile))
	}
	return nil
}
