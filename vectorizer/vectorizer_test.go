package vectorizer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/xling-ir/xling/internal/procmem"
	"github.com/xling-ir/xling/internal/pytorchref"
	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
	"github.com/xling-ir/xling/vectorizer/transformer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// Texts in seven scripts.
var texts = []string{
	"Where is the capital of France?",
	"تقع مدينة القاهرة على ضفاف نهر النيل.",
	"भारत की राजधानी नई दिल्ली है।",
	"กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
	"北京是中华人民共和国的首都。",
	"Москва — столица России, крупнейший город страны.",
	"Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
}

func needPyTorch(t *testing.T) {
	t.Helper()
	if err := pytorchref.Available(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestParityWithPyTorch compares xling's encoders with an independent
// plain-PyTorch forward pass over the same safetensors file.
func TestParityWithPyTorch(t *testing.T) {
	needPyTorch(t)
	xlmr := modelconfig.NewBERT(4000, 64, 2, 4, 128)
	xlmr.ModelType, xlmr.PadTokenID, xlmr.MaxPositionEmbeddings, xlmr.HiddenAct = "xlm-roberta", 0, 130, "gelu_new"
	cls := vectorizer.DefaultOptions()
	cls.Pooling = vectorizer.PoolCLS
	base, _ := vectorizer.SizeConfig("base", 30522)
	cases := []struct {
		name string
		cfg  modelconfig.Config
		opts vectorizer.Options
	}{
		{"bert-2-layer", modelconfig.NewBERT(4000, 64, 2, 4, 128), vectorizer.DefaultOptions()},
		{"xlmr-2-layer-cls", xlmr, cls},
		{"bert-base-shaped", base, vectorizer.DefaultOptions()},
		// The static encoder against nn.EmbeddingBag(mode="mean").
		{"static", modelconfig.NewStatic(4000, 64, 64, 512), vectorizer.DefaultOptions()},
		{"static-projected", modelconfig.NewStatic(4000, 64, 24, 512), vectorizer.DefaultOptions()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := vectorizertest.Model(t, c.cfg, c.opts, 42)
			v, err := vectorizer.Load(dir, vectorizer.LoadOptions{BatchSize: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			for _, kind := range []vectorizer.Kind{vectorizer.Query, vectorizer.Passage} {
				got, err := v.Encode(context.Background(), texts, kind)
				if err != nil {
					t.Fatal(err)
				}
				ids := make([][]int64, len(texts))
				for i, s := range texts {
					tok, err := v.Tokenize(s, kind)
					if err != nil {
						t.Fatal(err)
					}
					ids[i] = tok.IDs
				}
				want, err := pytorchref.Encode(context.Background(), dir, ids)
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for i := range want {
					if len(got[i]) != int(c.cfg.HiddenSize) {
						t.Fatalf("vector %d has %d dims, want %d", i, len(got[i]), c.cfg.HiddenSize)
					}
					norm := 0.0
					for j := range want[i] {
						worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
						norm += float64(got[i][j]) * float64(got[i][j])
					}
					if math.Abs(norm-1) > 1e-4 {
						t.Errorf("vector %d has squared norm %g, want 1", i, norm)
					}
				}
				t.Logf("%s %s: max abs diff %.2e over %d texts", c.name, kind, worst, len(texts))
				if worst > 1e-4 {
					t.Errorf("max abs diff %g exceeds 1e-4", worst)
				}
			}
		})
	}
}

// TestQueryPassagePrefixes checks that the kind changes the input (the
// E5-style prefixes) and so the vector.
func TestQueryPassagePrefixes(t *testing.T) {
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	q, _ := v.Encode(context.Background(), texts[:1], vectorizer.Query)
	p, _ := v.Encode(context.Background(), texts[:1], vectorizer.Passage)
	same := true
	for i := range q[0] {
		same = same && q[0][i] == p[0][i]
	}
	if same {
		t.Fatal("query and passage vectors are identical despite different prefixes")
	}
	if _, err := vectorizer.ParseKind("document"); err == nil {
		t.Fatal("ParseKind accepted an unknown task type")
	}
}

func TestBadInput(t *testing.T) {
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()
	if vecs, err := v.Encode(ctx, []string{"fine", ""}, vectorizer.Passage); err != nil || len(vecs) != 2 || len(vecs[1]) != len(vecs[0]) {
		t.Errorf("empty text: %v", err)
	}
	if _, err := v.Encode(ctx, []string{"bad \xc3\x28"}, vectorizer.Query); !errors.Is(err, tokenize.ErrInvalidUTF8) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	long := strings.Repeat("a very long passage about retrieval ", 5000)
	tok, err := v.Tokenize(long, vectorizer.Passage)
	if err != nil || !tok.Truncated || len(tok.IDs) != v.MaxTokens() {
		t.Errorf("long text: %d ids (max %d), truncated %v, err %v", len(tok.IDs), v.MaxTokens(), tok.Truncated, err)
	}
	vecs, err := v.Encode(ctx, []string{long}, vectorizer.Passage)
	if err != nil || len(vecs[0]) != v.Dims() {
		t.Errorf("encoding a long text: %v", err)
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := v.Encode(ctxDone, []string{"x"}, vectorizer.Query); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestModelDirectoryMismatch checks that a directory whose files disagree
// is refused with an error naming the tensor and both shapes.
func TestModelDirectoryMismatch(t *testing.T) {
	dir := vectorizertest.Tiny(t)
	cfgPath := filepath.Join(dir, vectorizer.ConfigFile)
	orig, _ := os.ReadFile(cfgPath)
	edit := func(field string, value any) {
		var m map[string]any
		json.Unmarshal(orig, &m)
		m[field] = value
		b, _ := json.Marshal(m)
		os.WriteFile(cfgPath, b, 0o644)
	}
	load := func() error {
		v, err := vectorizer.Load(dir, vectorizer.LoadOptions{})
		if err == nil {
			v.Close()
		}
		return err
	}
	edit("intermediate_size", 256)
	if err := load(); err == nil || !strings.Contains(err.Error(), "intermediate_size 256") || !strings.Contains(err.Error(), "the config does not describe these weights") {
		t.Errorf("wrong intermediate_size: %v", err)
	}
	// Fewer parameters than the file holds: the per-tensor check names the tensor.
	edit("intermediate_size", 64)
	if err := load(); err == nil || !strings.Contains(err.Error(), "tensor encoder.layer.0.intermediate.dense.bias has shape [128] in the checkpoint but config.json implies [64]") {
		t.Errorf("smaller intermediate_size: %v", err)
	}
	edit("num_hidden_layers", 3)
	if err := load(); err == nil || !strings.Contains(err.Error(), "num_hidden_layers 3") || !strings.Contains(err.Error(), "the config does not describe these weights") {
		t.Errorf("too many layers: %v", err)
	}
	edit("hidden_size", 66)
	if err := load(); err == nil || !strings.Contains(err.Error(), "not a multiple of num_attention_heads") {
		t.Errorf("bad head count: %v", err)
	}
	edit("vocab_size", 100)
	if err := load(); err == nil || !strings.Contains(err.Error(), "vocab_size is 100") {
		t.Errorf("vocabulary larger than the model's: %v", err)
	}
	os.WriteFile(cfgPath, []byte(`{"model_type": "bert", `), 0o644)
	if err := load(); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("broken config.json: %v", err)
	}
	os.WriteFile(cfgPath, orig, 0o644)

	weights := filepath.Join(dir, vectorizer.WeightsFile)
	b, _ := os.ReadFile(weights)
	os.WriteFile(weights, b[:len(b)/2], 0o644)
	if err := load(); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("truncated weights: %v", err)
	}
	os.Remove(weights)
	if err := load(); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("missing weights: %v", err)
	}
	os.WriteFile(weights, b, 0o644)
	os.WriteFile(filepath.Join(dir, vectorizer.OptionsFile), []byte(`{"pooling": "max"}`), 0o644)
	if err := load(); err == nil || !strings.Contains(err.Error(), `pooling "max"`) {
		t.Errorf("unknown pooling: %v", err)
	}
	os.WriteFile(filepath.Join(dir, vectorizer.OptionsFile), []byte(`{"quantize": "int4"}`), 0o644)
	if err := load(); err == nil || !strings.Contains(err.Error(), `quantize "int4"`) {
		t.Errorf("unknown quantisation: %v", err)
	}
}

// TestSaveLoadRoundTrip checks that weights survive safetensors exactly.
func TestSaveLoadRoundTrip(t *testing.T) {
	dir := vectorizertest.Tiny(t)
	f, err := safetensors.ReadFile(filepath.Join(dir, vectorizer.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 5+2*16 {
		t.Fatalf("%d tensors in a 2-layer model, want %d", len(f.Tensors), 5+2*16)
	}
	if _, ok := f.Tensors["encoder.layer.1.attention.self.query.weight"]; !ok {
		t.Fatal("HuggingFace parameter names missing")
	}
}

func rssBytes(t *testing.T) int64 {
	n, err := procmem.RSS()
	if err != nil {
		t.Skip(err)
	}
	return n
}

// TestMemoryFlat encodes 100,000 texts and checks that resident memory
// does not grow: every tensor of every batch is freed.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	toks := make([]vectorizer.Tokens, 1000)
	for i := range toks {
		tok, err := v.Tokenize(texts[i%len(texts)]+strings.Repeat(" more", i%20), vectorizer.Passage)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = tok
	}
	encode := func(rounds int) {
		for r := 0; r < rounds; r++ {
			if _, err := v.EncodeTokens(context.Background(), toks, vectorizer.Passage); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Go's heap from building the model is returned first, so that only
	// what encoding holds is measured.
	encode(10) // warm-up: allocator pools, libtorch caches
	debug.FreeOSMemory()
	before := rssBytes(t)
	for i := 0; i < 10; i++ {
		encode(10)
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("after %d encodes: RSS %d MiB, Go heap in use %d MiB, sys %d MiB", (i+1)*10000, rssBytes(t)>>20, ms.HeapInuse>>20, ms.Sys>>20)
	}
	after := rssBytes(t)
	t.Logf("RSS %d MiB after warm-up, %d MiB after 100,000 more encodes", before>>20, after>>20)
	if after > before+before/10 {
		t.Fatalf("RSS grew from %d to %d bytes over 100,000 encodes", before, after)
	}
}

// TestSeparateQueryEncoder checks xling.json's query_model: queries go
// through their own encoder, passages through the main one.
func TestSeparateQueryEncoder(t *testing.T) {
	cfg := modelconfig.NewBERT(4000, 64, 2, 4, 128)
	newModel := func(seed uint64) *transformer.Model {
		m, err := transformer.New(cfg, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		m.Init(seed)
		return m
	}
	passage, query := newModel(1), newModel(2)
	defer passage.Close()
	defer query.Close()
	opts := vectorizer.DefaultOptions()
	opts.QueryPrefix, opts.PassagePrefix = "", ""
	dir := t.TempDir()
	if err := vectorizer.WriteDir(dir, vectorizer.Files{Config: cfg, Options: opts, Tokenizer: vectorizertest.Tokenizer(t), Model: passage, Query: query}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "query", vectorizer.WeightsFile)); err != nil {
		t.Fatal(err)
	}
	v, err := vectorizer.Load(dir, vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	q, _ := v.Encode(context.Background(), texts[:2], vectorizer.Query)
	p, _ := v.Encode(context.Background(), texts[:2], vectorizer.Passage)
	if q[0][0] == p[0][0] && q[0][1] == p[0][1] {
		t.Fatal("the query encoder gave the passage encoder's vector")
	}
	// The same text through the same encoder is deterministic.
	q2, _ := v.Encode(context.Background(), texts[:2], vectorizer.Query)
	for i := range q[1] {
		if q[1][i] != q2[1][i] {
			t.Fatal("query encoding is not deterministic")
		}
	}
}

// TestWorkersShareTheModel runs forward passes on three workers at once,
// from many goroutines, and checks that every text gets the vector one
// worker gives it: the workers share the weights and nothing else. gotch
// logs through the standard logger when its tensor registry loses track of
// a tensor (which it then never frees); that must not happen either.
func TestWorkersShareTheModel(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	defer func() {
		if strings.Contains(logged.String(), "double free") {
			t.Errorf("gotch lost track of tensors under concurrent forward passes:\n%.500s", logged.String())
		}
	}()
	dir := vectorizertest.Tiny(t)
	one, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	three, err := vectorizer.Load(dir, vectorizer.LoadOptions{Threads: 1, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer three.Close()
	if one.Workers() != 1 || three.Workers() != 3 {
		t.Fatalf("Workers() = %d and %d, want 1 and 3", one.Workers(), three.Workers())
	}
	ctx := context.Background()
	want := make([][]float32, len(texts))
	for i, text := range texts {
		v, err := one.Encode(ctx, []string{text}, vectorizer.Passage)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = v[0]
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for k := range 25 {
				i := (g + k) % len(texts)
				v, err := three.Encode(ctx, []string{texts[i]}, vectorizer.Passage)
				if err != nil {
					errs <- err
					return
				}
				for j := range v[0] {
					if v[0][j] != want[i][j] {
						errs <- fmt.Errorf("text %d, goroutine %d: dimension %d is %g on three workers, %g on one", i, g, j, v[0][j], want[i][j])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestInt8MatchesQuantizeDynamic compares xling's int8 encoder with
// PyTorch's torch.ao.quantization.quantize_dynamic over the same weights,
// and both with float32: int8 must follow PyTorch's int8 closely and stay
// near float32 (the quantisation error itself).
func TestInt8MatchesQuantizeDynamic(t *testing.T) {
	needPyTorch(t)
	base, _ := vectorizer.SizeConfig("base", 30522)
	for _, c := range []struct {
		name string
		cfg  modelconfig.Config
	}{{"bert-2-layer", modelconfig.NewBERT(4000, 64, 2, 4, 128)}, {"bert-base-shaped", base}} {
		t.Run(c.name, func(t *testing.T) {
			dir := vectorizertest.Model(t, c.cfg, vectorizer.DefaultOptions(), 42)
			v, err := vectorizer.Load(dir, vectorizer.LoadOptions{Quantize: vectorizer.Int8})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			fp, err := vectorizer.Load(dir, vectorizer.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer fp.Close()
			ctx := context.Background()
			got, err := v.Encode(ctx, texts, vectorizer.Passage)
			if err != nil {
				t.Fatal(err)
			}
			float, err := fp.Encode(ctx, texts, vectorizer.Passage)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([][]int64, len(texts))
			for i, s := range texts {
				tok, err := v.Tokenize(s, vectorizer.Passage)
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = tok.IDs
			}
			want, err := pytorchref.EncodeInt8(ctx, dir, ids)
			if err != nil {
				t.Fatal(err)
			}
			toRef, toFloat, minCos := 0.0, 0.0, 1.0
			for i := range want {
				cos := 0.0
				for j := range want[i] {
					toRef = max(toRef, math.Abs(float64(got[i][j]-want[i][j])))
					toFloat = max(toFloat, math.Abs(float64(got[i][j]-float[i][j])))
					cos += float64(got[i][j]) * float64(float[i][j])
				}
				minCos = min(minCos, cos)
			}
			t.Logf("%s: int8 against quantize_dynamic: max abs diff %.2e; against float32: %.2e, cosine >= %.5f", c.name, toRef, toFloat, minCos)
			if toRef > 1e-4 {
				t.Errorf("int8 differs from PyTorch's quantize_dynamic by %g", toRef)
			}
			if toFloat == 0 || minCos < 0.99 {
				t.Errorf("int8 against float32: max diff %g, cosine %g: not quantised, or quantised badly", toFloat, minCos)
			}
		})
	}
}
