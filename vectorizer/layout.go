package vectorizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"

	"github.com/xling-ir/xling/internal/safetensors"
	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/static"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// The files of the static-embedding layouts that model2vec and
// sentence-transformers write, which Load reads besides xling's own.
const (
	ModulesFile   = "modules.json"                      // sentence-transformers' module list
	STConfigFile  = "config_sentence_transformers.json" // its prompts
	staticModule  = "sentence_transformers.models.StaticEmbedding"
	normalizeMod  = "sentence_transformers.models.Normalize"
	model2vecType = "model2vec" // config.json's model_type
	m2vMaxTokens  = 512         // StaticModel.encode's default max_length
	stMaxTokens   = 1 << 16     // stands for sentence-transformers' unbounded length
)

// textRules are how a layout prepares texts beyond xling.json: the static
// layouts encode without special tokens, and model2vec also cuts the text
// and drops unknown tokens before truncating.
type textRules struct {
	plain    bool // no special tokens (add_special_tokens=False)
	maxRunes int  // cut the text to this many characters first; 0: no cut
	dropUnk  bool // remove unk_token's id before truncation
	maxIDs   int  // then keep this many ids; 0: the tokenizer's length
}

// layout is a model directory in a foreign layout, read into xling's terms.
type layout struct {
	cfg       modelconfig.Config
	opts      Options
	tokenizer string // tokenizer.json's path
	rules     textRules
	rows      []float32 // [vocab, dims]: every token's vector, weights applied
}

// readLayout recognises a model2vec or sentence-transformers static model
// in dir. It returns nil for any other directory (xling's or HuggingFace's
// own layout). model2vec writes modules.json too, so that
// sentence-transformers can load its models; its own config.json decides,
// and such a directory is read as model2vec's StaticModel reads it.
func readLayout(dir string) (*layout, error) {
	var head struct {
		ModelType string `json:"model_type"`
		Normalize bool   `json:"normalize"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, ConfigFile)); err == nil {
		// A config.json that does not parse is reported by the reader of
		// the layout it belongs to.
		if json.Unmarshal(b, &head) == nil && head.ModelType == model2vecType {
			return readModel2Vec(dir, head.Normalize)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, ModulesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ModulesFile, err)
	}
	var modules []struct {
		Type string `json:"type"`
		Path string `json:"path"`
	}
	if err := json.Unmarshal(b, &modules); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ModulesFile), err)
	}
	if len(modules) == 0 || modules[0].Type != staticModule {
		return nil, nil // a transformer pipeline: config.json at the root describes it
	}
	normalize := false
	for _, m := range modules[1:] {
		if m.Type != normalizeMod {
			return nil, fmt.Errorf("model directory %s: %s: module %s after StaticEmbedding is not supported (xling reads StaticEmbedding, optionally followed by Normalize)", dir, ModulesFile, m.Type)
		}
		normalize = true
	}
	return readSentenceTransformers(dir, filepath.Join(dir, modules[0].Path), normalize)
}

// readModel2Vec reads model2vec's layout as StaticModel.encode uses it:
// the text cut to 512 × the median token length in characters, tokenised
// without special tokens, unk_token's id dropped, 512 ids kept, each row
// (looked up through "mapping" when the vocabulary is quantised) scaled by
// "weights", averaged (zeros for a text without tokens), and L2-normalised
// if config.json says normalize. The prompts of
// config_sentence_transformers.json, which model2vec leaves to its caller,
// are prepended as sentence-transformers' encode_query and encode_document
// do, before the cut.
func readModel2Vec(dir string, normalize bool) (*layout, error) {
	tokPath := filepath.Join(dir, TokenizerFile)
	tok, err := tokenize.Load(tokPath, 3)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rows, dims, err := tableRows(f, path, "embeddings", tok.VocabSize())
	if err != nil {
		return nil, err
	}
	median := medianTokenRunes(tok)
	// Every character yields at most a few tokens (a byte-level BPE one up
	// to 4), so this length never truncates the cut text before unknown
	// tokens are dropped.
	maxLen := max(4*m2vMaxTokens*median, m2vMaxTokens)
	opts := Options{Pooling: PoolMean, Normalize: normalize, MaxSeqLength: maxLen}
	if opts.QueryPrefix, opts.PassagePrefix, err = readPrompts(filepath.Join(dir, STConfigFile)); err != nil {
		return nil, err
	}
	return &layout{
		cfg:       staticConfig(len(rows)/dims, dims, maxLen),
		opts:      opts,
		tokenizer: tokPath,
		rules:     textRules{plain: true, maxRunes: m2vMaxTokens * median, dropUnk: true, maxIDs: m2vMaxTokens},
		rows:      rows,
	}, nil
}

// readSentenceTransformers reads a SentenceTransformer of a StaticEmbedding
// module (in sub) and an optional Normalize: nn.EmbeddingBag's mean over
// every id of a text tokenised without special tokens, truncated only where
// tokenizer.json sets truncation. Prompts named query and document (or
// passage) in config_sentence_transformers.json become the prefixes.
func readSentenceTransformers(dir, sub string, normalize bool) (*layout, error) {
	tokPath := filepath.Join(sub, TokenizerFile)
	raw, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var trunc struct {
		Truncation *struct {
			MaxLength int `json:"max_length"`
		} `json:"truncation"`
	}
	if err := json.Unmarshal(raw, &trunc); err != nil {
		return nil, fmt.Errorf("load tokenizer %s: malformed tokenizer.json: %w", tokPath, err)
	}
	maxLen := stMaxTokens
	if trunc.Truncation != nil && trunc.Truncation.MaxLength > 0 {
		maxLen = min(trunc.Truncation.MaxLength, stMaxTokens)
	}
	tok, err := tokenize.Load(tokPath, max(maxLen, 3))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(sub, WeightsFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := "embedding.weight"
	if _, ok := f.Tensors[name]; !ok {
		name = "embeddings" // a model2vec file, which StaticEmbedding.load accepts too
	}
	rows, dims, err := tableRows(f, path, name, tok.VocabSize())
	if err != nil {
		return nil, err
	}
	opts := Options{Pooling: PoolMean, Normalize: normalize, MaxSeqLength: max(maxLen, 3)}
	if opts.QueryPrefix, opts.PassagePrefix, err = readPrompts(filepath.Join(dir, STConfigFile)); err != nil {
		return nil, err
	}
	return &layout{
		cfg:       staticConfig(len(rows)/dims, dims, opts.MaxSeqLength),
		opts:      opts,
		tokenizer: tokPath,
		rules:     textRules{plain: true},
		rows:      rows,
	}, nil
}

// readPrompts returns the query and passage prompts of a
// config_sentence_transformers.json; a missing file has none.
func readPrompts(path string) (query, passage string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", path, err)
	}
	var c struct {
		Prompts map[string]string `json:"prompts"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", "", fmt.Errorf("read %s: %w", path, err)
	}
	passage, ok := c.Prompts["document"]
	if !ok {
		passage = c.Prompts["passage"]
	}
	return c.Prompts["query"], passage, nil
}

