package tokenize

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// wordPiece is HuggingFace's WordPiece model: greedy longest match from
// the start of a word, later pieces carrying the continuing prefix, and
// the whole word unknown when any part has no piece or when it is longer
// than maxChars characters.
type wordPiece struct {
	vocab    map[string]int
	unk      int
	prefix   string
	maxChars int
}

func readWordPiece(raw json.RawMessage) (*wordPiece, error) {
	var m struct {
		Vocab    map[string]int `json:"vocab"`
		Unk      string         `json:"unk_token"`
		Prefix   *string        `json:"continuing_subword_prefix"`
		MaxChars *int           `json:"max_input_chars_per_word"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("WordPiece model: %w", err)
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("WordPiece model has an empty vocab")
	}
	w := &wordPiece{vocab: m.Vocab, prefix: "##", maxChars: 100}
	if m.Prefix != nil {
		w.prefix = *m.Prefix
	}
	if m.MaxChars != nil {
		w.maxChars = *m.MaxChars
	}
	if m.Unk == "" {
		m.Unk = "[UNK]"
	}
	unk, ok := m.Vocab[m.Unk]
	if !ok {
		return nil, fmt.Errorf("WordPiece unk_token %q is not in the vocab", m.Unk)
	}
	w.unk = unk
	return w, nil
}

func (w *wordPiece) tokenize(word string, ids []int) ([]int, error) {
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(ids, w.unk), nil
	}
	n0 := len(ids)
	var scratch [64]byte
	buf := scratch[:0]
	for start := 0; start < len(word); {
		end, found := len(word), -1
		for start < end {
			var id int
			var ok bool
			if start == 0 {
				id, ok = w.vocab[word[:end]]
			} else {
				buf = append(append(buf[:0], w.prefix...), word[start:end]...)
				id, ok = w.vocab[string(buf)]
			}
			if ok {
				found = id
				break
			}
			_, n := utf8.DecodeLastRuneInString(word[start:end])
			end -= n
		}
		if found < 0 {
			return append(ids[:n0], w.unk), nil
		}
		ids = append(ids, found)
		start = end
	}
	return ids, nil
}

// wordLevel is HuggingFace's WordLevel model: one id a word, unk_token's
// for the rest.
type wordLevel struct {
	vocab map[string]int
	unk   int
}

func readWordLevel(raw json.RawMessage) (*wordLevel, error) {
	var m struct {
		Vocab map[string]int `json:"vocab"`
		Unk   string         `json:"unk_token"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("WordLevel model: %w", err)
	}
	unk, ok := m.Vocab[m.Unk]
	if !ok {
		return nil, fmt.Errorf("WordLevel unk_token %q is not in the vocab", m.Unk)
	}
	return &wordLevel{vocab: m.Vocab, unk: unk}, nil
}

func (w *wordLevel) tokenize(word string, ids []int) ([]int, error) {
	if id, ok := w.vocab[word]; ok {
		return append(ids, id), nil
	}
	return append(ids, w.unk), nil
}
