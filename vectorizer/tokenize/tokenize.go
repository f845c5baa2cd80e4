// Package tokenize turns text into the token ids HuggingFace's tokenizers
// give for the same tokenizer.json, and trains new WordPiece vocabularies
// for models trained from scratch.
//
// The pipeline is xling's own (see pipeline). It replaced
// github.com/sugarme/tokenizer v0.3.0, which differed from HuggingFace in
// every stage it was checked in: the normalisers, the pre-tokenisers, the
// matching of added tokens, and the Unigram, BPE and WordLevel models.
// TestMatchesHuggingFace holds it to HuggingFace's own library.
package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidUTF8 reports a text that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("text is not valid UTF-8")

// wordMargin is how many words past maxLen a text keeps before
// tokenising (see afterWords): slack for a last word the cut splits.
const wordMargin = 8

// Tokenizer encodes text for an encoder with a fixed maximum length.
type Tokenizer struct {
	pipe   *pipeline
	uni    *unigram // the Unigram model, when it is one
	tokens []string // id → token, added tokens included
	maxLen int
	padID  int
	raw    []byte // the tokenizer.json it was read from
	maxID  int    // the largest id Encode can return
	unkID  int    // the model's unk_token, -1 for Unigram or none
	plain  bool   // without the post-processor's special tokens
}

// JSON returns the tokenizer.json this tokenizer was read from.
func (t *Tokenizer) JSON() ([]byte, error) {
	if len(t.raw) == 0 {
		return nil, errors.New("tokenizer has no JSON source")
	}
	return t.raw, nil
}

// Load reads a tokenizer.json. maxLen is the longest sequence, special
// tokens included, that Encode returns.
func Load(path string, maxLen int) (*Tokenizer, error) {
	if maxLen < 3 {
		return nil, fmt.Errorf("load tokenizer %s: maximum length %d leaves no room for text", path, maxLen)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := parse(b, maxLen)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Parse reads a tokenizer.json held in memory, as Load reads a file.
func Parse(b []byte, maxLen int) (*Tokenizer, error) {
	if maxLen < 3 {
		return nil, fmt.Errorf("parse tokenizer: maximum length %d leaves no room for text", maxLen)
	}
	return parse(b, maxLen)
}

func parse(b []byte, maxLen int) (*Tokenizer, error) {
	t, err := parseModel(b, maxLen)
	if err != nil {
		return nil, err
	}
	t.raw = b
	t.maxID = len(t.tokens) - 1
	for _, id := range append(append([]int(nil), t.pipe.prefix...), t.pipe.suffix...) {
		t.maxID = max(t.maxID, id)
	}
	return t, nil
}

// MaxID is the largest token id Encode can return: a model's embedding
// table must have more rows.
func (t *Tokenizer) MaxID() int { return t.maxID }

func parseModel(b []byte, maxLen int) (*Tokenizer, error) {
	var doc tokenizerFile
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(doc.Model, &head); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json model: %w", err)
	}
	t := &Tokenizer{maxLen: maxLen, padID: -1, unkID: -1}
	var model wordModel
	var vocab map[string]int
	var err error
	switch head.Type {
	case "WordPiece":
		var m *wordPiece
		m, err = readWordPiece(doc.Model)
		if m != nil {
			model, vocab, t.unkID = m, m.vocab, m.unk
		}
	case "Unigram":
		t.uni, err = parseUnigram(b)
		if t.uni != nil {
			model, t.tokens = t.uni, append([]string(nil), t.uni.pieces...)
		}
	case "BPE":
		var m *bpe
		m, err = readBPE(doc.Model)
		if m != nil {
			model, vocab, t.unkID = m, m.vocab, m.unk
		}
	case "WordLevel":
		var m *wordLevel
		m, err = readWordLevel(doc.Model)
		if m != nil {
			model, vocab, t.unkID = m, m.vocab, m.unk
		}
	default:
		return nil, fmt.Errorf("unsupported model type %q (xling reads WordPiece, Unigram, BPE and WordLevel)", head.Type)
	}
	if err != nil {
		return nil, err
	}
	if t.pipe, err = newPipeline(doc, model); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json: %w", err)
	}
	for tok, id := range vocab {
		if err := t.setToken(id, tok); err != nil {
			return nil, err
		}
	}
	for _, a := range doc.AddedTokens {
		if err := t.setToken(a.ID, a.Content); err != nil {
			return nil, err
		}
	}
	for id, tok := range t.tokens {
		if (tok == "[PAD]" || tok == "<pad>") && t.padID < 0 {
			t.padID = id
		}
	}
	return t, nil
}

// maxVocab bounds token ids: no real vocabulary comes near it, and a
// corrupt id must not allocate gigabytes.
const maxVocab = 1 << 22

