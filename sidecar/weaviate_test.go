package sidecar

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/weaviate/weaviate-go-client/v4/weaviate/graphql"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// TestWithWeaviate points a real Weaviate's text2vec-transformers module at
// the sidecar: Weaviate vectorises imported objects through it, and nearText
// queries (task_type query) find each object's own text first.
func TestWithWeaviate(t *testing.T) {
	// No prefixes: a text then gets the same vector as query and passage,
	// so even a random model must rank an object's own text first.
	opts := vectorizer.DefaultOptions()
	opts.QueryPrefix, opts.PassagePrefix = "", ""
	cfg, _ := vectorizer.SizeConfig("tiny", 4000)
	v, err := vectorizer.Load(vectorizertest.Model(t, cfg, opts, 3), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	so := DefaultOptions()
	so.Passage = FromVectorizer("tiny", v)
	s, err := New(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var mu sync.Mutex
	seen := map[string]int{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		mu.Lock()
		switch {
		case bytes.Contains(body, []byte(`"task_type":"query"`)):
			seen["query"]++
		case bytes.Contains(body, []byte(`"task_type":"passage"`)):
			seen["passage"]++
		}
		mu.Unlock()
		s.Handler().ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	defer srv.Close()

	client := weaviatetest.Vectorizing(t, l.Addr().String())
	ctx := context.Background()
	const class = "Passage"
	dir := sharedtest.Dir(t)
	xquad, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	all := xquad.CandidateTexts()
	var texts []string
	for i := 0; len(texts) < 40; i += 331 { // every language, spread out
		texts = append(texts, all[i])
	}
	objects := make([]map[string]any, len(texts))
	for i, text := range texts {
		objects[i] = map[string]any{"text": text, "key": i, "lang": "x"}
	}
	weaviatetest.ImportVectorized(t, client, class, []*models.Property{
		{Name: "text", DataType: []string{"text"}},
		{Name: "key", DataType: []string{"int"}},
		{Name: "lang", DataType: []string{"text"}, ModuleConfig: map[string]any{"text2vec-transformers": map[string]any{"skip": true}}},
	}, objects)
	for i, text := range texts {
		res, err := client.GraphQL().Get().WithClassName(class).WithFields(graphql.Field{Name: "key"}).
			WithNearText(client.GraphQL().NearTextArgBuilder().WithConcepts([]string{text})).WithLimit(3).Do(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Fatalf("nearText: %s", res.Errors[0].Message)
		}
		hits := res.Data["Get"].(map[string]any)[class].([]any)
		if len(hits) == 0 || int(hits[0].(map[string]any)["key"].(float64)) != i {
			t.Errorf("nearText %q: first hit %v, want key %d", text, hits, i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("sidecar saw %v", seen)
	if seen["passage"] < len(texts) || seen["query"] < len(texts) {
		t.Fatalf("sidecar saw %v, want at least %d passage and %d query requests", seen, len(texts), len(texts))
	}
}
