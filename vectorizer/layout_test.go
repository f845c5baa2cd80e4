package vectorizer_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/hftokenizers"
	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// layoutTexts are XQuAD-R's and MLQA-R's questions and sentences in every
// language they hold, sampled, and the cases where the layouts' rules bite:
// no tokens at all, unknown characters (model2vec drops them), literal
// special tokens (no special tokens are added, but these are matched), and
// texts past the character cut and the 512-token truncation.
func layoutTexts(t *testing.T) []string {
	dir, err := shareddata.Dir()
	if errors.Is(err, shareddata.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, set := range []string{"xquad-r", "mlqa-r"} {
		ds, err := qa.LoadLAReQA(filepath.Join(dir, set), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, texts := range [][]string{ds.QuestionTexts(), ds.CandidateTexts()} {
			for i := 0; i < len(texts); i += max(1, len(texts)/300) {
				out = append(out, texts[i])
			}
		}
	}
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 200)
	return append(out, "", " ", "\U0001F9E9\U0001FAE0", "❄ ☃ ⛄ snow", "[UNK] [CLS] x [SEP] [PAD]",
		long, strings.Repeat("☃", 5000)+" end", strings.Repeat("abcdefghij", 600))
}

// writeTensors writes a safetensors file of float32 or int64 tensors.
func writeTensors(t *testing.T, path string, tensors map[string]safetensors.Tensor) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
}

