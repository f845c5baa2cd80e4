package qa

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
)

func data(t *testing.T) string { return sharedtest.Dir(t) }

func perLanguage(ds *Dataset) (questions, candidates map[string]int) {
	questions, candidates = map[string]int{}, map[string]int{}
	for _, q := range ds.Questions {
		questions[q.Lang]++
	}
	for _, c := range ds.Candidates {
		candidates[c.Lang]++
	}
	return
}

// The counts ../shared/data/README.md gives.
func TestXQuADRCounts(t *testing.T) {
	ds, err := LoadLAReQA(filepath.Join(data(t), "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215, "hi": 1244, "ru": 1219, "th": 852, "tr": 1167, "vi": 1209, "zh": 1196}
	qs, cs := perLanguage(ds)
	for lang, n := range want {
		if qs[lang] != 1190 || cs[lang] != n {
			t.Errorf("%s: %d questions, %d candidates; want 1190 and %d", lang, qs[lang], cs[lang], n)
		}
	}
	// Every question's answer is a sentence of its own language holding
	// the answer, and each id has one question per language.
	byID := map[string]int{}
	for _, q := range ds.Questions {
		if ds.Candidates[q.Answer].Lang != q.Lang {
			t.Fatalf("question %s (%s) answered in %s", q.ID, q.Lang, ds.Candidates[q.Answer].Lang)
		}
		byID[q.ID]++
	}
	if len(byID) != 1190 {
		t.Fatalf("%d distinct ids, want 1190", len(byID))
	}
	for id, n := range byID {
		if n != 11 {
			t.Fatalf("id %s in %d languages, want 11", id, n)
		}
	}
}

func TestMLQARCounts(t *testing.T) {
	ds, err := LoadLAReQA(filepath.Join(data(t), "mlqa-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantQ := map[string]int{"en": 1148, "ar": 517, "de": 512, "es": 500, "hi": 507, "vi": 511, "zh": 504}
	wantC := map[string]int{"en": 6264, "ar": 2545, "de": 2362, "es": 1787, "hi": 2426, "vi": 2828, "zh": 2322}
	qs, cs := perLanguage(ds)
	for lang := range wantQ {
		if qs[lang] != wantQ[lang] || cs[lang] != wantC[lang] {
			t.Errorf("%s: %d questions, %d candidates; want %d and %d", lang, qs[lang], cs[lang], wantQ[lang], wantC[lang])
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "en.json"), []byte("{\n\"data\": [\n{\"title\": 1,,}]}"), 0o644)
	_, err := LoadLAReQA(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "en.json") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("malformed file: %v", err)
	}
	if _, err := LoadLAReQA(dir, []string{"xx"}); err == nil || !strings.Contains(err.Error(), `no file for language "xx"`) {
		t.Errorf("unknown language: %v", err)
	}
	if _, err := LoadLAReQA(dir, []string{"../etc"}); err == nil || !strings.Contains(err.Error(), "not a language code") {
		t.Errorf("bad language code: %v", err)
	}
}

// TestPlainSQuAD reads a file without sentence breaks: the answer is the
// sentence holding answer_start, counted in characters.
func TestPlainSQuAD(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zh.json")
	ctx := "北京是首都。上海是最大的城市。广州在南方。"
	os.WriteFile(path, []byte(`{"data":[{"title":"t","paragraphs":[{"context":"`+ctx+`","qas":[{"id":"q1","question":"最大的城市？","answers":[{"text":"上海","answer_start":6}]}]}]}]}`), 0o644)
	ds, err := LoadSQuAD(path, "zh")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Candidates) != 3 || ds.Candidates[ds.Questions[0].Answer].Text != "上海是最大的城市。" {
		t.Fatalf("candidates %v, answer %d", ds.Candidates, ds.Questions[0].Answer)
	}
	if ds.Questions[0].Negative < 0 || ds.Questions[0].Negative == ds.Questions[0].Answer {
		t.Fatalf("hard negative %d", ds.Questions[0].Negative)
	}
}
