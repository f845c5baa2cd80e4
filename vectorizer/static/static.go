// Package static is the static-embedding encoder: a learned vector per
// token, mean pooled over a text, optionally projected, then normalised (the
// architecture of sentence-transformers' StaticEmbedding and of model2vec).
// It is plain Go: a text costs a few microseconds, so it needs neither
// libtorch nor batching, and training touches only the rows a batch uses.
package static

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// Tensor names in model.safetensors.
const (
	EmbeddingsName = "embeddings.weight" // [vocab, embedding]
	ProjectionName = "projection.weight" // [hidden, embedding], when they differ
	BiasName       = "projection.bias"   // [hidden]
)

// Model is a static encoder's parameters. Encoding is safe for concurrent
// use; training updates it in place and must not overlap encoding.
type Model struct {
	Config modelconfig.Config
	Emb    []float32 // vocab x embedding, row-major
	Proj   []float32 // hidden x embedding, or nil
	Bias   []float32 // hidden, or nil
}

// New returns a zero model shaped by cfg (model_type static).
func New(cfg modelconfig.Config) (*Model, error) {
	if cfg.ModelType != modelconfig.Static {
		return nil, fmt.Errorf("model_type %q is not static", cfg.ModelType)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Emb: make([]float32, cfg.VocabSize*cfg.EmbeddingSize)}
	if m.projected() {
		m.Proj = make([]float32, cfg.HiddenSize*cfg.EmbeddingSize)
		m.Bias = make([]float32, cfg.HiddenSize)
	}
	return m, nil
}

func (m *Model) projected() bool { return m.Config.HiddenSize != m.Config.EmbeddingSize }

func (m *Model) dims() (e, h int) { return int(m.Config.EmbeddingSize), int(m.Config.HiddenSize) }

// Init draws the token vectors from N(0, 1) and the projection as
// HuggingFace initialises linear layers, from seed. The pad token's row is
// zero. Scale is irrelevant to cosine similarity; unit-scale rows keep
// Adam's steps (about lr) small relative to them.
func (m *Model) Init(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x57a71c))
	for i := range m.Emb {
		m.Emb[i] = float32(rng.NormFloat64())
	}
	e, _ := m.dims()
	if pad := int(m.Config.PadTokenID); pad >= 0 {
		clear(m.Emb[pad*e : (pad+1)*e])
	}
	for i := range m.Proj {
		m.Proj[i] = float32(rng.NormFloat64() * m.Config.InitializerRange)
	}
	clear(m.Bias)
}

