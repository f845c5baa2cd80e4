package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xling-ir/xling/vectorizer"
)

// Model is one served model and what /meta says of it.
type Model struct {
	Encoder
	Name      string         // e.g. the model directory's base name
	Type      string         // config.json's model_type
	Pooling   string         // xling.json's pooling
	MaxTokens int            // longer texts are truncated
	Languages []string       // trained languages, if known
	Training  map[string]any // how it was trained, if known
}

// FromVectorizer describes a loaded model directory.
func FromVectorizer(name string, v *vectorizer.Vectorizer) Model {
	return Model{Encoder: v, Name: name, Type: v.Config.ModelType, Pooling: v.Options.Pooling,
		MaxTokens: v.MaxTokens(), Languages: v.Options.Languages, Training: v.Options.Training}
}

// Options configures a Server.
type Options struct {
	Passage Model  // encodes passages, and queries unless Query is set
	Query   *Model // a separate query model (--query-model), or nil
	Limits  BatchLimits
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64
	// MaxBatchTexts bounds the texts of one /vectors/batch request.
	MaxBatchTexts int
	Logger        *slog.Logger
}

// DefaultOptions are limits that suit a CPU model behind one Weaviate.
func DefaultOptions() Options {
	return Options{
		Limits:        BatchLimits{MaxTexts: 32, MaxTokens: 32 * 128, Queue: 1024},
		MaxBodyBytes:  1 << 20,
		MaxBatchTexts: 1024,
	}
}

// Server is the inference container's HTTP API.
type Server struct {
	opts     Options
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	batchers map[vectorizer.Kind]*batcher
	models   map[vectorizer.Kind]Model
	meta     []byte
	ready    atomic.Bool
	mux      *http.ServeMux
	closed   sync.Once
}

// New builds a server; it answers 503 on /.well-known/ready until Warm.
func New(opts Options) (*Server, error) {
	reg := prometheus.NewRegistry()
	return newServer(opts, reg, newMetrics(reg))
}

