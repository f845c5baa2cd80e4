package tokenize

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Special tokens of trained vocabularies, in id order (BERT's convention).
var specialTokens = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

// isolatePattern splits scripts written without spaces into units a
// WordPiece vocabulary can cover: Thai into base characters with their
// combining marks, Japanese kana into characters. (CJK ideographs are split
// by the BERT normaliser's handle_chinese_chars.) Without it a Thai sentence
// is one "word" longer than max_input_chars_per_word and becomes [UNK].
const isolatePattern = `\p{Thai}\p{Mn}*|\p{Hiragana}|\p{Katakana}`

// TrainOptions configures WordPiece training.
type TrainOptions struct {
	VocabSize    int // total, special tokens and alphabet included
	MinFrequency int // a merge must occur at least this often; default 2
	// Progress, if set, is called now and then with the merges done so far.
	Progress func(done, total int)
}

// TrainWordPiece learns a WordPiece vocabulary from lines of text and
// returns a complete tokenizer.json. Normalisation is NFKC, lower-casing and
// BERT's cleaning with CJK ideographs split, but no accent stripping:
// stripping combining marks would delete Devanagari and Thai vowel signs.
// The vocabulary is grown as HuggingFace's WordPiece trainer does, by
// byte-pair merges where non-initial pieces carry the "##" prefix.
func TrainWordPiece(ctx context.Context, lines io.Reader, opts TrainOptions) ([]byte, error) {
	if opts.MinFrequency <= 0 {
		opts.MinFrequency = 2
	}
	if opts.VocabSize <= len(specialTokens) {
		return nil, fmt.Errorf("vocabulary size %d leaves no room beyond the %d special tokens", opts.VocabSize, len(specialTokens))
	}
	specials := map[string]int{}
	for i, s := range specialTokens {
		specials[s] = i
	}
	skeleton, err := tokenizerJSON(specials)
	if err != nil {
		return nil, err
	}
	tk, err := parse(skeleton, len(specialTokens))
	if err != nil {
		return nil, fmt.Errorf("build normaliser: %w", err)
	}
	counts, err := countWords(ctx, tk, lines)
	if err != nil {
		return nil, err
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("train tokenizer: the input holds no words")
	}
	vocab := learn(ctx, counts, opts)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return tokenizerJSON(vocab)
}

// TrainWordPieceFiles trains on text files (one sentence or paragraph a line)
// and writes tokenizer.json to out.
func TrainWordPieceFiles(ctx context.Context, files []string, out string, opts TrainOptions) error {
	var readers []io.Reader
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return fmt.Errorf("train tokenizer: %w", err)
		}
		defer fh.Close()
		readers = append(readers, fh, strings.NewReader("\n"))
	}
	b, err := TrainWordPiece(ctx, io.MultiReader(readers...), opts)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