func (t *Tokenizer) setToken(id int, tok string) error {
	if id < 0 || id >= maxVocab {
		return fmt.Errorf("malformed tokenizer.json: token %q has the id %d, outside 0-%d", tok, id, maxVocab-1)
	}
	for id >= len(t.tokens) {
		t.tokens = append(t.tokens, "")
	}
	t.tokens[id] = tok
	return nil
}

// Vocab returns the token of each id, added tokens included ("" for an id
// the file leaves unused).
func (t *Tokenizer) Vocab() []string { return slices.Clone(t.tokens) }

// VocabSize is the number of token ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// PadID is the padding token's id, or -1 if the vocabulary has none.
func (t *Tokenizer) PadID() int { return t.padID }

// UnkID is the id of the model's unk_token, or -1 where the model names
// none. Like HuggingFace's Python binding, which exposes unk_token on
// WordPiece, BPE and WordLevel only, a Unigram model reports -1.
func (t *Tokenizer) UnkID() int { return t.unkID }

// WithoutSpecialTokens returns a tokenizer that encodes as HuggingFace's
// encode with add_special_tokens=False: the post-processor's tokens are
// left out, and truncation keeps MaxLen tokens of the text.
func (t *Tokenizer) WithoutSpecialTokens() *Tokenizer {
	c := *t
	c.plain = true
	return &c
}

// MaxLen is the longest sequence Encode returns.
func (t *Tokenizer) MaxLen() int { return t.maxLen }

// Check reports whether a text can be encoded: whether it is valid UTF-8.
// An empty text can: as in HuggingFace, it is the special tokens alone.
func Check(text string) error {
	if !utf8.ValidString(text) {
		for i, r := range text {
			if r == utf8.RuneError {
				return fmt.Errorf("%w (first bad byte at offset %d)", ErrInvalidUTF8, i)
			}
		}
	}
	return nil
}

// Encode tokenises one text with the tokenizer's special tokens (unless
// WithoutSpecialTokens made it). A text longer than MaxLen tokens is cut to
// MaxLen, keeping the special tokens around it, and truncated reports it.
func (t *Tokenizer) Encode(text string) (ids []int, truncated bool, err error) {
	if err := Check(text); err != nil {
		return nil, false, err
	}
	// Texts are cut by words, never by bytes: one word of any length can
	// be a single token (WordPiece's unk_token past max_input_chars_per_word,
	// WordLevel's), so a byte cut changes the tokens that follow it. How
	// long a text may be is the caller's limit (the sidecar's body size).
	if cut, ok := afterWords(text, t.maxLen+wordMargin); ok {
		text, truncated = text[:cut], true
	}
	ids, cut, err := t.encode(text)
	if err != nil {
		return nil, false, err
	}
	return ids, truncated || cut, nil
}

// afterWords returns where the n-th word holding a letter or digit ends,
// if more text follows; words are split at ASCII spaces only, which every
// pre-tokeniser xling loads splits at too. Such a word yields at least one
// token, so the tokens a sequence of maxLen keeps all come from the first
// maxLen words, and the text after them cannot change those. Tokenising
// the rest was most of a long passage's cost (MIRACL's passages average
// about 150 words against 64 tokens kept).
func afterWords(text string, n int) (int, bool) {
	words, counted := 0, false
	for i, r := range text {
		switch {
		case r == ' ':
			if counted {
				words++
				if words == n {
					return i, strings.TrimSpace(text[i:]) != ""
				}
			}
			counted = false
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			counted = true
		}
	}
	return 0, false
}

// encode returns the ids of text with special tokens, cut to maxLen as
// HuggingFace's truncation does (the text's tokens are cut so that the
// special tokens fit).
func (t *Tokenizer) encode(text string) (ids []int, truncated bool, err error) {
	p := t.pipe
	prefix, suffix := p.prefix, p.suffix
	if t.plain {
		prefix, suffix = nil, nil
	}
	room := t.maxLen - len(prefix) - len(suffix)
	content, err := p.encode(text, max(room, 0))
	if err != nil {
		return nil, false, err
	}
	if len(content) > room {
		content, truncated = content[:max(room, 0)], true
	}
	ids = make([]int, 0, len(prefix)+len(content)+len(suffix))
	ids = append(append(append(ids, prefix...), content...), suffix...)
	return ids, truncated, nil
}

// words normalises and pre-tokenises text as encoding does, returning the
// words the model would then split into pieces.
func (t *Tokenizer) words(text string) ([]string, error) {
	var out []string
	err := t.pipe.each(text, func(word string, _ int) error {
		if word != "" {
			out = append(out, word)
		}
		return nil
	})
	return out, err
}

// Tokens returns the token strings of ids, for debugging and tests.
func (t *Tokenizer) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && id < len(t.tokens) {
			out[i] = t.tokens[id]
		}
	}
	return out
}
