package indexer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

func TestObjectIDDeterministic(t *testing.T) {
	a, b := ObjectID("xquad-r", "de", "3/1"), ObjectID("xquad-r", "de", "3/1")
	if a != b || a == ObjectID("xquad-r", "en", "3/1") || a == ObjectID("mlqa-r", "de", "3/1") {
		t.Fatalf("ids %s %s", a, b)
	}
	if !strings.HasPrefix(string(a)[14:15], "5") {
		t.Fatalf("%s is not a version-5 UUID", a)
	}
}

// TestImportXQuADR imports every XQuAD-R candidate with a small model's
// vectors into a real Weaviate, then imports again: the count must not move.
func TestImportXQuADR(t *testing.T) {
	dir := sharedtest.Dir(t)
	ds, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	docs := Docs(ds, Sentence)
	if len(docs) != 13014 {
		t.Fatalf("%d candidates, want 13,014", len(docs))
	}
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{BatchSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	texts := Texts(docs)
	start := time.Now()
	vecs, err := v.Encode(context.Background(), texts, vectorizer.Passage)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("encoded %d candidates in %s", len(vecs), time.Since(start).Round(time.Millisecond))

	srv := weaviatetest.Start(t, localweaviate.Options{})
	client, err := Connect(Connection{URL: srv.URL(), GRPC: srv.GRPCHost})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	im := &Importer{Client: client, Class: "XquadR", Progress: &progress}
	ctx := context.Background()
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		start := time.Now()
		if err := im.Import(ctx, docs, vecs); err != nil {
			t.Fatal(err)
		}
		n, err := im.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("import round %d: %d objects in %s (%.0f objects/s)", round, n, time.Since(start).Round(time.Millisecond), float64(len(docs))/time.Since(start).Seconds())
		if n != len(docs) {
			t.Fatalf("after import round %d: %d objects, want %d", round, n, len(docs))
		}
	}
	if !strings.Contains(progress.String(), "13014/13014 objects (100%)") {
		t.Errorf("progress output lacks the final line: %q", progress.String()[max(0, progress.Len()-200):])
	}

	// The full LAReQA protocol in Weaviate with the model's vectors, every
	// question of every language: 11 monolingual pairs, 110 cross-lingual,
	// 11 query languages in the multilingual pool (157,080 queries). BM25
	// runs on a sample of questions: its check is only that monolingual
	// retrieval is far above chance.
	search, err := DialSearch(Connection{URL: srv.URL(), GRPC: srv.GRPCHost})
	if err != nil {
		t.Fatal(err)
	}
	defer search.Close()
	questions := ds.QuestionTexts()
	qvecs, err := v.Encode(ctx, questions, vectorizer.Query)
	if err != nil {
		t.Fatal(err)
	}
	sample := ds.Sample(100)
	for _, c := range []struct {
		method eval.Method
		ds     *qa.Dataset
	}{{eval.Dense, ds}, {eval.BM25, sample}} {
		vecs := qvecs
		if c.method == eval.BM25 {
			vecs = nil
		}
		start := time.Now()
		rep, runs, err := eval.Evaluate(ctx, search.Ranker("XquadR", c.method, c.ds), c.ds, c.method, vecs, 100, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d queries in %s; mAP mono %.4f cross %.4f multi %.4f, bias %.1f", c.method, len(runs), time.Since(start).Round(time.Second),
			rep.Mono.MAP, rep.Cross.MAP, rep.Multi.MAP, rep.LanguageBias)
		want := len(c.ds.Questions) * 12
		if rep.Mono.Averaged != 11 || rep.Cross.Averaged != 110 || rep.Multi.Averaged != 11 || len(runs) != want {
			t.Errorf("%s: averaged over %d mono pairs, %d cross pairs, %d query languages from %d runs; want 11, 110, 11 from %d",
				c.method, rep.Mono.Averaged, rep.Cross.Averaged, rep.Multi.Averaged, len(runs), want)
		}
		// Chance in a pool of about 1,190 candidates is under 0.01.
		if c.method == eval.BM25 && rep.Mono.MAP < 0.3 {
			t.Errorf("BM25 monolingual mAP %.4f is not clearly above chance", rep.Mono.MAP)
		}
	}
	if len(ds.Questions) != 13090 {
		t.Errorf("%d XQuAD-R questions, want 13,090", len(ds.Questions))
	}
}

