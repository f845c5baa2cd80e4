package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xling-ir/xling/internal/procmem"
	"github.com/xling-ir/xling/internal/pytorchref"
	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/sidecar"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// ServeOptions configures a sidecar benchmark.
type ServeOptions struct {
	ModelOptions
	Duration    time.Duration // per concurrency level
	Concurrency []int         // levels to measure with batching
	Soak        time.Duration // if set, also run concurrency 32 this long and report RSS
	// Against "t2v" compares xling with a server built as
	// weaviate/t2v-transformers-models is, instead of batched against
	// unbatched (see serveAgainstT2V).
	Against string
	Rounds  int // interleaved rounds against t2v; 0 means 3
	// Texts: "questions" (XQuAD-R questions sent as queries: the
	// concurrent traffic Weaviate's nearText searches make) or "sentences"
	// (candidate sentences sent as passages: what an import sends, though
	// Weaviate sends those one after another).
	Texts string
}

// LoadResult is one load level's outcome.
type LoadResult struct {
	Requests, Errors int
	PerSecond        float64
	P50, P99         time.Duration
	MeanBatch        float64       // texts per forward pass
	MeanTokens       float64       // padded tokens per forward pass
	MeanPass         time.Duration // time of a forward pass
	// With bulk clients (/vectors/batch) beside the one-text load:
	BulkTextsPerSecond float64
	BulkRefused        int // bulk requests answered 503 (the queue kept its reserve)
}

// Bulk load beside the one-text requests in the mixed figure: clients that
// each post bulkTexts passages to /vectors/batch, again and again.
const (
	bulkClients = 2
	bulkTexts   = 256
)

