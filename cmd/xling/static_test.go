package main

import (
	"bytes"
	"context"
	"debug/elf"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weaviate/weaviate-go-client/v4/weaviate/graphql"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// xlingStatic runs the static-only build (CGO_ENABLED=0) of the command.
func xlingStatic(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return staticBuild.run(t, stdin, args...)
}

// TestStaticOnlyBuild builds xling without cgo and uses it for a static
// model's whole life: it links no shared library, trains the same model
// byte for byte as the libtorch build, serves it to a real Weaviate whose
// stored vectors are the ones `encode` gives, and refuses a transformer
// with a message naming the libtorch build.
func TestStaticOnlyBuild(t *testing.T) {
	if stdout, _, err := xlingStatic(t, "", "version"); err != nil || !strings.Contains(stdout, "static-only build") {
		t.Fatalf("version: %v\n%s", err, stdout)
	}
	f, err := elf.Open(staticBuild.path)
	if err != nil {
		t.Fatal(err)
	}
	libs, err := f.ImportedLibraries()
	f.Close()
	if err != nil || len(libs) > 0 {
		t.Fatalf("static-only binary links %v (%v)", libs, err)
	}

	data := prepared(t)
	args := func(out string) []string {
		return []string{"train", "--data", data, "--out", out, "--arch", "static", "--steps", "30",
			"--eval-every", "15", "--vocab-size", "2000"}
	}
	runs := t.TempDir()
	if _, stderr, err := xlingStatic(t, "", args(filepath.Join(runs, "static"))...); err != nil {
		t.Fatalf("static-only train: %v\n%s", err, stderr)
	}
	if _, stderr, err := xling(t, "", args(filepath.Join(runs, "libtorch"))...); err != nil {
		t.Fatalf("libtorch train: %v\n%s", err, stderr)
	}
	for _, file := range []string{"model.safetensors", "tokenizer.json", "config.json", "xling.json"} {
		a, err := os.ReadFile(filepath.Join(runs, "static", "model", file))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(runs, "libtorch", "model", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("model/%s differs between the static-only and the libtorch build", file)
		}
	}
	model := filepath.Join(runs, "static", "model")

	texts := []string{"Wie viele Menschen leben in Berlin?", "El río más largo de Europa", "Die Universität wurde 1810 gegründet.",
		"¿Quién escribió Don Quijote?", "Der Vertrag wurde im Jahr 1957 unterzeichnet.", "La ciudad tiene un puerto importante."}
	stdout, stderr, err := xlingStatic(t, strings.Join(texts, "\n")+"\n", "encode", "--model", model, "--kind", "passage")
	if err != nil {
		t.Fatalf("static-only encode: %v\n%s", err, stderr)
	}
	want := map[string][]float64{}
	for _, rec := range encoded(t, stdout) {
		want[rec.Text] = rec.Vector
	}
	if len(want) != len(texts) {
		t.Fatalf("encode gave %d vectors for %d texts", len(want), len(texts))
	}

	addr := startServe(t, staticBuild.path, "--model", model)
	client := weaviatetest.Vectorizing(t, addr)
	const class = "Passage"
	objects := make([]map[string]any, len(texts))
	for i, text := range texts {
		objects[i] = map[string]any{"text": text}
	}
	weaviatetest.ImportVectorized(t, client, class, []*models.Property{{Name: "text", DataType: []string{"text"},
		ModuleConfig: map[string]any{"text2vec-transformers": map[string]any{"vectorizePropertyName": false}}}}, objects)
	ctx := context.Background()
	res, err := client.GraphQL().Get().WithClassName(class).WithLimit(100).
		WithFields(graphql.Field{Name: "text"}, graphql.Field{Name: "_additional", Fields: []graphql.Field{{Name: "vector"}}}).Do(ctx)
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("get: %v %v", err, res.Errors)
	}
	stored := res.Data["Get"].(map[string]any)[class].([]any)
	if len(stored) != len(texts) {
		t.Fatalf("Weaviate holds %d objects, want %d", len(stored), len(texts))
	}
	worst := 0.0
	for _, o := range stored {
		m := o.(map[string]any)
		text := m["text"].(string)
		vec := m["_additional"].(map[string]any)["vector"].([]any)
		w := want[text]
		if len(vec) != len(w) {
			t.Fatalf("%q: Weaviate stored %d dims, encode gave %d", text, len(vec), len(w))
		}
		for i, x := range vec {
			worst = max(worst, math.Abs(x.(float64)-w[i]))
		}
	}
	t.Logf("Weaviate's vectors against encode's: max abs diff %.2g over %d texts", worst, len(texts))
	if worst > 1e-6 {
		t.Errorf("Weaviate's vectors differ from encode's by up to %g", worst)
	}

	// The model2vec layout: no special tokens, so close to the source's
	// vectors but not equal (the exact fold is TestWriteModel2VecIsTheSameModel).
	exported := filepath.Join(runs, "model2vec")
	if _, stderr, err := xlingStatic(t, "", "export", "--model", model, "--out", exported); err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	stdout, stderr, err = xlingStatic(t, strings.Join(texts, "\n")+"\n", "encode", "--model", exported, "--kind", "passage")
	if err != nil {
		t.Fatalf("encode the model2vec layout: %v\n%s", err, stderr)
	}
	lo, hi := 1.0, -1.0
	for _, rec := range encoded(t, stdout) {
		dot := 0.0
		for i, x := range rec.Vector {
			dot += x * want[rec.Text][i]
		}
		lo, hi = min(lo, dot), max(hi, dot)
	}
	t.Logf("model2vec layout against the source model: cosine %.4f-%.4f over %d texts", lo, hi, len(texts))
	if lo < 0.8 || hi > 1-1e-6 {
		t.Errorf("model2vec layout: cosine to the source %.4f-%.4f, want close (> 0.8) but not equal (no special tokens)", lo, hi)
	}
	_, stderr, err = xlingStatic(t, "", "export", "--model", vectorizertest.Tiny(t), "--out", t.TempDir())
	if exitCode(err) != 1 || !strings.Contains(stderr, "only static models") {
		t.Errorf("export of a transformer: exit %d, stderr %q", exitCode(err), stderr)
	}

	_, stderr, err = xlingStatic(t, "hello\n", "encode", "--model", vectorizertest.Tiny(t))
	if exitCode(err) != 1 || !strings.Contains(stderr, "need the libtorch build of xling") {
		t.Errorf("transformer model in the static-only build: exit %d, stderr %q", exitCode(err), stderr)
	}
	_, stderr, err = xlingStatic(t, "", append(args(filepath.Join(runs, "tf")), "--arch", "transformer", "--size", "tiny")...)
	if exitCode(err) != 1 || !strings.Contains(stderr, "need the libtorch build of xling") {
		t.Errorf("transformer training in the static-only build: exit %d, stderr %q", exitCode(err), stderr)
	}
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls a sidecar's readiness endpoint for up to a minute.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/.well-known/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after a minute", base)
}
