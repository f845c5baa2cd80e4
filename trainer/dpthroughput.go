package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// StepThroughput is what DataParallelThroughput measures.
type StepThroughput struct {
	PairsPerSecond float64 // of the global batch
	CommShare      float64 // of a step's wall time, spent in collectives
	BytesPerStep   int64   // this rank's data handed to collectives per step
	Steps          int     // per round
}

// DataParallelThroughput measures xling train's own step (the encoder's
// loss and backward on a share of the batch, the gathered embeddings, the
// summed gradients, clipping and AdamW) on the model in modelDir, for one
// rank of g, or for a process alone when g is nil. The global batch holds
// batch pairs of random vocabulary words, seq tokens per text. After a
// warm-up, rank 0 fixes the steps per round so that a round takes about
// d/3, and every rank runs three rounds of them; the best round counts.
// threads also bounds the Go scheduler (GOMAXPROCS), which runs the static
// encoder.
func DataParallelThroughput(ctx context.Context, g Group, modelDir string, batch, seq, threads int, d time.Duration) (StepThroughput, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if threads > 0 {
		torchx.SetThreads(threads)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
	}
	mc, err := modelconfig.Read(filepath.Join(modelDir, vectorizer.ConfigFile))
	if err != nil {
		return StepThroughput{}, err
	}
	cfg := DefaultConfig()
	cfg.Init, cfg.Size, cfg.VocabSize, cfg.MaxLength, cfg.BatchSize, cfg.Seed = modelDir, "", 0, seq, batch, 1
	if mc.ModelType == modelconfig.Static {
		cfg.Arch = ArchStatic
	}
	r := &Run{Config: cfg}
	enc, err := r.startingModel(ctx)
	if err != nil {
		return StepThroughput{}, err
	}
	defer enc.close()
	pairs := randomPairs(enc.tokens().text.Vocab(), batch, seq-2)
	var timed *timedGroup
	var others *peers
	mine := pairs
	if g != nil {
		timed = &timedGroup{Group: g}
		others = &peers{timed}
		mine = shard(pairs, g.Rank(), g.Size())
	}
	step := func() error {
		if _, err := enc.lossBackward(mine, cfg, 1, others); err != nil {
			return err
		}
		if timed != nil {
			if err := enc.reduce(timed); err != nil {
				return err
			}
		}
		enc.step(1e-5, cfg.Clip)
		return nil
	}
	// Warm-up (tokenising and first allocations), then time one step.
	for i := 0; i < 2; i++ {
		if err := step(); err != nil {
			return StepThroughput{}, err
		}
	}
	start := time.Now()
	if err := step(); err != nil {
		return StepThroughput{}, err
	}
	steps := []byte(strconv.Itoa(max(1, int(d/3/max(time.Since(start), time.Microsecond)))))
	if g != nil {
		if steps, err = g.BroadcastBytes("steps per round", steps, 0); err != nil {
			return StepThroughput{}, err
		}
	}
	n, _ := strconv.Atoi(string(steps))
	var best StepThroughput
	for round := 0; round < 3; round++ {
		if timed != nil {
			timed.comm, timed.bytes = 0, 0
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return StepThroughput{}, err
			}
			if err := step(); err != nil {
				return StepThroughput{}, err
			}
		}
		wall := time.Since(start)
		got := StepThroughput{PairsPerSecond: float64(n*batch) / wall.Seconds(), Steps: n}
		if timed != nil {
			got.CommShare = timed.comm.Seconds() / wall.Seconds()
			got.BytesPerStep = timed.bytes / int64(n)
		}
		if got.PairsPerSecond > best.PairsPerSecond {
			best = got
		}
	}
	return best, nil
}

// randomPairs are batch pairs of texts of words words each, drawn from a
// vocabulary's whole words (no special tokens, no continuation pieces).
func randomPairs(vocab []string, batch, words int) []Pair {
	var pool []string
	for _, w := range vocab {
		if !strings.HasPrefix(w, "##") && !strings.HasPrefix(w, "[") && !strings.HasPrefix(w, "<") && strings.TrimSpace(w) != "" {
			pool = append(pool, w)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	text := func() string {
		ws := make([]string, max(words, 1))
		for i := range ws {
			ws[i] = pool[rng.IntN(len(pool))]
		}
		return strings.Join(ws, " ")
	}
	out := make([]Pair, batch)
	for i := range out {
		out[i] = Pair{Query: text(), Passage: text(), Group: fmt.Sprint(i)}
	}
	return out
}

// timedGroup counts the time and bytes this rank spends in collectives.
type timedGroup struct {
	Group
	comm  time.Duration
	bytes int64
}

func (t *timedGroup) time(n int, f func() error) error {
	start := time.Now()
	err := f()
	t.comm += time.Since(start)
	t.bytes += int64(n)
	return err
}

func (t *timedGroup) SumFloat32(op string, x []float32) error {
	return t.time(4*len(x), func() error { return t.Group.SumFloat32(op, x) })
}

func (t *timedGroup) SumFloat64(op string, x []float64) error {
	return t.time(8*len(x), func() error { return t.Group.SumFloat64(op, x) })
}

func (t *timedGroup) GatherFloat32(op string, x []float32, width int) (all []float32, offsets []int, err error) {
	err = t.time(4*len(x), func() error { all, offsets, err = t.Group.GatherFloat32(op, x, width); return err })
	return all, offsets, err
}

func (t *timedGroup) GatherInt64(op string, x []int64) (all []int64, offsets []int, err error) {
	err = t.time(8*len(x), func() error { all, offsets, err = t.Group.GatherInt64(op, x); return err })
	return all, offsets, err
}