// histogramMean reads the mean of one of the sidecar's histograms.
func histogramMean(s *sidecar.Server, name string) float64 {
	mfs, _ := s.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() > 0 {
				return h.GetSampleSum() / float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// Serve measures the sidecar on loopback: requests/s and latency at each
// concurrency with dynamic batching, then at concurrency 32 without it (one
// text per forward pass, as a plain inference container does). A static
// model is also compared with a random transformer of the same size at
// concurrency 32 ("static/transformer" line). The "mixed" lines repeat
// concurrency 32 with bulk clients posting /vectors/batch beside it. The
// last line is "ratio <batched/unbatched>".
func Serve(ctx context.Context, w io.Writer, opts ServeOptions) error {
	dir, v, cleanup, err := opts.load(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	switch opts.Against {
	case "":
	case "t2v":
		return serveAgainstT2V(ctx, w, opts, dir, v)
	default:
		return fmt.Errorf("unknown --against %q (want t2v)", opts.Against)
	}
	texts, taskType, err := benchTexts(opts.Texts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "model %s: %s; %d %s as task_type %s; %s per level\n",
		dir, Describe(v.Config), len(texts), opts.Texts, taskType, opts.Duration)

	run := func(limits sidecar.BatchLimits, concurrency int, d time.Duration, tick func()) (LoadResult, error) {
		return serveLoad(ctx, dir, v, limits, texts, taskType, concurrency, 0, d, tick)
	}
	batched := sidecar.DefaultOptions().Limits
	results := map[int]LoadResult{}
	for _, c := range opts.Concurrency {
		r, err := run(batched, c, opts.Duration, nil)
		if err != nil {
			return err
		}
		results[c] = r
		report(w, "batched  ", c, r)
	}
	unbatched := batched
	unbatched.MaxTexts = 1
	u, err := run(unbatched, 32, opts.Duration, nil)
	if err != nil {
		return err
	}
	report(w, "unbatched", 32, u)
	b, ok := results[32]
	if !ok {
		if b, err = run(batched, 32, opts.Duration, nil); err != nil {
			return err
		}
	}
	// The mixed figure: the same one-text load with bulk clients beside it.
	// The queue takes bulk texts behind one-text requests and keeps a
	// quarter for them, so their p99 should stay within 2x of alone.
	m, err := serveLoad(ctx, dir, v, batched, texts, taskType, 32, bulkClients, opts.Duration, nil)
	if err != nil {
		return err
	}
	report(w, "mixed    ", 32, m)
	fmt.Fprintf(w, "mixed: %d bulk clients x %d passages: %.0f bulk texts/s, %d bulk requests refused (503); /vectors p99 %s against %s alone: ratio %.2f\n",
		bulkClients, bulkTexts, m.BulkTextsPerSecond, m.BulkRefused, m.P99.Round(100*time.Microsecond), b.P99.Round(100*time.Microsecond), float64(m.P99)/float64(b.P99))

	if opts.Soak > 0 {
		if err := soak(w, opts.Soak, func(tick func()) (LoadResult, error) { return run(batched, 32, opts.Soak, tick) }); err != nil {
			return err
		}
	}
	if v.Config.ModelType == modelconfig.Static {
		// The same run serves a random transformer of the same size, the
		// alternative the static model is meant to beat.
		tdir, tcleanup, err := ModelDir(ctx, "", "transformer", opts.Size)
		if err != nil {
			return err
		}
		defer tcleanup()
		tv, err := vectorizer.Load(tdir, vectorizer.LoadOptions{Threads: opts.Threads, BatchSize: 64})
		if err != nil {
			return err
		}
		t, err := serveLoad(ctx, tdir, tv, batched, texts, taskType, 32, 0, opts.Duration, nil)
		tv.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "transformer (%s, %s) batched concurrency 32: %.1f req/s, p50 %s, errors %d\n",
			opts.Size, Describe(tv.Config), t.PerSecond, t.P50.Round(10*time.Microsecond), t.Errors)
		fmt.Fprintf(w, "static/transformer %.1f\n", b.PerSecond/t.PerSecond)
	}
	fmt.Fprintf(w, "ratio %.2f\n", b.PerSecond/u.PerSecond)
	return nil
}

// soak runs load (concurrency 32 for the soak's length), printing RSS every
// minute, and reports growth since the first minute.
func soak(w io.Writer, d time.Duration, load func(tick func()) (LoadResult, error)) error {
	start := rssBytes()
	peak, warm := start, int64(0)
	next := time.Now().Add(time.Minute)
	r, err := load(func() {
		if time.Now().After(next) {
			next = time.Now().Add(time.Minute)
			rss := rssBytes()
			peak = max(peak, rss)
			if warm == 0 {
				warm = rss // the allocator has reached its working set
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(w, "soak: RSS %d MiB, Go heap in use %d MiB\n", rss>>20, ms.HeapInuse>>20)
		}
	})
	if err != nil {
		return err
	}
	end := rssBytes()
	fmt.Fprintf(w, "soak %s at concurrency 32: %.1f req/s, errors %d, RSS %d MiB at start, %d MiB after a minute, %d MiB at the end (%+.1f%% since the first minute), peak %d MiB\n",
		d, r.PerSecond, r.Errors, start>>20, warm>>20, end>>20, 100*float64(end-warm)/float64(max(warm, 1)), peak>>20)
	return nil
}

// serveLoad serves v with the given limits on a loopback port and loads it
// with one-text requests, and with bulk clients posting /vectors/batch.
func serveLoad(ctx context.Context, dir string, v *vectorizer.Vectorizer, limits sidecar.BatchLimits, texts []string, taskType string, concurrency, bulk int, d time.Duration, tick func()) (LoadResult, error) {
	o := sidecar.DefaultOptions()
	o.Passage = sidecar.FromVectorizer(filepath.Base(dir), v)
	o.Limits = limits
	s, err := sidecar.New(o)
	if err != nil {
		return LoadResult{}, err
	}
	defer s.Close()
	if err := s.Warm(ctx); err != nil {
		return LoadResult{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LoadResult{}, err
	}
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(l)
	defer srv.Close()
	base := "http://" + l.Addr().String()
	bctx, stopBulk := context.WithCancel(ctx)
	var bulkDone sync.WaitGroup
	var bulkMu sync.Mutex
	bulkOK, refused := 0, 0
	start := time.Now()
	for i := 0; i < bulk; i++ {
		bulkDone.Add(1)
		go func(i int) {
			defer bulkDone.Done()
			n, r := bulkLoad(bctx, base+"/vectors/batch", texts, i)
			bulkMu.Lock()
			bulkOK, refused = bulkOK+n, refused+r
			bulkMu.Unlock()
		}(i)
	}
	r, err := load(ctx, base+"/vectors", texts, taskType, concurrency, d, tick)
	stopBulk()
	bulkDone.Wait()
	r.BulkTextsPerSecond, r.BulkRefused = float64(bulkOK)/time.Since(start).Seconds(), refused
	r.MeanBatch = histogramMean(s, "xling_sidecar_batch_size")
	r.MeanTokens = histogramMean(s, "xling_sidecar_batch_tokens")
	r.MeanPass = time.Duration(histogramMean(s, "xling_sidecar_inference_duration_seconds") * float64(time.Second))
	return r, err
}

// bulkLoad posts bulkTexts passages at a time until ctx ends, backing off
// as Retry-After asks when refused; it returns the texts encoded and the
// requests refused.
func bulkLoad(ctx context.Context, url string, texts []string, client int) (encoded, refused int) {
	for k := client; ctx.Err() == nil; k += bulkClients {
		batch := make([]string, bulkTexts)
		for j := range batch {
			batch[j] = texts[(k*bulkTexts+j)%len(texts)]
		}
		body, _ := json.Marshal(map[string]any{"texts": batch, "config": map[string]any{"task_type": "passage"}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			encoded += len(batch)
		case http.StatusServiceUnavailable:
			refused++
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return encoded, refused
}

func report(w io.Writer, name string, c int, r LoadResult) {
	fmt.Fprintf(w, "%s concurrency %3d: %8.1f req/s  p50 %9s  p99 %9s  errors %d  (mean pass: %.1f texts, %.0f padded tokens, %s)\n",
		name, c, r.PerSecond, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Errors, r.MeanBatch, r.MeanTokens, r.MeanPass.Round(100*time.Microsecond))
}

// load sends POST /vectors requests from concurrency workers for d.
func load(ctx context.Context, url string, texts []string, taskType string, concurrency int, d time.Duration, tick func()) (LoadResult, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	bodies := make([][]byte, len(texts))
	for i, t := range texts {
		bodies[i], _ = json.Marshal(map[string]any{"text": t, "config": map[string]any{"pooling_strategy": "masked_mean", "task_type": taskType}})
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for i := w; ctx.Err() == nil; i += concurrency {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					break // the run ended mid-request: not an error
				}
				if err != nil {
					bad++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
				if tick != nil && w == 0 {
					tick()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return LoadResult{Errors: errs}, fmt.Errorf("no request succeeded at concurrency %d (%d errors)", concurrency, errs)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return LoadResult{Requests: len(lat), Errors: errs, PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
}

// benchTexts are XQuAD-R's questions or sentences, all languages.
func benchTexts(kind string) ([]string, string, error) {
	dir, err := shareddata.Dir()
	if err != nil {
		return nil, "", err
	}
	if kind != "questions" && kind != "sentences" {
		return nil, "", fmt.Errorf("unknown --texts %q (want questions or sentences)", kind)
	}
	xquad, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil {
		return nil, "", err
	}
	if kind == "questions" {
		return xquad.QuestionTexts(), "query", nil
	}
	return xquad.CandidateTexts(), "passage", nil
}

func rssBytes() int64 {
	n, _ := procmem.RSS()
	return n
}

// serveAgainstT2V drives xling's sidecar and the t2v reference server
// (pytorchref.StartT2V: FastAPI, uvicorn, one PyTorch forward per request,
// tokens pre-computed) with the same load generator: questions as queries
// and sentences as passages, at each concurrency, alternating servers
// within each of several rounds so that drift on a shared machine hits
// both. It prints every round, then each level's best round per server
// and their ratios;
// the last line is "ratio <xling/t2v req/s>" for questions at concurrency
// 32 (or the highest level measured).
func serveAgainstT2V(ctx context.Context, w io.Writer, opts ServeOptions, dir string, v *vectorizer.Vectorizer) error {
	if v.Config.ModelType == modelconfig.Static {
		return errors.New("--against t2v compares transformer servers; t2v-transformers serves no static models")
	}
	rounds := opts.Rounds
	if rounds <= 0 {
		rounds = 3
	}
	kinds := []string{"questions", "sentences"}
	texts := map[string][]string{}
	taskTypes := map[string]string{}
	tokens := map[string]map[string][]int64{}
	for _, k := range kinds {
		t, taskType, err := benchTexts(k)
		if err != nil {
			return err
		}
		kind, _ := vectorizer.ParseKind(taskType)
		texts[k], taskTypes[k], tokens[taskType] = t, taskType, map[string][]int64{}
		for _, text := range t {
			toks, err := v.Tokenize(text, kind)
			if err != nil {
				return err
			}
			tokens[taskType][text] = toks.IDs
		}
	}
	ref, err := pytorchref.StartT2V(ctx, dir, tokens, max(opts.Threads, 1))
	if err != nil {
		return err
	}
	defer ref.Close()
	fmt.Fprintf(w, "model %s: %s; %d libtorch threads per forward pass each side, xling %d workers; t2v reference: FastAPI + uvicorn (1 worker), one PyTorch forward per request in a thread pool, tokens pre-computed by xling (HuggingFace's ids); %s per level, %d rounds\n",
		dir, Describe(v.Config), max(opts.Threads, 1), v.Workers(), opts.Duration, rounds)
	// Both sides must do the same work: the same vectors for the same text.
	worst := 0.0
	for _, kind := range kinds {
		taskType := taskTypes[kind]
		k, _ := vectorizer.ParseKind(taskType)
		for _, text := range texts[kind][:5] {
			mine, err := v.Encode(ctx, []string{text}, k)
			if err != nil {
				return err
			}
			theirs, err := postVector(ctx, ref.URL+"/vectors", text, taskType)
			if err != nil {
				return fmt.Errorf("t2v reference: %w", err)
			}
			if len(theirs) != len(mine[0]) {
				return fmt.Errorf("t2v reference: %d dimensions, xling %d", len(theirs), len(mine[0]))
			}
			for i, x := range theirs {
				worst = max(worst, math.Abs(x-float64(mine[0][i])))
			}
		}
	}
	fmt.Fprintf(w, "same vectors on both sides: max |xling - t2v| = %.2g over 10 texts\n", worst)
	if worst > 1e-4 {
		return fmt.Errorf("xling and the t2v reference disagree by %g: they would not be doing the same work", worst)
	}
	type key struct {
		kind string
		c    int
	}
	best := map[key][2]LoadResult{} // xling, t2v: the best round of each
	keep := func(k key, side int, r LoadResult) {
		b := best[k]
		if r.PerSecond > b[side].PerSecond {
			b[side] = r
		}
		best[k] = b
	}
	batched := sidecar.DefaultOptions().Limits
	for round := 1; round <= rounds; round++ {
		for _, kind := range kinds {
			taskType := taskTypes[kind]
			for _, c := range opts.Concurrency {
				k := key{kind, c}
				// Alternate which server goes first, so neither always
				// follows the other's load.
				order := []int{0, 1}
				if round%2 == 0 {
					order = []int{1, 0}
				}
				var got [2]LoadResult
				for _, side := range order {
					var err error
					if side == 0 {
						got[side], err = serveLoad(ctx, dir, v, batched, texts[kind], taskType, c, 0, opts.Duration, nil)
					} else {
						got[side], err = load(ctx, ref.URL+"/vectors", texts[kind], taskType, c, opts.Duration, nil)
					}
					if err != nil {
						return fmt.Errorf("round %d, %s, concurrency %d, %s: %w", round, kind, c, [2]string{"xling", "t2v"}[side], err)
					}
					keep(k, side, got[side])
				}
				fmt.Fprintf(w, "round %d %-9s c=%-3d xling %7.1f req/s p50 %8s | t2v %7.1f req/s p50 %8s\n", round, kind, c,
					got[0].PerSecond, got[0].P50.Round(10*time.Microsecond), got[1].PerSecond, got[1].P50.Round(10*time.Microsecond))
			}
		}
	}
	last := 0.0
	for _, kind := range kinds {
		for _, c := range opts.Concurrency {
			b := best[key{kind, c}]
			r := b[0].PerSecond / b[1].PerSecond
			fmt.Fprintf(w, "%-9s c=%-3d xling/t2v: req/s %.2f, p50 %.2f (xling %s, t2v %s)\n", kind, c, r,
				float64(b[0].P50)/float64(b[1].P50), b[0].P50.Round(10*time.Microsecond), b[1].P50.Round(10*time.Microsecond))
			if kind == "questions" && (c == 32 || !slices.Contains(opts.Concurrency, 32)) {
				last = r
			}
		}
	}
	fmt.Fprintf(w, "ratio %.2f\n", last)
	return nil
}

// postVector asks a text2vec-transformers server for one text's vector.
func postVector(ctx context.Context, url, text, taskType string) ([]float64, error) {
	body, _ := json.Marshal(map[string]any{"text": text, "config": map[string]any{"pooling_strategy": "masked_mean", "task_type": taskType}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Vector []float64 `json:"vector"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: status %d: %v", url, resp.StatusCode, err)
	}
	return out.Vector, nil
}
