// Package tokenize turns text into token ids with a HuggingFace
// tokenizer.json (through github.com/sugarme/tokenizer), and trains new
// WordPiece vocabularies for models trained from scratch.
package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretrained"
	"golang.org/x/text/unicode/norm"
)

// ErrEmpty reports a text with nothing to encode.
var ErrEmpty = errors.New("text is empty")

// ErrInvalidUTF8 reports a text that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("text is not valid UTF-8")

// maxBytesPerToken bounds how much text is tokenised before truncation: no
// tokenizer emits fewer tokens than bytes/64, so cutting a text there keeps
// every token that survives truncation while sparing the tokenizer megabytes.
const maxBytesPerToken = 64

// wordMargin is how many words past maxLen a text keeps before
// tokenising (see afterWords): slack for a last word the cut splits.
const wordMargin = 8

// Tokenizer encodes text for an encoder with a fixed maximum length.
type Tokenizer struct {
	tk     *tokenizer.Tokenizer // WordPiece, BPE: the library's pipeline
	uni    *unigram             // Unigram (SentencePiece): xling's own
	maxLen int
	padID  int
	// nfkc: the tokenizer.json normalises with NFKC, which sugarme/tokenizer
	// v0.3.0 gets wrong (it panics when NFKC removes characters, e.g. on
	// some Arabic and compatibility forms). Applying NFKC with x/text first
	// leaves the library's own pass nothing to change.
	nfkc bool
	// clean: BERT's clean_text drops control and format characters, and
	// sugarme/tokenizer panics when one starts the text (a right-to-left
	// mark before an Arabic question, say); dropping them first is the same
	// result without the panic.
	clean bool
	raw   []byte // the tokenizer.json it was read from
	maxID int    // the largest id Encode can return
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

func parse(b []byte, maxLen int) (*Tokenizer, error) {
	t, err := parseModel(b, maxLen)
	if err != nil {
		return nil, err
	}
	t.raw = b
	if t.maxID, err = maxListedID(b); err != nil {
		return nil, err
	}
	if t.uni != nil {
		t.maxID = max(t.maxID, len(t.uni.pieces)-1)
	} else {
		for token, id := range t.tk.GetVocab(true) {
			if id < 0 {
				return nil, fmt.Errorf("token %q has the negative id %d", token, id)
			}
			t.maxID = max(t.maxID, id)
		}
	}
	return t, nil
}

// maxListedID is the largest id that tokenizer.json lists outside the
// model's vocabulary: added tokens and the post-processor's special tokens.
func maxListedID(b []byte) (int, error) {
	var doc struct {
		AddedTokens []struct {
			ID int `json:"id"`
		} `json:"added_tokens"`
		PostProcessor json.RawMessage `json:"post_processor"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("malformed tokenizer.json: %w", err)
	}
	maxID := -1
	for _, t := range doc.AddedTokens {
		if t.ID < 0 {
			return 0, fmt.Errorf("added token id %d is negative", t.ID)
		}
		maxID = max(maxID, t.ID)
	}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			for _, x := range v {
				walk(x, key)
			}
		case float64:
			// "ids" of TemplateProcessing, the [token, id] pairs "cls" and
			// "sep" of BertProcessing and RobertaProcessing.
			if key == "ids" || key == "cls" || key == "sep" {
				maxID = max(maxID, int(min(v, math.MaxInt32)))
			}
		}
	}
	var pp any
	if len(doc.PostProcessor) > 0 && json.Unmarshal(doc.PostProcessor, &pp) == nil {
		walk(pp, "")
	}
	return maxID, nil
}

// MaxID is the largest token id Encode can return: a model's embedding
// table must have more rows.
func (t *Tokenizer) MaxID() int { return t.maxID }

func parseModel(b []byte, maxLen int) (*Tokenizer, error) {
	var head struct {
		Normalizer json.RawMessage `json:"normalizer"`
		Model      struct {
			Type string `json:"type"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json: %w", err)
	}
	if head.Model.Type == "Unigram" {
		uni, err := parseUnigram(b)
		if err != nil {
			return nil, err
		}
		t := &Tokenizer{uni: uni, maxLen: maxLen, padID: -1}
		if id, ok := uni.ids["<pad>"]; ok {
			t.padID = id
		}
		return t, nil
	}
	tk, err := fromJSON(b)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{tk: tk, maxLen: maxLen, nfkc: nfkcRe.Match(head.Normalizer), clean: cleanTextRe.Match(head.Normalizer)}
	t.padID = -1
	for _, pad := range []string{"[PAD]", "<pad>"} {
		if id, ok := tk.TokenToId(pad); ok {
			t.padID = id
			break
		}
	}
	return t, nil
}

var (
	nfkcRe      = regexp.MustCompile(`"type"\s*:\s*"NFKC"`)
	cleanTextRe = regexp.MustCompile(`"clean_text"\s*:\s*true`)
)

// fromJSON wraps the library's loader, which panics on some malformed files.
func fromJSON(b []byte) (tk *tokenizer.Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed tokenizer.json: %v", r)
		}
	}()
	return pretrained.FromReader(bytes.NewReader(b))
}