func newServer(opts Options, reg *prometheus.Registry, m *metrics) (*Server, error) {
	if opts.Passage.Encoder == nil {
		return nil, errors.New("sidecar: no model")
	}
	def := DefaultOptions()
	if opts.Limits.MaxTexts <= 0 {
		opts.Limits.MaxTexts = def.Limits.MaxTexts
	}
	if opts.Limits.MaxTokens <= 0 {
		opts.Limits.MaxTokens = def.Limits.MaxTokens
	}
	if opts.Limits.Queue <= 0 {
		opts.Limits.Queue = def.Limits.Queue
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = def.MaxBodyBytes
	}
	if opts.MaxBatchTexts <= 0 {
		opts.MaxBatchTexts = def.MaxBatchTexts
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	query := opts.Passage
	if opts.Query != nil {
		query = *opts.Query
		if query.Dims() != opts.Passage.Dims() {
			return nil, fmt.Errorf("sidecar: the query model has %d dimensions, the passage model %d", query.Dims(), opts.Passage.Dims())
		}
	}
	s := &Server{opts: opts, log: opts.Logger, registry: reg, metrics: m,
		models: map[vectorizer.Kind]Model{vectorizer.Passage: opts.Passage, vectorizer.Query: query}}
	// Series the alerts divide by exist from the start at zero, so that an
	// error ratio is 0, not absent, before the first error.
	for _, endpoint := range []string{"vectors", "batch"} {
		for _, code := range []string{"200", "503"} {
			m.requests.WithLabelValues(endpoint, code)
		}
	}
	s.batchers = map[vectorizer.Kind]*batcher{}
	for kind, m := range s.models {
		s.metrics.queueDepth.WithLabelValues(kind.String()).Set(0)
		s.batchers[kind] = newBatcher(m.Encoder, kind, opts.Limits, s.metrics)
		s.metrics.modelInfo.WithLabelValues(kind.String(), m.Name, m.Type, strconv.Itoa(m.Dims()), m.Pooling).Set(1)
	}
	var err error
	if s.meta, err = json.Marshal(s.metaDoc()); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) metaDoc() map[string]any {
	describe := func(m Model) map[string]any {
		return map[string]any{"model": m.Name, "model_type": m.Type, "dims": m.Dims(), "pooling": m.Pooling,
			"max_tokens": m.MaxTokens, "languages": m.Languages, "training": m.Training, "server": "xling"}
	}
	doc := describe(s.models[vectorizer.Passage])
	if s.opts.Query != nil {
		doc["query_model"] = describe(*s.opts.Query)
	}
	return doc
}

// Registry holds the sidecar's metrics (for tests and embedding programs).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.mux }

// Warm runs one forward pass per model, then reports ready: the first pass
// allocates libtorch's buffers and must not land on a real request.
func (s *Server) Warm(ctx context.Context) error {
	for kind, m := range s.models {
		toks, err := m.Tokenize("warm up", kind)
		if err != nil {
			return err
		}
		if _, err := m.EncodeTokens(ctx, []vectorizer.Tokens{toks}, kind); err != nil {
			return fmt.Errorf("warm up the %s model: %w", kind, err)
		}
	}
	s.ready.Store(true)
	return nil
}

// Close stops the batchers after answering every queued text.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.ready.Store(false)
		for _, b := range s.batchers {
			b.close()
		}
	})
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /.well-known/live", s.instrument("live", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	s.mux.Handle("GET /.well-known/ready", s.instrument("ready", func(w http.ResponseWriter, r *http.Request) {
		// An atomic load: Weaviate gives this probe 500 ms even while every
		// core is busy encoding.
		if !s.ready.Load() {
			writeError(w, http.StatusServiceUnavailable, "model not loaded and warm yet")
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	s.mux.Handle("GET /meta", s.instrument("meta", func(w http.ResponseWriter, r *http.Request) {
		// Served from memory: Weaviate forwards its own readiness probe here.
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.meta)
	}))
	s.mux.Handle("POST /vectors", s.instrument("vectors", s.vectors))
	s.mux.Handle("POST /vectors/", s.instrument("vectors", s.vectors))
	s.mux.Handle("POST /vectors/batch", s.instrument("batch", s.batch))
	s.mux.Handle("GET /metrics", s.instrument("metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP))
	s.mux.Handle("/", s.instrument("other", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	}))
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over the %d-byte limit", s.opts.MaxBodyBytes)}
	}
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	return body, nil
}

// body answers 503 before the model is warm, and returns the request body
// within the size limit; ok is false when it has answered.
func (s *Server) body(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "model not loaded and warm yet")
		return nil, false
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, err)
		return nil, false
	}
	return body, true
}

func (s *Server) vectors(w http.ResponseWriter, r *http.Request) {
	body, ok := s.body(w, r)
	if !ok {
		return
	}
	req, err := decodeVectorsRequest(body, s.models[vectorizer.Passage].Dims())
	if err != nil {
		s.fail(w, err)
		return
	}
	m := s.models[req.Kind]
	toks, err := m.Tokenize(req.Text, req.Kind)
	if err != nil {
		s.fail(w, badRequest("text: %v", err))
		return
	}
	if toks.Truncated {
		s.metrics.truncations.Inc()
	}
	vecs, err := s.batchers[req.Kind].submit(r.Context(), []vectorizer.Tokens{toks}, false)
	if err != nil {
		s.fail(w, err)
		return
	}
	vec := truncate(vecs[0], req.Dims)
	writeJSON(w, http.StatusOK, vectorsResponse{Text: req.Text, Vector: vec, Dims: len(vec)})
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	body, ok := s.body(w, r)
	if !ok {
		return
	}
	req, err := decodeBatchRequest(body, s.models[vectorizer.Passage].Dims(), s.opts.MaxBatchTexts)
	if err != nil {
		s.fail(w, err)
		return
	}
	m := s.models[req.Kind]
	toks := make([]vectorizer.Tokens, len(req.Texts))
	for i, text := range req.Texts {
		if toks[i], err = m.Tokenize(text, req.Kind); err != nil {
			s.fail(w, badRequest("texts[%d]: %v", i, err))
			return
		}
		if toks[i].Truncated {
			s.metrics.truncations.Inc()
		}
	}
	vecs, err := s.batchers[req.Kind].submit(r.Context(), toks, true)
	if err != nil {
		s.fail(w, err)
		return
	}
	for i := range vecs {
		vecs[i] = truncate(vecs[i], req.Dims)
	}
	writeJSON(w, http.StatusOK, batchResponse{Vectors: vecs, Dims: len(vecs[0])})
}

