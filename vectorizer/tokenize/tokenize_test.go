package tokenize

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/qa"
)

func sharedData(t testing.TB) string { return sharedtest.Dir(t) }

// xquadSentences returns every candidate sentence of XQuAD-R, all languages.
func xquadSentences(t testing.TB) []string {
	ds, err := qa.LoadLAReQA(filepath.Join(sharedData(t), "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := ds.CandidateTexts()
	if len(out) < 10000 {
		t.Fatalf("read %d XQuAD-R sentences, want over 10,000", len(out))
	}
	return out
}

var multiScript = map[string]string{
	"latin":      "The quick brown fox jumps over the lazy dog.",
	"arabic":     "تقع مدينة القاهرة على ضفاف نهر النيل.",
	"devanagari": "भारत की राजधानी नई दिल्ली है।",
	"thai":       "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
	"cjk":        "北京是中华人民共和国的首都。",
	"cyrillic":   "Москва — столица России.",
	"greek":      "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
}

var (
	trainedOnce sync.Once
	trained     []byte
	trainErr    error
)

// trainXQuAD trains an 8,000-piece vocabulary on XQuAD-R once per test binary.
func trainXQuAD(t testing.TB) *Tokenizer {
	t.Helper()
	sentences := xquadSentences(t) // skips or fails before the Once, never inside it
	trainedOnce.Do(func() {
		text := strings.Join(sentences, "\n")
		trained, trainErr = TrainWordPiece(context.Background(), strings.NewReader(text), TrainOptions{VocabSize: 8000})
	})
	if trainErr != nil {
		t.Fatal(trainErr)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, trained, 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTrainWordPieceMultilingual(t *testing.T) {
	tk := trainXQuAD(t)
	if got := tk.VocabSize(); got < 7900 || got > 8000 {
		t.Fatalf("vocabulary size %d, want about 8000", got)
	}
	for script, text := range multiScript {
		ids, truncated, err := tk.Encode(text)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		toks := tk.Tokens(ids)
		if toks[0] != "[CLS]" || toks[len(toks)-1] != "[SEP]" || truncated {
			t.Errorf("%s: tokens %v (truncated %v): want [CLS] … [SEP]", script, toks, truncated)
		}
		unk := 0
		for _, s := range toks {
			if s == "[UNK]" {
				unk++
			}
		}
		// A vocabulary trained on these scripts must cover them.
		if unk > 0 {
			t.Errorf("%s: %d [UNK] in %v", script, unk, toks)
		}
		t.Logf("%-10s %d tokens: %v", script, len(toks), toks)
	}
	// Devanagari vowel signs survive normalisation (no accent stripping).
	ids, _, _ := tk.Encode("दिल्ली")
	if joined := strings.ReplaceAll(strings.Join(tk.Tokens(ids[1:len(ids)-1]), ""), "##", ""); joined != "दिल्ली" {
		t.Errorf("Devanagari word came back as %q", joined)
	}
}

func TestEncodeBadInput(t *testing.T) {
	tk := trainXQuAD(t)
	// As in HuggingFace, a text with nothing to encode is the special
	// tokens alone (Weaviate sends an object's empty property).
	for _, text := range []string{"", " \t\n", "\x00\x01"} {
		ids, _, err := tk.Encode(text)
		if err != nil || strings.Join(tk.Tokens(ids), " ") != "[CLS] [SEP]" {
			t.Errorf("%q: %v %v", text, tk.Tokens(ids), err)
		}
	}
	if _, _, err := tk.Encode("ok \xff\xfe"); !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "offset 3") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	long := strings.Repeat("retrieval across languages ", 100000) // 2.7 MB
	ids, truncated, err := tk.Encode(long)
	if err != nil || !truncated || len(ids) != 64 || tk.Tokens(ids)[63] != "[SEP]" {
		t.Errorf("long text: %d ids, truncated %v, err %v", len(ids), truncated, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json"), 64); err == nil {
		t.Error("loading a missing tokenizer.json succeeded")
	}
	bad := filepath.Join(t.TempDir(), "tokenizer.json")
	os.WriteFile(bad, []byte(`{"model": {"type": "WordPiece"`), 0o644)
	if _, err := Load(bad, 64); err == nil {
		t.Error("loading a truncated tokenizer.json succeeded")
	}
}

// TestFormatCharacters: a right-to-left mark opening an Arabic question
// (as in XQuAD-R) made sugarme/tokenizer panic.
func TestFormatCharacters(t *testing.T) {
	tk := trainXQuAD(t)
	ids, _, err := tk.Encode("\u200fما هي قبيلة المرأة؟")
	if err != nil {
		t.Fatal(err)
	}
	plain, _, _ := tk.Encode("ما هي قبيلة المرأة؟")
	if strings.Join(tk.Tokens(ids), " ") != strings.Join(tk.Tokens(plain), " ") {
		t.Fatalf("with the mark %v, without %v", tk.Tokens(ids), tk.Tokens(plain))
	}
}

// FuzzLoadTokenizer: any tokenizer.json loads or fails with an error,
// never a panic; a loaded one encodes text to ids within [0, MaxID] or
// returns an error.
func FuzzLoadTokenizer(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0],["▁a",-1],["a",-2]]}}`))
	f.Add([]byte(`{"model":{"type":"Unigram","vocab":[["<pad>",0],["▁a",-1]]},"post_processor":{"type":"TemplateProcessing","special_tokens":{"<s>":{"ids":[7]}}}}`))
	f.Add([]byte(`{"normalizer":{"type":"BertNormalizer","lowercase":true,"clean_text":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1,"##b":2,"[CLS]":3,"[SEP]":4}},"post_processor":{"type":"BertProcessing","sep":["[SEP]",4],"cls":["[CLS]",3]}}`))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"a":-5}}}`))
	f.Add([]byte(`{"normalizer":{"type":"BertNormalizer"},"added_tokens":[{"id":0,"content":"\u200b","normalized":true}],"model":{"type":"WordLevel","unk_token":"a","vocab":{"a":0}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parse(b, 16)
		if err != nil {
			return
		}
		for _, text := range []string{"a", "ab ba", "Wo liegt Kairo? 北京 ж", "a [CLS] b"} {
			ids, _, err := tok.Encode(text)
			if err != nil {
				continue
			}
			for _, id := range ids {
				if id < 0 || id > tok.MaxID() {
					t.Fatalf("%q: id %d outside [0, %d]", text, id, tok.MaxID())
				}
			}
		}
	})
}

// sameAsUncut checks that Encode, which cuts a long text after its first
// words, returns the ids of tokenising the whole text and truncating.
func sameAsUncut(t *testing.T, tk *Tokenizer, texts []string) (cut int) {
	t.Helper()
	for _, text := range texts {
		got, gotTrunc, err := tk.Encode(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		want, wantTrunc, err := tk.encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || gotTrunc != wantTrunc {
			t.Fatalf("%.80q...: Encode gives %v (truncated %v), the whole text %v (%v)", text, got, gotTrunc, want, wantTrunc)
		}
		if _, ok := afterWords(text, tk.maxLen+wordMargin); ok {
			cut++
		}
	}
	return cut
}

// TestWordCutKeepsTokens: real multilingual passages, long enough to be
// cut before tokenising, give the same ids as tokenising them whole.
func TestWordCutKeepsTokens(t *testing.T) {
	tk := trainXQuAD(t)
	f, err := os.Open(filepath.Join(sharedData(t), "miracl-partial", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i%20 != 0 { // every 20th of 62,697: all 17 languages
			continue
		}
		var p struct{ Title, Text string }
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, p.Title+"\n"+p.Text)
	}
	// Spaces of every kind around the cut, and words without letters.
	long := strings.Repeat("word ", 80)
	texts = append(texts, long+"tail", strings.Repeat("- ", 200)+long, strings.Repeat("a\u202fb ", 90), strings.Repeat("東京 ", 100), long+"   ")
	cut := sameAsUncut(t, tk, texts)
	t.Logf("%d texts, %d cut before tokenising", len(texts), cut)
	if cut < len(texts)/4 {
		t.Errorf("only %d of %d texts were long enough to cut: the cut went untested", cut, len(texts))
	}
}
