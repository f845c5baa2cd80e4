package tokenize

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// unigram is a SentencePiece-compatible Unigram tokenizer (XLM-RoBERTa's
// kind), read from a tokenizer.json. It replaces sugarme/tokenizer's
// Unigram path, which disagrees with SentencePiece: it panics on decomposed
// accents, emits the Devanagari virama as the text "U+094D", ignores the
// collapsing of white space, and never matches pieces over 20 bytes. The
// algorithm is SentencePiece's own: its normaliser (precompiled character
// map, longest match first; white space trimmed, collapsed and escaped as
// "▁"; a dummy prefix) and Viterbi segmentation with unknown characters
// scored at the lowest piece score minus 10.
type unigram struct {
	ids            map[string]int
	pieces         []string
	scores         []float64
	maxPieceBytes  int
	unkID          int
	unkScore       float64
	charsmap       *charsmap
	addDummyPrefix bool
	special        map[int]bool
}

// unigramJSON is the part of tokenizer.json a Unigram tokenizer reads.
type unigramJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type  string              `json:"type"`
		UnkID *int                `json:"unk_id"`
		Vocab [][]json.RawMessage `json:"vocab"`
	} `json:"model"`
}

func parseUnigram(b []byte) (*unigram, error) {
	var doc unigramJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json: %w", err)
	}
	u := &unigram{ids: map[string]int{}, special: map[int]bool{}, unkID: -1}
	minScore := math.Inf(1)
	for i, entry := range doc.Model.Vocab {
		var piece string
		var score float64
		if len(entry) != 2 || json.Unmarshal(entry[0], &piece) != nil || json.Unmarshal(entry[1], &score) != nil {
			return nil, fmt.Errorf("malformed tokenizer.json: Unigram vocab entry %d is not [piece, score]", i)
		}
		if _, dup := u.ids[piece]; !dup {
			u.ids[piece] = i
		}
		u.pieces = append(u.pieces, piece)
		u.scores = append(u.scores, score)
		u.maxPieceBytes = max(u.maxPieceBytes, len(piece))
	}
	if len(u.pieces) == 0 {
		return nil, errors.New("malformed tokenizer.json: empty Unigram vocab")
	}
	for _, t := range doc.AddedTokens {
		if t.Special {
			u.special[t.ID] = true
		}
	}
	for i, s := range u.scores {
		if !u.special[i] {
			minScore = math.Min(minScore, s)
		}
	}
	u.unkScore = minScore - 10
	if doc.Model.UnkID != nil {
		if id := *doc.Model.UnkID; id < 0 || id >= len(u.pieces) {
			return nil, fmt.Errorf("malformed tokenizer.json: unk_id %d is outside the Unigram vocab of %d pieces", id, len(u.pieces))
		}
		u.unkID = *doc.Model.UnkID
		u.special[u.unkID] = false
	}

	// The charsmap and dummy prefix serve piecesOf, SentencePiece's reading
	// of the file; encoding goes through the pipeline, HuggingFace's.
	norms, err := flatten(doc.Normalizer, "normalizers")
	if err != nil {
		return nil, err
	}
	for _, n := range norms {
		if n.Type == "Precompiled" && n.PrecompiledCharsmap != "" {
			raw, err := base64.StdEncoding.DecodeString(n.PrecompiledCharsmap)
			if err != nil {
				return nil, fmt.Errorf("malformed precompiled_charsmap: %w", err)
			}
			if u.charsmap, err = parseCharsmap(raw); err != nil {
				return nil, err
			}
		}
	}
	pres, err := flatten(doc.PreTokenizer, "pretokenizers")
	if err != nil {
		return nil, err
	}
	for _, p := range pres {
		if p.Type == "Metaspace" {
			u.addDummyPrefix = p.PrependScheme != "never" && (p.AddPrefixSpace == nil || *p.AddPrefixSpace || p.PrependScheme != "")
		}
	}
	return u, nil
}