// fail answers an error: 4xx for the client's mistakes, 503 with
// Retry-After for overload, 500 for the rest (logged).
func (s *Server) fail(w http.ResponseWriter, err error) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		writeError(w, re.status, re.msg)
	case errors.Is(err, errTooMany):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, errOverloaded), errors.Is(err, errShuttingDown):
		retryLater(w, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		retryLater(w, "the encoder did not reach this request before its deadline (set below the write timeout, so that the answer still arrives)")
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "client closed the request") // nginx's code; the client is gone
	default:
		s.log.Error("inference failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func retryLater(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}: Weaviate reports that field, and a
// non-JSON body would surface there as an unmarshal failure instead.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// statusRecorder keeps what the client received: the status, or that the
// answer never arrived.
type statusRecorder struct {
	http.ResponseWriter
	status int
	lost   bool // a write failed: the client has gone
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	if err != nil {
		r.lost = true
	}
	return n, err
}

// code is the metrics label of what the client received.
func (r *statusRecorder) code(req *http.Request) string {
	if r.lost || (req.Context().Err() == context.Canceled && r.status != 499) {
		return "aborted"
	}
	return strconv.Itoa(r.status)
}

func (s *Server) instrument(endpoint string, h http.HandlerFunc) http.Handler {
	return instrument(s.metrics, endpoint, h)
}

func instrument(m *metrics, endpoint string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		m.requests.WithLabelValues(endpoint, rec.code(r)).Inc()
		m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
}

// Timeouts of the HTTP server.
type Timeouts struct {
	Read, Write, Idle, Shutdown time.Duration
}

// Run serves on l until ctx is done. It answers at once — live says 200,
// everything else 503 with Retry-After, counted in the metrics — while
// load reads the model and Warm runs, then serves the API. Every request
// gets a deadline a tenth below the write timeout, so that a client always
// receives an answer (503 when the encoder did not reach it in time), never
// a connection closed on an empty reply. On shutdown it stops accepting,
// lets in-flight requests (and so every queued text) finish within
// t.Shutdown, closes the batchers and calls the cleanup load returned.
func Run(ctx context.Context, l net.Listener, t Timeouts, log *slog.Logger, load func(context.Context) (Options, func(), error)) error {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	var current atomic.Pointer[http.Handler]
	loadingMux := http.NewServeMux()
	loadingMux.Handle("GET /.well-known/live", instrument(m, "live", func(w http.ResponseWriter, r *http.Request) {}))
	loadingMux.Handle("GET /metrics", instrument(m, "metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP))
	loadingMux.Handle("/", instrument(m, "loading", func(w http.ResponseWriter, r *http.Request) {
		retryLater(w, "model loading")
	}))
	loading := http.Handler(loadingMux)
	current.Store(&loading)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) })
	srv := &http.Server{
		Handler:           withDeadline(handler, t.Write*9/10),
		ReadHeaderTimeout: t.Read, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()

	start := time.Now()
	s, cleanup, err := func() (*Server, func(), error) {
		opts, cleanup, err := load(ctx)
		if err != nil {
			return nil, nil, err
		}
		s, err := newServer(opts, reg, m)
		if err == nil {
			if err = s.Warm(ctx); err != nil {
				s.Close()
			}
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		return s, cleanup, nil
	}()
	if err != nil {
		srv.Close()
		return err
	}
	defer cleanup()
	h := s.Handler()
	current.Store(&h)
	log.Info("ready", "addr", l.Addr().String(), "load_seconds", time.Since(start).Seconds())

	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing queued work", "timeout", t.Shutdown)
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), t.Shutdown)
	defer cancel()
	err = srv.Shutdown(sctx)
	s.Close()
	if err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	return nil
}

// withDeadline gives every request a deadline d after it arrives (none
// when d is 0).
func withDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