// tableRows returns one row per token id of the embedding table name,
// scaled by the optional per-token "weights" and looked up through the
// optional "mapping" (model2vec's vocabulary quantisation), as the
// flattened [ids, dims] table xling's static encoder averages over.
func tableRows(f *safetensors.File, path, name string, vocab int) ([]float32, int, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, 0, fmt.Errorf("load %s: tensor %q is missing", path, name)
	}
	if len(t.Shape) != 2 || t.Shape[0] <= 0 || t.Shape[1] <= 0 {
		return nil, 0, fmt.Errorf("load %s: tensor %s has shape %v, want [vocabulary, dimensions]", path, name, t.Shape)
	}
	emb, err := t.Float32()
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: tensor %s: %w", path, name, err)
	}
	n, dims := int(t.Shape[0]), int(t.Shape[1])
	var mapping []int64
	if m, ok := f.Tensors["mapping"]; ok {
		if mapping, err = m.Int64(); err != nil || len(m.Shape) != 1 {
			return nil, 0, fmt.Errorf("load %s: tensor mapping (dtype %s, shape %v) is not a list of row indices: %v", path, m.DType, m.Shape, err)
		}
		for id, row := range mapping {
			if row < 0 || row >= int64(n) {
				return nil, 0, fmt.Errorf("load %s: mapping sends token %d to row %d of %d", path, id, row, n)
			}
		}
		n = len(mapping)
	}
	if n != vocab {
		return nil, 0, fmt.Errorf("load %s: %d token vectors for the %d tokens of tokenizer.json", path, n, vocab)
	}
	var weights []float32
	if w, ok := f.Tensors["weights"]; ok {
		if weights, err = w.Float32(); err != nil || len(w.Shape) != 1 || len(weights) != n {
			return nil, 0, fmt.Errorf("load %s: tensor weights (dtype %s, shape %v) is not one weight per token of %d: %v", path, w.DType, w.Shape, n, err)
		}
	}
	if mapping == nil && weights == nil {
		return emb, dims, nil
	}
	rows := make([]float32, n*dims)
	for id := range n {
		src := id
		if mapping != nil {
			src = int(mapping[id])
		}
		dst := rows[id*dims : (id+1)*dims]
		copy(dst, emb[src*dims:(src+1)*dims])
		if weights != nil {
			for j := range dst {
				dst[j] *= weights[id]
			}
		}
	}
	return rows, dims, nil
}

