package fetch

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/qa"
)

// TestFetchFromLocalServer serves the shared copies of XQuAD-R and the
// MIRACL topics at local URLs standing in for the official ones, fetches
// them, and checks checksums, idempotence, repair and refusal.
func TestFetchFromLocalServer(t *testing.T) {
	data := sharedtest.Dir(t)
	var requests atomic.Int64
	tamper := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		name := strings.TrimPrefix(r.URL.Path, "/")
		b, err := os.ReadFile(filepath.Join(data, filepath.FromSlash(name)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if tamper[name] {
			b = append(b, ' ')
		}
		w.Write(b)
	}))
	defer srv.Close()
	files := Select(Official, "xquad-r", "miracl")
	if len(files) != 11+2*18 {
		t.Fatalf("%d files for xquad-r and miracl, want 11 + 36", len(files))
	}
	for i := range files {
		files[i].URL = srv.URL + "/" + files[i].Name
	}
	dir := t.TempDir()
	n, err := Fetch(context.Background(), dir, files, Options{})
	if err != nil || n != len(files) {
		t.Fatalf("fetched %d of %d: %v", n, len(files), err)
	}
	ds, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil || len(ds.Candidates) != 13014 {
		t.Fatalf("fetched XQuAD-R: %v, %d candidates", err, len(ds.Candidates))
	}
	// Again: nothing to do.
	before := requests.Load()
	if n, err := Fetch(context.Background(), dir, files, Options{}); err != nil || n != 0 || requests.Load() != before {
		t.Errorf("second fetch downloaded %d files (%d requests): %v", n, requests.Load()-before, err)
	}
	// A damaged file is fetched again.
	damaged := filepath.Join(dir, "xquad-r", "de.json")
	os.WriteFile(damaged, []byte("{}"), 0o644)
	if n, err := Fetch(context.Background(), dir, files, Options{}); err != nil || n != 1 {
		t.Errorf("repair: fetched %d: %v", n, err)
	}
	want, _ := os.ReadFile(filepath.Join(data, "xquad-r", "de.json"))
	if got, _ := os.ReadFile(damaged); !bytes.Equal(got, want) {
		t.Error("the damaged file was not restored")
	}
	// A source serving other bytes is refused, and nothing lands under the name.
	tamper["xquad-r/el.json"] = true
	os.Remove(filepath.Join(dir, "xquad-r", "el.json"))
	_, err = Fetch(context.Background(), dir, files, Options{})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "el.json") {
		t.Errorf("tampered source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "xquad-r", "el.json")); err == nil {
		t.Error("a file failing its checksum was kept")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "xquad-r", ".fetch-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	// A missing file names its URL.
	_, err = Fetch(context.Background(), dir, []File{{Name: "x/y.json", URL: srv.URL + "/nope.json", SHA256: "00"}}, Options{Retries: 1})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing source: %v", err)
	}
}
