package qa

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// tatoebaISO1 maps the ISO 639-3 codes of Tatoeba's file names to the
// ISO 639-1 codes of the QA sets, so that a language is one language in
// training; codes not listed stay as they are.
var tatoebaISO1 = map[string]string{
	"ara": "ar", "ben": "bn", "cmn": "zh", "deu": "de", "ell": "el", "eng": "en", "fin": "fi",
	"fra": "fr", "hin": "hi", "ind": "id", "jpn": "ja", "kor": "ko", "pes": "fa", "rus": "ru",
	"spa": "es", "swh": "sw", "tel": "te", "tha": "th", "tur": "tr", "vie": "vi", "yor": "yo",
}

// IsTatoeba reports whether dir holds Tatoeba's LASER test files
// (tatoeba.<xxx>-eng.<xxx> and tatoeba.<xxx>-eng.eng).
func IsTatoeba(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "tatoeba.*-eng.eng"))
	return len(m) > 0
}

// LoadTatoeba reads Tatoeba's parallel sentences as a dataset of
// translation pairs: each line of a language paired with English is a
// question id holding the English sentence and its translation, each its
// own answer. In training these make cross-lingual batches of translation
// pairs, the alignment a model trained from scratch lacks between scripts.
// keep selects languages by either code (deu or de); nil keeps all 112.
func LoadTatoeba(dir string, keep []string) (*Dataset, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tatoeba.*-eng.eng"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load %s: no tatoeba.<xxx>-eng.eng files", dir)
	}
	ds := &Dataset{Name: "tatoeba"}
	langs := map[string]bool{}
	for _, eng := range files {
		code := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(eng), "tatoeba."), "-eng.eng")
		lang := code
		if l, ok := tatoebaISO1[code]; ok {
			lang = l
		}
		if keep != nil && !slices.Contains(keep, code) && !slices.Contains(keep, lang) {
			continue
		}
		en, err := readLines(eng)
		if err != nil {
			return nil, err
		}
		other := strings.TrimSuffix(eng, ".eng") + "." + code
		xx, err := readLines(other)
		if err != nil {
			return nil, err
		}
		if len(en) != len(xx) {
			return nil, fmt.Errorf("load %s: %d lines, but %s has %d: the files must be line-aligned", other, len(xx), eng, len(en))
		}
		for i := range en {
			id := fmt.Sprintf("%s/%d", code, i)
			for _, s := range []struct{ lang, text string }{{"en", en[i]}, {lang, xx[i]}} {
				if strings.TrimSpace(s.text) == "" {
					return nil, fmt.Errorf("load %s: line %d is empty in %s", dir, i+1, s.lang)
				}
				ds.Questions = append(ds.Questions, Question{ID: id, Lang: s.lang, Text: s.text, Answer: len(ds.Candidates), Negative: -1})
				ds.Candidates = append(ds.Candidates, Candidate{Lang: s.lang, Text: s.text, Para: i})
			}
		}
		langs["en"], langs[lang] = true, true
	}
	if len(ds.Questions) == 0 {
		return nil, fmt.Errorf("load %s: none of languages %v", dir, keep)
	}
	for l := range langs {
		ds.Languages = append(ds.Languages, l)
	}
	slices.Sort(ds.Languages)
	return ds, nil
}

// readLines reads a text file's lines without their line ends.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}
