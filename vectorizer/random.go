package vectorizer

import (
	"fmt"

	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
)

// Sizes of randomly initialised encoders for tests and benchmarks: "small"
// is the 4-layer, 256-wide model, "base" has BERT-base's shape.
func SizeConfig(size string, vocab int64) (modelconfig.Config, error) {
	switch size {
	case "tiny":
		return modelconfig.NewBERT(vocab, 64, 2, 4, 128), nil
	case "small":
		return modelconfig.NewBERT(vocab, 256, 4, 4, 1024), nil
	case "base":
		return modelconfig.NewBERT(vocab, 768, 12, 12, 3072), nil
	}
	return modelconfig.Config{}, fmt.Errorf("unknown model size %q (want tiny, small or base)", size)
}

// StaticSizeConfig is a static encoder of the width SizeConfig's size has,
// without a projection.
func StaticSizeConfig(size string, vocab int64) (modelconfig.Config, error) {
	c, err := SizeConfig(size, vocab)
	if err != nil {
		return c, err
	}
	return modelconfig.NewStatic(vocab, c.HiddenSize, c.HiddenSize, 512), nil
}

// WriteRandom writes a model directory holding a randomly initialised
// encoder (HuggingFace's initialisation, drawn from seed, or a static
// model's) and the given tokenizer.json.
func WriteRandom(dir string, cfg modelconfig.Config, opts Options, tokenizerJSON []byte, seed uint64) error {
	if cfg.ModelType == modelconfig.Static {
		m, err := static.New(cfg)
		if err != nil {
			return err
		}
		m.Init(seed)
		return WriteDir(dir, Files{Config: cfg, Options: opts, Tokenizer: tokenizerJSON, Model: m})
	}
	return writeRandomTorch(dir, cfg, opts, tokenizerJSON, seed)
}
