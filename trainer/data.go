// Package trainer fine-tunes retrieval encoders with hybrid batch training:
// each batch is monolingual or cross-lingual, drawn with a set probability,
// under a contrastive loss over in-batch negatives.
package trainer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"

	"github.com/xling-ir/xling/qa"
)

// Item is one question with its positive passage in one language. Items
// that share Group are translations of each other.
type Item struct {
	Group    string `json:"group"`
	Lang     string `json:"lang"`
	Query    string `json:"query"`
	Passage  string `json:"passage"`
	Negative string `json:"negative,omitempty"` // another sentence of the passage's paragraph
}

// Items turns a QA dataset into training items. The group is the dataset's
// name and the question id, so that parallel questions share it.
func Items(ds *qa.Dataset) []Item {
	out := make([]Item, 0, len(ds.Questions))
	for _, q := range ds.Questions {
		it := Item{Group: ds.Name + "/" + q.ID, Lang: q.Lang, Query: q.Text, Passage: ds.Candidates[q.Answer].Text}
		if q.Negative >= 0 {
			it.Negative = ds.Candidates[q.Negative].Text
		}
		out = append(out, it)
	}
	return out
}

// Split divides items by group, so that no question is in both parts in any
// language. A group goes to validation when its hash with seed falls under
// fraction: stable across runs and independent of item order.
func Split(items []Item, fraction float64, seed uint64) (train, valid []Item) {
	for _, it := range items {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s", seed, it.Group)
		if float64(h.Sum64()%1_000_000)/1_000_000 < fraction {
			valid = append(valid, it)
		} else {
			train = append(train, it)
		}
	}
	return train, valid
}

// WriteItems writes items as JSON lines, atomically.
func WriteItems(path string, items []Item) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// ReadItems reads JSON lines written by WriteItems.
func ReadItems(path string) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read training items: %w", err)
	}
	defer f.Close()
	var out []Item
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var it Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return nil, fmt.Errorf("read %s line %d: %w", path, line, err)
		}
		if it.Group == "" || it.Lang == "" || it.Query == "" || it.Passage == "" {
			return nil, fmt.Errorf("read %s line %d: group, lang, query and passage are required", path, line)
		}
		if !qa.IsLanguageCode(it.Lang) {
			return nil, fmt.Errorf("read %s line %d: %q is not a language code (want ISO 639, such as en or zh)", path, line, it.Lang)
		}
		out = append(out, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// Languages lists the languages of items, sorted.
func Languages(items []Item) []string {
	seen := map[string]bool{}
	for _, it := range items {
		seen[it.Lang] = true
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
