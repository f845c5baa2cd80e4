package tokenize

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Texts that broke sugarme/tokenizer's Unigram path, and other traps.
var trickyTexts = []string{
	"  leading and trailing spaces  ",
	"many    spaces\tand\ttabs",
	"e\u0301cole de\u0301compose\u0301e", // decomposed accents
	"नमस्ते दुनिया, क्या हाल है?",        // virama
	"ﬁnancial ＡＢＣ１２３ full-width",         // NFKC compatibility forms
	"ﻻ ﷲ مرحبا بالعالم",                  // Arabic presentation forms
	"中华人民共和国成立于一九四九年十月一日",                // long CJK run: pieces over 20 bytes
	"กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", // Thai without spaces
	"emoji 🙂 and zero\u200bwidth",
	"Ελληνικά και Русский текст",
}

func needSPM(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"spm_train", "spm_encode"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (apt-get install sentencepiece)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// TestUnigramMatchesSentencePiece trains a SentencePiece unigram model on
// XQuAD-R, converts it to tokenizer.json and checks that xling segments
// real and tricky text exactly as spm_encode does.
func TestUnigramMatchesSentencePiece(t *testing.T) {
	needSPM(t)
	dir := t.TempDir()
	sentences := xquadSentences(t)
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(sentences, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "uni")
	out, err := exec.Command("spm_train", "--input="+corpus, "--model_prefix="+prefix, "--vocab_size=4000",
		"--model_type=unigram", "--character_coverage=0.9995", "--max_sentencepiece_length=16", "--minloglevel=2").CombinedOutput()
	if err != nil {
		t.Fatalf("spm_train: %v\n%s", err, out)
	}
	js, err := SentencePieceToJSON(prefix + ".model")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	os.WriteFile(path, js, 0o644)
	tk, err := Load(path, 512)
	if err != nil {
		t.Fatal(err)
	}

	// Every 7th sentence of every language, plus the traps.
	var texts []string
	for i := 0; i < len(sentences); i += 7 {
		// One text a line for spm_encode.
		texts = append(texts, strings.NewReplacer("\n", " ", "\r", " ").Replace(sentences[i]))
	}
	texts = append(texts, trickyTexts...)
	cmd := exec.Command("spm_encode", "--model="+prefix+".model", "--output_format=piece")
	cmd.Stdin = strings.NewReader(strings.Join(texts, "\n") + "\n")
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("spm_encode: %v", err)
	}
	wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	if len(wantLines) != len(texts) {
		t.Fatalf("spm_encode gave %d lines for %d texts", len(wantLines), len(texts))
	}
	long, mismatches := 0, 0
	for i, text := range texts {
		got := tk.uni.piecesOf(text)
		for _, p := range got {
			if len(p) > 20 {
				long++
			}
		}
		if strings.Join(got, " ") != wantLines[i] {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("text %q:\n xling %s\n spm   %s", text, strings.Join(got, " "), wantLines[i])
			}
		}
	}
	t.Logf("%d texts compared with spm_encode, %d mismatches, %d pieces over 20 bytes", len(texts), mismatches, long)

	// Encoding follows HuggingFace, which reads the same file a little
	// differently from SentencePiece: it keeps trailing white space as a
	// final "▁" and applies the precompiled map per grapheme cluster.
	whole, err := Load(path, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	samePiece := func(got, want string) bool {
		_, known := whole.uni.ids[want]
		return got == want || got == "<unk>" && !known // spm prints an unknown piece's text
	}
	hfDiffer, notTrailing := 0, 0
	for i, text := range texts {
		ids, _, err := whole.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		got, want := whole.Tokens(ids[1:len(ids)-1]), strings.Fields(wantLines[i])
		same := len(got) == len(want)
		for k := 0; same && k < len(got); k++ {
			same = samePiece(got[k], want[k])
		}
		if !same {
			hfDiffer++
			if strings.TrimRight(text, " \t") == text {
				notTrailing++
				t.Errorf("HuggingFace's reading differs from spm_encode on %q:\n %s\n %s", text, strings.Join(got, " "), wantLines[i])
			}
		}
	}
	t.Logf("%d of %d texts tokenise differently under HuggingFace's reading than under spm_encode, %d without trailing white space", hfDiffer, len(texts), notTrailing)
	if long == 0 {
		t.Error("no piece over 20 bytes was used: the long-piece case went untested")
	}

	ids, _, err := tk.Encode("hello world")
	if err != nil {
		t.Fatal(err)
	}
	toks := tk.Tokens(ids)
	if toks[0] != "<s>" || toks[len(toks)-1] != "</s>" || ids[0] != 0 || ids[len(ids)-1] != 2 {
		t.Errorf("special tokens: %v %v", ids, toks)
	}
	if tk.PadID() != 1 {
		t.Errorf("pad id %d, want XLM-R's 1", tk.PadID())
	}

	// Long texts cut after their first words keep the ids of the whole.
	short, err := Load(path, 24)
	if err != nil {
		t.Fatal(err)
	}
	var joined []string
	for i := 0; i+8 < len(sentences); i += 97 {
		joined = append(joined, strings.Join(sentences[i:i+8], " "))
	}
	if cut := sameAsUncut(t, short, joined); cut < len(joined)/2 {
		t.Errorf("only %d of %d joined texts were cut", cut, len(joined))
	}
}

func TestSentencePieceToJSONRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.model")
	os.WriteFile(path, bytes.Repeat([]byte{0xff}, 64), 0o644)
	if _, err := SentencePieceToJSON(path); err == nil || !strings.Contains(err.Error(), "not a SentencePiece model") {
		t.Fatalf("garbage model: %v", err)
	}
}
