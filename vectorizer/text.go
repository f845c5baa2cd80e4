package vectorizer

import (
	"fmt"
	"unicode/utf8"

	"github.com/xling-ir/xling/vectorizer/modelconfig"
	"github.com/xling-ir/xling/vectorizer/tokenize"
)

// Tokens is one tokenised text ready for the encoder.
type Tokens struct {
	IDs       []int64
	Truncated bool // the text was cut to the maximum length
}

// TextTokenizer prepares texts for one model: the kind's prefix from
// xling.json, then tokenizer.json, and the id that pads a batch. The
// vectorizer and the trainer both use it, so that a model is trained on
// the ids it is served with.
type TextTokenizer struct {
	tok   *tokenize.Tokenizer
	opts  Options
	pad   int64
	rules textRules // a foreign layout's; zero for xling's own
}

// NewTextTokenizer checks that tok fits the model of cfg (every id it can
// produce is a row of the table) and fixes the pad id: the tokenizer's
// padding token, else config.json's pad_token_id.
func NewTextTokenizer(tok *tokenize.Tokenizer, opts Options, cfg modelconfig.Config) (*TextTokenizer, error) {
	if tok.MaxID() >= int(cfg.VocabSize) {
		return nil, fmt.Errorf("tokenizer.json can produce token id %d but config.json's vocab_size is %d (ids 0-%d)", tok.MaxID(), cfg.VocabSize, cfg.VocabSize-1)
	}
	pad := cfg.PadTokenID
	if id := tok.PadID(); id >= 0 {
		pad = int64(id)
	}
	return &TextTokenizer{tok: tok, opts: opts, pad: pad}, nil
}

// Tokenize prepares one text: the kind's prefix, then the tokenizer.
func (t *TextTokenizer) Tokenize(text string, kind Kind) (Tokens, error) {
	prefix := t.opts.PassagePrefix
	if kind == Query {
		prefix = t.opts.QueryPrefix
	}
	// Checked before the prefix is added, so that the offset of a bad byte
	// it reports is the text's own.
	if err := tokenize.Check(text); err != nil {
		return Tokens{}, err
	}
	text = prefix + text
	cut := false
	if n := t.rules.maxRunes; n > 0 && utf8.RuneCountInString(text) > n {
		i := 0
		for range n {
			_, size := utf8.DecodeRuneInString(text[i:])
			i += size
		}
		text, cut = text[:i], true
	}
	ids, truncated, err := t.tok.Encode(text)
	if err != nil {
		return Tokens{}, err
	}
	unk := -1
	if t.rules.dropUnk {
		unk = t.tok.UnkID()
	}
	out := Tokens{IDs: make([]int64, 0, len(ids)), Truncated: truncated || cut}
	for _, id := range ids {
		if id != unk {
			out.IDs = append(out.IDs, int64(id))
		}
	}
	if n := t.rules.maxIDs; n > 0 && len(out.IDs) > n {
		out.IDs, out.Truncated = out.IDs[:n], true
	}
	return out, nil
}

// PadID fills the positions past a text's end in a batch.
func (t *TextTokenizer) PadID() int64 { return t.pad }

// MaxTokens is the longest tokenised text; longer ones are truncated.
func (t *TextTokenizer) MaxTokens() int { return t.tok.MaxLen() }

// Options are the xling.json settings the texts are prepared with.
func (t *TextTokenizer) Options() Options { return t.opts }

// JSON is tokenizer.json, for writing a model directory.
func (t *TextTokenizer) JSON() ([]byte, error) { return t.tok.JSON() }

// Vocab is the tokenizer's vocabulary, by id.
func (t *TextTokenizer) Vocab() []string { return t.tok.Vocab() }
