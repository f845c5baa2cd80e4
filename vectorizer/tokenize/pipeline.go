package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// pipeline is HuggingFace's encoding of one text, component for component:
// added tokens are cut out of the raw text, the rest is normalised (and
// added tokens with normalized: true are cut out of that), pre-tokenised
// into words, and each word goes to the model; the post-processor's
// special tokens go around the result. xling runs its own pipeline
// because sugarme/tokenizer v0.3.0 differs from HuggingFace in each stage
// (see normalizer and preTokenizer) and matched only one special token
// kind in a text ("a [MASK] b [UNK] c" kept [UNK] as text).
type pipeline struct {
	raw, normed    addedTokens // matched before and after normalisation
	normalizer     normalizer
	pre            preTokenizer
	model          wordModel
	prefix, suffix []int
}

// wordModel turns one pre-tokenised word into ids, appended to ids.
type wordModel interface {
	tokenize(word string, ids []int) ([]int, error)
}

// tokenizerFile is the part of tokenizer.json the pipeline reads.
type tokenizerFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         json.RawMessage `json:"model"`
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// newPipeline reads tokenizer.json around the given model.
func newPipeline(doc tokenizerFile, model wordModel) (*pipeline, error) {
	p := &pipeline{model: model}
	var err error
	if p.normalizer, err = readNormalizer(doc.Normalizer); err != nil {
		return nil, err
	}
	if p.pre, err = readPreTokenizer(doc.PreTokenizer); err != nil {
		return nil, err
	}
	if p.prefix, p.suffix, err = readPostProcessor(doc.PostProcessor); err != nil {
		return nil, err
	}
	var raw, normed []addedToken
	for _, t := range doc.AddedTokens {
		if t.ID < 0 {
			return nil, fmt.Errorf("added token %q has the negative id %d", t.Content, t.ID)
		}
		if t.Normalized && p.normalizer != nil {
			t.Content = p.normalizer.normalize(t.Content)
		}
		if t.Content == "" {
			continue // HuggingFace cannot match an empty token either
		}
		if t.Normalized {
			normed = append(normed, t)
		} else {
			raw = append(raw, t)
		}
	}
	p.raw, p.normed = newAddedTokens(raw), newAddedTokens(normed)
	return p, nil
}

// encode returns the ids of text without the post-processor's tokens.
func (p *pipeline) encode(text string, limit int) ([]int, error) {
	ids := make([]int, 0, min(len(text)/3, limit)+4)
	err := p.each(text, func(word string, id int) (err error) {
		if len(ids) > limit {
			// Tokens are appended in order and truncation keeps a prefix:
			// what follows cannot change the ids kept.
			return errEnough
		}
		if word == "" {
			ids = append(ids, id)
			return nil
		}
		ids, err = p.model.tokenize(word, ids)
		return err
	})
	if err == errEnough {
		err = nil
	}
	return ids, err
}

// errEnough stops encode once it has more ids than are kept.
var errEnough = errors.New("enough tokens")

