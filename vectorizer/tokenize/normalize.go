package tokenize

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
	"golang.org/x/text/unicode/norm"
)

// normalizer is one of tokenizer.json's normalizers. xling implements them
// itself because sugarme/tokenizer v0.3.0's differ from HuggingFace's:
// its BertNormalizer strips accents without decomposing first (a
// precomposed "ó" kept its accent and became [UNK]), does not let a null
// strip_accents follow lowercase, lower-cases İ to a plain i, and panics on
// some texts with İ or with NFKC removing characters.
type normalizer interface {
	normalize(s string) string
}

// readNormalizer builds the normalizer a tokenizer.json describes; nil
// means none.
func readNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type               string            `json:"type"`
		Normalizers        []json.RawMessage `json:"normalizers"`
		CleanText          *bool             `json:"clean_text"`
		HandleChineseChars *bool             `json:"handle_chinese_chars"`
		StripAccents       *bool             `json:"strip_accents"`
		Lowercase          *bool             `json:"lowercase"`
		Pattern            pattern           `json:"pattern"`
		Content            string            `json:"content"`
		Prepend            string            `json:"prepend"`
		StripLeft          bool              `json:"strip_left"`
		StripRight         bool              `json:"strip_right"`
		Charsmap           string            `json:"precompiled_charsmap"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	orTrue := func(b *bool) bool { return b == nil || *b }
	switch c.Type {
	case "Sequence":
		var seq normSequence
		for i, m := range c.Normalizers {
			n, err := readNormalizer(m)
			if err != nil {
				return nil, fmt.Errorf("Sequence member %d: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "BertNormalizer":
		lower := orTrue(c.Lowercase)
		strip := lower // HuggingFace: strip_accents null follows lowercase
		if c.StripAccents != nil {
			strip = *c.StripAccents
		}
		return bertNormalizer{clean: orTrue(c.CleanText), chinese: orTrue(c.HandleChineseChars), strip: strip, lower: lower}, nil
	case "NFC":
		return unicodeForm{norm.NFC}, nil
	case "NFD":
		return unicodeForm{norm.NFD}, nil
	case "NFKC":
		return unicodeForm{norm.NFKC}, nil
	case "NFKD":
		return unicodeForm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Strip":
		return strip{left: c.StripLeft, right: c.StripRight}, nil
	case "Prepend":
		return prepend(c.Prepend), nil
	case "Replace":
		re, err := c.Pattern.regexp()
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return replace{re: re, content: c.Content}, nil
	case "Precompiled":
		if c.Charsmap == "" {
			return nil, nil // HuggingFace treats an empty map as no normalisation
		}
		b, err := base64.StdEncoding.DecodeString(c.Charsmap)
		if err != nil {
			return nil, fmt.Errorf("Precompiled: precompiled_charsmap: %w", err)
		}
		cm, err := parseCharsmap(b)
		if err != nil {
			return nil, fmt.Errorf("Precompiled: %w", err)
		}
		return precompiled{cm}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer %q", c.Type)
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

type normSequence []normalizer

func (seq normSequence) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// bertNormalizer is HuggingFace's BertNormalizer: clean, isolate CJK
// characters, strip accents (after NFD), lower-case, in that order.
type bertNormalizer struct{ clean, chinese, strip, lower bool }

func (n bertNormalizer) normalize(s string) string {
	if n.strip && !isASCII(s) {
		s = n.pass(s, false)
		s = norm.NFD.String(s)
		return n.stripAndLower(s)
	}
	return n.pass(s, n.lower)
}

// pass cleans and isolates CJK characters, and lower-cases if lower.
func (n bertNormalizer) pass(s string, lower bool) string {
	b := make([]byte, 0, len(s)+8)
	for _, r := range s {
		if n.clean {
			if r == 0 || r == utf8.RuneError || isBertControl(r) {
				continue
			}
			if isWhitespace(r) {
				r = ' '
			}
		}
		if n.chinese && isChineseChar(r) {
			b = append(b, ' ')
			b = utf8.AppendRune(b, r)
			b = append(b, ' ')
			continue
		}
		if lower {
			b = appendLower(b, r)
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

// stripAndLower drops non-spacing marks (Mn), then lower-cases.
func (n bertNormalizer) stripAndLower(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if unicode.Is(mn8, r) {
			continue
		}
		if n.lower {
			b = appendLower(b, r)
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

type unicodeForm struct{ form norm.Form }

func (n unicodeForm) normalize(s string) string { return n.form.String(s) }

type lowercase struct{}

func (lowercase) normalize(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = appendLower(b, r)
	}
	return string(b)
}

// stripAccents is HuggingFace's StripAccents: it drops combining marks
// (Mn, Mc, Me, as of Unicode 9.0) as they are, without decomposing first.
type stripAccents struct{}

func (stripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(mark9, r) {
			return -1
		}
		return r
	}, s)
}

type strip struct{ left, right bool }

func (n strip) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isWhitespace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isWhitespace)
	}
	return s
}

type prepend string

func (p prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

type replace struct {
	re      *regexp.Regexp
	content string
}

func (n replace) normalize(s string) string { return n.re.ReplaceAllLiteralString(s, n.content) }

// precompiled is HuggingFace's Precompiled normaliser, a SentencePiece
// character map applied the way HuggingFace applies it, which is not
// SentencePiece's way: a grapheme cluster under 6 bytes is looked up whole
// and, when a key prefixes it, replaced whole by the shortest such key's
// replacement; otherwise its characters are looked up one by one.
type precompiled struct{ cm *charsmap }

func (n precompiled) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		grapheme := g.Str()
		if len(grapheme) < 6 {
			if repl, ok := n.cm.shortest(grapheme); ok {
				b.WriteString(repl)
				continue
			}
		}
		for i, r := range grapheme {
			part := grapheme[i : i+utf8.RuneLen(r)]
			if repl, ok := n.cm.shortest(part); ok {
				b.WriteString(repl)
			} else {
				b.WriteString(part)
			}
		}
	}
	return b.String()
}

// pattern is tokenizer.json's {"String": s} or {"Regex": r}.
type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p pattern) regexp() (*regexp.Regexp, error) {
	switch {
	case p.String != nil:
		return regexp.MustCompile(regexp.QuoteMeta(*p.String)), nil
	case p.Regex != nil:
		re, err := regexp.Compile(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("pattern %q is not a regular expression Go can run: %w", *p.Regex, err)
		}
		return re, nil
	}
	return nil, fmt.Errorf("pattern names neither String nor Regex")
}
