// Package hftokenizers runs HuggingFace's own tokenizers (the Rust library,
// through its npm package's Node binding) as the reference that xling's
// tokenizer is tested against, as pytorchref is for the encoder.
package hftokenizers

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
	"time"
)

//go:embed ref.js
var script []byte

// ErrUnavailable reports that node or the package is missing.
var ErrUnavailable = errors.New("HuggingFace tokenizers (npm) is not available")

// Reference encodes with the package installed under a directory.
type Reference struct {
	module  string // .../node_modules/tokenizers
	Version string // the package's, as scripts/deps.sh pins it
}

// Find locates the package in the repository's .build/hftokenizers, where
// make deps installs it, from the working directory up, and checks that
// node can load it.
func Find(ctx context.Context) (*Reference, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, fmt.Errorf("%w: no go.mod above the working directory", ErrUnavailable)
		}
		dir = parent
	}
	module := filepath.Join(dir, ".build", "hftokenizers", "node_modules", "tokenizers")
	b, err := os.ReadFile(filepath.Join(module, "package.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v (make deps installs it)", ErrUnavailable, err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(b, &pkg); err != nil {
		return nil, fmt.Errorf("%w: %s/package.json: %v", ErrUnavailable, module, err)
	}
	out, err := exec.CommandContext(ctx, "node", "-e", "require(process.argv[1])", module).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: node cannot load %s: %v: %s", ErrUnavailable, module, err, bytes.TrimSpace(out))
	}
	return &Reference{module: module, Version: pkg.Version}, nil
}

// Encode returns HuggingFace's ids for each text, with the special tokens
// and, if maxLen > 0, truncation to maxLen.
func (r *Reference) Encode(ctx context.Context, tokenizerJSON string, maxLen int, texts []string) ([][]int, error) {
	in, err := json.Marshal(texts)
	if err != nil {
		return nil, err
	}
	stdout, err := r.run(ctx, in, "encode", tokenizerJSON, strconv.Itoa(maxLen))
	if err != nil {
		return nil, err
	}
	var out [][]int
	if err := json.Unmarshal(stdout, &out); err != nil {
		return nil, fmt.Errorf("hf tokenizers encode %s: bad output: %w", tokenizerJSON, err)
	}
	if len(out) != len(texts) {
		return nil, fmt.Errorf("hf tokenizers encode %s: %d results for %d texts", tokenizerJSON, len(out), len(texts))
	}
	return out, nil
}

// Rates are texts/s.
type Rates struct {
	Single float64 `json:"single"` // one text a call
	Batch  float64 `json:"batch"`  // 256 texts a call, spread over cores
}

// Bench measures HuggingFace encoding texts with tokenizerJSON for about
// d one text at a time, then d in batches.
func (r *Reference) Bench(ctx context.Context, tokenizerJSON string, texts []string, d time.Duration) (Rates, error) {
	in, err := json.Marshal(texts)
	if err != nil {
		return Rates{}, err
	}
	out, err := r.run(ctx, in, "bench", tokenizerJSON, strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
	if err != nil {
		return Rates{}, err
	}
	var rates Rates
	if err := json.Unmarshal(out, &rates); err != nil {
		return Rates{}, fmt.Errorf("hf tokenizers bench: bad output: %w", err)
	}
	return rates, nil
}

// Train trains a tokenizer of kind wordpiece (BERT cased normaliser and
// pre-tokeniser), bpe (byte-level) or unigram (NFKC, Metaspace) on a text
// file with HuggingFace's default trainer, and writes its tokenizer.json.
func (r *Reference) Train(ctx context.Context, kind, corpus, out string) error {
	_, err := r.run(ctx, nil, "train", kind, corpus, out)
	return err
}

// Command writes the reference script into dir and returns the command
// line that runs it, for a reference in another language to call: append
// "encode", a tokenizer.json, a maximum length and optionally "plain", and
// write the texts as a JSON array to its stdin (see ref.js).
func (r *Reference) Command(dir string) ([]string, error) {
	path := filepath.Join(dir, "ref.js")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return nil, err
	}
	return []string{"node", path, r.module}, nil
}

func (r *Reference) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "hftokenizers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	argv, err := r.Command(dir)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hf tokenizers %v: %w: %s", args, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}
