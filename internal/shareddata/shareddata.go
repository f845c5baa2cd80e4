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
	"testing"
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

// Questions returns the questions of every language of a LAReQA-layout
// dataset directory, languages in name order.
func Questions(datasetDir string) ([]string, error) {
	var out []string
	err := eachParagraph(datasetDir, func(p paragraph) {
		for _, q := range p.QAs {
			out = append(out, q.Question)
		}
	})
	return out, err
}

// Sentences returns the candidate sentences of every language of a
// LAReQA-layout dataset directory (xquad-r, mlqa-r), languages in name order.
func Sentences(datasetDir string) ([]string, error) {
	var out []string
	err := eachParagraph(datasetDir, func(p paragraph) { out = append(out, p.Sentences...) })
	return out, err
}

type paragraph struct {
	Sentences []string `json:"sentences"`
	QAs       []struct {
		Question string `json:"question"`
	} `json:"qas"`
}

func eachParagraph(datasetDir string, fn func(paragraph)) error {
	files, err := filepath.Glob(filepath.Join(datasetDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.json files in %s", datasetDir)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var doc struct {
			Data []struct {
				Paragraphs []paragraph `json:"paragraphs"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
		for _, d := range doc.Data {
			for _, p := range d.Paragraphs {
				fn(p)
			}
		}
	}
	return nil
}

// ForTest returns the data directory for a test. Without it the test is
// skipped, except under CI=true, where that is a failure: CI must not pass
// by skipping the tests on real data.
func ForTest(t testing.TB) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir
}
