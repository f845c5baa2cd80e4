package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// binary is one build of the command, made once per test binary.
type binary struct {
	env  []string // added to the go build's environment
	once sync.Once
	path string
	err  error
}

var (
	libtorchBuild = &binary{}
	staticBuild   = &binary{env: []string{"CGO_ENABLED=0"}}
)

// run builds b once and runs it with args and stdin.
func (b *binary) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	b.once.Do(func() {
		dir, _ := os.MkdirTemp("", "xling-cmd-")
		b.path = filepath.Join(dir, "xling")
		// -buildvcs=auto overrides a GOFLAGS=-buildvcs=false, so that
		// `xling version` names the commit as a user's build does.
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", b.path, ".")
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %v: %v\n%s", b.env, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	cmd := exec.Command(b.path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// xling runs the libtorch build of the command.
func xling(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return libtorchBuild.run(t, stdin, args...)
}

// encodedText is one line of `xling encode`'s output.
type encodedText struct {
	Text   string
	Vector []float64
}

// encoded parses `xling encode`'s output, in order.
func encoded(t *testing.T, stdout string) []encodedText {
	t.Helper()
	var out []encodedText
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec encodedText
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// startServe runs `bin serve args...` on a free loopback port until the
// test ends and returns its address once it is ready; its log is shown if
// the test fails.
func startServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	serve := exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	var serveLog bytes.Buffer
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = serve.Process.Kill()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("xling serve:\n%s", serveLog.String())
		}
	})
	waitReady(t, "http://"+addr)
	return addr
}

func TestEncodeCommand(t *testing.T) {
	model := vectorizertest.Tiny(t)
	out, stderr, err := xling(t, "hello world\nमौसम अच्छा है\n北京\n", "encode", "--model", model, "--kind", "query")
	if err != nil {
		t.Fatalf("xling encode: %v\n%s", err, stderr)
	}
	var texts []string
	for _, rec := range encoded(t, out) {
		norm := 0.0
		for _, x := range rec.Vector {
			norm += x * x
		}
		if len(rec.Vector) != 64 || math.Abs(norm-1) > 1e-4 {
			t.Errorf("%q: %d dims, squared norm %g", rec.Text, len(rec.Vector), norm)
		}
		texts = append(texts, rec.Text)
	}
	if strings.Join(texts, "|") != "hello world|मौसम अच्छा है|北京" {
		t.Fatalf("output texts %q", texts)
	}

	// An empty line is a text too: HuggingFace gives it the special tokens.
	out, stderr, err = xling(t, "fine\n\nalso fine\n", "encode", "--model", model)
	if err != nil || strings.Count(out, `"vector"`) != 3 || !strings.Contains(out, `"text":""`) {
		t.Errorf("empty line: err %v, stderr %q, out %.200q", err, stderr, out)
	}
	_, stderr, err = xling(t, "", "encode", "--model", model, "--kind", "document")
	if code := exitCode(err); code != 2 || !strings.Contains(stderr, `unknown task type "document"`) {
		t.Errorf("bad --kind: exit %d, stderr %q", code, stderr)
	}
	_, stderr, err = xling(t, "", "encode", "--model", filepath.Join(t.TempDir(), "missing"))
	if code := exitCode(err); code != 1 || !strings.Contains(stderr, "config.json") {
		t.Errorf("missing model: exit %d, stderr %q", code, stderr)
	}

	// Flags fall back to the variables their help names; a value there
	// that does not parse is refused by name, not replaced by the default.
	t.Setenv("XLING_MODEL", model)
	if out, stderr, err := xling(t, "hello\n", "encode"); err != nil || !strings.Contains(out, `"vector"`) {
		t.Errorf("--model from XLING_MODEL: err %v, stderr %q", err, stderr)
	}
	t.Setenv("XLING_THREADS", "two")
	_, stderr, err = xling(t, "hello\n", "encode")
	if code := exitCode(err); code != 2 || !strings.Contains(stderr, `XLING_THREADS="two"`) {
		t.Errorf("XLING_THREADS=two: exit %d, stderr %q", code, stderr)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// TestIndexCommand loads two MLQA-R languages into a real Weaviate with
// xling's own vectors, twice: the collection holds each candidate once.
func TestIndexCommand(t *testing.T) {
	dir := sharedtest.Dir(t)
	model := vectorizertest.Tiny(t)
	srv := weaviatetest.Start(t, localweaviate.Options{})
	args := []string{"index", "--dataset", filepath.Join(dir, "mlqa-r"), "--langs", "de,es", "--model", model,
		"--weaviate", srv.URL(), "--grpc", srv.GRPCHost}
	for round := 1; round <= 2; round++ {
		_, stderr, err := xling(t, "", args...)
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, stderr)
		}
		// de 2,362 + es 1,787 candidates (../shared/data/README.md).
		if !strings.Contains(stderr, "collection=MlqaR objects=4149 candidates=4149") {
			t.Fatalf("round %d: %s", round, stderr)
		}
	}
	out := t.TempDir()
	stdout, stderr, err := xling(t, "", "eval", "--dataset", filepath.Join(dir, "mlqa-r"), "--langs", "de,es", "--model", model,
		"--weaviate", srv.URL(), "--grpc", srv.GRPCHost, "--out", out, "--depth", "20")
	if err != nil {
		t.Fatalf("xling eval: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "| mlqa-r | dense |") || !strings.Contains(stdout, "| mlqa-r | bm25 |") {
		t.Fatalf("eval table:\n%s", stdout)
	}
	for _, f := range []string{"report.json", "report.md", "dense.run", "dense.qrels", "bm25.run", "bm25.qrels", "hybrid.run", "map.png", "pairs-dense.png", "pairs-bm25.png", "pairs-hybrid.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("xling eval wrote no %s", f)
		}
	}
	if got := indexer.ClassName("xquad-r"); got != "XquadR" {
		t.Errorf("ClassName(xquad-r) = %q", got)
	}
}
