// Package vectorizertest makes small randomly initialised model directories
// for the tests of packages that need a real model.
package vectorizertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

var (
	once     sync.Once
	tokJSON  []byte
	tokError error
)

// Tokenizer returns a 4,000-piece WordPiece tokenizer.json trained on the
// XQuAD-R sentences of ../shared/data, trained once per test binary. Without
// the data the test is skipped, except under CI=true.
func Tokenizer(t testing.TB) []byte {
	t.Helper()
	once.Do(func() {
		var dir string
		if dir, tokError = shareddata.Dir(); tokError != nil {
			return
		}
		var xquad *qa.Dataset
		if xquad, tokError = qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil); tokError != nil {
			return
		}
		tokJSON, tokError = tokenize.TrainWordPiece(context.Background(), strings.NewReader(strings.Join(xquad.CandidateTexts(), "\n")), tokenize.TrainOptions{VocabSize: 4000})
	})
	if errors.Is(tokError, shareddata.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skip(tokError)
	}
	if tokError != nil {
		t.Fatal(tokError)
	}
	return tokJSON
}

// Model writes a random model directory with cfg and options and returns
// its path.
func Model(t testing.TB, cfg modelconfig.Config, opts vectorizer.Options, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	if err := vectorizer.WriteRandom(dir, cfg, opts, Tokenizer(t), seed); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Tiny writes a 2-layer, 64-wide random model with default options.
func Tiny(t testing.TB) string {
	cfg, _ := vectorizer.SizeConfig("tiny", 4000)
	return Model(t, cfg, vectorizer.DefaultOptions(), 1)
}