func countWords(ctx context.Context, tk *Tokenizer, r io.Reader) (map[string]int, error) {
	counts := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("train tokenizer: line %d: %w", line, ErrInvalidUTF8)
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		words, err := tk.words(text)
		if err != nil {
			return nil, fmt.Errorf("train tokenizer: line %d: %w", line, err)
		}
		for _, w := range words {
			if utf8.RuneCountInString(w) <= maxWordChars {
				counts[w]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("train tokenizer: read input: %w", err)
	}
	return counts, nil
}

// maxWordChars is WordPiece's max_input_chars_per_word: longer words become
// [UNK] at encoding time, so they are not worth learning from.
const maxWordChars = 100

type trainWord struct {
	syms  []int32
	count int
}

type pair [2]int32

// learn runs the merges. Pair counts are updated incrementally, only for the
// words that hold the merged pair, and the most frequent pair comes from a
// heap whose stale entries are re-queued when popped.
func learn(ctx context.Context, counts map[string]int, opts TrainOptions) map[string]int {
	var symbols []string
	ids := map[string]int32{}
	intern := func(s string) int32 {
		if id, ok := ids[s]; ok {
			return id
		}
		id := int32(len(symbols))
		symbols = append(symbols, s)
		ids[s] = id
		return id
	}
	// Deterministic order: by count, then text.
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	// The alphabet: every character frequent enough, initial and continuing.
	charCount := map[rune]int{}
	for _, w := range keys {
		for _, r := range w {
			charCount[r] += counts[w]
		}
	}
	words := make([]trainWord, 0, len(keys))
	for _, w := range keys {
		tw := trainWord{count: counts[w]}
		first := true
		for _, r := range w {
			s := string(r)
			if !first {
				s = "##" + s
			}
			first = false
			tw.syms = append(tw.syms, intern(s))
		}
		words = append(words, tw)
	}
	vocab := map[string]int{}
	for i, s := range specialTokens {
		vocab[s] = i
	}
	add := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(vocab)
		}
	}
	// Characters in frequency order, so that a small vocabulary keeps the
	// common ones when it cannot hold them all.
	chars := make([]rune, 0, len(charCount))
	for r := range charCount {
		chars = append(chars, r)
	}
	sort.Slice(chars, func(i, j int) bool {
		if charCount[chars[i]] != charCount[chars[j]] {
			return charCount[chars[i]] > charCount[chars[j]]
		}
		return chars[i] < chars[j]
	})
	for _, r := range chars {
		if len(vocab) >= opts.VocabSize {
			break
		}
		add(string(r))
	}
	for _, r := range chars {
		if len(vocab) >= opts.VocabSize {
			break
		}
		add("##" + string(r))
	}

	pairCount := map[pair]int{}
	where := map[pair]map[int]struct{}{}
	addPairs := func(wi int, sign int) {
		w := &words[wi]
		for i := 0; i+1 < len(w.syms); i++ {
			p := pair{w.syms[i], w.syms[i+1]}
			pairCount[p] += sign * w.count
			if sign > 0 {
				if where[p] == nil {
					where[p] = map[int]struct{}{}
				}
				where[p][wi] = struct{}{}
			}
		}
	}
	for wi := range words {
		addPairs(wi, 1)
	}
	h := &pairHeap{}
	for p, c := range pairCount {
		*h = append(*h, pairEntry{p, c})
	}
	heap.Init(h)

	total := opts.VocabSize - len(vocab)
	done := 0
	for len(vocab) < opts.VocabSize && h.Len() > 0 {
		if done%256 == 0 && ctx.Err() != nil {
			break
		}
		top := heap.Pop(h).(pairEntry)
		cur := pairCount[top.p]
		if cur != top.count {
			if cur > 0 {
				heap.Push(h, pairEntry{top.p, cur})
			}
			continue
		}
		if cur < opts.MinFrequency {
			break
		}
		merged := symbols[top.p[0]] + strings.TrimPrefix(symbols[top.p[1]], "##")
		mid := intern(merged)
		add(merged)
		done++
		if opts.Progress != nil && done%1000 == 0 {
			opts.Progress(done, total)
		}
		affected := where[top.p]
		delete(where, top.p)
		changed := map[pair]struct{}{}
		for wi := range affected {
			w := &words[wi]
			addPairs(wi, -1)
			out := w.syms[:0:0]
			for i := 0; i < len(w.syms); i++ {
				if i+1 < len(w.syms) && w.syms[i] == top.p[0] && w.syms[i+1] == top.p[1] {
					out = append(out, mid)
					i++
				} else {
					out = append(out, w.syms[i])
				}
			}
			w.syms = out
			addPairs(wi, 1)
			for i := 0; i+1 < len(w.syms); i++ {
				changed[pair{w.syms[i], w.syms[i+1]}] = struct{}{}
			}
		}
		for p := range changed {
			if c := pairCount[p]; c > 0 {
				heap.Push(h, pairEntry{p, c})
			}
		}
	}
	if opts.Progress != nil {
		opts.Progress(done, total)
	}
	return vocab
}

type pairEntry struct {
	p     pair
	count int
}

// pairHeap is a max-heap on count; ties go to the smaller pair ids, which
// keeps training deterministic.
type pairHeap []pairEntry

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	if h[i].p[0] != h[j].p[0] {
		return h[i].p[0] < h[j].p[0]
	}
	return h[i].p[1] < h[j].p[1]
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairEntry)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tokenizerJSON writes a HuggingFace tokenizer.json for a WordPiece
// vocabulary, as HuggingFace tokenizers reads it.
func tokenizerJSON(vocab map[string]int) ([]byte, error) {
	added := []map[string]any{}
	for i, s := range specialTokens {
		added = append(added, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKC"},
			map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": false, "lowercase": true},
		}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": isolatePattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "BertPreTokenizer"},
		}},
		"post_processor": map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}},
		"decoder":        map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": maxWordChars, "vocab": vocab},
	}
	return json.MarshalIndent(doc, "", " ")
}
