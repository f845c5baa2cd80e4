// Package pytorchref runs an independent plain-PyTorch implementation of
// xling's encoder (Debian's python3-torch) for parity tests and for the
// baselines of xling's benchmarks.
package pytorchref

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

//go:embed bert.py
var script []byte

// Python is Debian's interpreter, which has python3-torch; the python3
// first on PATH may be another one without it.
const Python = "/usr/bin/python3"

// ErrUnavailable reports that python3-torch cannot be run here.
var ErrUnavailable = errors.New("python3-torch is not available")

// Available reports whether the reference can run, and why not.
func Available(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, Python, "-c", "import torch, numpy").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w at %s (%v: %s); install it with: apt-get install -y python3-torch python3-numpy", ErrUnavailable, Python, err, bytes.TrimSpace(out))
	}
	return nil
}

func run(ctx context.Context, stdin []byte, out any, args ...string) error {
	dir, err := os.MkdirTemp("", "pytorchref-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bert.py")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, Python, append([]string{path}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// One intra-op thread unless asked: the same setting the Go side uses.
	cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pytorch reference %v: %w: %s", args, err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("pytorch reference %v: bad output: %w", args, err)
	}
	return nil
}

// Encode runs the reference forward pass and pooling over token ids.
func Encode(ctx context.Context, modelDir string, ids [][]int64) ([][]float32, error) {
	in, _ := json.Marshal(map[string]any{"ids": ids})
	var out struct{ Vectors [][]float32 }
	if err := run(ctx, in, &out, "encode", "--model", modelDir); err != nil {
		return nil, err
	}
	return out.Vectors, nil
}

// BenchEncode measures the reference's inference throughput in sentences/s
// for a batch of random ids of one length.
func BenchEncode(ctx context.Context, modelDir string, batch, seq, threads int, seconds float64) (float64, error) {
	return rate(ctx, "bench", "sentences_per_second", modelDir, batch, seq, threads, seconds)
}

// BenchTrain measures the reference's training throughput in pairs/s: an
// InfoNCE step with AdamW over a batch of random query and passage ids.
func BenchTrain(ctx context.Context, modelDir string, batch, seq, threads int, seconds float64) (float64, error) {
	return rate(ctx, "train", "pairs_per_second", modelDir, batch, seq, threads, seconds)
}

func rate(ctx context.Context, mode, key, modelDir string, batch, seq, threads int, seconds float64) (float64, error) {
	var out map[string]float64
	err := run(ctx, nil, &out, mode, "--model", modelDir, "--batch", strconv.Itoa(batch), "--seq", strconv.Itoa(seq),
		"--threads", strconv.Itoa(threads), "--seconds", strconv.FormatFloat(seconds, 'f', -1, 64))
	return out[key], err
}
