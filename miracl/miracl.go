// Package miracl reads MIRACL: topics (qid<TAB>query), TREC qrels and the
// corpus as JSON lines, optionally gzipped, streamed one passage at a time —
// the corpora run to millions of passages and are never held whole.
package miracl

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Topic is one query.
type Topic struct {
	ID    string
	Query string
}

// Judgment is one qrels line.
type Judgment struct {
	QID, DocID string
	Relevance  int
}

// Passage is one corpus entry.
type Passage struct {
	Lang  string `json:"lang"`
	DocID string `json:"docid"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// TopicsPath and QrelsPath are where Anserini's layout keeps a language's
// dev files.
func TopicsPath(dir, lang string) string {
	return filepath.Join(dir, "topics", "topics.miracl-v1.0-"+lang+"-dev.tsv")
}

// QrelsPath is the dev qrels of a language.
func QrelsPath(dir, lang string) string {
	return filepath.Join(dir, "qrels", "qrels.miracl-v1.0-"+lang+"-dev.tsv")
}

// ReadTopics reads qid<TAB>query lines.
func ReadTopics(path string) ([]Topic, error) {
	var out []Topic
	err := eachLine(path, func(line int, s string) error {
		id, query, ok := strings.Cut(s, "\t")
		if !ok || id == "" || query == "" {
			return fmt.Errorf("want qid<TAB>query")
		}
		out = append(out, Topic{ID: id, Query: query})
		return nil
	})
	return out, err
}

// ReadQrels reads TREC "qid Q0 docid relevance" lines.
func ReadQrels(path string) ([]Judgment, error) {
	var out []Judgment
	err := eachLine(path, func(line int, s string) error {
		f := strings.Fields(s)
		if len(f) != 4 {
			return fmt.Errorf("want 4 fields (qid Q0 docid relevance), got %d", len(f))
		}
		rel, err := strconv.Atoi(f[3])
		if err != nil {
			return fmt.Errorf("relevance %q is not an integer", f[3])
		}
		out = append(out, Judgment{QID: f[0], DocID: f[2], Relevance: rel})
		return nil
	})
	return out, err
}

func eachLine(path string, fn func(line int, s string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		if err := fn(n, sc.Text()); err != nil {
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// StreamCorpus calls fn for each passage of a JSON-lines corpus (gzipped
// when the name ends in .gz), holding one line at a time. A malformed line
// stops the stream with its line number.
func StreamCorpus(path string, fn func(Passage) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read corpus: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("read corpus %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		var p Passage
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("corpus %s line %d: %w", path, n, err)
		}
		if p.DocID == "" {
			return fmt.Errorf("corpus %s line %d: no docid", path, n)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read corpus %s: %w", path, err)
	}
	return nil
}

// Judged is one dev topic to evaluate: its language, text and the
// judged-relevant passages that the loaded corpus holds.
type Judged struct {
	Lang, QID, Query string
	Relevant         map[string]bool // docids
}

// JudgedTopics keeps the dev topics of a language with at least one
// judged-relevant passage in loaded: on a partial corpus the rest cannot be
// scored. It also returns how many topics the language has in all.
func JudgedTopics(dir, lang string, loaded map[string]bool) (kept []Judged, all int, err error) {
	topics, err := ReadTopics(TopicsPath(dir, lang))
	if err != nil {
		return nil, 0, err
	}
	qrels, err := ReadQrels(QrelsPath(dir, lang))
	if err != nil {
		return nil, 0, err
	}
	rel := map[string]map[string]bool{}
	for _, j := range qrels {
		if j.Relevance > 0 && loaded[j.DocID] {
			if rel[j.QID] == nil {
				rel[j.QID] = map[string]bool{}
			}
			rel[j.QID][j.DocID] = true
		}
	}
	for _, t := range topics {
		if len(rel[t.ID]) > 0 {
			kept = append(kept, Judged{Lang: lang, QID: t.ID, Query: t.Query, Relevant: rel[t.ID]})
		}
	}
	return kept, len(topics), nil
}
