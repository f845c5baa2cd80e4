package sidecar

import (
	"context"
	"time"

	"github.com/xling-ir/xling/vectorizer"
)

// Encoder is what the sidecar needs of a model: *vectorizer.Vectorizer.
type Encoder interface {
	Tokenize(text string, kind vectorizer.Kind) (vectorizer.Tokens, error)
	EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error)
	Dims() int
}

// BatchLimits bound the dynamic batches.
type BatchLimits struct {
	MaxTexts  int           // texts per forward pass
	MaxTokens int           // padded tokens per forward pass (texts x longest)
	MaxWait   time.Duration // how long the first text of a batch waits for company
	Queue     int           // texts waiting; more are refused with 503
}

// job is one text waiting for its vector.
type job struct {
	ctx    context.Context
	tokens vectorizer.Tokens
	done   chan result
}

type result struct {
	vec []float32
	err error
}

// batcher merges concurrent one-text requests of one kind into forward
// passes. Weaviate sends one text per request, so without it every request
// would be a batch of one.
type batcher struct {
	enc     Encoder
	kind    vectorizer.Kind
	limits  BatchLimits
	queue   chan *job
	metrics *metrics
	stopped chan struct{}
}

func newBatcher(enc Encoder, kind vectorizer.Kind, limits BatchLimits, m *metrics) *batcher {
	b := &batcher{enc: enc, kind: kind, limits: limits, queue: make(chan *job, limits.Queue), metrics: m, stopped: make(chan struct{})}
	go b.run()
	return b
}

// submit queues a text and waits for its vector. A full queue is refused at
// once rather than grown; a request cancelled while queued is dropped from
// its batch.
func (b *batcher) submit(ctx context.Context, toks vectorizer.Tokens) ([]float32, error) {
	j := &job{ctx: ctx, tokens: toks, done: make(chan result, 1)}
	select {
	case b.queue <- j:
	default:
		return nil, errOverloaded
	}
	b.metrics.queueDepth.WithLabelValues(b.kind.String()).Set(float64(len(b.queue)))
	select {
	case r := <-j.done:
		return r.vec, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops taking work and returns once every queued text is answered.
func (b *batcher) close() {
	close(b.queue)
	<-b.stopped
}

func (b *batcher) run() {
	defer close(b.stopped)
	var carry *job // the job that did not fit the previous batch
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-b.queue; !ok {
				return
			}
		}
		batch := []*job{first}
		longest := len(first.tokens.IDs)
		// With no MaxWait, take only what is already queued.
		var timeout <-chan time.Time
		var timer *time.Timer
		if b.limits.MaxWait > 0 {
			timer = time.NewTimer(b.limits.MaxWait)
			timeout = timer.C
		}
	collect:
		for len(batch) < b.limits.MaxTexts {
			var j *job
			var ok bool
			if timeout == nil {
				select {
				case j, ok = <-b.queue:
				default:
					break collect
				}
			} else {
				select {
				case j, ok = <-b.queue:
				case <-timeout:
					break collect
				}
			}
			if !ok {
				break collect
			}
			l := max(longest, len(j.tokens.IDs))
			if l*(len(batch)+1) > b.limits.MaxTokens {
				carry = j
				break collect
			}
			batch, longest = append(batch, j), l
		}
		if timer != nil {
			timer.Stop()
		}
		b.metrics.queueDepth.WithLabelValues(b.kind.String()).Set(float64(len(b.queue)))
		b.encode(batch)
		if carry != nil && len(b.queue) == 0 {
			// Nothing else waits: do not hold the carried job for MaxWait.
			b.encode([]*job{carry})
			carry = nil
		}
	}
}

func (b *batcher) encode(batch []*job) {
	live := batch[:0:0]
	toks := make([]vectorizer.Tokens, 0, len(batch))
	longest := 0
	for _, j := range batch {
		if j.ctx.Err() != nil {
			b.metrics.dropped.Inc()
			continue // its client has gone
		}
		live = append(live, j)
		toks = append(toks, j.tokens)
		longest = max(longest, len(j.tokens.IDs))
	}
	if len(live) == 0 {
		return
	}
	b.metrics.batchSize.Observe(float64(len(live)))
	b.metrics.batchTokens.Observe(float64(longest * len(live)))
	start := time.Now()
	vecs, err := b.enc.EncodeTokens(context.Background(), toks, b.kind)
	b.metrics.inference.Observe(time.Since(start).Seconds())
	for i, j := range live {
		if err != nil {
			j.done <- result{err: err}
		} else {
			j.done <- result{vec: vecs[i]}
		}
	}
}
