package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/vectorizer"
)

func tinyConfig() Config {
	c := DefaultConfig()
	c.Size, c.VocabSize, c.MaxLength = "tiny", 2000, 48
	c.BatchSize, c.Steps, c.LR, c.Warmup = 8, 12, 1e-3, 0.2
	c.CheckpointEvery, c.EvalEvery, c.LogEvery = 5, 6, 3
	c.HardNegatives = true
	return c
}

// TestResumeMatchesUninterrupted kills a run after step 7 (its last
// checkpoint is step 5), resumes it, and compares the end with a run that
// was never interrupted, for both architectures.
func TestResumeMatchesUninterrupted(t *testing.T) {
	for _, arch := range []string{ArchTransformer, ArchStatic} {
		t.Run(arch, func(t *testing.T) {
			c := tinyConfig()
			if c.Arch = arch; arch == ArchStatic {
				c.LR = StaticLR
			}
			testResume(t, c)
		})
	}
}

func testResume(t *testing.T, cfg Config) {
	items := xquadItems(t)
	train, valid := Split(items, 0.1, 1)
	tinyConfig := func() Config { return cfg }
	whole := &Run{Dir: t.TempDir(), Config: tinyConfig(), Train: train, Valid: valid}
	want, err := whole.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ctx, kill := context.WithCancel(context.Background())
	first := &Run{Dir: dir, Config: tinyConfig(), Train: train, Valid: valid, OnStep: func(step int, _ float64) {
		if step == 7 {
			kill()
		}
	}}
	if _, err := first.Execute(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	var resumedFrom int
	second := &Run{Dir: dir, Config: tinyConfig(), Train: train, Valid: valid, OnStep: func(step int, _ float64) {
		if resumedFrom == 0 {
			resumedFrom = step - 1
		}
	}}
	got, err := second.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uninterrupted: step %d loss %.6f; resumed from step %d: step %d loss %.6f", want.Step, want.Loss, resumedFrom, got.Step, got.Loss)
	if resumedFrom != 5 {
		t.Errorf("resumed from step %d, want the step-5 checkpoint", resumedFrom)
	}
	if got.Step != want.Step || math.Abs(got.Loss-want.Loss) > 1e-5 {
		t.Fatalf("resumed run ended at step %d loss %g; uninterrupted at step %d loss %g", got.Step, got.Loss, want.Step, want.Loss)
	}
	// The exported model loads in the vectorizer as it is.
	v, err := vectorizer.Load(got.ModelDir, vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Encode(context.Background(), []string{"where is it?"}, vectorizer.Query); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"train.jsonl", "eval.jsonl", "config.json", "best/evaluation.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}
}

func TestResumeRefusesOtherConfig(t *testing.T) {
	items := xquadItems(t)
	dir := t.TempDir()
	c := tinyConfig()
	c.Steps = 5
	if _, err := (&Run{Dir: dir, Config: c, Train: items}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Mode = ModeMono
	_, err := (&Run{Dir: dir, Config: c, Train: items}).Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Fatalf("resume with another mode: %v", err)
	}
	// A corrupt checkpoint is reported, not trusted.
	c.Mode = tinyConfig().Mode
	os.WriteFile(filepath.Join(dir, "checkpoints", "step-0000005", "optimizer.safetensors"), []byte("garbage"), 0o644)
	c.Steps = 5
	_, err = (&Run{Dir: dir, Config: c, Train: items}).Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "optimizer.safetensors") {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
}

// TestEmptyTextRefusedBeforeTraining: an empty query fails the run before
// its first step, naming the item, not when its batch comes up.
func TestEmptyTextRefusedBeforeTraining(t *testing.T) {
	items := xquadItems(t)
	items[len(items)/2].Query = "  "
	dir := t.TempDir()
	_, err := (&Run{Dir: dir, Config: tinyConfig(), Train: items}).Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("item %d", len(items)/2)) || !strings.Contains(err.Error(), "empty query") {
		t.Fatalf("empty query: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints")); err == nil {
		t.Error("a checkpoint was written for a run that cannot train")
	}
}