// each calls fn, in order, with every added token of text (word "", its
// id) and every word the model must split (id -1).
func (p *pipeline) each(text string, fn func(word string, id int) error) error {
	words := make([]piece, 0, 16)
	for _, part := range p.raw.split(text) {
		if part.id >= 0 {
			if err := fn("", part.id); err != nil {
				return err
			}
			continue
		}
		s := part.text
		if p.normalizer != nil {
			s = p.normalizer.normalize(s)
		}
		for i, sub := range p.normed.split(s) {
			switch {
			case sub.id >= 0:
				if err := fn("", sub.id); err != nil {
					return err
				}
				continue
			case sub.text == "":
				// HuggingFace drops empty pieces before pre-tokenising, so
				// an empty text gets no Metaspace "▁".
				continue
			}
			words = append(words[:0], piece{sub.text, part.start == 0 && i == 0})
			if p.pre != nil {
				words = p.pre.preTokenize(words)
			}
			for _, w := range words {
				if w.text == "" {
					continue
				}
				if err := fn(w.text, -1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// addedTokens finds added tokens in a text: leftmost, longest first, as
// HuggingFace's Aho-Corasick matcher, with single_word, lstrip and rstrip.
type addedTokens struct {
	byFirst [256][]addedToken // by first byte, longest first
}

func newAddedTokens(ts []addedToken) addedTokens {
	var a addedTokens
	for _, t := range ts {
		b := t.Content[0]
		a.byFirst[b] = append(a.byFirst[b], t)
	}
	for i := range a.byFirst {
		sort.SliceStable(a.byFirst[i], func(x, y int) bool { return len(a.byFirst[i][x].Content) > len(a.byFirst[i][y].Content) })
	}
	return a
}

// part is a span of text: an added token (id ≥ 0) or text to tokenise.
type part struct {
	text  string
	start int
	id    int
}

func (a *addedTokens) split(s string) []part {
	var out []part
	last := 0
	for i := 0; i < len(s); {
		var hit *addedToken
		for k := range a.byFirst[s[i]] {
			if t := &a.byFirst[s[i]][k]; strings.HasPrefix(s[i:], t.Content) {
				hit = t
				break
			}
		}
		if hit == nil {
			i++
			continue
		}
		start, stop := i, i+len(hit.Content)
		i = stop
		if hit.SingleWord && (start > 0 && endsWithWord(s[:start]) || stop < len(s) && startsWithWord(s[stop:])) {
			continue
		}
		if hit.LStrip {
			start = max(len(strings.TrimRightFunc(s[:start], isWhitespace)), last)
		}
		if hit.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], isWhitespace))
			i = stop
		}
		if last < start {
			out = append(out, part{s[last:start], last, -1})
		}
		out = append(out, part{s[start:stop], start, hit.ID})
		last = stop
	}
	if last < len(s) || len(out) == 0 {
		out = append(out, part{s[last:], last, -1})
	}
	return out
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordChar(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordChar(r)
}

// readPostProcessor returns the special tokens a single text gets before
// and after it.
func readPostProcessor(raw json.RawMessage) (prefix, suffix []int, err error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	var c struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct{ ID string } `json:"SpecialToken"`
			Sequence     *struct{ ID string } `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct{ IDs []int } `json:"special_tokens"`
		CLS           []json.RawMessage              `json:"cls"`
		SEP           []json.RawMessage              `json:"sep"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "TemplateProcessing":
		seen := false
		for _, item := range c.Single {
			switch {
			case item.Sequence != nil:
				seen = true
			case item.SpecialToken != nil:
				st, ok := c.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("post_processor names special token %q but does not define it", item.SpecialToken.ID)
				}
				if seen {
					suffix = append(suffix, st.IDs...)
				} else {
					prefix = append(prefix, st.IDs...)
				}
			}
		}
	case "RobertaProcessing", "BertProcessing":
		var clsID, sepID int
		if len(c.CLS) != 2 || len(c.SEP) != 2 || json.Unmarshal(c.CLS[1], &clsID) != nil || json.Unmarshal(c.SEP[1], &sepID) != nil {
			return nil, nil, fmt.Errorf("malformed %s post_processor", c.Type)
		}
		prefix, suffix = []int{clsID}, []int{sepID}
	case "ByteLevel":
		// Offsets only.
	case "Sequence":
		for i, m := range c.Processors {
			p, s, err := readPostProcessor(m)
			if err != nil {
				return nil, nil, fmt.Errorf("Sequence member %d: %w", i, err)
			}
			// Each processor wraps what the ones before it produced.
			prefix, suffix = append(p, prefix...), append(suffix, s...)
		}
	default:
		return nil, nil, fmt.Errorf("unsupported post_processor %q", c.Type)
	}
	for _, id := range append(append([]int(nil), prefix...), suffix...) {
		if id < 0 {
			return nil, nil, fmt.Errorf("post_processor token id %d is negative", id)
		}
	}
	return prefix, suffix, nil
}
