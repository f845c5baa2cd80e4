package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// TestAPIKey: a key on the command line is refused (ps shows it to every
// local user); from a file it reaches a secured Weaviate, which refuses a
// client without it. (The environment variable is the file's fallback.)
func TestAPIKey(t *testing.T) {
	dir := sharedtest.Dir(t)
	model := vectorizertest.Tiny(t)
	srv := weaviatetest.Start(t, localweaviate.Options{Env: map[string]string{
		"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
		"AUTHENTICATION_APIKEY_ENABLED":           "true",
		"AUTHENTICATION_APIKEY_ALLOWED_KEYS":      "s3cret-key",
		"AUTHENTICATION_APIKEY_USERS":             "tester",
	}})
	args := []string{"index", "--dataset", filepath.Join(dir, "mlqa-r"), "--langs", "es", "--model", model,
		"--weaviate", srv.URL(), "--grpc", srv.GRPCHost}

	_, stderr, err := xling(t, "", append(args, "--api-key", "s3cret-key")...)
	if code := exitCode(err); code != 2 || !strings.Contains(stderr, "readable by every local user") {
		t.Fatalf("--api-key on the command line: exit %d, %s", code, stderr)
	}
	t.Setenv("XLING_WEAVIATE_API_KEY", "")
	if _, stderr, err = xling(t, "", args...); err == nil {
		t.Fatalf("a secured Weaviate accepted a client without a key:\n%s", stderr)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("s3cret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err = xling(t, "", append(args, "--api-key-file", keyFile)...); err != nil {
		t.Fatalf("--api-key-file: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "objects=1787") { // es candidates (../shared/data/README.md)
		t.Fatalf("--api-key-file: %s", stderr)
	}
	if strings.Contains(stderr, "s3cret-key") {
		t.Fatal("the key appears in the log")
	}
}