// VocabSize is the number of token ids, added tokens included.
func (t *Tokenizer) VocabSize() int {
	if t.uni != nil {
		return len(t.uni.pieces)
	}
	return t.tk.GetVocabSize(true)
}

// PadID is the padding token's id, or -1 if the vocabulary has none.
func (t *Tokenizer) PadID() int { return t.padID }

// MaxLen is the longest sequence Encode returns.
func (t *Tokenizer) MaxLen() int { return t.maxLen }

// Check reports whether a text can be encoded at all: valid UTF-8 holding
// something other than white space and control characters.
func Check(text string) error {
	if !utf8.ValidString(text) {
		for i, r := range text {
			if r == utf8.RuneError {
				return fmt.Errorf("%w (first bad byte at offset %d)", ErrInvalidUTF8, i)
			}
		}
	}
	for _, r := range text {
		if !unicode.IsSpace(r) && !unicode.IsControl(r) {
			return nil
		}
	}
	return ErrEmpty
}

// Encode tokenises one text with the tokenizer's special tokens. A text
// longer than MaxLen tokens is cut to MaxLen, keeping the closing special
// token, and truncated reports it.
func (t *Tokenizer) Encode(text string) (ids []int, truncated bool, err error) {
	if err := Check(text); err != nil {
		return nil, false, err
	}
	if limit := t.maxLen * maxBytesPerToken; len(text) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text, truncated = text[:cut], true
	}
	if cut, ok := afterWords(text, t.maxLen+wordMargin); ok {
		text, truncated = text[:cut], true
	}
	ids, special, err := t.encode(text)
	if err != nil {
		return nil, false, err
	}
	if len(ids) > t.maxLen {
		last := ids[len(ids)-1]
		ids = append(ids[:t.maxLen-1:t.maxLen-1], last)
		truncated = true
	}
	if onlySpecial(ids, special) {
		// The text normalised away to nothing (control characters, say).
		return nil, false, fmt.Errorf("%w after normalisation", ErrEmpty)
	}
	return ids, truncated, nil
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

func onlySpecial(ids []int, special func(i int) bool) bool {
	for i := range ids {
		if !special(i) {
			return false
		}
	}
	return true
}

// encode returns the ids of text with special tokens, and which are special.
func (t *Tokenizer) encode(text string) (ids []int, special func(i int) bool, err error) {
	if t.uni != nil {
		ids, err := t.uni.encode(text)
		if err != nil {
			return nil, nil, err
		}
		return ids, func(i int) bool { return t.uni.special[ids[i]] }, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tokenize: %v", r)
		}
	}()
	enc, err := t.tk.EncodeSingle(t.prenormalize(text), true)
	if err != nil {
		return nil, nil, err
	}
	mask := enc.SpecialTokenMask
	return enc.Ids, func(i int) bool { return i < len(mask) && mask[i] != 0 }, nil
}

func (t *Tokenizer) prenormalize(text string) string {
	if t.clean {
		text = strings.Map(func(r rune) rune {
			if r != '\t' && r != '\n' && r != '\r' && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co) {
				return -1
			}
			return r
		}, text)
	}
	if t.nfkc {
		return norm.NFKC.String(text)
	}
	return text
}

// words normalises and pre-tokenises text as encoding does, returning the
// words the model would then split into pieces.
func (t *Tokenizer) words(text string) (out []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tokenize: %v", r)
		}
	}()
	ns, err := t.tk.GetNormalizer().Normalize(normalizer.NewNormalizedFrom(t.prenormalize(text)))
	if err != nil {
		return nil, fmt.Errorf("normalise: %w", err)
	}
	pt, err := t.tk.GetPreTokenizer().PreTokenize(tokenizer.NewPreTokenizedStringFromNS(ns))
	if err != nil {
		return nil, fmt.Errorf("pre-tokenise: %w", err)
	}
	for _, w := range pt.GetSplits(normalizer.NormalizedTarget, tokenizer.Byte) {
		if w.Value != "" {
			out = append(out, w.Value)
		}
	}
	return out, nil
}

// Tokens returns the token strings of ids, for debugging and tests.
func (t *Tokenizer) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if t.uni != nil {
			if id >= 0 && id < len(t.uni.pieces) {
				out[i] = t.uni.pieces[id]
			}
			continue
		}
		out[i], _ = t.tk.IdToToken(id)
	}
	return out
}
