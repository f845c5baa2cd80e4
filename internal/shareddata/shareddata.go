// Package shareddata finds the evaluation data that sits beside the
// repository (../shared/data), for tests, benchmarks and the demo.
package shareddata

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Env names the variable that points at the data directory.
const Env = "XLING_DATA_DIR"

// ErrNotFound reports that no data directory was found.
var ErrNotFound = errors.New("shared data directory not found")

// Dir returns $XLING_DATA_DIR, or the first shared/data found beside this
// directory or one of its parents.
func Dir() (string, error) {
	if d := os.Getenv(Env); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNotFound, Env, d, err)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		d := filepath.Join(dir, "shared", "data")
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: set %s or place the data at ../shared/data beside the repository", ErrNotFound, Env)
		}
		dir = parent
	}
}

// Sentences returns the candidate sentences of every language of a
// LAReQA-layout dataset directory (xquad-r, mlqa-r), languages in name order.
func Sentences(datasetDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(datasetDir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.json files in %s", datasetDir)
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Data []struct {
				Paragraphs []struct {
					Sentences []string `json:"sentences"`
				} `json:"paragraphs"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		for _, d := range doc.Data {
			for _, p := range d.Paragraphs {
				out = append(out, p.Sentences...)
			}
		}
	}
	return out, nil
}
