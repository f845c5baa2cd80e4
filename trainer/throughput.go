package trainer

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"time"

	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
)

// Throughput measures training pairs per second on a model directory: the
// step python3-torch's reference measures (InfoNCE over in-batch negatives
// with temperature 0.05, backward, gradient clipping at 1, AdamW; for a
// static model the sparse AdamW, against SparseAdam), on random ids of one
// length. It runs three rounds of d/3 and returns the best.
func Throughput(ctx context.Context, modelDir string, batch, seq, threads int, d time.Duration) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if threads > 0 {
		torchx.SetThreads(threads)
	}
	cfg, err := modelconfig.Read(filepath.Join(modelDir, vectorizer.ConfigFile))
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(1, 1))
	randomIDs := func() [][]int64 {
		out := make([][]int64, batch)
		for i := range out {
			out[i] = make([]int64, seq)
			for j := range out[i] {
				out[i][j] = 5 + rng.Int64N(cfg.VocabSize-5)
			}
		}
		return out
	}
	queries, passages := randomIDs(), randomIDs()
	if cfg.ModelType == modelconfig.Static {
		m, err := static.New(cfg)
		if err != nil {
			return 0, err
		}
		if err := m.Load(filepath.Join(modelDir, vectorizer.WeightsFile)); err != nil {
			return 0, err
		}
		opt := static.NewAdamW(m, 0.01)
		c := static.Contrastive{Queries: queries, Passages: passages, Temperature: 0.05}
		return bestOfThree(ctx, d, batch, func() error {
			g := m.NewGrad()
			if _, err := m.LossBackward(c, 1, g); err != nil {
				return err
			}
			opt.Step(g, StaticLR, 1)
			return nil
		})
	}
	return transformerThroughput(ctx, modelDir, cfg, queries, passages, d)
}

// bestOfThree runs step once to warm up, then for three rounds of d/3, and
// returns the best round's pairs per second.
func bestOfThree(ctx context.Context, d time.Duration, batch int, step func() error) (float64, error) {
	if err := step(); err != nil {
		return 0, err
	}
	best := 0.0
	for r := 0; r < 3; r++ {
		n, start := 0, time.Now()
		for time.Since(start) < d/3 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if err := step(); err != nil {
				return 0, err
			}
			n += batch
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best, nil
}