// Tensors returns the parameters under their safetensors names.
func (m *Model) Tensors() (map[string]safetensors.Tensor, error) {
	c := m.Config
	out := map[string]safetensors.Tensor{}
	add := func(name string, shape []int64, v []float32) error {
		t, err := safetensors.FromFloat32(shape, v)
		out[name] = t
		return err
	}
	if err := add(EmbeddingsName, []int64{c.VocabSize, c.EmbeddingSize}, m.Emb); err != nil {
		return nil, err
	}
	if m.projected() {
		if err := add(ProjectionName, []int64{c.HiddenSize, c.EmbeddingSize}, m.Proj); err != nil {
			return nil, err
		}
		if err := add(BiasName, []int64{c.HiddenSize}, m.Bias); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Save writes the parameters as a safetensors file.
func (m *Model) Save(path string) error {
	t, err := m.Tensors()
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, t, map[string]string{"format": "pt"})
}

// Load reads the parameters from a safetensors file; each must be there with
// the shape config.json implies.
func (m *Model) Load(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	return m.LoadTensors(f.Tensors, path)
}

// LoadTensors sets the parameters from tensors (read from source, for
// errors).
func (m *Model) LoadTensors(tensors map[string]safetensors.Tensor, source string) error {
	c := m.Config
	want := map[string]struct {
		shape []int64
		dst   []float32
	}{EmbeddingsName: {[]int64{c.VocabSize, c.EmbeddingSize}, m.Emb}}
	if m.projected() {
		want[ProjectionName] = struct {
			shape []int64
			dst   []float32
		}{[]int64{c.HiddenSize, c.EmbeddingSize}, m.Proj}
		want[BiasName] = struct {
			shape []int64
			dst   []float32
		}{[]int64{c.HiddenSize}, m.Bias}
	}
	if _, ok := tensors[ProjectionName]; ok && !m.projected() {
		return fmt.Errorf("load %s: tensor %s is there but config.json's hidden_size %d equals embedding_size, which means no projection", source, ProjectionName, c.HiddenSize)
	}
	for name, w := range want {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("load %s: tensor %s is missing (config.json describes a static model with vocab_size %d, embedding_size %d, hidden_size %d)",
				source, name, c.VocabSize, c.EmbeddingSize, c.HiddenSize)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(w.shape) {
			return fmt.Errorf("load %s: tensor %s has shape %v in the checkpoint but config.json implies %v", source, name, t.Shape, w.shape)
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("load %s: tensor %s: %w", source, name, err)
		}
		copy(w.dst, v)
	}
	return nil
}

// Rows returns each token's vector in the output space: its embedding
// row, projected when the model has a projection. Projection is affine and
// the mean of rows is linear, so the mean of these rows is the projected
// mean of the embeddings: a table of them encodes every text with at least
// one token as the model does, and is what layouts without a projection
// (model2vec, sentence-transformers' StaticEmbedding) store.
func (m *Model) Rows() []float32 {
	if !m.projected() {
		return append([]float32(nil), m.Emb...)
	}
	e, h := m.dims()
	out := make([]float32, int(m.Config.VocabSize)*h)
	parallel(int(m.Config.VocabSize), func(id int) {
		row := m.Emb[id*e : (id+1)*e]
		for i := range h {
			out[id*h+i] = m.Bias[i] + dot(m.Proj[i*e:(i+1)*e], row)
		}
	})
	return out
}

// trace is what encoding one text leaves for its backward pass.
type trace struct {
	ids    []int64
	mean   []float32 // pooled token vectors [embedding]; without a projection, the vector itself
	norm   float64   // |projected mean| before normalisation
	vector []float32 // the output [hidden]
}

// encode pools ids (pad ids skipped) into the output vector, normalised if
// asked. Out-of-vocabulary ids are an error, not a crash.
func (m *Model) encode(ids []int64, normalize bool) (trace, error) {
	e, h := m.dims()
	t := trace{ids: ids, mean: make([]float32, e)}
	n := 0
	for _, id := range ids {
		if id < 0 || id >= m.Config.VocabSize {
			return t, fmt.Errorf("token id %d is outside the vocabulary of %d", id, m.Config.VocabSize)
		}
		if id == m.Config.PadTokenID {
			continue
		}
		addTo(t.mean, m.Emb[int(id)*e:(int(id)+1)*e])
		n++
	}
	if n > 0 {
		inv := 1 / float32(n)
		for j := range t.mean {
			t.mean[j] *= inv
		}
	}
	t.vector = t.mean
	if m.projected() {
		t.vector = make([]float32, h)
		for i := range t.vector {
			t.vector[i] = m.Bias[i] + dot(m.Proj[i*e:(i+1)*e], t.mean)
		}
	}
	var sq float64
	for _, x := range t.vector {
		sq += float64(x) * float64(x)
	}
	t.norm = math.Sqrt(sq)
	if normalize {
		// In place: backward needs the norm, not the raw vector, and needs
		// the mean (which the vector aliases without a projection) only for
		// a projection's gradient.
		inv := float32(1 / math.Max(t.norm, 1e-12))
		for i, x := range t.vector {
			t.vector[i] = x * inv
		}
	}
	return t, nil
}

// addTo adds src to dst (the same length), eight lanes at a time: the
// compiler drops the bounds checks and keeps the lanes in registers.
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d, s := dst[i:i+8:i+8], src[i:i+8:i+8]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// Encode returns one vector per text of token ids, spread over the cores
// for large batches.
func (m *Model) Encode(batch [][]int64, normalize bool) ([][]float32, error) {
	traces, err := m.encodeAll(batch, normalize)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(traces))
	for i, t := range traces {
		out[i] = t.vector
	}
	return out, nil
}

func (m *Model) encodeAll(batch [][]int64, normalize bool) ([]trace, error) {
	out := make([]trace, len(batch))
	errs := make([]error, len(batch))
	parallel(len(batch), func(i int) { out[i], errs[i] = m.encode(batch[i], normalize) })
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
	}
	return out, nil
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines; small n runs
// inline, where starting goroutines would cost more than the work.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}(w)
	}
	wg.Wait()
}

func dot(a, b []float32) float32 {
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}
