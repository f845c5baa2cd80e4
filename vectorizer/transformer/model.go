package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
)

// Model is a BERT-style encoder whose parameters live in a gotch VarStore
// under HuggingFace's names (embeddings.word_embeddings.weight, …).
type Model struct {
	Config modelconfig.Config
	vs     *nn.VarStore
	params map[string]*ts.Tensor
	shapes map[string][]int64
	layers []layer

	// Scalars reused by every forward pass: each gotch Scalar is C memory.
	invSqrtHead *ts.Scalar
	maskFill    *ts.Scalar
	one         *ts.Scalar
}

// linear is a dense layer; q, when set by Quantize, replaces it in
// inference with its int8 version.
type linear struct {
	w, b *ts.Tensor
	q    *torchx.QLinear
}

type layerNorm struct {
	w, b *ts.Tensor
	dim  int64
}

type layer struct {
	q, k, v, attnOut, inter, out linear
	attnNorm, outNorm            layerNorm
}

// New creates a model with zero parameters; Init or Load fills them.
func New(cfg modelconfig.Config, device gotch.Device) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{
		Config: cfg, vs: nn.NewVarStore(device),
		params: map[string]*ts.Tensor{}, shapes: map[string][]int64{},
		invSqrtHead: ts.FloatScalar(1 / math.Sqrt(float64(cfg.HiddenSize/cfg.NumAttentionHeads))),
		maskFill:    ts.FloatScalar(-1e9),
		one:         ts.FloatScalar(1),
	}
	h, in := cfg.HiddenSize, cfg.IntermediateSize
	m.param("embeddings.word_embeddings.weight", cfg.VocabSize, h)
	m.param("embeddings.position_embeddings.weight", cfg.MaxPositionEmbeddings, h)
	m.param("embeddings.token_type_embeddings.weight", cfg.TypeVocabSize, h)
	m.param("embeddings.LayerNorm.weight", h)
	m.param("embeddings.LayerNorm.bias", h)
	for i := int64(0); i < cfg.NumHiddenLayers; i++ {
		p := fmt.Sprintf("encoder.layer.%d.", i)
		m.layers = append(m.layers, layer{
			q:        m.linear(p+"attention.self.query", h, h),
			k:        m.linear(p+"attention.self.key", h, h),
			v:        m.linear(p+"attention.self.value", h, h),
			attnOut:  m.linear(p+"attention.output.dense", h, h),
			attnNorm: m.layerNorm(p+"attention.output.LayerNorm", h),
			inter:    m.linear(p+"intermediate.dense", in, h),
			out:      m.linear(p+"output.dense", h, in),
			outNorm:  m.layerNorm(p+"output.LayerNorm", h),
		})
	}
	return m, nil
}

// param creates one trainable tensor at a dotted HuggingFace name.
func (m *Model) param(name string, shape ...int64) *ts.Tensor {
	parts := strings.Split(name, ".")
	p := m.vs.Root()
	for _, s := range parts[:len(parts)-1] {
		p = p.Sub(s)
	}
	t := p.MustZeros(parts[len(parts)-1], shape)
	m.params[name] = t
	m.shapes[name] = shape
	return t
}

func (m *Model) linear(prefix string, out, in int64) linear {
	return linear{w: m.param(prefix+".weight", out, in), b: m.param(prefix+".bias", out)}
}

func (m *Model) layerNorm(prefix string, dim int64) layerNorm {
	return layerNorm{w: m.param(prefix+".weight", dim), b: m.param(prefix+".bias", dim), dim: dim}
}

// Params returns the parameters by HuggingFace name, for an optimiser.
func (m *Model) Params() map[string]*ts.Tensor { return m.params }

