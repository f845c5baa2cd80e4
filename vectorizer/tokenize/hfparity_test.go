package tokenize

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/hftokenizers"
	"github.com/xling-ir/xling/qa"
	"golang.org/x/text/unicode/norm"
)

// edgeTexts are the classes of text where xling and HuggingFace were seen
// to differ, and other traps.
var edgeTexts = []string{
	"İstanbul İzmir'de", "İ", "ǅemal ǈubljana", "ΟΔΥΣΣΕΥΣ Σ", "ẞtraße", // case mappings
	"canción ñandú Ærøskøbing Ångström", "cancio\u0301n n\u0303andu\u0301", // precomposed and decomposed accents
	"Tiếng Việt có dấu", norm.NFD.String("Tiếng Việt có dấu"), norm.NFD.String("한국어 텍스트"),
	"㐀㐁㐂 extension A", "𫠠𫠡 U+2B820", "𠀀𠀁 extension B", "豈更 compatibility", "中文和English混合",
	"a [MASK] b [UNK] c", "[CLS][SEP]", "x[MASK]y", "[mask] lower", "<s> hello </s>", "a <mask> b", " <mask>", "<pad><unk>",
	"a\u202fb", "a\u1680b", "a\u2028b", "a\u2029b", "a\u00a0b", "a\u3000b", "a\u2009b\u200ac", // non-ASCII spaces
	"\u200bzero width", "\u200e\u0645\u0631\u062d\u0628\u0627", "soft\u00adhyphen", "\ufeffBOM", "\ue000 private use", "a\ufffdb",
	"hello ", "hello\u200b", "hello\u00a0", "hello\u200f", "  leading", "a  b   c", "tab\tand\nnewline\r\n",
	"ｶﾀｶﾅ ﾊﾟﾋﾟ", "ＡＢＣ１２３", "ﬁnancial ﬂow", "Ⅻ ① ㍻ ㎏", "ℌ𝔢𝔩𝔩𝔬", // compatibility forms
	"മലയാളം " + norm.NFD.String("ൊ ോ ൌ"), "नमस्ते दुनिया", "ภาษาไทย", "مَرْحَبًا", "\u0301abc",
	"👍🏽 😀 🥰 🫠", "🇩🇪🇫🇷", "👨‍👩‍👧 family",
	"¿Qué? ¡Hola! «quote» „German“ — dash – en", "1,234.56 $5 €5 ¥5", "a_b e-mail C++ x86-64 #tag @user",
	strings.Repeat("a", 150), strings.Repeat("1234567890", 20), strings.Repeat("long text ", 300),
	strings.Repeat("☃", 5000) + " end", strings.Repeat("x", 20000) + " tail", // one long word, then more: no byte cut may drop "end"

	"a\u2E4Fb a\u2E43b a\U0001DA87b a\uA8FCb", "a\u0D3Bb a\u08D3b", "tra\u0D3Bm\u0300e", // punctuation and marks Unicode assigned after 8.0
	"say hello there", "sayhello", "HELLO world", "ｈｅｌｌｏ!", "hello_world", "a   [MASK]   b", "[MASK][MASK]", "x [SEP]y", // added-token options
	"", " ", "  \t\n",
}