func floats(t *testing.T, shape []int64, rng *rand.Rand, scale float64) safetensors.Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	ts, err := safetensors.FromFloat32(shape, v)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// staticLayouts writes the directories the test reads: model2vec with a
// quantised vocabulary ("mapping") and per-token weights, normalised, with
// prompts; model2vec in half precision, unnormalised; sentence-transformers
// with the module in 0_StaticEmbedding, a Normalize module and truncation
// in tokenizer.json; and one xling writes from its own static model with a
// projection.
func staticLayouts(t *testing.T) map[string]string {
	tok := vectorizertest.Tokenizer(t)
	var doc map[string]any
	if err := json.Unmarshal(tok, &doc); err != nil {
		t.Fatal(err)
	}
	vocab := int64(len(doc["model"].(map[string]any)["vocab"].(map[string]any)))
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	dirs := map[string]string{}

	d := filepath.Join(root, "model2vec-quantised")
	mapping := make([]byte, 8*vocab)
	for i := range vocab {
		row := rng.Int64N(vocab / 3)
		for b := range 8 {
			mapping[8*i+int64(b)] = byte(row >> (8 * b))
		}
	}
	weights := floats(t, []int64{vocab}, rng, 1)
	writeTensors(t, filepath.Join(d, "model.safetensors"), map[string]safetensors.Tensor{
		"embeddings": floats(t, []int64{vocab / 3, 48}, rng, 1),
		"weights":    weights,
		"mapping":    {DType: "I64", Shape: []int64{vocab}, Data: mapping},
	})
	writeJSON(t, filepath.Join(d, "config.json"), map[string]any{"model_type": "model2vec", "normalize": true, "hidden_dim": 48})
	writeJSON(t, filepath.Join(d, "config_sentence_transformers.json"), map[string]any{"prompts": map[string]string{"query": "query: ", "document": "passage: "}})
	if err := os.WriteFile(filepath.Join(d, "tokenizer.json"), tok, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs["model2vec-quantised"] = d

	d = filepath.Join(root, "model2vec-f16")
	f32, err := floats(t, []int64{vocab, 32}, rng, 0.5).Float32()
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, 2*len(f32))
	for i, x := range f32 {
		h := float16(x)
		half[2*i], half[2*i+1] = byte(h), byte(h>>8)
	}
	writeTensors(t, filepath.Join(d, "model.safetensors"), map[string]safetensors.Tensor{"embeddings": {DType: "F16", Shape: []int64{vocab, 32}, Data: half}})
	writeJSON(t, filepath.Join(d, "config.json"), map[string]any{"model_type": "model2vec", "normalize": false})
	if err := os.WriteFile(filepath.Join(d, "tokenizer.json"), tok, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs["model2vec-f16"] = d

	d = filepath.Join(root, "sentence-transformers")
	truncated := map[string]any{}
	for k, v := range doc {
		truncated[k] = v
	}
	truncated["truncation"] = map[string]any{"direction": "Right", "max_length": 40, "strategy": "LongestFirst", "stride": 0}
	writeJSON(t, filepath.Join(d, "0_StaticEmbedding", "tokenizer.json"), truncated)
	writeTensors(t, filepath.Join(d, "0_StaticEmbedding", "model.safetensors"), map[string]safetensors.Tensor{"embedding.weight": floats(t, []int64{vocab, 40}, rng, 1)})
	writeJSON(t, filepath.Join(d, "modules.json"), []map[string]any{
		{"idx": 0, "name": "0", "path": "0_StaticEmbedding", "type": "sentence_transformers.models.StaticEmbedding"},
		{"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
	})
	writeJSON(t, filepath.Join(d, "config_sentence_transformers.json"), map[string]any{"prompts": map[string]string{"query": "Q: ", "document": "P: "}})
	dirs["sentence-transformers"] = d

	xl := vectorizertest.Model(t, modelconfig.NewStatic(vocab, 32, 48, 128), vectorizer.DefaultOptions(), 3)
	dirs["xling-source"] = xl
	d = filepath.Join(root, "xling-model2vec")
	if err := vectorizer.WriteModel2Vec(xl, d); err != nil {
		t.Fatal(err)
	}
	dirs["xling-model2vec"] = d
	return dirs
}

// float16 rounds x to IEEE half precision (no subnormals or overflow occur
// for the values written here).
func float16(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	mant := b & 0x7fffff
	if exp <= 0 {
		return sign
	}
	h := uint32(exp)<<10 | mant>>13
	if mant&0x1fff > 0x1000 || (mant&0x1fff == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// TestStaticLayoutsMatchReference holds xling's reading of model2vec and
// sentence-transformers static models to a reference written in plain
// numpy from their sources (testdata/static_ref.py), tokenised by
// HuggingFace's own tokenizers: every vector within 1e-6.
func TestStaticLayoutsMatchReference(t *testing.T) {
	ctx := context.Background()
	ref, err := hftokenizers.Find(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip(err)
	}
	argv, err := ref.Command(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	argvJSON, _ := json.Marshal(argv)
	texts := layoutTexts(t)
	in, _ := json.Marshal(texts)
	for name, dir := range staticLayouts(t) {
		if name == "xling-source" {
			continue
		}
		v, err := vectorizer.Load(dir, vectorizer.LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, kind := range []vectorizer.Kind{vectorizer.Query, vectorizer.Passage} {
			got, err := v.Encode(ctx, texts, kind)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			cmd := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/static_ref.py", dir, kind.String(), string(argvJSON))
			cmd.Stdin = strings.NewReader(string(in))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: reference: %v", name, err)
			}
			var want [][]float64
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			worst, at, zeros := 0.0, 0, 0
			for i := range texts {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("%s text %d: %d dimensions, reference %d", name, i, len(got[i]), len(want[i]))
				}
				norm := 0.0
				for j, x := range got[i] {
					if d := math.Abs(float64(x) - want[i][j]); d > worst {
						worst, at = d, i
					}
					norm += float64(x) * float64(x)
				}
				if norm == 0 {
					zeros++
				}
			}
			t.Logf("%s, %s: %d texts, max |xling - numpy| = %.2g (text %d), %d zero vectors", name, kind, len(texts), worst, at, zeros)
			if worst > 1e-6 {
				t.Errorf("%s, %s: text %d %.80q differs from the reference by %g", name, kind, at, texts[at], worst)
			}
			// Without a prompt, the texts of no tokens (the empty ones, and
			// unknown characters where model2vec drops them) are zeros.
			if prompted := v.Options.QueryPrefix != ""; prompted != (zeros == 0) || zeros > 10 {
				t.Errorf("%s, %s: %d zero vectors (prompted: %v)", name, kind, zeros, prompted)
			}
		}
		v.Close()
	}
}

// TestWriteModel2VecIsTheSameModel checks that the model2vec directory
// xling writes encodes, on the same token ids, exactly what the xling
// model it came from encodes: the projection folded into the rows loses
// nothing.
func TestWriteModel2VecIsTheSameModel(t *testing.T) {
	ctx := context.Background()
	dirs := staticLayouts(t)
	src, err := vectorizer.Load(dirs["xling-source"], vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := vectorizer.Load(dirs["xling-model2vec"], vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if dst.Dims() != src.Dims() || dst.Options.QueryPrefix != src.Options.QueryPrefix {
		t.Fatalf("written model: %d dims, query prompt %q; source %d, %q", dst.Dims(), dst.Options.QueryPrefix, src.Dims(), src.Options.QueryPrefix)
	}
	texts := layoutTexts(t)
	worst, compared := 0.0, 0
	for _, kind := range []vectorizer.Kind{vectorizer.Query, vectorizer.Passage} {
		got, err := dst.Encode(ctx, texts, kind)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			toks, err := dst.Tokenize(text, kind)
			if err != nil {
				t.Fatal(err)
			}
			if len(toks.IDs) == 0 || strings.Contains(text, "[PAD]") {
				continue // zeros there, the bias here; the pad id is skipped by xling's own model
			}
			want, err := src.EncodeTokens(ctx, []vectorizer.Tokens{toks}, kind)
			if err != nil {
				t.Fatal(err)
			}
			for j := range want[0] {
				worst = max(worst, math.Abs(float64(got[i][j]-want[0][j])))
			}
			compared++
		}
	}
	t.Logf("%d texts: max |written - source| = %.2g", compared, worst)
	if worst > 1e-6 {
		t.Errorf("the written model2vec directory differs from its source by %g", worst)
	}
}

// TestStaticLayoutErrors checks that broken foreign directories are
// refused with an error naming what is wrong.
func TestStaticLayoutErrors(t *testing.T) {
	dirs := staticLayouts(t)
	cases := []struct {
		name, want string
		break_     func(dir string)
	}{
		{"mapping out of range", "mapping sends token", func(d string) {
			writeTensors(t, filepath.Join(d, "model.safetensors"), map[string]safetensors.Tensor{
				"embeddings": floats(t, []int64{2, 8}, rand.New(rand.NewPCG(1, 1)), 1),
				"mapping":    {DType: "I64", Shape: []int64{1}, Data: []byte{5, 0, 0, 0, 0, 0, 0, 0}},
			})
		}},
		{"fewer rows than tokens", "token vectors for the", func(d string) {
			writeTensors(t, filepath.Join(d, "model.safetensors"), map[string]safetensors.Tensor{
				"embeddings": floats(t, []int64{10, 8}, rand.New(rand.NewPCG(1, 1)), 1),
			})
		}},
		{"no embeddings", `tensor "embeddings" is missing`, func(d string) {
			writeTensors(t, filepath.Join(d, "model.safetensors"), map[string]safetensors.Tensor{
				"other": floats(t, []int64{10, 8}, rand.New(rand.NewPCG(1, 1)), 1),
			})
		}},
		{"a Dense module", "is not supported", func(d string) {
			writeJSON(t, filepath.Join(d, "config.json"), map[string]any{"model_type": "something"})
			writeJSON(t, filepath.Join(d, "modules.json"), []map[string]any{
				{"path": ".", "type": "sentence_transformers.models.StaticEmbedding"},
				{"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
			})
		}},
		{"broken modules.json", "modules.json", func(d string) {
			writeJSON(t, filepath.Join(d, "config.json"), map[string]any{"model_type": "something"})
			if err := os.WriteFile(filepath.Join(d, "modules.json"), []byte("[{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		d := t.TempDir()
		for _, f := range []string{"config.json", "tokenizer.json", "model.safetensors"} {
			b, err := os.ReadFile(filepath.Join(dirs["model2vec-f16"], f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.break_(d)
		_, err := vectorizer.Load(d, vectorizer.LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}
