// Package qa reads question-answering data in SQuAD's JSON format: the
// LAReQA retrieval sets (XQuAD-R, MLQA-R: one file per language, questions
// parallel by id) and plain SQuAD files such as translated training sets.
package qa

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Candidate is one retrievable sentence.
type Candidate struct {
	Lang    string
	Text    string
	Context string // the paragraph it comes from
	Para    int    // paragraph index within its language's file
	Sent    int    // sentence index within the paragraph
}

// Question is one question with the candidate that answers it in its own
// language (Answer indexes Dataset.Candidates) and its parallel id.
type Question struct {
	ID     string // shared by the translations of one question
	Lang   string
	Text   string
	Answer int
	// Negative is another sentence of the answer's paragraph, or -1: the
	// natural hard negative.
	Negative int
}

// Dataset is a parsed multilingual QA retrieval set.
type Dataset struct {
	Name       string
	Languages  []string
	Questions  []Question
	Candidates []Candidate
}

// languageCode accepts the ISO 639-1 codes of the files' names.
var languageCode = regexp.MustCompile(`^[a-z]{2,3}(-[a-z]+)?$`)

// IsLanguageCode reports whether s looks like an ISO 639 code (en, zh,
// pt-br, yue).
func IsLanguageCode(s string) bool { return languageCode.MatchString(s) }

// LoadLAReQA reads every <lang>.json of a LAReQA-layout directory, or only
// the languages given.
func LoadLAReQA(dir string, langs []string) (*Dataset, error) {
	if len(langs) == 0 {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			langs = append(langs, strings.TrimSuffix(filepath.Base(f), ".json"))
		}
		if len(langs) == 0 {
			return nil, fmt.Errorf("load %s: no <lang>.json files", dir)
		}
	}
	sort.Strings(langs)
	ds := &Dataset{Name: filepath.Base(filepath.Clean(dir)), Languages: langs}
	for _, lang := range langs {
		if !languageCode.MatchString(lang) {
			return nil, fmt.Errorf("load %s: %q is not a language code", dir, lang)
		}
		path := filepath.Join(dir, lang+".json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load %s: no file for language %q (%s)", dir, lang, path)
		}
		if err := ds.addFile(path, lang); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// LoadSQuAD reads one plain SQuAD file in one language. Without
// sentence_breaks the paragraph is split into sentences at sentence-final
// punctuation, and the answer is the sentence holding answer_start.
func LoadSQuAD(path, lang string) (*Dataset, error) {
	if !languageCode.MatchString(lang) {
		return nil, fmt.Errorf("load %s: %q is not a language code", path, lang)
	}
	ds := &Dataset{Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), Languages: []string{lang}}
	return ds, ds.addFile(path, lang)
}

type squadFile struct {
	Data []struct {
		Title      string `json:"title"`
		Paragraphs []struct {
			Context        string   `json:"context"`
			Sentences      []string `json:"sentences"`
			SentenceBreaks [][2]int `json:"sentence_breaks"`
			QAs            []struct {
				ID       string `json:"id"`
				Question string `json:"question"`
				Answers  []struct {
					Text        string `json:"text"`
					AnswerStart int    `json:"answer_start"`
				} `json:"answers"`
			} `json:"qas"`
		} `json:"paragraphs"`
	} `json:"data"`
}

func (ds *Dataset) addFile(path, lang string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	var f squadFile
	if err := json.Unmarshal(b, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + strings.Count(string(b[:se.Offset]), "\n")
			return fmt.Errorf("load %s: malformed JSON at line %d (byte %d): %w", path, line, se.Offset, err)
		}
		return fmt.Errorf("load %s: %w", path, err)
	}
	if len(f.Data) == 0 {
		return fmt.Errorf("load %s: no \"data\" articles: not a SQuAD-format file", path)
	}
	para := 0
	for ai, article := range f.Data {
		for pi, p := range article.Paragraphs {
			breaks := p.SentenceBreaks
			sentences := p.Sentences
			if len(breaks) == 0 {
				breaks = splitSentences(p.Context)
				sentences = nil
				for _, br := range breaks {
					sentences = append(sentences, strings.TrimSpace(p.Context[br[0]:br[1]]))
				}
			}
			if len(sentences) != len(breaks) {
				return fmt.Errorf("load %s: article %d paragraph %d: %d sentences but %d sentence_breaks", path, ai, pi, len(sentences), len(breaks))
			}
			first := len(ds.Candidates)
			for si, s := range sentences {
				ds.Candidates = append(ds.Candidates, Candidate{Lang: lang, Text: s, Context: p.Context, Para: para, Sent: si})
			}
			for _, q := range p.QAs {
				if len(q.Answers) == 0 || strings.TrimSpace(q.Question) == "" {
					// Unanswerable (SQuAD 2.0), or no question (2 of
					// CMRC 2018's trial set): nothing to retrieve.
					continue
				}
				// Breaks from the file count characters, as answer_start
				// does; breaks found here count bytes.
				start := byteOffset(p.Context, q.Answers[0].AnswerStart, len(p.SentenceBreaks) > 0)
				si := -1
				for i, br := range breaks {
					if start >= br[0] && start < br[1] {
						si = i
						break
					}
				}
				if si < 0 {
					return fmt.Errorf("load %s: question %s: answer_start %d falls in no sentence", path, q.ID, q.Answers[0].AnswerStart)
				}
				neg := -1
				if len(sentences) > 1 {
					neg = first + (si+1)%len(sentences)
				}
				ds.Questions = append(ds.Questions, Question{ID: q.ID, Lang: lang, Text: q.Question, Answer: first + si, Negative: neg})
			}
			para++
		}
	}
	return nil
}