// realTexts reads about n texts of every language ../shared/data holds:
// XQuAD-R and MLQA-R questions and sentences, MIRACL passages, Tatoeba.
func realTexts(t *testing.T, perLang int) []string {
	data := sharedData(t)
	var out []string
	take := func(texts []string) {
		step := max(1, len(texts)/perLang)
		for i := 0; i < len(texts) && i/step < perLang; i += step {
			out = append(out, texts[i])
		}
	}
	for _, set := range []string{"xquad-r", "mlqa-r"} {
		files, _ := filepath.Glob(filepath.Join(data, set, "*.json"))
		for _, f := range files {
			lang := strings.TrimSuffix(filepath.Base(f), ".json")
			ds, err := qa.LoadLAReQA(filepath.Join(data, set), []string{lang})
			if err != nil {
				t.Fatal(err)
			}
			take(append(ds.QuestionTexts(), ds.CandidateTexts()...))
		}
	}
	f, err := os.Open(filepath.Join(data, "miracl-partial", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byLang := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var p struct{ Lang, Title, Text string }
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		byLang[p.Lang] = append(byLang[p.Lang], p.Title+" "+p.Text)
	}
	langs := make([]string, 0, len(byLang))
	for l := range byLang {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, l := range langs {
		take(byLang[l])
	}
	files, _ := filepath.Glob(filepath.Join(data, "tatoeba", "tatoeba.*-eng.*"))
	for _, f := range files {
		if strings.HasSuffix(f, ".eng") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		step := max(1, len(lines)/(perLang/4))
		for i := 0; i < len(lines); i += step {
			out = append(out, lines[i])
		}
	}
	return out
}

// parityFiles writes the tokenizer.json layouts the test compares: xling's
// own WordPiece file, the same vocabulary in the layouts HuggingFace writes
// for BERT (cased; uncased with strip_accents null, true, false), one with
// the other normalisers and pre-tokenisers, Unigram in XLM-R's layout as
// xling converts it from SentencePiece, and WordPiece, byte-level BPE and
// Unigram trained by HuggingFace's own trainers.
func parityFiles(t *testing.T, ref *hftokenizers.Reference) map[string]string {
	dir := t.TempDir()
	trainXQuAD(t) // fills trained
	var base map[string]any
	if err := json.Unmarshal(trained, &base); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	write := func(name string, doc map[string]any) {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = path
	}
	write("xling-wordpiece", base)
	with := func(changes map[string]any) map[string]any {
		doc := map[string]any{}
		for k, v := range base {
			doc[k] = v
		}
		for k, v := range changes {
			doc[k] = v
		}
		return doc
	}
	bert := func(lower bool, strip any) map[string]any {
		return map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": strip, "lowercase": lower}
	}
	template := map[string]any{"type": "TemplateProcessing",
		"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}}},
		"pair":   []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
		"special_tokens": map[string]any{
			"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{2}, "tokens": []string{"[CLS]"}},
			"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{3}, "tokens": []string{"[SEP]"}},
		}}
	bertPre := map[string]any{"type": "BertPreTokenizer"}
	write("bert-cased", with(map[string]any{"normalizer": bert(false, nil), "pre_tokenizer": bertPre, "post_processor": template}))
	write("bert-uncased-strip-null", with(map[string]any{"normalizer": bert(true, nil), "pre_tokenizer": bertPre}))
	write("bert-uncased-strip-true", with(map[string]any{"normalizer": bert(true, true), "pre_tokenizer": bertPre}))
	write("bert-uncased-strip-false", with(map[string]any{"normalizer": bert(true, false), "pre_tokenizer": bertPre}))
	write("wordpiece-components", with(map[string]any{
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKD"}, map[string]any{"type": "StripAccents"}, map[string]any{"type": "Lowercase"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "``"}, "content": "\""},
			map[string]any{"type": "Strip", "strip_left": true, "strip_right": true},
		}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Whitespace"},
			map[string]any{"type": "Digits", "individual_digits": true},
			map[string]any{"type": "Punctuation", "behavior": "Isolated"},
		}},
	}))
	// Added tokens with every option: stripping, whole words only, and
	// matched after normalisation (so "HELLO" and "ｈｅｌｌｏ" match too).
	addedOpts := append([]any(nil), base["added_tokens"].([]any)...)
	for i, a := range addedOpts {
		a := a.(map[string]any)
		if a["content"] == "[MASK]" || a["content"] == "[SEP]" {
			b := map[string]any{}
			for k, v := range a {
				b[k] = v
			}
			b["lstrip"], b["rstrip"] = true, true
			addedOpts[i] = b
		}
	}
	vocabSize := len(base["model"].(map[string]any)["vocab"].(map[string]any))
	addedOpts = append(addedOpts,
		map[string]any{"id": vocabSize, "content": "hello", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
		map[string]any{"id": vocabSize + 1, "content": "World", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false})
	write("wordpiece-added-options", with(map[string]any{"added_tokens": addedOpts}))
	write("wordpiece-split-ws", with(map[string]any{
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFC"}, bert(false, false)}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "WhitespaceSplit"},
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\p{P}+`}, "behavior": "MergedWithPrevious", "invert": false},
			map[string]any{"type": "Digits", "individual_digits": false},
		}},
	}))

	if _, err := exec.LookPath("spm_train"); err == nil {
		sentences := xquadSentences(t)
		corpus := filepath.Join(dir, "corpus.txt")
		if err := os.WriteFile(corpus, []byte(strings.Join(sentences, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		prefix := filepath.Join(dir, "uni")
		if out, err := exec.Command("spm_train", "--input="+corpus, "--model_prefix="+prefix, "--vocab_size=4000",
			"--model_type=unigram", "--character_coverage=0.9995", "--minloglevel=2").CombinedOutput(); err != nil {
			t.Fatalf("spm_train: %v\n%s", err, out)
		}
		js, err := SentencePieceToJSON(prefix + ".model")
		if err != nil {
			t.Fatal(err)
		}
		var uni map[string]any
		if err := json.Unmarshal(js, &uni); err != nil {
			t.Fatal(err)
		}
		write("unigram-xlmr", uni) // XLM-R's layout, <mask> with lstrip
		for _, scheme := range []string{"first", "never"} {
			doc := map[string]any{}
			for k, v := range uni {
				doc[k] = v
			}
			doc["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": scheme == "first"}
			write("unigram-metaspace-"+scheme, doc)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("spm_train not installed (apt-get install sentencepiece)")
	}

	corpus := filepath.Join(dir, "hf-corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(xquadSentences(t), "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"wordpiece", "bpe", "unigram", "wordlevel"} {
		path := filepath.Join(dir, "hf-"+kind+".json")
		if err := ref.Train(context.Background(), kind, corpus, path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		// HuggingFace's default trainers add no special tokens: give the
		// WordPiece an [UNK] and BERT's [CLS] … [SEP], the Unigram an unk_id.
		model := doc["model"].(map[string]any)
		switch kind {
		case "wordpiece":
			vocab := model["vocab"].(map[string]any)
			var added []any
			for _, tok := range []string{"[UNK]", "[CLS]", "[SEP]", "[MASK]"} {
				id := len(vocab)
				vocab[tok] = id
				added = append(added, map[string]any{"id": id, "content": tok, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
			}
			doc["added_tokens"] = added
			doc["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", vocab["[SEP]"]}, "cls": []any{"[CLS]", vocab["[CLS]"]}}
		case "wordlevel":
			vocab := model["vocab"].(map[string]any)
			vocab["[UNK]"] = len(vocab)
			model["unk_token"] = "[UNK]"
		case "unigram":
			vocab := model["vocab"].([]any)
			model["unk_id"] = len(vocab)
			model["vocab"] = append(vocab, []any{"<unk>", 0.0})
			doc["added_tokens"] = []any{map[string]any{"id": len(vocab), "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}
		}
		write("hf-trained-"+kind, doc)
	}
	return files
}

// TestMatchesHuggingFace encodes real text of every language in
// ../shared/data and the edge cases with xling and with HuggingFace's own
// tokenizers, truncating to 128 tokens with query and passage prefixes, and
// requires the same ids.
func TestMatchesHuggingFace(t *testing.T) {
	ctx := context.Background()
	ref, err := hftokenizers.Find(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	texts := append(realTexts(t, 160), edgeTexts...)
	for i := range texts {
		if i%2 == 0 {
			texts[i] = "query: " + texts[i]
		} else {
			texts[i] = "passage: " + texts[i]
		}
	}
	texts = append(texts, edgeTexts...) // and without a prefix
	if len(texts) < 10000 {
		t.Fatalf("only %d texts", len(texts))
	}
	files := parityFiles(t, ref)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := files[name]
			want, err := ref.Encode(ctx, path, 128, texts)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := Load(path, 128)
			if err != nil {
				t.Fatal(err)
			}
			mismatches, ties := 0, 0
			for i, text := range texts {
				got, _, err := tk.Encode(text)
				if err != nil {
					t.Errorf("%q: %v", text, err)
					continue
				}
				if fmt.Sprint(got) == fmt.Sprint(want[i]) {
					continue
				}
				// The one class of difference left: a Unigram text with two
				// segmentations of exactly equal score ("0"+"000" and
				// "000"+"0"), which HuggingFace breaks the other way. Seen in
				// 0-2 texts of 10,383, depending on the model HuggingFace's
				// (nondeterministic) Unigram trainer produced; the cap of 10
				// (0.1%) keeps the class from growing unnoticed.
				if tk.uni != nil && math.Abs(tk.uni.score(got)-tk.uni.score(want[i])) <= 1e-9*math.Abs(tk.uni.score(got)) {
					ties++
					t.Logf("%.80q: equal-score segmentations: xling %q, HuggingFace %q", text, tk.Tokens(got), tk.Tokens(want[i]))
					continue
				}
				mismatches++
				if mismatches <= 8 {
					t.Errorf("%.120q:\n xling %v\n    hf %v\n xling %q\n    hf %q", text, got, want[i], tk.Tokens(got), tk.Tokens(want[i]))
				}
			}
			if ties > 10 {
				t.Errorf("%d equal-score ties: more than the rare case allowed for", ties)
			}
			t.Logf("%s: %d texts, %d differ from HuggingFace tokenizers %s (and %d equal-score Unigram ties)", name, len(texts), mismatches, ref.Version, ties)
		})
	}
}
