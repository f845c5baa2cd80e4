package trainer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/qa"
)

// TestLearningIsReal trains a small model from scratch on XQuAD-R with
// hybrid batches and checks, zero-shot on held-out MLQA-R, that retrieval
// in the multilingual pool rises well above the untrained model's.
func TestLearningIsReal(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes of CPU")
	}
	cfg := DefaultConfig()
	cfg.Size, cfg.VocabSize, cfg.MaxLength = "tiny", 8000, 64
	cfg.BatchSize, cfg.Steps, cfg.LR, cfg.Warmup = 32, 800, 2e-3, 0.05
	cfg.CheckpointEvery, cfg.EvalEvery, cfg.LogEvery = 400, 0, 100
	before, after := zeroShot(t, cfg)
	t.Logf("MLQA-R (zero-shot) mAP before -> after: multi %.4f -> %.4f, cross %.4f -> %.4f, mono %.4f -> %.4f",
		before.Multi.MAP, after.Multi.MAP, before.Cross.MAP, after.Cross.MAP, before.Mono.MAP, after.Mono.MAP)
	if after.Multi.MAP < 2*before.Multi.MAP || after.Multi.MAP-before.Multi.MAP < 0.03 {
		t.Fatalf("multilingual mAP rose from %.4f only to %.4f", before.Multi.MAP, after.Multi.MAP)
	}
}

// TestStaticLearnsCrossLingual trains the static encoder on XQuAD-R with
// cross-lingual batches (1,000 steps of 64 pairs, as the study does) and
// checks zero-shot on MLQA-R that cross-lingual mAP reaches 1.5x the
// untrained model's and the multilingual pool improves.
func TestStaticLearnsCrossLingual(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Arch, cfg.Mode, cfg.LR = ArchStatic, ModeCross, StaticLR
	cfg.BatchSize, cfg.Steps = 64, 1000
	cfg.CheckpointEvery, cfg.EvalEvery, cfg.LogEvery = 500, 0, 250
	before, after := zeroShot(t, cfg)
	t.Logf("static, MLQA-R (zero-shot) mAP before -> after: multi %.4f -> %.4f, cross %.4f -> %.4f, mono %.4f -> %.4f",
		before.Multi.MAP, after.Multi.MAP, before.Cross.MAP, after.Cross.MAP, before.Mono.MAP, after.Mono.MAP)
	if after.Cross.MAP < 1.5*before.Cross.MAP || after.Multi.MAP <= before.Multi.MAP {
		t.Fatalf("cross mAP %.4f -> %.4f (want 1.5x), multi %.4f -> %.4f (want a rise)", before.Cross.MAP, after.Cross.MAP, before.Multi.MAP, after.Multi.MAP)
	}
}

// zeroShot trains cfg on XQuAD-R and evaluates the untrained and the
// trained model on held-out MLQA-R.
func zeroShot(t *testing.T, cfg Config) (before, after *Evaluation) {
	t.Helper()
	items := xquadItems(t)
	mlqa, err := qa.LoadLAReQA(filepath.Join(sharedtest.Dir(t), "mlqa-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	held := Items(mlqa)
	run := &Run{Dir: t.TempDir(), Config: cfg, Train: items, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	res, err := run.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if before, err = EvaluateDir(context.Background(), filepath.Join(run.Dir, "init"), held); err != nil {
		t.Fatal(err)
	}
	if after, err = EvaluateDir(context.Background(), res.ModelDir, held); err != nil {
		t.Fatal(err)
	}
	return before, after
}
