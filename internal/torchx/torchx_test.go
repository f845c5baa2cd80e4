package torchx

import (
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// encoder is a two-layer tower shared by queries and passages.
type encoder struct{ l1, l2 *nn.Linear }

func newEncoder(p *nn.Path, in, hidden, out int64) encoder {
	return encoder{l1: nn.NewLinear(p.Sub("l1"), in, hidden, nn.DefaultLinearConfig()), l2: nn.NewLinear(p.Sub("l2"), hidden, out, nn.DefaultLinearConfig())}
}

func (e encoder) forward(a *Arena, x *ts.Tensor) *ts.Tensor {
	h := a.Keep(e.l1.Forward(x))
	h = a.Keep(h.MustGelu("none", false))
	return a.Keep(e.l2.Forward(h))
}

// unit scales each row to length 1, so that dot products are cosines.
func unit(a *Arena, x *ts.Tensor) *ts.Tensor {
	norm := a.Keep(x.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false))
	return a.Keep(x.MustDiv(a.Keep(norm.MustClampMin(ts.FloatScalar(1e-12), false)), false))
}

// infoNCE is the in-batch contrastive loss over cosine similarities: row i
// of q must pick row i of p.
func infoNCE(a *Arena, q, p *ts.Tensor, temperature float64) *ts.Tensor {
	q, p = unit(a, q), unit(a, p)
	logits := a.Keep(q.MustMatmul(a.Keep(p.MustT(false)), false))
	logits = a.Keep(logits.MustDivScalar(ts.FloatScalar(temperature), false))
	n := q.MustSize()[0]
	targets := a.Keep(ts.MustArange(ts.IntScalar(n), gotch.Int64, gotch.CPU))
	return a.Keep(logits.CrossEntropyForLogits(targets))
}

// TestAdamWLearnsContrastiveTask checks the whole libtorch path xling depends
// on: forward, backward, AdamW and VarStore save/load, with every
// intermediate tensor freed through an Arena.
func TestAdamWLearnsContrastiveTask(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ManualSeed(7)
	SetThreads(1)
	if got := Threads(); got != 1 {
		t.Fatalf("Threads() = %d after SetThreads(1)", got)
	}

	vs := nn.NewVarStore(gotch.CPU)
	enc := newEncoder(vs.Root(), 32, 64, 16)
	opt, err := nn.DefaultAdamWConfig().Build(vs, 3e-2)
	if err != nil {
		t.Fatal(err)
	}
	var a Arena
	// A query and its passage share 8 signal dimensions; the other 24 are
	// loud noise drawn anew for each side. An untrained encoder mixes the
	// noise in and cannot pair them; training must learn to ignore it.
	docs := ts.MustRandn([]int64{256, 8}, gotch.Float, gotch.CPU)
	defer docs.MustDrop()
	withNoise := func(signal *ts.Tensor) *ts.Tensor {
		noise := a.Keep(ts.MustRandn([]int64{32, 24}, gotch.Float, gotch.CPU))
		noise = a.Keep(noise.MustMulScalar(ts.FloatScalar(1.5), false))
		return a.Keep(ts.MustCat([]*ts.Tensor{signal, noise}, 1))
	}

	var first, last float64
	const steps = 60
	for step := 0; step < steps; step++ {
		idx := a.Keep(ts.MustRandperm(256, gotch.Int64, gotch.CPU))
		idx = a.Keep(idx.MustNarrow(0, 0, 32, false))
		signal := a.Keep(docs.MustIndexSelect(0, idx, false))
		q, p := withNoise(signal), withNoise(signal)

		loss := infoNCE(&a, enc.forward(&a, q), enc.forward(&a, p), 0.1)
		opt.MustZeroGrad()
		loss.MustBackward()
		opt.MustStep()
		v := loss.Float64Values()[0]
		if math.IsNaN(v) {
			t.Fatalf("step %d: loss is NaN", step)
		}
		// Average five steps at each end: one batch's loss is noisy.
		if step < 5 {
			first += v / 5
		}
		if step >= steps-5 {
			last += v / 5
		}
		a.Free()
	}
	t.Logf("mean loss of the first and last 5 steps: %.4f -> %.4f over %d AdamW steps", first, last, steps)
	if last > first/2 {
		t.Fatalf("loss fell from %.4f to %.4f: less than half", first, last)
	}
	if a.Len() != 0 {
		t.Fatalf("arena holds %d tensors after Free", a.Len())
	}

	// The trained weights survive a save and load into a fresh store.
	path := filepath.Join(t.TempDir(), "model.ot")
	if err := vs.Save(path); err != nil {
		t.Fatal(err)
	}
	vs2 := nn.NewVarStore(gotch.CPU)
	enc2 := newEncoder(vs2.Root(), 32, 64, 16)
	if err := vs2.Load(path); err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{4, 32}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	ts.NoGrad(func() {
		y1 := enc.forward(&a, x)
		y2 := enc2.forward(&a, x)
		diff := a.Keep(a.Keep(y1.MustSub(y2, false)).MustAbs(false)).MustMax(false)
		if d := diff.Float64Values()[0]; d > 1e-6 {
			t.Errorf("loaded model differs from the saved one by %g", d)
		}
		diff.MustDrop()
	})
	a.Free()
}

// TestAllocatorIsTcmalloc: the binary's malloc (libtorch's too) is
// tcmalloc's, not glibc's, whose heap fragmented under a server's load.
func TestAllocatorIsTcmalloc(t *testing.T) {
	if lib := Allocator(); !strings.Contains(lib, "tcmalloc") {
		t.Fatalf("malloc comes from %q, want tcmalloc", lib)
	}
}
