//go:build !cgo

package trainer

import (
	"context"
	"fmt"
	"time"

	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

func newTorchNet(mc modelconfig.Config, _ string, _ uint64, _ *vectorizer.TextTokenizer, _ float64) (dualEncoder, error) {
	return nil, fmt.Errorf("train a %s encoder: %w", mc.ModelType, vectorizer.ErrNeedsLibtorch)
}

func transformerThroughput(_ context.Context, _ string, cfg modelconfig.Config, _, _ [][]int64, _ time.Duration) (float64, error) {
	return 0, fmt.Errorf("throughput of a %s encoder: %w", cfg.ModelType, vectorizer.ErrNeedsLibtorch)
}
