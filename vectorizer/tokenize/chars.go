package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// Character classes as HuggingFace tokenizers (Rust) defines them. Rust's
// char::is_whitespace is Unicode's White_Space, which unicode.IsSpace is
// too. BertNormalizer and the BERT and Punctuation pre-tokenizers take the
// categories P*, Mn and Cc/Cf/Co from the unicode_categories crate, whose
// tables are Unicode 8.0's: a punctuation mark or accent assigned later
// (U+2E43, U+0D3B) is neither there, so xling uses the same tables
// (unicode8_tables.go) rather than Go's newer ones.

//go:generate sh -c "perl gen_unicode8.pl > unicode8_tables.go && gofmt -w unicode8_tables.go"

func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isBertControl is BertNormalizer's is_control: Cc, Cf and Co, except the
// tab and line breaks, which count as white space.
func isBertControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.Is(other8, r)
}

// isBertPunct is BertPreTokenizer's is_bert_punc: ASCII punctuation (which
// includes symbols such as $ + < = > ^ ` | ~) or a Unicode P* character.
func isBertPunct(r rune) bool {
	if r < 0x80 {
		return r > ' ' && r < 0x7f && !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}
	return unicode.Is(punct8, r)
}

// isChineseChar is BertNormalizer's is_chinese_char. HuggingFace's ranges
// start the fifth block at U+2B920 where Google's BERT has U+2B820, so
// U+2B820–U+2B91F is not split into characters; xling follows HuggingFace.
func isChineseChar(r rune) bool {
	return 0x4E00 <= r && r <= 0x9FFF ||
		0x3400 <= r && r <= 0x4DBF ||
		0x20000 <= r && r <= 0x2A6DF ||
		0x2A700 <= r && r <= 0x2B73F ||
		0x2B740 <= r && r <= 0x2B81F ||
		0x2B920 <= r && r <= 0x2CEAF ||
		0xF900 <= r && r <= 0xFAFF ||
		0x2F800 <= r && r <= 0x2FA1F
}

// isWordChar is Unicode regex \w as Rust's regex crate (and Oniguruma)
// define it: alphabetic, marks, decimal digits, connector punctuation and
// the joiners.
func isWordChar(r rune) bool {
	if r < 0x80 {
		return r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Join_Control, r)
}

// isNumeric is Rust's char::is_numeric: Nd, Nl and No.
func isNumeric(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

// appendLower appends Rust's char::to_lowercase of r: the full lower-case
// mapping, in which U+0130 (İ) becomes i followed by U+0307 where Go's
// simple mapping gives a plain i.
func appendLower(b []byte, r rune) []byte {
	if r < 0x80 {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(b, byte(r))
	}
	if r == 0x130 {
		return append(b, "i\u0307"...)
	}
	return utf8.AppendRune(b, unicode.ToLower(r))
}
