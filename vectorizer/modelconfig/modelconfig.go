// Package modelconfig is a model directory's config.json: HuggingFace's
// fields for BERT and XLM-RoBERTa encoders, and xling's static encoder. It
// needs no libtorch, so the static-only build reads model directories too.
package modelconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Config is the subset of a HuggingFace config.json that defines a BERT or
// XLM-RoBERTa encoder.
type Config struct {
	ModelType                 string   `json:"model_type"` // "bert", "xlm-roberta" or "static"
	Architectures             []string `json:"architectures,omitempty"`
	VocabSize                 int64    `json:"vocab_size"`
	HiddenSize                int64    `json:"hidden_size"`
	NumHiddenLayers           int64    `json:"num_hidden_layers"`
	NumAttentionHeads         int64    `json:"num_attention_heads"`
	IntermediateSize          int64    `json:"intermediate_size"`
	HiddenAct                 string   `json:"hidden_act"`
	HiddenDropoutProb         float64  `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64  `json:"attention_probs_dropout_prob"`
	MaxPositionEmbeddings     int64    `json:"max_position_embeddings"`
	TypeVocabSize             int64    `json:"type_vocab_size"`
	LayerNormEps              float64  `json:"layer_norm_eps"`
	PadTokenID                int64    `json:"pad_token_id"`
	InitializerRange          float64  `json:"initializer_range"`
	PositionEmbeddingType     string   `json:"position_embedding_type,omitempty"`
	// EmbeddingSize is a static model's token vector width; its vectors
	// are projected to HiddenSize when the two differ.
	EmbeddingSize int64 `json:"embedding_size,omitempty"`
}

// Static is model_type of the static-embedding encoder (package static).
const Static = "static"

// NewStatic describes a static encoder: a vocab x embedding table,
// projected to hidden dimensions when they differ. maxTokens bounds a text.
func NewStatic(vocab, embedding, hidden, maxTokens int64) Config {
	return Config{ModelType: Static, VocabSize: vocab, EmbeddingSize: embedding, HiddenSize: hidden,
		MaxPositionEmbeddings: maxTokens, InitializerRange: 0.02}
}

// NewBERT returns a BERT configuration of the given shape with
// HuggingFace's defaults for everything else.
func NewBERT(vocab, hidden, layers, heads, intermediate int64) Config {
	return Config{
		ModelType: "bert", Architectures: []string{"BertModel"},
		VocabSize: vocab, HiddenSize: hidden, NumHiddenLayers: layers, NumAttentionHeads: heads,
		IntermediateSize: intermediate, HiddenAct: "gelu", HiddenDropoutProb: 0.1,
		AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 512, TypeVocabSize: 2,
		LayerNormEps: 1e-12, PadTokenID: 0, InitializerRange: 0.02, PositionEmbeddingType: "absolute",
	}
}

// Read reads and validates a config.json.
func Read(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read model config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("read model config %s: %w", path, err)
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	return c, nil
}

// Write writes c as config.json.
func Write(path string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write model config: %w", err)
	}
	return nil
}

// Validate reports the first field that cannot define an encoder.
func (c Config) Validate() error {
	switch c.ModelType {
	case "bert", "xlm-roberta":
	case Static:
		return c.validateStatic()
	case "":
		return errors.New("model_type is missing (want bert, xlm-roberta or static)")
	default:
		return fmt.Errorf("model_type %q is not supported (want bert, xlm-roberta or static)", c.ModelType)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings}, {"type_vocab_size", c.TypeVocabSize}} {
		if f.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", f.name, f.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	switch c.HiddenAct {
	case "gelu", "gelu_new", "gelu_pytorch_tanh":
	default:
		return fmt.Errorf("hidden_act %q is not supported (want gelu, gelu_new or gelu_pytorch_tanh)", c.HiddenAct)
	}
	if c.PositionEmbeddingType != "" && c.PositionEmbeddingType != "absolute" {
		return fmt.Errorf("position_embedding_type %q is not supported (want absolute)", c.PositionEmbeddingType)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("pad_token_id %d is outside the vocabulary of %d", c.PadTokenID, c.VocabSize)
	}
	if c.LayerNormEps <= 0 {
		return fmt.Errorf("layer_norm_eps must be positive, got %g", c.LayerNormEps)
	}
	if c.MaxTokens() <= 0 {
		return fmt.Errorf("max_position_embeddings %d leaves no positions after XLM-R's offset of %d", c.MaxPositionEmbeddings, c.PositionOffset())
	}
	return nil
}

func (c Config) validateStatic() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"vocab_size", c.VocabSize}, {"embedding_size", c.EmbeddingSize}, {"hidden_size", c.HiddenSize}, {"max_position_embeddings", c.MaxPositionEmbeddings}} {
		if f.v <= 0 {
			return fmt.Errorf("%s must be positive for a static model, got %d", f.name, f.v)
		}
	}
	// -1 means no padding id: every id counts in the mean, as in the
	// model2vec and sentence-transformers layouts.
	if c.PadTokenID < -1 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("pad_token_id %d is outside the vocabulary of %d", c.PadTokenID, c.VocabSize)
	}
	return nil
}

// PositionOffset is the first position id: XLM-RoBERTa numbers positions
// from pad_token_id+1 (2 for the released models), BERT from 0.
func (c Config) PositionOffset() int64 {
	if c.ModelType == "xlm-roberta" {
		return c.PadTokenID + 1
	}
	return 0
}

// MaxTokens is the longest sequence the position embeddings allow.
func (c Config) MaxTokens() int64 { return c.MaxPositionEmbeddings - c.PositionOffset() }

// GELUApproximate is libtorch's name for the GELU variant hidden_act
// selects.
func (c Config) GELUApproximate() string {
	if c.HiddenAct == "gelu" {
		return "none"
	}
	return "tanh"
}

// Params is the number of parameters c implies, as a float64 so that an
// absurd config.json cannot overflow it.
func (c Config) Params() float64 {
	v, h, e := float64(c.VocabSize), float64(c.HiddenSize), float64(c.EmbeddingSize)
	if c.ModelType == Static {
		if c.HiddenSize == c.EmbeddingSize {
			return v * e
		}
		return v*e + h*e + h
	}
	in := float64(c.IntermediateSize)
	embeddings := (v+float64(c.MaxPositionEmbeddings)+float64(c.TypeVocabSize))*h + 2*h
	layer := 4*(h*h+h) + 2*2*h + (in*h + in) + (h*in + h)
	return embeddings + float64(c.NumHiddenLayers)*layer
}
