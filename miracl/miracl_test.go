package miracl

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/procmem"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
)

// The dev counts ../shared/data/README.md gives (queries, judgments).
var devCounts = map[string][2]int{
	"ar": {2896, 29197}, "bn": {411, 4206}, "de": {305, 3144}, "en": {799, 8350}, "es": {648, 6443},
	"fa": {632, 6571}, "fi": {1271, 12008}, "fr": {343, 3429}, "hi": {350, 3494}, "id": {960, 9668},
	"ja": {860, 8354}, "ko": {213, 3057}, "ru": {1252, 13100}, "sw": {482, 5092}, "te": {828, 1606},
	"th": {733, 7573}, "yo": {119, 1188}, "zh": {393, 3928},
}

func TestDevCounts(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "miracl")
	for lang, want := range devCounts {
		topics, err := ReadTopics(TopicsPath(dir, lang))
		if err != nil {
			t.Fatal(err)
		}
		qrels, err := ReadQrels(QrelsPath(dir, lang))
		if err != nil {
			t.Fatal(err)
		}
		if len(topics) != want[0] || len(qrels) != want[1] {
			t.Errorf("%s: %d queries, %d judgments; want %d and %d", lang, len(topics), len(qrels), want[0], want[1])
		}
	}
}

// TestStreamPartialCorpus streams the 62,697 passages, counting them per
// language, and checks that resident memory stays far below the file's size.
func TestStreamPartialCorpus(t *testing.T) {
	path := filepath.Join(sharedtest.Dir(t), "miracl-partial", "corpus.jsonl")
	want := map[string]int{"ar": 4253, "bn": 1727, "de": 4368, "en": 4901, "es": 3254, "fa": 4931, "fi": 2269, "fr": 4905,
		"hi": 3584, "id": 4379, "ja": 4858, "ko": 4651, "ru": 3222, "sw": 3597, "te": 2239, "yo": 705, "zh": 4854}
	runtime.GC()
	debug.FreeOSMemory()
	before, _ := procmem.RSS()
	peak := before
	got := map[string]int{}
	total := 0
	err := StreamCorpus(path, func(p Passage) error {
		got[p.Lang]++
		total++
		if total%5000 == 0 {
			if rss, _ := procmem.RSS(); rss > peak {
				peak = rss
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 62697 {
		t.Fatalf("%d passages, want 62,697", total)
	}
	for lang, n := range want {
		if got[lang] != n {
			t.Errorf("%s: %d passages, want %d", lang, got[lang], n)
		}
	}
	st, _ := os.Stat(path)
	t.Logf("streamed %d MB: RSS %d -> peak %d MiB", st.Size()>>20, before>>20, peak>>20)
	if peak-before > st.Size()/4 {
		t.Fatalf("RSS grew by %d MiB streaming a %d MiB file: the corpus is being held", (peak-before)>>20, st.Size()>>20)
	}
}

func TestMalformedFiles(t *testing.T) {
	dir := t.TempDir()
	gz := filepath.Join(dir, "corpus.jsonl.gz")
	f, _ := os.Create(gz)
	w := gzip.NewWriter(f)
	w.Write([]byte(`{"lang":"sw","docid":"1#0","title":"t","text":"a"}` + "\n" + `{"lang":"sw","docid":` + "\n"))
	w.Close()
	f.Close()
	n := 0
	err := StreamCorpus(gz, func(Passage) error { n++; return nil })
	if n != 1 || err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("gzipped corpus with a broken line 2: %d passages, %v", n, err)
	}
	qrels := filepath.Join(dir, "qrels.tsv")
	os.WriteFile(qrels, []byte("1 Q0 5#1 1\n1 Q0 5#2\n"), 0o644)
	if _, err := ReadQrels(qrels); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("short qrels line: %v", err)
	}
	if _, err := ReadTopics(filepath.Join(dir, "missing.tsv")); err == nil || !strings.Contains(err.Error(), "missing.tsv") {
		t.Errorf("missing topics: %v", err)
	}
}
