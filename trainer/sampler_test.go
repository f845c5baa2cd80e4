package trainer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/qa"
)

func xquadItems(t testing.TB) []Item {
	t.Helper()
	dir := sharedtest.Dir(t)
	ds, err := qa.LoadLAReQA(filepath.Join(dir, "xquad-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return Items(ds)
}

func TestSamplerModes(t *testing.T) {
	items := xquadItems(t)
	for _, mode := range []Mode{ModeMono, ModeXX, ModeCross, ModeHybrid} {
		s, err := NewSampler(items, SamplerConfig{Mode: mode, Alpha: 0.5, BatchSize: 32, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		mono, mixedLangs := 0, 0
		const batches = 2000
		for b := 0; b < batches; b++ {
			batch := s.Next()
			if len(batch) != 32 {
				t.Fatalf("%s: batch of %d", mode, len(batch))
			}
			groups := map[string]bool{}
			langs := map[string]bool{}
			allSame, allCross := true, true
			for _, p := range batch {
				if groups[p.Group] {
					t.Fatalf("%s: group %s twice in one batch", mode, p.Group)
				}
				groups[p.Group] = true
				langs[p.QueryLang] = true
				allSame = allSame && p.QueryLang == p.PassageLang
				allCross = allCross && p.QueryLang != p.PassageLang
			}
			isMono := allSame && len(langs) == 1
			if isMono {
				mono++
			}
			if len(langs) > 1 {
				mixedLangs++
			}
			switch mode {
			case ModeMono:
				if !isMono {
					t.Fatalf("mono batch with query languages %v", langs)
				}
			case ModeXX:
				if !allSame {
					t.Fatal("x-x batch with a cross-lingual pair")
				}
			case ModeCross:
				if !allCross {
					t.Fatal("cross batch with a same-language pair")
				}
			case ModeHybrid:
				if !isMono && !allCross {
					t.Fatal("hybrid batch neither monolingual nor cross-lingual")
				}
			}
		}
		if mode == ModeXX && mixedLangs < batches/2 {
			t.Errorf("x-x: only %d of %d batches mix languages", mixedLangs, batches)
		}
		if mode == ModeHybrid {
			share := float64(mono) / batches
			t.Logf("hybrid: %.3f of %d batches monolingual (alpha 0.5)", share, batches)
			if math.Abs(share-0.5) > 0.03 {
				t.Errorf("hybrid monolingual share %.3f, want 0.5 ± 0.03", share)
			}
		}
	}
}

func TestSamplerDeterministicAndResumable(t *testing.T) {
	items := xquadItems(t)
	cfg := SamplerConfig{Mode: ModeHybrid, Alpha: 0.5, BatchSize: 8, Seed: 3}
	a, _ := NewSampler(items, cfg)
	b, _ := NewSampler(items, cfg)
	for i := 0; i < 10; i++ {
		a.Next()
		b.Next()
	}
	state, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewSampler(items, cfg)
	if err := json.Unmarshal(state, c); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		x, y, z := a.Next(), b.Next(), c.Next()
		if !reflect.DeepEqual(x, y) || !reflect.DeepEqual(x, z) {
			t.Fatalf("batch %d differs between equal seeds or after restoring state", i)
		}
	}
}

func TestAlphaFromSize(t *testing.T) {
	items := xquadItems(t)
	// 11 languages a group: 11 mono pairs, 110 cross pairs.
	if a := AlphaFromSize(items); math.Abs(a-11.0/121) > 1e-9 {
		t.Fatalf("alpha from size %g, want %g", a, 11.0/121)
	}
	if _, err := ParseAlpha("1.5", items); err == nil {
		t.Fatal("alpha 1.5 accepted")
	}
}

func TestSamplerBadInput(t *testing.T) {
	if _, err := NewSampler(nil, SamplerConfig{Mode: ModeMono, BatchSize: 4}); err == nil || !strings.Contains(err.Error(), "no training pairs") {
		t.Errorf("no pairs: %v", err)
	}
	single := []Item{{Group: "a", Lang: "en", Query: "q", Passage: "p"}, {Group: "b", Lang: "de", Query: "q", Passage: "p"}}
	if _, err := NewSampler(single, SamplerConfig{Mode: ModeCross, BatchSize: 2}); err == nil || !strings.Contains(err.Error(), "shared by two or more languages") {
		t.Errorf("cross without parallel ids: %v", err)
	}
	if _, err := NewSampler(single, SamplerConfig{Mode: "zigzag", BatchSize: 2}); err == nil || !strings.Contains(err.Error(), `unknown batch mode "zigzag"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestSplitByGroup(t *testing.T) {
	items := xquadItems(t)
	train, valid := Split(items, 0.1, 1)
	inTrain := map[string]bool{}
	for _, it := range train {
		inTrain[it.Group] = true
	}
	for _, it := range valid {
		if inTrain[it.Group] {
			t.Fatalf("group %s in both splits", it.Group)
		}
	}
	if f := float64(len(valid)) / float64(len(items)); f < 0.07 || f > 0.13 {
		t.Fatalf("validation share %.3f, want about 0.1", f)
	}
}

func TestReadItemsRejectsBadLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "train.jsonl")
	for body, want := range map[string]string{
		`{"group":"g","lang":"english!","query":"q","passage":"p"}` + "\n": `"english!" is not a language code`,
		`{"group":"g","lang":"en","query":"q"}` + "\n":                     "line 1: group, lang, query and passage are required",
		"{\"group\":\n": "line 1",
	} {
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := ReadItems(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
