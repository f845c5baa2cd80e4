package vectorizer

import (
	"fmt"

	"github.com/sugarme/gotch"

	"github.com/xling-ir/xling/vectorizer/static"
	"github.com/xling-ir/xling/vectorizer/transformer"
)

// Sizes of randomly initialised encoders for tests and benchmarks: "small"
// is the 4-layer, 256-wide model, "base" has BERT-base's shape.
func SizeConfig(size string, vocab int64) (transformer.Config, error) {
	switch size {
	case "tiny":
		return transformer.BERTConfig(vocab, 64, 2, 4, 128), nil
	case "small":
		return transformer.BERTConfig(vocab, 256, 4, 4, 1024), nil
	case "base":
		return transformer.BERTConfig(vocab, 768, 12, 12, 3072), nil
	}
	return transformer.Config{}, fmt.Errorf("unknown model size %q (want tiny, small or base)", size)
}

// StaticSizeConfig is a static encoder of the width SizeConfig's size has,
// without a projection.
func StaticSizeConfig(size string, vocab int64) (transformer.Config, error) {
	c, err := SizeConfig(size, vocab)
	if err != nil {
		return c, err
	}
	return transformer.StaticConfig(vocab, c.HiddenSize, c.HiddenSize, 512), nil
}

// WriteRandom writes a model directory holding a randomly initialised
// encoder (HuggingFace's initialisation, drawn from seed, or a static
// model's) and the given tokenizer.json.
func WriteRandom(dir string, cfg transformer.Config, opts Options, tokenizerJSON []byte, seed uint64) error {
	if cfg.ModelType == transformer.Static {
		m, err := static.New(cfg)
		if err != nil {
			return err
		}
		m.Init(seed)
		return WriteDir(dir, Files{Config: cfg, Options: opts, Tokenizer: tokenizerJSON, Model: m})
	}
	m, err := transformer.New(cfg, gotch.CPU)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Init(seed)
	return WriteDir(dir, Files{Config: cfg, Options: opts, Tokenizer: tokenizerJSON, Model: m})
}
