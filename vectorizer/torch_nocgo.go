//go:build !cgo

package vectorizer

import (
	"fmt"

	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

func loadTorch(v *Vectorizer, dirs []string, _, _ int) error {
	return fmt.Errorf("model directory %s holds a %s encoder: %w", dirs[0], v.Config.ModelType, ErrNeedsLibtorch)
}

func writeRandomTorch(dir string, cfg modelconfig.Config, _ Options, _ []byte, _ uint64) error {
	return fmt.Errorf("write %s: a random %s encoder: %w", dir, cfg.ModelType, ErrNeedsLibtorch)
}
