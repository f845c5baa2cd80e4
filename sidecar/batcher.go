package sidecar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xling-ir/xling/vectorizer"
)

// Encoder is what the sidecar needs of a model: *vectorizer.Vectorizer.
type Encoder interface {
	Tokenize(text string, kind vectorizer.Kind) (vectorizer.Tokens, error)
	EncodeTokens(ctx context.Context, toks []vectorizer.Tokens, kind vectorizer.Kind) ([][]float32, error)
	Dims() int
	// Workers is how many EncodeTokens calls run at once; the batcher
	// keeps that many batches in flight.
	Workers() int
}

// BatchLimits bound the dynamic batches and the queue in front of them.
type BatchLimits struct {
	MaxTexts  int // texts per forward pass
	MaxTokens int // padded tokens per forward pass (texts x longest)
	// Queue bounds the texts waiting, single and bulk together; beyond it
	// requests get 503. Bulk requests may fill three quarters of it, so
	// that Weaviate's one-text requests always find room.
	Queue int
}

// bulkShare is the part of the queue bulk requests may hold.
func (l BatchLimits) bulkShare() int { return max(1, l.Queue*3/4) }

// errTooMany refuses a bulk request that could never fit the queue.
var errTooMany = errors.New("more texts than the queue holds")

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

// batcher merges queued texts of one kind into forward passes. Weaviate
// sends one text per request, so without it every request would be a batch
// of one. A text that finds the encoder idle is encoded at once; batches
// form from what queues while the encoder is busy, as in HuggingFace's TEI.
// (A wait for company cost every lone request its length: Weaviate's
// import sends an object's text only after the previous one is answered.)
// Every text goes through it: one-text requests first, bulk texts
// (/vectors/batch) filling the rest of each pass, so that a bulk client
// cannot make Weaviate's queries wait behind thousands of texts. It keeps
// as many passes in flight as the encoder runs at once (its Workers), so
// that one-thread forward passes on several cores answer concurrent
// requests side by side, as the Python servers' thread pools do.
type batcher struct {
	enc     Encoder
	kind    vectorizer.Kind
	limits  BatchLimits
	metrics *metrics

	mu      sync.Mutex
	pending int // texts queued, both queues
	closed  bool

	single, bulk chan *job
	stopped      chan struct{}
}

func newBatcher(enc Encoder, kind vectorizer.Kind, limits BatchLimits, m *metrics) *batcher {
	b := &batcher{enc: enc, kind: kind, limits: limits, metrics: m,
		single: make(chan *job, limits.Queue), bulk: make(chan *job, limits.Queue), stopped: make(chan struct{})}
	var running sync.WaitGroup
	for range max(enc.Workers(), 1) {
		running.Add(1)
		go func() {
			defer running.Done()
			b.run(&queues{single: b.single, bulk: b.bulk})
		}()
	}
	go func() {
		running.Wait()
		close(b.stopped)
	}()
	return b
}

// queues are one run loop's view of the two queues: a closed and drained
// queue is set to nil there, not in the shared batcher.
type queues struct{ single, bulk chan *job }

// admit reserves room for n texts, or refuses at once: the queue is never
// grown, so overload costs a 503, not memory.
func (b *batcher) admit(n int, bulk bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.limits.Queue
	if bulk {
		limit = b.limits.bulkShare()
		if n > limit {
			return fmt.Errorf("%w: %d texts, the queue takes at most %d from one request", errTooMany, n, limit)
		}
	}
	switch {
	case b.closed:
		return errShuttingDown
	case b.pending+n > limit:
		return errOverloaded
	}
	b.pending += n
	b.metrics.queueDepth.WithLabelValues(b.kind.String()).Set(float64(b.pending))
	return nil
}

// queued is the number of texts waiting.
func (b *batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending
}

func (b *batcher) taken() {
	b.mu.Lock()
	b.pending--
	b.metrics.queueDepth.WithLabelValues(b.kind.String()).Set(float64(b.pending))
	b.mu.Unlock()
}

// submit queues texts and waits for their vectors. A request whose client
// goes (or whose deadline passes) returns at once; its texts still queued
// are skipped, not computed.
func (b *batcher) submit(ctx context.Context, toks []vectorizer.Tokens, bulk bool) ([][]float32, error) {
	if err := b.admit(len(toks), bulk); err != nil {
		return nil, err
	}
	q := b.single
	if bulk {
		q = b.bulk
	}
	jobs := make([]*job, len(toks))
	for i, t := range toks {
		jobs[i] = &job{ctx: ctx, tokens: t, done: make(chan result, 1)}
		q <- jobs[i] // never blocks: admit reserved the room
	}
	out := make([][]float32, len(toks))
	for i, j := range jobs {
		select {
		case r := <-j.done:
			if r.err != nil {
				return nil, r.err
			}
			out[i] = r.vec
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// close stops taking work and returns once every queued text is answered.
func (b *batcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.single)
		close(b.bulk)
	}
	b.mu.Unlock()
	<-b.stopped
}

// next returns a queued job, one-text requests first. With block it waits
// for one; otherwise it takes only what is already queued. ok is false when
// nothing came (or, blocking, when the batcher is closed and drained).
func (q *queues) next(block bool) (j *job, ok bool) {
	for q.single != nil || q.bulk != nil {
		select {
		case j, ok = <-q.single:
			if !ok {
				q.single = nil
				continue
			}
			return j, true
		default:
		}
		if !block {
			select {
			case j, ok = <-q.bulk:
				if !ok {
					q.bulk = nil
					continue
				}
				return j, true
			default:
				return nil, false
			}
		}
		select {
		case j, ok = <-q.single:
			if !ok {
				q.single = nil
				continue
			}
		case j, ok = <-q.bulk:
			if !ok {
				q.bulk = nil
				continue
			}
		}
		return j, true
	}
	return nil, false
}

// run forms batches and encodes them, one at a time, until the queues are
// closed and drained; the batcher runs one loop per encoder worker.
func (b *batcher) run(q *queues) {
	var carry *job // the job that did not fit the previous batch
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = q.next(true); !ok {
				return
			}
			b.taken()
		}
		batch := []*job{first}
		longest := len(first.tokens.IDs)
		for len(batch) < b.limits.MaxTexts {
			j, ok := q.next(false)
			if !ok {
				break
			}
			b.taken()
			l := max(longest, len(j.tokens.IDs))
			if l*(len(batch)+1) > b.limits.MaxTokens {
				carry = j
				break
			}
			batch, longest = append(batch, j), l
		}
		b.encode(batch)
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
