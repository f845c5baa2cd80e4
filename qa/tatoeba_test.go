package qa

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTatoeba(t *testing.T) {
	dir := filepath.Join(data(t), "tatoeba")
	ds, err := LoadSource(dir+":deu,cmn", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ds.Languages, ",") != "de,en,zh" {
		t.Errorf("languages %v, want de, en, zh (ISO 639-1)", ds.Languages)
	}
	// Every id holds one English sentence and its translation.
	byID := map[string][]Question{}
	for _, q := range ds.Questions {
		byID[q.ID] = append(byID[q.ID], q)
		if ds.Candidates[q.Answer].Text != q.Text || ds.Candidates[q.Answer].Lang != q.Lang {
			t.Fatalf("question %s (%s) answered by %+v", q.ID, q.Lang, ds.Candidates[q.Answer])
		}
	}
	if len(byID) < 1000 {
		t.Errorf("%d pairs from deu and cmn; LASER ships up to 1,000 each", len(byID))
	}
	for id, qs := range byID {
		if len(qs) != 2 || qs[0].Lang != "en" || qs[1].Lang == "en" {
			t.Fatalf("id %s holds %+v, want English then its translation", id, qs)
		}
	}
	if all, err := LoadSource(dir, nil); err != nil || len(all.Languages) < 100 {
		t.Errorf("all of Tatoeba: %v languages, %v", len(all.Languages), err)
	}

	// Files that are not line-aligned are refused, naming the file.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "tatoeba.deu-eng.eng"), []byte("one\ntwo\n"), 0o644)
	os.WriteFile(filepath.Join(bad, "tatoeba.deu-eng.deu"), []byte("eins\n"), 0o644)
	if _, err := LoadSource(bad, nil); err == nil || !strings.Contains(err.Error(), "tatoeba.deu-eng.deu") {
		t.Errorf("misaligned files: %v", err)
	}
	if _, err := LoadSource(dir+":xx", nil); err == nil {
		t.Error("a language Tatoeba lacks loaded")
	}
}