// TestWeaviateDown checks that an unreachable Weaviate is retried, then
// reported with what was being imported.
func TestWeaviateDown(t *testing.T) {
	client, err := Connect(Connection{URL: "http://127.0.0.1:1", GRPC: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	im := &Importer{Client: client, Class: "Down", Retries: 3, Backoff: 10 * time.Millisecond}
	err = im.Import(context.Background(), []Doc{{ID: ObjectID("d", "en", "1"), Text: "x", Lang: "en"}}, [][]float32{{1, 0}})
	if err == nil || !strings.Contains(err.Error(), "import objects 0-0 of 1") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("import into a Weaviate that is down: %v", err)
	}
	if _, err := Connect(Connection{URL: "localhost:8080"}); err == nil {
		t.Fatal("a URL without a scheme was accepted")
	}
}

// progressHook calls fn once, in its own goroutine, when the importer first
// reports at least after objects.
type progressHook struct {
	after int
	fn    func()
	fired bool
}

func (p *progressHook) Write(b []byte) (int, error) {
	var done, total int
	var class string
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "import %s %d/%d", &class, &done, &total); err == nil && done >= p.after && !p.fired {
		p.fired = true
		go p.fn()
	}
	return len(b), nil
}

// TestImportSurvivesRestart restarts Weaviate (SIGTERM, then the same ports
// and data) while XQuAD-R is being imported: the importer's retries carry it
// over, and every candidate ends up there exactly once.
func TestImportSurvivesRestart(t *testing.T) {
	dir := sharedtest.Dir(t)
	ds, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	docs := Docs(ds, Sentence)
	cfg, _ := vectorizer.StaticSizeConfig("tiny", 4000)
	v, err := vectorizer.Load(vectorizertest.Model(t, cfg, vectorizer.DefaultOptions(), 1), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	texts := Texts(docs)
	ctx := context.Background()
	vecs, err := v.Encode(ctx, texts, vectorizer.Passage)
	if err != nil {
		t.Fatal(err)
	}
	srv := weaviatetest.Start(t, localweaviate.Options{})
	client, err := Connect(Connection{URL: srv.URL(), GRPC: srv.GRPCHost})
	if err != nil {
		t.Fatal(err)
	}
	restarted := make(chan error, 1)
	hook := &progressHook{after: 3000, fn: func() { restarted <- srv.Restart(ctx) }}
	var logs bytes.Buffer
	var mu sync.Mutex
	im := &Importer{Client: client, Class: "Restart", BatchSize: 100, Backoff: 200 * time.Millisecond, Progress: hook,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))}
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	if err := im.Import(ctx, docs, vecs); err != nil {
		t.Fatalf("import across a restart: %v", err)
	}
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the restart never finished")
	}
	n, err := im.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(docs) {
		t.Fatalf("%d objects after an import across a restart, want %d", n, len(docs))
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no batch was retried: the restart did not happen during the import\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestQueryMaximumResults: against a Weaviate whose QUERY_MAXIMUM_RESULTS
// is below the ranking asked for, the error names the collection, the
// languages, the number needed and the variable that raises it.
func TestQueryMaximumResults(t *testing.T) {
	srv := weaviatetest.Start(t, localweaviate.Options{Env: map[string]string{"QUERY_MAXIMUM_RESULTS": "5"}})
	conn := Connection{URL: srv.URL(), GRPC: srv.GRPCHost}
	client, err := Connect(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	im := &Importer{Client: client, Class: "Small"}
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	var docs []Doc
	var vecs [][]float32
	for i := 0; i < 8; i++ {
		docs = append(docs, Doc{ID: ObjectID("small", "de", fmt.Sprint(i)), Key: i, Lang: "de", Text: fmt.Sprint("text ", i)})
		vecs = append(vecs, []float32{float32(i + 1), 1})
	}
	if err := im.Import(ctx, docs, vecs); err != nil {
		t.Fatal(err)
	}
	search, err := DialSearch(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer search.Close()
	if hits, err := search.Search(ctx, Query{Class: "Small", Vector: []float32{1, 0}, Langs: []string{"de"}, Limit: 5}); err != nil || len(hits) != 5 {
		t.Fatalf("5 results within the limit: %d hits, %v", len(hits), err)
	}
	_, err = search.Search(ctx, Query{Class: "Small", Vector: []float32{1, 0}, Langs: []string{"de"}, Limit: 8})
	for _, want := range []string{"search Small (languages de)", "refuses to return 8 results", "QUERY_MAXIMUM_RESULTS", "at least 8"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("8 results past a limit of 5: %v; want it to contain %q", err, want)
		}
	}
}