// Names lists the parameter names in a stable order.
func (m *Model) Names() []string {
	names := make([]string, 0, len(m.params))
	for n := range m.params {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Init draws parameters as HuggingFace does for a new model: weights from
// N(0, initializer_range), biases 0, LayerNorm weights 1. The draw uses Go's
// generator, so a seed gives the same model on every machine and libtorch.
func (m *Model) Init(seed uint64) {
	runtime.LockOSThread() // set's no-grad mode is per OS thread
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(seed, 0x786c696e67))
	std := m.Config.InitializerRange
	for _, name := range m.Names() {
		shape := m.shapes[name]
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		switch {
		case strings.Contains(name, "LayerNorm.weight"):
			for i := range v {
				v[i] = 1
			}
		case strings.HasSuffix(name, ".bias"):
		default:
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
			if name == "embeddings.word_embeddings.weight" {
				// HuggingFace zeroes the padding row.
				row := m.Config.PadTokenID * shape[1]
				clear(v[row : row+shape[1]])
			}
		}
		m.set(name, v)
	}
}

func (m *Model) set(name string, v []float32) {
	src := ts.MustOfSlice(v).MustView(m.shapes[name], true)
	ts.NoGrad(func() { m.params[name].Copy_(src) })
	src.MustDrop()
}

// checkpointName maps the names other HuggingFace heads and older
// checkpoints use onto the encoder's own.
func checkpointName(name string) string {
	for _, prefix := range []string{"bert.", "roberta.", "model."} {
		name = strings.TrimPrefix(name, prefix)
	}
	name = strings.Replace(name, "LayerNorm.gamma", "LayerNorm.weight", 1)
	return strings.Replace(name, "LayerNorm.beta", "LayerNorm.bias", 1)
}

// Load reads parameters from a safetensors file. Every parameter must be
// present with the shape config.json implies; tensors the encoder does not
// use (a pooler, a language-model head) are ignored and returned.
func (m *Model) Load(path string) (ignored []string, err error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread() // set's no-grad mode is per OS thread
	defer runtime.UnlockOSThread()
	found := map[string]safetensors.Tensor{}
	for raw, t := range f.Tensors {
		name := checkpointName(raw)
		if _, ok := m.params[name]; ok {
			found[name] = t
		} else {
			ignored = append(ignored, raw)
		}
	}
	sort.Strings(ignored)
	for _, name := range m.Names() {
		t, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("load %s: tensor %s is missing (config.json describes a %s with %d layers)", path, name, m.Config.ModelType, m.Config.NumHiddenLayers)
		}
		if !sameShape(t.Shape, m.shapes[name]) {
			return nil, fmt.Errorf("load %s: tensor %s has shape %v in the checkpoint but config.json implies %v", path, name, t.Shape, m.shapes[name])
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("load %s: tensor %s: %w", path, name, err)
		}
		m.set(name, v)
	}
	return ignored, nil
}

