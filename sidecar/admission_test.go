package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xling-ir/xling/vectorizer"
)

func batchBody(n int) string {
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("text %d", i)
	}
	b, _ := json.Marshal(map[string]any{"texts": texts})
	return string(b)
}

// TestBatchAdmission: /vectors/batch goes through the same bounded queue
// as /vectors. Past its share it gets 413 (could never fit) or 503 with
// Retry-After (full now), one-text requests keep the quarter reserved for
// them, and a bulk client that goes has its queued texts skipped.
func TestBatchAdmission(t *testing.T) {
	enc := &slowEncoder{release: make(chan struct{})}
	s, ts := readyServer(t, enc, BatchLimits{MaxTexts: 4, MaxTokens: 1000, Queue: 16}) // bulk share: 12

	if code, out, _ := post(t, ts.URL+"/vectors/batch", batchBody(13)); code != 413 || !strings.Contains(out["error"].(string), "at most 12") {
		t.Fatalf("13 texts against a bulk share of 12: %d %v", code, out)
	}
	send := func(ctx context.Context, path, body string) chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+path, strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	cctx, cancel := context.WithCancel(context.Background())
	gone := send(cctx, "/vectors/batch", batchBody(12)) // 4 in the blocked pass, 8 queued
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 8 })
	kept := send(context.Background(), "/vectors/batch", batchBody(4)) // fills the bulk share
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 12 })

	code, out, hdr := post(t, ts.URL+"/vectors/batch", batchBody(1))
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("bulk past its share: %d %v Retry-After %q", code, out, hdr.Get("Retry-After"))
	}
	var singles []chan int
	for i := 0; i < 4; i++ { // the reserved quarter
		singles = append(singles, send(context.Background(), "/vectors", `{"text":"q"}`))
	}
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 16 })
	if code, _, _ := post(t, ts.URL+"/vectors", `{"text":"q"}`); code != 503 {
		t.Fatalf("a single text past the whole queue: %d", code)
	}
	cancel()
	if c := <-gone; c != -1 {
		t.Fatalf("cancelled bulk request got %d", c)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(s.metrics.requests.WithLabelValues("batch", "499")) == 1 })
	close(enc.release)
	for _, c := range append(singles, kept) {
		if code := <-c; code != 200 {
			t.Fatalf("admitted request: %d", code)
		}
	}
	s.Close()
	// The blocked pass held 4 texts of the cancelled request; its other 8
	// were skipped. 4 kept bulk + 4 singles were computed.
	if n := enc.encoded.Load(); n != 12 {
		t.Fatalf("encoded %d texts, want 12 (4 in flight + 4 bulk + 4 single; the cancelled 8 skipped)", n)
	}
	if got := testutil.ToFloat64(s.metrics.requests.WithLabelValues("batch", "200")); got != 1 {
		t.Fatalf("requests_total{batch,200} = %v, want 1", got)
	}
}

// TestSinglesBeforeBulk: when a pass has room, queued one-text requests
// are taken before bulk texts that arrived earlier.
func TestSinglesBeforeBulk(t *testing.T) {
	enc := &orderEncoder{slowEncoder: slowEncoder{release: make(chan struct{})}}
	s, ts := readyServer(t, enc, BatchLimits{MaxTexts: 2, MaxTokens: 1000, Queue: 64})
	done := make(chan int, 3)
	go func() { c, _, _ := post(t, ts.URL+"/vectors/batch", batchBody(10)); done <- c }()
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 8 })
	go func() { c, _, _ := post(t, ts.URL+"/vectors", `{"text":"single"}`); done <- c }()
	waitFor(t, func() bool { return s.batchers[vectorizer.Passage].queued() == 9 })
	close(enc.release)
	for i := 0; i < 2; i++ {
		if c := <-done; c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	// Pass 1 was the bulk's first two texts; pass 2 must hold the single.
	if len(enc.passes) < 2 || enc.passes[1][0] != 1 {
		t.Fatalf("passes %v: the single text (1 token) did not go into the second pass", enc.passes)
	}
}

// orderEncoder records each pass's token counts; singles have 1 token,
// bulk texts 3 (Tokenize decides by the text).
type orderEncoder struct {
	slowEncoder
	passes [][]int
}

func (e *orderEncoder) Tokenize(text string, kind vectorizer.Kind) (vectorizer.Tokens, error) {
	if text == "single" {
		return vectorizer.Tokens{IDs: []int64{1}}, nil
	}
	return e.slowEncoder.Tokenize(text, kind)
}

func (e *orderEncoder) EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error) {
	var lens []int
	for _, t := range toks {
		lens = append(lens, len(t.IDs))
	}
	e.passes = append(e.passes, lens)
	return e.slowEncoder.EncodeTokens(ctx, toks, kind)
}

// TestNeverAnEmptyReply runs the real server loop with a write timeout
// shorter than the work queued: every client gets a JSON answer (503 for
// what the encoder could not reach in time), and the metrics count the
// 503s, not 200s. While the model loads, requests get 503 with
// Retry-After, counted too.
func TestNeverAnEmptyReply(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	enc := &slowEncoder{release: make(chan struct{})}
	loaded := make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runErr := make(chan error, 1)
	go func() {
		runErr <- Run(ctx, l, Timeouts{Read: time.Second, Write: time.Second, Idle: time.Second, Shutdown: 5 * time.Second}, slog.New(slog.DiscardHandler),
			func(context.Context) (Options, func(), error) {
				<-loaded
				opts := DefaultOptions()
				opts.Passage = Model{Encoder: enc, Name: "slow"}
				opts.Limits = BatchLimits{MaxTexts: 8, MaxTokens: 1000, Queue: 64}
				return opts, func() {}, nil
			})
	}()
	// Loading: 503 + Retry-After.
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Post(url+"/vectors", "", strings.NewReader(`{"text":"x"}`)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("while loading: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(loaded)
	// Warm runs one pass per task type: let exactly those through.
	enc.release <- struct{}{}
	enc.release <- struct{}{}
	for {
		r, err := http.Get(url + "/.well-known/ready")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The encoder is now stuck: a bulk request cannot finish within the
	// write timeout.
	start := time.Now()
	resp, err = http.Post(url+"/vectors/batch", "", bytes.NewReader([]byte(batchBody(20))))
	if err != nil {
		t.Fatalf("bulk request past the write timeout: %v (an empty reply)", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "deadline") {
		t.Fatalf("bulk request past the write timeout: %d %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("answered after %v, past the 1s write timeout", d)
	}
	close(enc.release)
	r, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{`xling_sidecar_requests_total{code="503",endpoint="batch"} 1`, `xling_sidecar_requests_total{code="503",endpoint="loading"} 1`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The series exists from the start, at zero (so that error ratios are
	// defined); the refused request must not have moved it.
	if !strings.Contains(string(metricsText), `xling_sidecar_requests_total{code="200",endpoint="batch"} 0`+"\n") {
		t.Error("the bulk request that got 503 is counted as 200")
	}
	stop()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}