// medianTokenRunes is model2vec's median_token_length: the median length
// in characters of the vocabulary's tokens, truncated to an integer.
func medianTokenRunes(tok *tokenize.Tokenizer) int {
	var lens []int
	for _, s := range tok.Vocab() {
		if s != "" {
			lens = append(lens, utf8.RuneCountInString(s))
		}
	}
	if len(lens) == 0 {
		return 1
	}
	slices.Sort(lens)
	n := len(lens)
	if n%2 == 1 {
		return lens[n/2]
	}
	return (lens[n/2-1] + lens[n/2]) / 2
}

func staticConfig(vocab, dims, maxLen int) modelconfig.Config {
	c := modelconfig.NewStatic(int64(vocab), int64(dims), int64(dims), int64(maxLen))
	c.PadTokenID = -1
	return c
}

// model returns the layout's table as a static model of no projection.
func (l *layout) model() (*static.Model, error) {
	m, err := static.New(l.cfg)
	if err != nil {
		return nil, err
	}
	m.Emb = l.rows
	return m, nil
}

// WriteModel2Vec writes the static model in dir as a model2vec directory
// that model2vec's StaticModel and sentence-transformers both load: the
// projection folded into each token's row (see static.Model.Rows),
// tokenizer.json as it is, "normalize" from xling.json, modules.json with
// StaticEmbedding and Normalize, and xling.json's prefixes as the query and
// document prompts of config_sentence_transformers.json.
//
// Those libraries encode without special tokens and never prepend a
// prompt on their own, so the written model is xling's without its special
// tokens: its vectors are close to xling's, not equal (a text with no
// token at all gets zeros there, the projection's bias here).
func WriteModel2Vec(dir, out string) error {
	cfg, err := modelconfig.Read(filepath.Join(dir, ConfigFile))
	if err != nil {
		return err
	}
	if cfg.ModelType != modelconfig.Static {
		return fmt.Errorf("model directory %s holds a %s model: only static models have the model2vec layout", dir, cfg.ModelType)
	}
	opts, err := readOptions(dir)
	if err != nil {
		return err
	}
	if opts.QueryModel != "" {
		return fmt.Errorf("model directory %s has a separate query encoder (%s), which model2vec's one table cannot hold", dir, opts.QueryModel)
	}
	tokJSON, err := os.ReadFile(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return fmt.Errorf("read tokenizer: %w", err)
	}
	tok, err := tokenize.Load(filepath.Join(dir, TokenizerFile), 3)
	if err != nil {
		return err
	}
	if err := CheckWeights(cfg, filepath.Join(dir, WeightsFile)); err != nil {
		return err
	}
	m, err := static.New(cfg)
	if err != nil {
		return fmt.Errorf("model directory %s: %w", dir, err)
	}
	if err := m.Load(filepath.Join(dir, WeightsFile)); err != nil {
		return err
	}
	// model2vec wants one row per token of tokenizer.json; rows past the
	// tokenizer's ids are never looked up.
	vocab, dims := tok.VocabSize(), int(cfg.HiddenSize)
	if vocab > int(cfg.VocabSize) {
		return fmt.Errorf("model directory %s: tokenizer.json has %d tokens but config.json's vocab_size is %d", dir, vocab, cfg.VocabSize)
	}
	emb, err := safetensors.FromFloat32([]int64{int64(vocab), int64(dims)}, m.Rows()[:vocab*dims])
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("write model2vec directory: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(out, WeightsFile), map[string]safetensors.Tensor{"embeddings": emb}, nil); err != nil {
		return err
	}
	modules := []map[string]any{{"idx": 0, "name": "0", "path": ".", "type": staticModule}}
	if opts.Normalize {
		modules = append(modules, map[string]any{"idx": 1, "name": "1", "path": "1_Normalize", "type": normalizeMod})
		if err := os.MkdirAll(filepath.Join(out, "1_Normalize"), 0o755); err != nil {
			return fmt.Errorf("write model2vec directory: %w", err)
		}
	}
	files := []struct {
		name string
		v    any
	}{
		{ConfigFile, map[string]any{
			"model_type": model2vecType, "architectures": []string{"StaticModel"},
			"hidden_dim": dims, "seq_length": m2vMaxTokens, "normalize": opts.Normalize,
			"embedding_dtype": "float32", "xling_source": cfg,
		}},
		{ModulesFile, modules},
		{STConfigFile, map[string]any{
			"prompts":             map[string]string{"query": opts.QueryPrefix, "document": opts.PassagePrefix},
			"default_prompt_name": nil, "similarity_fn_name": "cosine",
		}},
	}
	for _, f := range files {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, f.name), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(out, TokenizerFile), tokJSON, 0o644); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	return nil
}