// byteOffset turns SQuAD's answer_start, counted in characters, into a byte
// offset, unless the offsets it is compared with count characters too.
func byteOffset(context string, chars int, charOffsets bool) int {
	if charOffsets {
		return chars
	}
	i := 0
	for n := 0; n < chars && i < len(context); n++ {
		_, size := utf8.DecodeRuneInString(context[i:])
		i += size
	}
	return i
}

// sentenceEnd matches the end of a sentence in most scripts: Latin and
// Cyrillic full stops, ?, !, the Devanagari danda, CJK and Arabic marks.
var sentenceEnd = regexp.MustCompile(`[.!?]+["')\]]*\s+|[。！？।؟]+\s*`)

// splitSentences returns byte ranges of the sentences of a paragraph.
func splitSentences(text string) [][2]int {
	var out [][2]int
	start := 0
	for _, m := range sentenceEnd.FindAllStringIndex(text, -1) {
		if strings.TrimSpace(text[start:m[1]]) != "" {
			out = append(out, [2]int{start, m[1]})
		}
		start = m[1]
	}
	if strings.TrimSpace(text[start:]) != "" {
		out = append(out, [2]int{start, len(text)})
	}
	if len(out) == 0 {
		out = append(out, [2]int{0, len(text)})
	}
	return out
}

// Sample keeps the questions of the first n question ids (in sorted order),
// in every language, and every candidate: a smaller evaluation with the
// same pools, the same for everyone who asks for n. n <= 0 keeps all.
func (ds *Dataset) Sample(n int) *Dataset {
	if n <= 0 {
		return ds
	}
	ids := map[string]bool{}
	for _, q := range ds.Questions {
		ids[q.ID] = true
	}
	if len(ids) <= n {
		return ds
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	keep := map[string]bool{}
	for _, id := range sorted[:n] {
		keep[id] = true
	}
	out := *ds
	out.Questions = nil
	for _, q := range ds.Questions {
		if keep[q.ID] {
			out.Questions = append(out.Questions, q)
		}
	}
	return &out
}

// QuestionTexts returns the questions' texts, in order.
func (ds *Dataset) QuestionTexts() []string {
	out := make([]string, len(ds.Questions))
	for i, q := range ds.Questions {
		out[i] = q.Text
	}
	return out
}

// CandidateTexts returns the candidates' texts, in key order.
func (ds *Dataset) CandidateTexts() []string {
	out := make([]string, len(ds.Candidates))
	for i, c := range ds.Candidates {
		out[i] = c.Text
	}
	return out
}

// LoadSource reads a training or evaluation source: a LAReQA directory of
// <lang>.json files or Tatoeba's directory (keeping the languages of keep,
// or of DIR:LANG,LANG, or all), or FILE.json:LANG for a plain SQuAD file
// in one language.
func LoadSource(src string, keep []string) (*Dataset, error) {
	if path, lang, ok := SourceFile(src); ok {
		return LoadSQuAD(path, lang)
	}
	if dir, langs, ok := strings.Cut(src, ":"); ok && keep == nil {
		src, keep = dir, strings.Split(langs, ",")
	}
	if IsTatoeba(src) {
		return LoadTatoeba(src, keep)
	}
	return LoadLAReQA(src, keep)
}

// SourceFiles lists the files LoadSource(src) reads, sorted: for the
// checksums that pin a study's data.
func SourceFiles(src string) ([]string, error) {
	if path, _, ok := SourceFile(src); ok {
		return []string{path}, nil
	}
	dir, _, _ := strings.Cut(src, ":")
	pattern := "*.json"
	if IsTatoeba(dir) {
		pattern = "tatoeba.*"
	}
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(files) == 0 {
		return nil, fmt.Errorf("dataset %s: no %s files in %s", src, pattern, dir)
	}
	sort.Strings(files)
	return files, nil
}

// SourceFile splits FILE.json:LANG into the file and its language; ok is
// false for a directory.
func SourceFile(src string) (path, lang string, ok bool) {
	p, lang, ok := strings.Cut(src, ".json:")
	return p + ".json", lang, ok
}
