package tokenize

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a span of normalised text on its way to the model; atStart
// says it begins the text (Metaspace's "first" scheme needs to know).
type piece struct {
	text    string
	atStart bool
}

// preTokenizer is one of tokenizer.json's pre-tokenizers: it splits each
// piece into smaller ones, as HuggingFace's do (empty pieces dropped).
// sugarme/tokenizer's did not split at non-ASCII spaces (U+202F, U+1680,
// U+2028/9) and had no Metaspace prepend_scheme.
type preTokenizer interface {
	preTokenize(in []piece) []piece
}

func readPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type             string            `json:"type"`
		PreTokenizers    []json.RawMessage `json:"pretokenizers"`
		Pattern          pattern           `json:"pattern"`
		Behavior         string            `json:"behavior"`
		Invert           bool              `json:"invert"`
		IndividualDigits bool              `json:"individual_digits"`
		Replacement      string            `json:"replacement"`
		PrependScheme    string            `json:"prepend_scheme"`
		AddPrefixSpace   *bool             `json:"add_prefix_space"`
		Split            *bool             `json:"split"`
		UseRegex         *bool             `json:"use_regex"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		var seq preSequence
		for i, m := range c.PreTokenizers {
			p, err := readPreTokenizer(m)
			if err != nil {
				return nil, fmt.Errorf("Sequence member %d: %w", i, err)
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "BertPreTokenizer":
		return bertPre{}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return charSplit{isWhitespace, removed}, nil
	case "Punctuation":
		b, err := readBehavior(c.Behavior, isolated)
		if err != nil {
			return nil, err
		}
		return charSplit{isBertPunct, b}, nil
	case "Digits":
		if c.IndividualDigits {
			return charSplit{isNumeric, isolated}, nil
		}
		return charSplit{isNumeric, contiguous}, nil
	case "Split":
		re, err := c.Pattern.regexp()
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		b, err := readBehavior(c.Behavior, -1)
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		return regexSplit{re: re, behavior: b, invert: c.Invert}, nil
	case "ByteLevel":
		return byteLevel{prefixSpace: c.AddPrefixSpace == nil || *c.AddPrefixSpace, useRegex: c.UseRegex == nil || *c.UseRegex}, nil
	case "Metaspace":
		m := metaspace{replacement: "▁", scheme: "always", split: c.Split == nil || *c.Split}
		if c.Replacement != "" {
			m.replacement = c.Replacement
		}
		switch {
		case c.PrependScheme != "":
			m.scheme = c.PrependScheme
		case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
			m.scheme = "never" // files written before prepend_scheme existed
		}
		if m.scheme != "always" && m.scheme != "first" && m.scheme != "never" {
			return nil, fmt.Errorf("Metaspace: unknown prepend_scheme %q", m.scheme)
		}
		return m, nil
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer %q", c.Type)
}

type preSequence []preTokenizer

func (seq preSequence) preTokenize(in []piece) []piece {
	for _, p := range seq {
		in = p.preTokenize(in)
	}
	return in
}

// behavior is HuggingFace's SplitDelimiterBehavior.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func readBehavior(s string, dflt behavior) (behavior, error) {
	switch s {
	case "Removed":
		return removed, nil
	case "Isolated":
		return isolated, nil
	case "MergedWithPrevious":
		return mergedWithPrevious, nil
	case "MergedWithNext":
		return mergedWithNext, nil
	case "Contiguous":
		return contiguous, nil
	case "":
		if dflt >= 0 {
			return dflt, nil
		}
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// match is a byte range of a piece and whether the pattern matched it.
type match struct {
	start, end int
	isMatch    bool
}

// splitAt cuts p at the matches, which cover it from start to end, as
// NormalizedString::split does for the behaviour.
func splitAt(out []piece, p piece, ms []match, b behavior) []piece {
	type rng struct {
		start, end int
		drop       bool
	}
	var rs []rng
	prev := false
	switch b {
	case isolated:
		for _, m := range ms {
			rs = append(rs, rng{m.start, m.end, false})
		}
	case removed:
		for _, m := range ms {
			rs = append(rs, rng{m.start, m.end, m.isMatch})
		}
	case contiguous:
		for _, m := range ms {
			if m.isMatch == prev && len(rs) > 0 {
				rs[len(rs)-1].end = m.end
			} else {
				rs = append(rs, rng{m.start, m.end, false})
			}
			prev = m.isMatch
		}
	case mergedWithPrevious:
		for _, m := range ms {
			if m.isMatch && !prev && len(rs) > 0 {
				rs[len(rs)-1].end = m.end
			} else {
				rs = append(rs, rng{m.start, m.end, false})
			}
			prev = m.isMatch
		}
	case mergedWithNext:
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if m.isMatch && !prev && len(rs) > 0 {
				rs[len(rs)-1].start = m.start
			} else {
				rs = append(rs, rng{m.start, m.end, false})
			}
			prev = m.isMatch
		}
		for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
			rs[i], rs[j] = rs[j], rs[i]
		}
	}
	for _, r := range rs {
		if !r.drop && r.end > r.start {
			out = append(out, piece{text: p.text[r.start:r.end], atStart: p.atStart && r.start == 0})
		}
	}
	return out
}

// charMatches returns the matches of a character predicate: every matching
// character alone, the runs between them as non-matches.
func charMatches(ms []match, s string, is func(rune) bool) []match {
	last := 0
	for i, r := range s {
		if is(r) {
			if last < i {
				ms = append(ms, match{last, i, false})
			}
			n := utf8.RuneLen(r)
			if r == utf8.RuneError {
				n = 1
			}
			ms = append(ms, match{i, i + n, true})
			last = i + n
		}
	}
	if last < len(s) {
		ms = append(ms, match{last, len(s), false})
	}
	return ms
}

// charSplit splits at every character for which is holds.
type charSplit struct {
	is       func(rune) bool
	behavior behavior
}

func (c charSplit) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*2)
	var ms []match
	for _, p := range in {
		ms = charMatches(ms[:0], p.text, c.is)
		out = splitAt(out, p, ms, c.behavior)
	}
	return out
}

// bertPre is BertPreTokenizer: split at white space (dropped), then
// isolate each punctuation character. One pass does both.
type bertPre struct{}

func (bertPre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		s, start := p.text, -1
		for i, r := range s {
			switch {
			case isWhitespace(r):
				if start >= 0 {
					out = append(out, piece{s[start:i], p.atStart && start == 0})
					start = -1
				}
			case isBertPunct(r):
				if start >= 0 {
					out = append(out, piece{s[start:i], p.atStart && start == 0})
					start = -1
				}
				out = append(out, piece{s[i : i+utf8.RuneLen(r)], p.atStart && i == 0})
			default:
				if start < 0 {
					start = i
				}
			}
		}
		if start >= 0 {
			out = append(out, piece{s[start:], p.atStart && start == 0})
		}
	}
	return out
}

// whitespacePre is the Whitespace pre-tokenizer: the matches of
// \w+|[^\w\s]+ with Unicode classes (Go's regexp \w is ASCII only).
type whitespacePre struct{}

func (whitespacePre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		s, start, kind := p.text, -1, 0 // kind 1: word run, 2: other run
		for i, r := range s {
			k := 2
			if isWhitespace(r) {
				k = 0
			} else if isWordChar(r) {
				k = 1
			}
			if k != kind && start >= 0 {
				out = append(out, piece{s[start:i], p.atStart && start == 0})
				start = -1
			}
			if k != 0 && start < 0 {
				start = i
			}
			kind = k
		}
		if start >= 0 {
			out = append(out, piece{s[start:], p.atStart && start == 0})
		}
	}
	return out
}

// regexSplit is the Split pre-tokenizer.
type regexSplit struct {
	re       *regexp.Regexp
	behavior behavior
	invert   bool
}

func (c regexSplit) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*2)
	var ms []match
	for _, p := range in {
		ms = ms[:0]
		last := 0
		for _, loc := range c.re.FindAllStringIndex(p.text, -1) {
			if loc[0] == loc[1] {
				continue // HuggingFace skips empty matches too
			}
			if last < loc[0] {
				ms = append(ms, match{last, loc[0], c.invert})
			}
			ms = append(ms, match{loc[0], loc[1], !c.invert})
			last = loc[1]
		}
		if last < len(p.text) {
			ms = append(ms, match{last, len(p.text), c.invert})
		}
		out = splitAt(out, p, ms, c.behavior)
	}
	return out
}

// metaspace replaces spaces with the replacement, prepends one by the
// scheme, and splits before each.
type metaspace struct {
	replacement string
	scheme      string
	split       bool
}

func (m metaspace) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		s := strings.ReplaceAll(p.text, " ", m.replacement)
		if !strings.HasPrefix(s, m.replacement) && (m.scheme == "always" || m.scheme == "first" && p.atStart) {
			s = m.replacement + s
		}
		if !m.split {
			out = append(out, piece{s, p.atStart})
			continue
		}
		start := 0
		for i := 1; i < len(s); i++ {
			if strings.HasPrefix(s[i:], m.replacement) {
				out = append(out, piece{s[start:i], p.atStart && start == 0})
				start = i
				i += len(m.replacement) - 1
			}
		}
		out = append(out, piece{s[start:], p.atStart && start == 0})
	}
	return out
}

// byteLevel is GPT-2's ByteLevel pre-tokenizer: an optional leading space,
// GPT-2's split (see gpt2Split), then every byte written as the printable
// character GPT-2 assigns it.
type byteLevel struct{ prefixSpace, useRegex bool }

func (b byteLevel) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		s := p.text
		if b.prefixSpace && !strings.HasPrefix(s, " ") {
			s = " " + s
		}
		if !b.useRegex {
			out = append(out, piece{bytesToChars(s), p.atStart})
			continue
		}
		for i := 0; i < len(s); {
			n := gpt2Split(s[i:])
			out = append(out, piece{bytesToChars(s[i : i+n]), p.atStart && i == 0})
			i += n
		}
	}
	return out
}

// gpt2Split returns the length of the match at the start of s of GPT-2's
// pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
// written out because Go's regexp has no look-ahead.
func gpt2Split(s string) int {
	for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	run := func(start int, class func(rune) bool) int {
		i := start
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !class(r) {
				break
			}
			i += n
		}
		return i
	}
	start := 0
	if s[0] == ' ' {
		start = 1
	}
	other := func(r rune) bool { return !isWhitespace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r) }
	for _, class := range []func(rune) bool{unicode.IsLetter, unicode.IsNumber, other} {
		if n := run(start, class); n > start {
			return n
		}
	}
	// \s+(?!\S): the run of white space, less its last character when a
	// non-space follows; \s+ when that leaves nothing.
	end := run(0, isWhitespace)
	if end == len(s) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[:end])
	if end-last > 0 {
		return end - last
	}
	return end
}

// byteChars is GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
// themselves, the others for U+0100 onwards in order.
var byteChars = func() (t [256]string) {
	n := 0
	for b := 0; b < 256; b++ {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			t[b] = string(rune(b))
		} else {
			t[b] = string(rune(256 + n))
			n++
		}
	}
	return t
}()

func bytesToChars(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteString(byteChars[s[i]])
	}
	return b.String()
}