// Tensors returns the parameters as safetensors tensors under their
// HuggingFace names.
func (m *Model) Tensors() (map[string]safetensors.Tensor, error) {
	out := make(map[string]safetensors.Tensor, len(m.params))
	for name, p := range m.params {
		v := make([]float32, p.Numel())
		if err := p.CopyData(v, p.Numel()); err != nil {
			return nil, fmt.Errorf("read parameter %s: %w", name, err)
		}
		t, err := safetensors.FromFloat32(m.shapes[name], v)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// Save writes the parameters as a safetensors file.
func (m *Model) Save(path string) error {
	tensors, err := m.Tensors()
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"})
}

// Quantize puts dynamic int8 versions of the encoder's linear layers (the
// attention projections and the feed-forward pair, as
// torch.ao.quantization.quantize_dynamic does for nn.Linear) in place for
// inference. Training keeps using the float weights.
func (m *Model) Quantize() error {
	for i := range m.layers {
		l := &m.layers[i]
		for _, lin := range []*linear{&l.q, &l.k, &l.v, &l.attnOut, &l.inter, &l.out} {
			q, err := torchx.NewQLinear(lin.w, lin.b)
			if err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
			lin.q = q
		}
	}
	return nil
}

// Close frees the parameters.
func (m *Model) Close() {
	for i := range m.layers {
		l := &m.layers[i]
		for _, lin := range []*linear{&l.q, &l.k, &l.v, &l.attnOut, &l.inter, &l.out} {
			if lin.q != nil {
				lin.q.Free()
				lin.q = nil
			}
		}
	}
	m.vs.Destroy()
	m.invSqrtHead.MustDrop()
	m.maskFill.MustDrop()
	m.one.MustDrop()
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Forward runs the encoder over token ids [B, T] with attention mask [B, T]
// (1 for tokens, 0 for padding) and returns the last hidden states
// [B, T, H]. Dropout is active only when train is true. The caller drops
// the result; every intermediate is freed here.
func (m *Model) Forward(ids, mask *ts.Tensor, train bool) *ts.Tensor {
	var a torchx.Arena
	defer a.Free()
	cfg := m.Config
	size := ids.MustSize()
	batch, seq := size[0], size[1]

	positions := m.positionIDs(&a, mask, seq)
	x := a.Keep(ts.MustEmbedding(m.params["embeddings.word_embeddings.weight"], ids, -1, false, false))
	x = a.Keep(x.MustAdd(a.Keep(ts.MustEmbedding(m.params["embeddings.position_embeddings.weight"], positions, -1, false, false)), false))
	// Token type 0 for every token: a single-segment encoder.
	typeRow := a.Keep(m.params["embeddings.token_type_embeddings.weight"].MustNarrow(0, 0, 1, false))
	x = a.Keep(x.MustAdd(typeRow, false))
	x = m.norm(&a, x, layerNorm{w: m.params["embeddings.LayerNorm.weight"], b: m.params["embeddings.LayerNorm.bias"], dim: cfg.HiddenSize})
	x = m.dropout(&a, x, cfg.HiddenDropoutProb, train)

	// Additive mask over keys: 0 where attended, -1e9 on padding, [B,1,1,T].
	maskF := a.Keep(mask.MustTotype(gotch.Float, false))
	bias := a.Keep(maskF.MustRsubScalar(m.one, false))
	bias = a.Keep(bias.MustMulScalar(m.maskFill, false))
	bias = a.Keep(bias.MustView([]int64{batch, 1, 1, seq}, false))

	for i := range m.layers {
		x = m.layerForward(&a, &m.layers[i], x, bias, batch, seq, train)
	}
	return x.MustShallowClone()
}

func (m *Model) positionIDs(a *torchx.Arena, mask *ts.Tensor, seq int64) *ts.Tensor {
	off := m.Config.PositionOffset()
	if m.Config.ModelType == "xlm-roberta" {
		// As HuggingFace: cumulative count of real tokens, padding at pad_token_id.
		mask64 := a.Keep(mask.MustTotype(gotch.Int64, false))
		cum := a.Keep(mask64.MustCumsum(1, gotch.Int64, false))
		cum = a.Keep(cum.MustMul(mask64, false))
		return a.Keep(cum.MustAddScalar(a.KeepScalar(ts.IntScalar(m.Config.PadTokenID)), false))
	}
	return a.Keep(ts.MustArangeStart(a.KeepScalar(ts.IntScalar(off)), a.KeepScalar(ts.IntScalar(off+seq)), gotch.Int64, mask.MustDevice()))
}

func (m *Model) layerForward(a *torchx.Arena, l *layer, x, bias *ts.Tensor, batch, seq int64, train bool) *ts.Tensor {
	cfg := m.Config
	heads := cfg.NumAttentionHeads
	dh := cfg.HiddenSize / heads
	split := func(t *ts.Tensor) *ts.Tensor { // [B,T,H] -> [B,heads,T,dh]
		t = a.Keep(t.MustView([]int64{batch, seq, heads, dh}, false))
		return a.Keep(t.MustPermute([]int64{0, 2, 1, 3}, false))
	}
	q := split(m.lin(a, x, l.q))
	k := split(m.lin(a, x, l.k))
	v := split(m.lin(a, x, l.v))
	scores := a.Keep(q.MustMatmul(a.Keep(k.MustTranspose(-1, -2, false)), false))
	scores = a.Keep(scores.MustMulScalar(m.invSqrtHead, false))
	scores = a.Keep(scores.MustAdd(bias, false))
	probs := a.Keep(scores.MustSoftmax(-1, gotch.Float, false))
	probs = m.dropout(a, probs, cfg.AttentionProbsDropoutProb, train)
	ctx := a.Keep(probs.MustMatmul(v, false))
	ctx = a.Keep(ctx.MustPermute([]int64{0, 2, 1, 3}, false))
	ctx = a.Keep(ctx.MustContiguous(false))
	ctx = a.Keep(ctx.MustView([]int64{batch, seq, cfg.HiddenSize}, false))

	h := m.dropout(a, m.lin(a, ctx, l.attnOut), cfg.HiddenDropoutProb, train)
	x = m.norm(a, a.Keep(h.MustAdd(x, false)), l.attnNorm)

	h = m.lin(a, x, l.inter)
	h = a.Keep(h.MustGelu(cfg.GELUApproximate(), false))
	h = m.dropout(a, m.lin(a, h, l.out), cfg.HiddenDropoutProb, train)
	return m.norm(a, a.Keep(h.MustAdd(x, false)), l.outNorm)
}

func (m *Model) lin(a *torchx.Arena, x *ts.Tensor, l linear) *ts.Tensor {
	if l.q != nil {
		y, err := l.q.Forward(x)
		if err != nil {
			panic(err) // as gotch's Must functions: the worker recovers it
		}
		return a.Keep(y)
	}
	return a.Keep(ts.MustLinear(x, l.w, l.b))
}

func (m *Model) norm(a *torchx.Arena, x *ts.Tensor, n layerNorm) *ts.Tensor {
	return a.Keep(ts.MustLayerNorm(x, []int64{n.dim}, n.w, n.b, m.Config.LayerNormEps, false))
}

func (m *Model) dropout(a *torchx.Arena, x *ts.Tensor, p float64, train bool) *ts.Tensor {
	if !train || p == 0 {
		return x
	}
	return a.Keep(ts.MustDropout(x, p, true))
}
