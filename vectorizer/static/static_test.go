package static

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

func testModel(t *testing.T, embedding, hidden int64) *Model {
	t.Helper()
	m, err := New(modelconfig.NewStatic(50, embedding, hidden, 64))
	if err != nil {
		t.Fatal(err)
	}
	m.Init(7)
	return m
}

func batch() Contrastive {
	return Contrastive{
		Queries:     [][]int64{{1, 5, 9}, {2, 6}, {3, 7, 11, 0, 0}, {4, 8, 12, 13}},
		Passages:    [][]int64{{1, 14, 15}, {2, 16, 6}, {17, 3}, {18, 19, 4}},
		Negatives:   [][]int64{{20, 21}},
		Temperature: 0.1, Symmetric: true,
	}
}

// The hand-written backward pass must match finite differences of the loss,
// for every parameter kind, with and without the projection.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	for _, shape := range [][2]int64{{8, 8}, {8, 6}} {
		m := testModel(t, shape[0], shape[1])
		// A projection of initialisation scale (0.02) makes the loss so
		// curved that finite differences mislead; check at a larger one.
		for i := range m.Proj {
			m.Proj[i] *= 20
		}
		g := m.NewGrad()
		if _, err := m.LossBackward(batch(), 1, g); err != nil {
			t.Fatal(err)
		}
		loss := func() float64 {
			l, err := m.LossBackward(batch(), 1, m.NewGrad())
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		check := func(name string, w []float32, i int, analytic float64) {
			const h = 1e-2
			orig := w[i]
			w[i] = orig + h
			up := loss()
			w[i] = orig - h
			down := loss()
			w[i] = orig
			numeric := (up - down) / (2 * h)
			if math.Abs(numeric-analytic) > 2e-3+0.02*math.Abs(numeric) {
				t.Errorf("shape %v: d loss / d %s[%d] = %.6f by hand, %.6f numerically", shape, name, i, analytic, numeric)
			}
		}
		e := int(shape[0])
		for _, id := range []int64{1, 3, 6, 20} {
			for j := 0; j < e; j += 3 {
				check("emb", m.Emb, int(id)*e+j, g.Rows[id][j])
			}
		}
		for i := 0; i < len(m.Proj); i += 7 {
			check("proj", m.Proj, i, g.Proj[i])
		}
		for i := range m.Bias {
			check("bias", m.Bias, i, g.Bias[i])
		}
		if _, ok := g.Rows[0]; ok {
			t.Errorf("the pad token got a gradient")
		}
		if _, ok := g.Rows[30]; ok {
			t.Errorf("token 30 is in no text but got a gradient")
		}
	}
}

// A step touches only the rows the batch used, and lowers the loss.
func TestAdamWIsSparseAndLearns(t *testing.T) {
	m := testModel(t, 16, 16)
	before := slices.Clone(m.Emb)
	opt := NewAdamW(m, 0.01)
	first := 0.0
	for step := 0; step < 50; step++ {
		g := m.NewGrad()
		l, err := m.LossBackward(batch(), 1, g)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = l
		}
		opt.Step(g, 0.05, 1)
	}
	last, _ := m.LossBackward(batch(), 1, m.NewGrad())
	if last > first/4 {
		t.Errorf("loss %.4f -> %.4f after 50 steps; want it to fall at least 4x", first, last)
	}
	for _, id := range []int{0, 10, 30, 49} {
		if !slices.Equal(before[id*16:(id+1)*16], m.Emb[id*16:(id+1)*16]) {
			t.Errorf("row %d, in no batch, changed", id)
		}
	}
	if slices.Equal(before[16:32], m.Emb[16:32]) {
		t.Errorf("row 1, in the batch, did not change")
	}
}

func TestEncodeAndSaveLoad(t *testing.T) {
	m := testModel(t, 8, 4)
	vecs, err := m.Encode([][]int64{{1, 2, 0, 0}, {1, 2}, {}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vecs[0], vecs[1]) {
		t.Errorf("pad tokens changed a vector: %v vs %v", vecs[0], vecs[1])
	}
	var n float64
	for _, x := range vecs[0] {
		n += float64(x * x)
	}
	if math.Abs(n-1) > 1e-5 {
		t.Errorf("|v|^2 = %g, want 1", n)
	}
	if _, err := m.Encode([][]int64{{1, 50}}, true); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("id 50 of 50: %v", err)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	m2, _ := New(m.Config)
	if err := m2.Load(path); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Emb, m2.Emb) || !slices.Equal(m.Proj, m2.Proj) || !slices.Equal(m.Bias, m2.Bias) {
		t.Error("save/load changed the parameters")
	}
	wrong, _ := New(modelconfig.NewStatic(50, 8, 8, 64))
	if err := wrong.Load(path); err == nil || !strings.Contains(err.Error(), "no projection") {
		t.Errorf("loading into another shape: %v", err)
	}
}
