package vectorizer_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/tokenize"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// editJSON rewrites a JSON file of a model directory.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a model directory so that each case can damage its own.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestHostileModelDirectories: every damaged directory is refused at load
// with an error naming the problem, before memory is allocated for it.
func TestHostileModelDirectories(t *testing.T) {
	tiny := vectorizertest.Tiny(t)
	staticCfg, _ := vectorizer.StaticSizeConfig("tiny", 4000)
	static := vectorizertest.Model(t, staticCfg, vectorizer.DefaultOptions(), 1)
	cases := []struct {
		name   string
		base   string
		damage func(dir string)
		want   string
	}{
		{"token id past the embedding table", tiny, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.TokenizerFile), func(doc map[string]any) {
				doc["model"].(map[string]any)["vocab"].(map[string]any)["the"] = 50000
			})
		}, "can produce token id 50000 but config.json's vocab_size is 4000"},
		{"post-processor id past the table", tiny, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.TokenizerFile), func(doc map[string]any) {
				doc["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 4001}, "cls": []any{"[CLS]", 2}}
			})
		}, "can produce token id 4001"},
		{"weights are /dev/zero", tiny, func(dir string) {
			os.Remove(filepath.Join(dir, vectorizer.WeightsFile))
			if err := os.Symlink("/dev/zero", filepath.Join(dir, vectorizer.WeightsFile)); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"a million layers", tiny, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.ConfigFile), func(doc map[string]any) { doc["num_hidden_layers"] = 1000000 })
		}, "the config does not describe these weights"},
		{"BERT hidden size 1e9", tiny, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.ConfigFile), func(doc map[string]any) { doc["hidden_size"] = 1 << 30 })
		}, "the config does not describe these weights"},
		{"static hidden size 1e9", static, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.ConfigFile), func(doc map[string]any) { doc["hidden_size"] = 1000000000 })
		}, "the config does not describe these weights"},
		{"static vocabulary 1e12", static, func(dir string) {
			editJSON(t, filepath.Join(dir, vectorizer.ConfigFile), func(doc map[string]any) { doc["vocab_size"] = 1e12 })
		}, "the config does not describe these weights"},
		{"NaN weights", static, func(dir string) {
			path := filepath.Join(dir, vectorizer.WeightsFile)
			f, err := safetensors.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tensors := map[string]safetensors.Tensor{}
			for name, ten := range f.Tensors {
				v, _ := ten.Float32()
				v[7] = float32(math.NaN())
				tensors[name], _ = safetensors.FromFloat32(ten.Shape, v)
			}
			if err := safetensors.WriteFile(path, tensors, nil); err != nil {
				t.Fatal(err)
			}
		}, "value 7 is NaN: corrupt weights"},
		{"truncated weights", tiny, func(dir string) {
			path := filepath.Join(dir, vectorizer.WeightsFile)
			info, _ := os.Stat(path)
			if err := os.Truncate(path, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, c.base)
			c.damage(dir)
			v, err := vectorizer.Load(dir, vectorizer.LoadOptions{})
			if err == nil {
				v.Close()
				t.Fatalf("loaded; want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestLibtorchErrorIsAnError: an operation libtorch refuses (an index past
// the embedding table) inside a forward pass comes back as an error for
// that call; the process and the worker carry on.
func TestLibtorchErrorIsAnError(t *testing.T) {
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	err = vectorizer.ForwardUnchecked(v, [][]int64{{2, 99999, 3}})
	if err == nil || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("forward with id 99999: %v, want libtorch's index error", err)
	}
	// The guard in front of libtorch names the text.
	_, err = v.EncodeTokens(context.Background(), []vectorizer.Tokens{{IDs: []int64{2, 5, 3}}, {IDs: []int64{2, 4000, 3}}}, vectorizer.Passage)
	var te *vectorizer.TextError
	if !errors.As(err, &te) || te.Index != 1 || !strings.Contains(err.Error(), "outside the vocabulary of 4000") {
		t.Fatalf("EncodeTokens with id 4000: %v", err)
	}
	vecs, err := v.Encode(context.Background(), []string{"still working"}, vectorizer.Query)
	if err != nil || len(vecs) != 1 {
		t.Fatalf("after the errors: %v", err)
	}
}

// TestExportedFilesAreReadable: a model directory is for other users too
// (a serving account, a container), not 0600.
func TestExportedFilesAreReadable(t *testing.T) {
	cfg, _ := vectorizer.StaticSizeConfig("tiny", 4000)
	dir := vectorizertest.Model(t, cfg, vectorizer.DefaultOptions(), 1)
	for _, f := range []string{vectorizer.ConfigFile, vectorizer.TokenizerFile, vectorizer.WeightsFile, vectorizer.OptionsFile} {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", f, info.Mode().Perm())
		}
	}
}

// TestUnigramWithoutUnkID: a Unigram tokenizer.json without unk_id makes an
// unknown character an error, as in HuggingFace, never the id -1.
func TestUnigramWithoutUnkID(t *testing.T) {
	doc := `{"model":{"type":"Unigram","vocab":[["<pad>",0],["▁a",-1],["a",-2],["▁",-3]]}}`
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	os.WriteFile(path, []byte(doc), 0o644)
	tok, err := tokenize.Load(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _, err := tok.Encode("a"); err != nil || len(ids) == 0 {
		t.Fatalf("known text: %v %v", ids, err)
	}
	if ids, _, err := tok.Encode("a ж"); err == nil || !strings.Contains(err.Error(), "no unk_id") {
		t.Fatalf("unknown character without unk_id: ids %v, err %v", ids, err)
	}
}
