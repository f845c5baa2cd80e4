package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

func tinyServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	opts.Passage = FromVectorizer("tiny", v)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

// readyServer serves enc with limits (zero fields take the defaults),
// marked ready without a warm-up pass: tests that hold the encoder need
// its first pass to be theirs.
func readyServer(t *testing.T, enc Encoder, limits BatchLimits) (*Server, *httptest.Server) {
	t.Helper()
	opts := DefaultOptions()
	opts.Passage = Model{Encoder: enc, Name: "test"}
	opts.Limits = limits
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func post(t *testing.T, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("status %d: body is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out, resp.Header
}

func vectorOf(t *testing.T, out map[string]any) []float64 {
	t.Helper()
	raw, _ := out["vector"].([]any)
	v := make([]float64, len(raw))
	for i, x := range raw {
		v[i] = x.(float64)
	}
	if int(out["dims"].(float64)) != len(v) {
		t.Fatalf("dims %v but %d components", out["dims"], len(v))
	}
	return v
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func TestWeaviateProtocol(t *testing.T) {
	s, ts := tinyServer(t, DefaultOptions())
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/.well-known/live") != 200 || get("/.well-known/ready") != 503 {
		t.Fatal("before Warm: want live 200, ready 503")
	}
	if code, _, _ := post(t, ts.URL+"/vectors", `{"text":"x"}`); code != 503 {
		t.Fatalf("vectors before Warm: %d", code)
	}
	if err := s.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	if get("/.well-known/ready") != 200 {
		t.Fatal("after Warm: ready is not 200")
	}

	// Exactly what Weaviate 1.35 sends.
	body := `{"text":"Where is Cairo?","dims":0,"vector":null,"error":"","config":{"pooling_strategy":"masked_mean","task_type":"passage"}}`
	code, out, _ := post(t, ts.URL+"/vectors", body)
	if code != 200 || out["text"] != "Where is Cairo?" {
		t.Fatalf("vectors: %d %v", code, out)
	}
	passage := vectorOf(t, out)
	if len(passage) != 64 || math.Abs(norm(passage)-1) > 1e-5 {
		t.Fatalf("passage vector: %d dims, norm %g", len(passage), norm(passage))
	}
	_, out, _ = post(t, ts.URL+"/vectors/", strings.Replace(body, `"passage"`, `"query"`, 1))
	if query := vectorOf(t, out); query[0] == passage[0] && query[1] == passage[1] {
		t.Fatal("task_type query gave the passage vector")
	}
	_, out, _ = post(t, ts.URL+"/vectors", strings.Replace(body, `"task_type":"passage"`, `"task_type":"passage","dimensions":16`, 1))
	short := vectorOf(t, out)
	if len(short) != 16 || math.Abs(norm(short)-1) > 1e-5 {
		t.Fatalf("dimensions 16: %d dims, norm %g", len(short), norm(short))
	}
	scale := norm(passage[:16])
	for i := range short {
		if math.Abs(short[i]-passage[i]/scale) > 1e-5 {
			t.Fatalf("dimensions 16 is not the renormalised prefix at %d", i)
		}
	}

	// The bulk endpoint gives the same vectors as one-text requests.
	code, out, _ = post(t, ts.URL+"/vectors/batch", `{"texts":["Where is Cairo?","second"],"config":{"task_type":"passage"}}`)
	if code != 200 {
		t.Fatalf("batch: %d %v", code, out)
	}
	first := out["vectors"].([]any)[0].([]any)
	for i := range passage {
		if math.Abs(first[i].(float64)-passage[i]) > 1e-5 {
			t.Fatalf("batch vector differs from the single one at %d", i)
		}
	}

	resp, _ := http.Get(ts.URL + "/meta")
	var meta map[string]any
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta["dims"] != 64.0 || meta["model"] != "tiny" || meta["pooling"] != "masked_mean" {
		t.Fatalf("meta: %v", meta)
	}
}

func TestBadRequests(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxBodyBytes = 4096
	opts.MaxBatchTexts = 3
	s, ts := tinyServer(t, opts)
	if err := s.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"invalid JSON", "/vectors", `{"text": "x"`, 400, "invalid JSON"},
		{"not an object", "/vectors", `[1,2]`, 400, "must be a JSON object"},
		{"config of the wrong type", "/vectors", `{"text":"x","config":{"task_type":5}}`, 400, `field "config.task_type" must be a string, not number`},
		{"lone high surrogate", "/vectors", `{"text":"\ud800abc"}`, 400, `unpaired UTF-16 surrogate \uD800`},
		{"lone low surrogate", "/vectors/batch", `{"texts":["ok","a\udc00"]}`, 400, `unpaired UTF-16 surrogate \uDC00`},
		{"empty body", "/vectors", ``, 400, "empty request body"},
		{"missing text", "/vectors", `{"config":{}}`, 400, `missing "text"`},
		{"null text", "/vectors", `{"text":null}`, 400, `missing "text"`},
		{"numeric text", "/vectors", `{"text":42}`, 400, `"text" must be a string`},
		{"invalid UTF-8", "/vectors", "{\"text\":\"bad \xff\"}", 400, "not valid UTF-8"},
		{"unknown task type", "/vectors", `{"text":"x","config":{"task_type":"document"}}`, 400, `unknown task type "document"`},
		{"bad dimensions", "/vectors", `{"text":"x","config":{"dimensions":999}}`, 400, "outside 1..64"},
		{"unknown pooling", "/vectors", `{"text":"x","config":{"pooling_strategy":"max"}}`, 400, "pooling_strategy"},
		{"over the limit", "/vectors", `{"text":"` + strings.Repeat("a", 5000) + `"}`, 413, "limit"},
		{"batch too many", "/vectors/batch", `{"texts":["a","b","c","d"]}`, 413, "limit is 3"},
		{"batch not strings", "/vectors/batch", `{"texts":[1]}`, 400, "array of strings"},
		{"unknown path", "/vectorize", `{}`, 404, "no endpoint"},
	}
	for _, c := range cases {
		code, out, _ := post(t, ts.URL+c.path, c.body)
		msg, _ := out["error"].(string)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d and %q", c.name, code, msg, c.code, c.msg)
		}
		// Error bodies speak JSON, not the server's Go types.
		if strings.Contains(msg, "Go ") || strings.Contains(msg, "sidecar.") || strings.Contains(msg, "struct") {
			t.Errorf("%s: error names Go internals: %q", c.name, msg)
		}
	}
	// A valid surrogate pair is a character, not an error.
	if code, out, _ := post(t, ts.URL+"/vectors", `{"text":"emoji \ud83d\ude00 and \\ud800 escaped"}`); code != 200 {
		t.Fatalf("surrogate pair: %d %v", code, out)
	}
	// The server still works.
	if code, _, _ := post(t, ts.URL+"/vectors", `{"text":"still fine"}`); code != 200 {
		t.Fatalf("after bad requests: %d", code)
	}
	// An empty or blank text (an object whose property is empty) gets the
	// special tokens' vector, as HuggingFace's tokenizer gives it.
	_, empty, _ := post(t, ts.URL+"/vectors", `{"text":""}`)
	_, blank, _ := post(t, ts.URL+"/vectors", `{"text":"  \n\t"}`)
	_, word, _ := post(t, ts.URL+"/vectors", `{"text":"word"}`)
	ev, _ := empty["vector"].([]any)
	if len(ev) != 64 || fmt.Sprint(empty["vector"]) != fmt.Sprint(blank["vector"]) || fmt.Sprint(ev) == fmt.Sprint(word["vector"]) {
		t.Errorf("empty text: %d dims %v; blank %v", len(ev), empty, blank)
	}
}

