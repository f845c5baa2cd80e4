// Package weaviatetest starts a real Weaviate server for a test.
package weaviatetest

import (
	"context"
	"errors"
	"os"
	"testing"

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
