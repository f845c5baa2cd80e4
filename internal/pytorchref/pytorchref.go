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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
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
	return encode(ctx, modelDir, ids)
}

// EncodeInt8 is Encode with the encoder's linear layers through
// torch.ao.quantization.quantize_dynamic (qint8, oneDNN).
func EncodeInt8(ctx context.Context, modelDir string, ids [][]int64) ([][]float32, error) {
	return encode(ctx, modelDir, ids, "--int8")
}

func encode(ctx context.Context, modelDir string, ids [][]int64, flags ...string) ([][]float32, error) {
	in, _ := json.Marshal(map[string]any{"ids": ids})
	var out struct{ Vectors [][]float32 }
	if err := run(ctx, in, &out, append([]string{"encode", "--model", modelDir}, flags...)...); err != nil {
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

//go:embed t2v.py
var t2vScript []byte

// T2V is a running inference server built as weaviate/t2v-transformers-models
// is (see t2v.py): the server Weaviate users run today, for xling's serving
// benchmark.
type T2V struct {
	URL    string
	cmd    *exec.Cmd
	dir    string
	stderr bytes.Buffer
	exited chan error
}

// StartT2V starts the server on a free loopback port over modelDir, with
// tokens (task type → text → ids) pre-computed, and waits until it is
// ready.
func StartT2V(ctx context.Context, modelDir string, tokens map[string]map[string][]int64, threads int) (*T2V, error) {
	if out, err := exec.CommandContext(ctx, Python, "-c", "import torch, fastapi, uvicorn").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: the t2v reference server needs FastAPI and uvicorn at %s (%v: %s); install them with: apt-get install -y python3-fastapi python3-uvicorn",
			ErrUnavailable, Python, err, bytes.TrimSpace(out))
	}
	dir, err := os.MkdirTemp("", "t2vref-")
	if err != nil {
		return nil, err
	}
	s := &T2V{dir: dir, exited: make(chan error, 1)}
	b, err := json.Marshal(tokens)
	if err == nil {
		err = errors.Join(os.WriteFile(filepath.Join(dir, "tokens.json"), b, 0o644),
			os.WriteFile(filepath.Join(dir, "bert.py"), script, 0o644),
			os.WriteFile(filepath.Join(dir, "t2v.py"), t2vScript, 0o644))
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.cmd = exec.Command(Python, filepath.Join(dir, "t2v.py"), "--model", modelDir, "--tokens", filepath.Join(dir, "tokens.json"),
		"--port", strconv.Itoa(port), "--threads", strconv.Itoa(threads))
	s.cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(s.URL + "/.well-known/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return s, nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			s.Close()
			return nil, fmt.Errorf("t2v reference server exited: %v: %s", err, s.stderr.Bytes())
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("t2v reference server not ready after 2 minutes: %s", s.stderr.Bytes())
		}
	}
}

// Close stops the server and removes its files.
func (s *T2V) Close() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	os.RemoveAll(s.dir)
}