// TestDynamicBatching sends 64 concurrent requests while the encoder is
// busy with a first one and checks that those queued meanwhile were merged
// into full forward passes, while a lone request was encoded at once.
func TestDynamicBatching(t *testing.T) {
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	enc := &gatedEncoder{Encoder: v, gate: make(chan struct{})}
	s, ts := readyServer(t, enc, BatchLimits{})

	var wg sync.WaitGroup
	var failed atomic.Int32
	send := func(i int) {
		defer wg.Done()
		resp, err := http.Post(ts.URL+"/vectors", "", strings.NewReader(fmt.Sprintf(`{"text":"text number %d"}`, i)))
		if err != nil || resp.StatusCode != 200 {
			failed.Add(1)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	wg.Add(1)
	go send(0) // finds the encoder idle: its pass starts at once, held at the gate
	waitFor(t, func() bool { return enc.calls.Load() == 1 })
	for i := 1; i <= 64; i++ {
		wg.Add(1)
		go send(i)
	}
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 64 })
	close(enc.gate)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	passes, texts := histogram(t, s, "xling_sidecar_batch_size")
	t.Logf("65 requests in %d forward passes (mean batch %.1f)", passes, texts/float64(passes))
	// 1 alone, then 64 queued texts in passes of at most 32.
	if texts != 65 || passes != 3 {
		t.Fatalf("%d forward passes for 1 + 64 queued requests (limit 32 a pass), %v texts; want 3", passes, texts)
	}
	if got := testutil.ToFloat64(s.metrics.requests.WithLabelValues("vectors", "200")); got != 65 {
		t.Fatalf("requests_total{vectors,200} = %v", got)
	}
}

