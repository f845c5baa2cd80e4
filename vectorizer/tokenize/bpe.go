package tokenize

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// bpe is HuggingFace's BPE model. It replaces sugarme/tokenizer v0.3.0's,
// which merged in another order ("XXXIII" came out as XX X I II where
// HuggingFace keeps the merged piece) and lacked byte-level characters
// that the vocabulary holds.
type bpe struct {
	vocab       map[string]int
	merges      map[[2]int][2]int // pair of ids → rank, merged id
	unk         int               // -1: unknown characters are dropped, as HuggingFace does
	fuseUnk     bool
	byteFall    bool
	prefix      string // continuing_subword_prefix
	suffix      string // end_of_word_suffix
	ignoreMerge bool
}

func readBPE(raw json.RawMessage) (*bpe, error) {
	var m struct {
		Vocab       map[string]int    `json:"vocab"`
		Merges      []json.RawMessage `json:"merges"`
		Unk         *string           `json:"unk_token"`
		Prefix      *string           `json:"continuing_subword_prefix"`
		Suffix      *string           `json:"end_of_word_suffix"`
		FuseUnk     bool              `json:"fuse_unk"`
		ByteFall    bool              `json:"byte_fallback"`
		IgnoreMerge bool              `json:"ignore_merges"`
		Dropout     *float64          `json:"dropout"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("BPE model: %w", err)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fmt.Errorf("BPE dropout %g makes encoding random; xling serves deterministic ids", *m.Dropout)
	}
	b := &bpe{vocab: m.Vocab, merges: make(map[[2]int][2]int, len(m.Merges)), unk: -1,
		fuseUnk: m.FuseUnk, byteFall: m.ByteFall, ignoreMerge: m.IgnoreMerge}
	if m.Prefix != nil {
		b.prefix = *m.Prefix
	}
	if m.Suffix != nil {
		b.suffix = *m.Suffix
	}
	if m.Unk != nil {
		id, ok := m.Vocab[*m.Unk]
		if !ok {
			return nil, fmt.Errorf("BPE unk_token %q is not in the vocab", *m.Unk)
		}
		b.unk = id
	}
	for rank, raw := range m.Merges {
		var pair []string
		var line string
		if json.Unmarshal(raw, &line) == nil {
			pair = strings.Split(line, " ")
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("BPE merge %d is neither \"a b\" nor [a, b]", rank)
		}
		if len(pair) != 2 {
			return nil, fmt.Errorf("BPE merge %d %q is not a pair", rank, pair)
		}
		a, okA := m.Vocab[pair[0]]
		c, okB := m.Vocab[pair[1]]
		merged, okM := m.Vocab[pair[0]+strings.TrimPrefix(pair[1], b.prefix)]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("BPE merge %d %q names a token the vocab lacks", rank, pair)
		}
		b.merges[[2]int{a, c}] = [2]int{rank, merged}
	}
	return b, nil
}

func (b *bpe) tokenize(word string, ids []int) ([]int, error) {
	if b.ignoreMerge {
		if id, ok := b.vocab[word]; ok {
			return append(ids, id), nil
		}
	}
	syms := make([]int, 0, len(word))
	unkRun := false
	var buf []byte
	for i, r := range word {
		n := utf8.RuneLen(r)
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, b.prefix...)
		}
		buf = append(buf, word[i:i+n]...)
		if i+n == len(word) {
			buf = append(buf, b.suffix...)
		}
		if id, ok := b.vocab[string(buf)]; ok {
			syms, unkRun = append(syms, id), false
			continue
		}
		if b.byteFall && b.appendBytes(&syms, buf) {
			unkRun = false
			continue
		}
		if b.unk >= 0 && !(b.fuseUnk && unkRun) {
			syms = append(syms, b.unk)
		}
		unkRun = b.unk >= 0
	}
	// Merge the adjacent pair of lowest rank, leftmost first, until none
	// is left: the order of HuggingFace's merge queue.
	for len(syms) > 1 {
		best, at, id := -1, -1, 0
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := b.merges[[2]int{syms[i], syms[i+1]}]; ok && (best < 0 || m[0] < best) {
				best, at, id = m[0], i, m[1]
			}
		}
		if at < 0 {
			break
		}
		syms[at] = id
		syms = append(syms[:at+1], syms[at+2:]...)
	}
	return append(ids, syms...), nil
}

// appendBytes adds the <0xXX> tokens of s's bytes, if the vocab has all.
func (b *bpe) appendBytes(syms *[]int, s []byte) bool {
	n := len(*syms)
	for _, c := range s {
		id, ok := b.vocab[fmt.Sprintf("<0x%02X>", c)]
		if !ok {
			*syms = (*syms)[:n]
			return false
		}
		*syms = append(*syms, id)
	}
	return true
}
