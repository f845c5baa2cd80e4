package localweaviate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/go-openapi/strfmt"
	"github.com/weaviate/weaviate-go-client/v4/weaviate"
	"github.com/weaviate/weaviate-go-client/v4/weaviate/graphql"
	wgrpc "github.com/weaviate/weaviate-go-client/v4/weaviate/grpc"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/weaviatetest"
)

// TestNearVectorAndBM25 imports 1,000 objects with known vectors into a real
// server and checks that each probe finds its own object first, and that
// bm25 finds a keyword that only one object holds.
func TestNearVectorAndBM25(t *testing.T) {
	srv := weaviatetest.Start(t, localweaviate.Options{})
	ctx := context.Background()
	client, err := weaviate.NewClient(weaviate.Config{
		Host: srv.Host, Scheme: "http",
		GrpcConfig: &wgrpc.Config{Host: srv.GRPCHost},
	})
	if err != nil {
		t.Fatal(err)
	}
	const class, n, dim = "Probe", 1000, 32
	err = client.Schema().ClassCreator().WithClass(&models.Class{
		Class:           class,
		Vectorizer:      "none",
		VectorIndexType: "flat",
		Properties: []*models.Property{
			{Name: "text", DataType: []string{"text"}},
			{Name: "key", DataType: []string{"int"}},
		},
	}).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	vectors := make([][]float32, n)
	objs := make([]*models.Object, n)
	for i := range objs {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		vectors[i] = v
		text := fmt.Sprintf("object number %d about ordinary things", i)
		if i == 417 {
			text = "the rare keyword xylophone appears only here"
		}
		objs[i] = &models.Object{
			Class:      class,
			ID:         strfmt.UUID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)),
			Properties: map[string]any{"text": text, "key": i},
			Vector:     v,
		}
	}
	resp, err := client.Batch().ObjectsBatcher().WithObjects(objs...).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if r.Result != nil && r.Result.Errors != nil {
			t.Fatalf("batch import error: %v", r.Result.Errors.Error[0].Message)
		}
	}
	agg, err := client.GraphQL().Aggregate().WithClassName(class).WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(agg.Data["Aggregate"].(map[string]any)[class].([]any)[0].(map[string]any)["meta"].(map[string]any)["count"]); got != "1000" {
		t.Fatalf("object count = %s, want 1000", got)
	}

	for i := 0; i < n; i += 10 {
		got := topKey(t, client.GraphQL().Get().WithClassName(class).
			WithFields(graphql.Field{Name: "key"}).
			WithNearVector(client.GraphQL().NearVectorArgBuilder().WithVector(vectors[i])).
			WithLimit(3), class)
		if got != i {
			t.Fatalf("nearVector with object %d's vector ranks object %d first", i, got)
		}
	}
	got := topKey(t, client.GraphQL().Get().WithClassName(class).
		WithFields(graphql.Field{Name: "key"}).
		WithBM25(client.GraphQL().Bm25ArgBuilder().WithQuery("xylophone")).
		WithLimit(3), class)
	if got != 417 {
		t.Fatalf("bm25 for the keyword ranks object %d first, want 417", got)
	}
}

func topKey(t *testing.T, q *graphql.GetBuilder, class string) int {
	t.Helper()
	resp, err := q.Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Errors) > 0 {
		t.Fatalf("graphql: %s", resp.Errors[0].Message)
	}
	hits := resp.Data["Get"].(map[string]any)[class].([]any)
	if len(hits) == 0 {
		t.Fatal("no results")
	}
	return int(hits[0].(map[string]any)["key"].(float64))
}

// TestPortTaken checks that a taken port is reported by number, with the
// fix, before any process is started.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = localweaviate.Start(context.Background(), localweaviate.Options{Binary: "/bin/true", Port: port})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d is already in use", port)) {
		t.Fatalf("Start on a taken port: got %v", err)
	}
}

// TestMissingBinary checks the message that tells how to build the server.
func TestMissingBinary(t *testing.T) {
	t.Setenv(localweaviate.BinaryEnv, "/nonexistent/weaviate-server")
	_, err := localweaviate.FindBinary()
	if err == nil || !strings.Contains(err.Error(), localweaviate.BinaryEnv) {
		t.Fatalf("FindBinary with a bad %s: got %v", localweaviate.BinaryEnv, err)
	}
}

// TestExitDuringStartup checks that a server that dies at once is reported
// with its output rather than waited on until the timeout.
func TestExitDuringStartup(t *testing.T) {
	_, err := localweaviate.Start(context.Background(), localweaviate.Options{Binary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited during startup") {
		t.Fatalf("Start with a binary that exits: got %v", err)
	}
}