// component is a normalizer or pre-tokenizer entry.
type component struct {
	Type                string            `json:"type"`
	PrecompiledCharsmap string            `json:"precompiled_charsmap"`
	AddPrefixSpace      *bool             `json:"add_prefix_space"`
	PrependScheme       string            `json:"prepend_scheme"`
	Normalizers         []json.RawMessage `json:"normalizers"`
	Pretokenizers       []json.RawMessage `json:"pretokenizers"`
}

// flatten unrolls a Sequence into its members.
func flatten(raw json.RawMessage, key string) ([]component, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("malformed tokenizer.json %s: %w", key, err)
	}
	if c.Type != "Sequence" {
		return []component{c}, nil
	}
	members := c.Normalizers
	if key == "pretokenizers" {
		members = c.Pretokenizers
	}
	var out []component
	for _, m := range members {
		sub, err := flatten(m, key)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// normalize applies SentencePiece's normaliser.
func (u *unigram) normalize(text string) string {
	var out strings.Builder
	prevSpace := true // also drops leading white space
	if u.addDummyPrefix {
		out.WriteString("▁")
	}
	for len(text) > 0 {
		repl, n := u.normalizePrefix(text)
		text = text[n:]
		if prevSpace {
			repl = strings.TrimLeft(repl, " ")
		}
		if repl == "" {
			continue
		}
		out.WriteString(strings.ReplaceAll(repl, " ", "▁"))
		prevSpace = strings.HasSuffix(repl, " ")
	}
	s := out.String()
	for strings.HasSuffix(s, "▁") {
		s = strings.TrimSuffix(s, "▁")
	}
	return s
}

// normalizePrefix returns the replacement of the longest prefix the
// character map knows, or the first character unchanged.
func (u *unigram) normalizePrefix(s string) (string, int) {
	if u.charsmap != nil {
		if repl, n, ok := u.charsmap.longest(s); ok {
			return repl, n
		}
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return "\uFFFD", 1
	}
	return s[:n], n
}

// segment finds the highest-scoring split of a normalised text into pieces.
func (u *unigram) segment(s string) []span {
	n := len(s)
	best := make([]float64, n+1)
	from := make([]int, n+1)
	piece := make([]int, n+1)
	for i := 1; i <= n; i++ {
		best[i] = math.Inf(-1)
	}
	for i := 0; i < n; i++ {
		if math.IsInf(best[i], -1) || !utf8.RuneStart(s[i]) {
			continue
		}
		_, charLen := utf8.DecodeRuneInString(s[i:])
		single := false
		for l := 1; l <= u.maxPieceBytes && i+l <= n; l++ {
			id, ok := u.ids[s[i:i+l]]
			if !ok || u.special[id] || id == u.unkID {
				continue
			}
			if l == charLen {
				single = true
			}
			if sc := best[i] + u.scores[id]; sc > best[i+l] {
				best[i+l], from[i+l], piece[i+l] = sc, i, id
			}
		}
		if !single {
			if sc := best[i] + u.unkScore; sc > best[i+charLen] {
				best[i+charLen], from[i+charLen], piece[i+charLen] = sc, i, u.unkID
			}
		}
	}
	var rev []span
	for i := n; i > 0; i = from[i] {
		sp := span{id: piece[i], start: from[i], end: i}
		// SentencePiece merges a run of unknown characters into one piece.
		if sp.id == u.unkID && len(rev) > 0 && rev[len(rev)-1].id == u.unkID {
			rev[len(rev)-1].start = sp.start
			continue
		}
		rev = append(rev, sp)
	}
	out := make([]span, len(rev))
	for i := range rev {
		out[len(rev)-1-i] = rev[i]
	}
	return out
}

// span is one piece of a segmentation and the bytes it covers.
type span struct{ id, start, end int }

// tokenize appends the ids of one pre-tokenised word.
func (u *unigram) tokenize(word string, ids []int) ([]int, error) {
	for _, sp := range u.segment(word) {
		if sp.id < 0 {
			// As HuggingFace's Unigram: without unk_id, an unknown piece is an error.
			return nil, fmt.Errorf("%q is not in the vocabulary and tokenizer.json gives no unk_id", word[sp.start:sp.end])
		}
		ids = append(ids, sp.id)
	}
	return ids, nil
}

// piecesOf returns the pieces of text without special tokens, unknown ones
// as their text: what spm_encode --output_format=piece prints.
func (u *unigram) piecesOf(text string) []string {
	norm := u.normalize(text)
	var out []string
	for _, sp := range u.segment(norm) {
		out = append(out, norm[sp.start:sp.end])
	}
	return out
}

// charsmap is SentencePiece's precompiled normalisation map: a darts-clone
// double-array trie over UTF-8 keys whose values index a blob of
// NUL-terminated replacements.
type charsmap struct {
	units []uint32
	blob  []byte
}

func parseCharsmap(b []byte) (*charsmap, error) {
	if len(b) < 4 {
		return nil, errors.New("precompiled_charsmap is truncated")
	}
	size := binary.LittleEndian.Uint32(b)
	if size%4 != 0 || uint64(size) > uint64(len(b)-4) {
		return nil, fmt.Errorf("precompiled_charsmap trie size %d does not fit its %d bytes", size, len(b))
	}
	units := make([]uint32, size/4)
	for i := range units {
		units[i] = binary.LittleEndian.Uint32(b[4+4*i:])
	}
	return &charsmap{units: units, blob: b[4+size:]}, nil
}

// longest finds the longest key that prefixes s and returns its replacement.
func (c *charsmap) longest(s string) (repl string, n int, ok bool) {
	if len(c.units) == 0 {
		return "", 0, false
	}
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	node := offset(c.units[0])
	value := -1
	for i := 0; i < len(s); i++ {
		node ^= uint32(s[i])
		if int(node) >= len(c.units) {
			break
		}
		u := c.units[node]
		if u&((1<<31)|0xFF) != uint32(s[i]) { // label
			break
		}
		node ^= offset(u)
		if (u>>8)&1 == 1 { // has a leaf: a key ends here
			if int(node) < len(c.units) {
				value, n = int(c.units[node]&((1<<31)-1)), i+1
			}
		}
	}
	if value < 0 || value >= len(c.blob) {
		return "", 0, false
	}
	end := value
	for end < len(c.blob) && c.blob[end] != 0 {
		end++
	}
	return string(c.blob[value:end]), n, true
}

// shortest finds the shortest key that prefixes s and returns its
// replacement: HuggingFace's lookup (spm_precompiled's transform takes the
// first common-prefix result).
func (c *charsmap) shortest(s string) (string, bool) {
	if len(c.units) == 0 {
		return "", false
	}
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	node := offset(c.units[0])
	for i := 0; i < len(s) && s[i] != 0; i++ {
		node ^= uint32(s[i])
		if int(node) >= len(c.units) {
			return "", false
		}
		u := c.units[node]
		if u&((1<<31)|0xFF) != uint32(s[i]) {
			return "", false
		}
		node ^= offset(u)
		if (u>>8)&1 == 1 && int(node) < len(c.units) {
			return c.at(int(c.units[node] & ((1 << 31) - 1)))
		}
	}
	return "", false
}

func (c *charsmap) at(value int) (string, bool) {
	if value < 0 || value >= len(c.blob) {
		return "", false
	}
	end := value
	for end < len(c.blob) && c.blob[end] != 0 {
		end++
	}
	return string(c.blob[value:end]), true
}

// score is the total score of a segmentation, special tokens left out.
func (u *unigram) score(ids []int) float64 {
	total := 0.0
	for _, id := range ids {
		if id >= 0 && id < len(u.scores) && !u.special[id] {
			total += u.scores[id]
		}
	}
	return total
}
