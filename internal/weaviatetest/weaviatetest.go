// Package weaviatetest starts a real Weaviate server for a test.
package weaviatetest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/weaviate/weaviate-go-client/v4/weaviate"
	"github.com/weaviate/weaviate/entities/models"
	"github.com/xling-ir/xling/internal/localweaviate"
)

// Start runs a Weaviate server for the duration of t. Without the server
// binary the test is skipped, except under CI=true, where that is a failure:
// CI must never pass by skipping the database tests.
func Start(t testing.TB, opts localweaviate.Options) *localweaviate.Server {
	t.Helper()
	if opts.Binary == "" {
		bin, err := localweaviate.FindBinary()
		if errors.Is(err, localweaviate.ErrNoBinary) && os.Getenv("CI") != "true" {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		opts.Binary = bin
	}
	s, err := localweaviate.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Vectorizing starts Weaviate with its text2vec-transformers module calling
// the inference container at addr (host:port), and returns a client.
func Vectorizing(t testing.TB, addr string) *weaviate.Client {
	t.Helper()
	s := Start(t, localweaviate.Options{
		Modules: []string{"text2vec-transformers"},
		Env:     map[string]string{"TRANSFORMERS_INFERENCE_API": "http://" + addr},
	})
	client, err := weaviate.NewClient(weaviate.Config{Host: s.Host, Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// ImportVectorized creates class, vectorised by text2vec-transformers on a
// flat index, with props, and imports one object per property map: Weaviate
// asks the inference container for every vector. Any error fails t.
func ImportVectorized(t testing.TB, client *weaviate.Client, class string, props []*models.Property, objects []map[string]any) {
	t.Helper()
	ctx := context.Background()
	err := client.Schema().ClassCreator().WithClass(&models.Class{
		Class: class, Vectorizer: "text2vec-transformers", VectorIndexType: "flat",
		ModuleConfig: map[string]any{"text2vec-transformers": map[string]any{"vectorizeClassName": false}},
		Properties:   props,
	}).Do(ctx)
	if err != nil {
		t.Fatalf("create %s: %v", class, err)
	}
	objs := make([]*models.Object, len(objects))
	for i, p := range objects {
		objs[i] = &models.Object{Class: class, Properties: p}
	}
	resp, err := client.Batch().ObjectsBatcher().WithObjects(objs...).Do(ctx)
	if err != nil {
		t.Fatalf("import into %s: %v", class, err)
	}
	for _, r := range resp {
		if r.Result != nil && r.Result.Errors != nil {
			t.Fatalf("import into %s: %s", class, r.Result.Errors.Error[0].Message)
		}
	}
}
