package vectorizer

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
)

func loadStatic(dir string, normalize bool) (encoder, error) {
	cfg, err := modelconfig.Read(filepath.Join(dir, ConfigFile))
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