// gatedEncoder holds its first forward pass until gate closes.
type gatedEncoder struct {
	Encoder
	gate  chan struct{}
	calls atomic.Int32
}

func (g *gatedEncoder) EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error) {
	if g.calls.Add(1) == 1 {
		<-g.gate
	}
	return g.Encoder.EncodeTokens(ctx, toks, kind)
}

func histogram(t *testing.T, s *Server, name string) (uint64, float64) {
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// slowEncoder blocks each forward pass until released, so that tests can
// fill the queue; it counts the texts it encodes.
type slowEncoder struct {
	release chan struct{}
	encoded atomic.Int32
}

// Workers is one: the tests that use it count on one pass at a time.
func (e *slowEncoder) Workers() int { return 1 }

func (e *slowEncoder) Tokenize(text string, kind vectorizer.Kind) (vectorizer.Tokens, error) {
	return vectorizer.Tokens{IDs: []int64{1, 2, 3}}, nil
}

func (e *slowEncoder) EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error) {
	<-e.release
	e.encoded.Add(int32(len(toks)))
	out := make([][]float32, len(toks))
	for i := range out {
		out[i] = []float32{1, 0}
	}
	return out, nil
}

func (e *slowEncoder) Dims() int { return 2 }

// TestOverloadAndCancellation fills a queue of 2 behind a blocked forward
// pass: the next request gets 503 with Retry-After at once, and a request
// whose client gives up is dropped from its batch.
func TestOverloadAndCancellation(t *testing.T) {
	enc := &slowEncoder{release: make(chan struct{})}
	s, ts := readyServer(t, enc, BatchLimits{MaxTexts: 1, MaxTokens: 100, Queue: 2})

	send := func(ctx context.Context) chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/vectors", bytes.NewReader([]byte(`{"text":"x"}`)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	first := send(context.Background()) // taken by the batcher, blocked in EncodeTokens
	waitFor(t, func() bool { n, _ := histogram(t, s, "xling_sidecar_batch_size"); return n == 1 })
	cctx, cancel := context.WithCancel(context.Background())
	gone := send(cctx)                   // queued, then abandoned
	second := send(context.Background()) // queued
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 2 })

	code, out, hdr := post(t, ts.URL+"/vectors", `{"text":"one too many"}`)
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(out["error"].(string), "queue is full") {
		t.Fatalf("overload: %d %v Retry-After %q", code, out, hdr.Get("Retry-After"))
	}
	cancel()
	if c := <-gone; c != -1 {
		t.Fatalf("cancelled request got %d", c)
	}
	// The server notices the client has gone when its handler returns.
	waitFor(t, func() bool { return testutil.ToFloat64(s.metrics.requests.WithLabelValues("vectors", "499")) == 1 })
	close(enc.release) // let every pass run
	if c := <-first; c != 200 {
		t.Fatalf("first request: %d", c)
	}
	if c := <-second; c != 200 {
		t.Fatalf("second request: %d", c)
	}
	s.Close()
	if n := enc.encoded.Load(); n != 2 {
		t.Fatalf("encoded %d texts, want 2 (the cancelled one dropped)", n)
	}
	if got := testutil.ToFloat64(s.metrics.dropped); got != 1 {
		t.Fatalf("cancelled_total = %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzDecodeVectorsRequest: any body is either a valid request or a client
// error, never a panic, and a valid request's text survives unchanged.
func FuzzDecodeVectorsRequest(f *testing.F) {
	for _, seed := range []string{
		`{"text":"hello","config":{"pooling_strategy":"masked_mean","task_type":"query","dimensions":8}}`,
		`{"text":"","dims":0,"vector":null,"error":""}`, `{"text":1}`, `[]`, `{`, "\xff", `{"text":"\u00e9","config":{"dimensions":-1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeVectorsRequest(body, 64)
		if err != nil {
			if _, ok := err.(*requestError); !ok {
				t.Fatalf("non-client error %T: %v", err, err)
			}
			return
		}
		if req.Dims < 0 || req.Dims > 64 {
			t.Fatalf("accepted dimensions %d", req.Dims)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}

// A static model is served unchanged: the vectors are the vectorizer's, and
// texts are not held back waiting for a batch to fill.
func TestStaticModel(t *testing.T) {
	cfg, _ := vectorizer.StaticSizeConfig("tiny", 4000)
	v, err := vectorizer.Load(vectorizertest.Model(t, cfg, vectorizer.DefaultOptions(), 3), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	opts := DefaultOptions()
	opts.Passage = FromVectorizer("static", v)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	if err := s.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, _ := post(t, srv.URL+"/vectors", `{"text":"Wo liegt Berlin?","config":{"pooling_strategy":"masked_mean","task_type":"query"}}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, out)
	}
	want, err := v.Encode(context.Background(), []string{"Wo liegt Berlin?"}, vectorizer.Query)
	if err != nil {
		t.Fatal(err)
	}
	got := vectorOf(t, out)
	if len(got) != len(want[0]) {
		t.Fatalf("%d dims, want %d", len(got), len(want[0]))
	}
	for i := range got {
		if math.Abs(got[i]-float64(want[0][i])) > 1e-6 {
			t.Fatalf("component %d: served %g, vectorizer %g", i, got[i], want[0][i])
		}
	}
	var meta map[string]any
	resp, err := http.Get(srv.URL + "/meta")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if fmt.Sprint(meta["model_type"]) != "static" && !strings.Contains(fmt.Sprint(meta), "static") {
		t.Errorf("/meta does not say the model is static: %v", meta)
	}
}

// barrierEncoder has workers forward passes and lets none finish until
// that many run at once.
type barrierEncoder struct {
	slowEncoder
	workers int
	arrived chan struct{}
}

func (e *barrierEncoder) Workers() int { return e.workers }

func (e *barrierEncoder) EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error) {
	e.arrived <- struct{}{}
	return e.slowEncoder.EncodeTokens(ctx, toks, kind)
}

// TestPassesInFlightPerWorker: an encoder with three workers gets three
// forward passes at once from three concurrent requests, each answered;
// the batcher does not serialise them behind one pass.
func TestPassesInFlightPerWorker(t *testing.T) {
	enc := &barrierEncoder{slowEncoder: slowEncoder{release: make(chan struct{})}, workers: 3, arrived: make(chan struct{}, 3)}
	_, ts := readyServer(t, enc, BatchLimits{MaxTexts: 32, MaxTokens: 4096, Queue: 64})
	codes := make(chan int, 3)
	for range 3 {
		go func() {
			resp, err := http.Post(ts.URL+"/vectors", "", strings.NewReader(`{"text":"a"}`))
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for i := range 3 {
		select {
		case <-enc.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d forward passes in flight after 10 s, want 3", i)
		}
	}
	close(enc.release)
	for range 3 {
		if c := <-codes; c != http.StatusOK {
			t.Errorf("status %d", c)
		}
	}
}
