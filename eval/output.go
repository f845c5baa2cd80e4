package eval

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xling-ir/xling/eval/plot"
	"github.com/xling-ir/xling/qa"
)

// docID names a candidate in TREC files: language/paragraph/sentence.
func docID(c qa.Candidate) string { return fmt.Sprintf("%s/%d/%d", c.Lang, c.Para, c.Sent) }

// queryID names one run in TREC files: id/language/setting/target.
func queryID(ds *qa.Dataset, r Run) string {
	q := ds.Questions[r.Question]
	return fmt.Sprintf("%s/%s/%s/%s", q.ID, q.Lang, r.Setting, r.Target)
}

// WriteTREC writes the runs as a TREC run file and the matching qrels, so
// that trec_eval or ir_measures can recompute the depth-cut numbers (a run
// holds a ranking's first TRECDepth results).
func WriteTREC(runPath, qrelsPath string, ds *qa.Dataset, runs []Run, name string) error {
	rel := relevance(ds)
	return errors.Join(
		writeLines(runPath, func(w io.Writer) {
			for _, r := range runs {
				qid := queryID(ds, r)
				for i, key := range r.Ranking {
					score := 0.0
					if i < len(r.Scores) {
						score = r.Scores[i]
					}
					fmt.Fprintf(w, "%s Q0 %s %d %.6f %s\n", qid, docID(ds.Candidates[key]), i+1, score, name)
				}
			}
		}),
		writeLines(qrelsPath, func(w io.Writer) {
			for _, r := range runs {
				qid := queryID(ds, r)
				q := ds.Questions[r.Question]
				langs := make([]string, 0, len(rel[q.ID]))
				for lang := range rel[q.ID] {
					if r.Setting == Multi || lang == r.Target {
						langs = append(langs, lang)
					}
				}
				sort.Strings(langs)
				for _, lang := range langs {
					fmt.Fprintf(w, "%s 0 %s 1\n", qid, docID(ds.Candidates[rel[q.ID][lang]]))
				}
			}
		}))
}

func writeLines(path string, fn func(io.Writer)) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	fn(w)
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// Markdown renders reports as a table, one row per method.
func Markdown(reports []*Report) string {
	var b strings.Builder
	if len(reports) == 0 {
		return ""
	}
	d := reports[0].Depth
	at := DepthLabel(d)
	fmt.Fprintf(&b, "| dataset | method | mAP%s mono | mAP%s cross | mAP%s multi | MRR@10 multi | nDCG@10 multi | Recall@%d multi | language bias%s |\n", at, at, at, RecallAt(d), at)
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reports {
		fmt.Fprintf(&b, "| %s | %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f |\n", r.Dataset, r.Method,
			r.Mono.MAP, r.Cross.MAP, r.Multi.MAP, r.Multi.MRR10, r.Multi.NDCG10, r.Multi.Recall, r.LanguageBias)
	}
	if d == WholePool {
		b.WriteString("\nEvery question ranks its setting's whole pool (mono: its language; cross: the target language; multi: every language), as LAReQA does. mAP is averaged over all relevant candidates per language pair (mono, cross) or query language (multi), then macro-averaged. Language bias: max − min rank of a question's parallel relevant candidates in the complete multilingual ranking, averaged per question language, then over languages (lower is better).\n")
	} else {
		fmt.Fprintf(&b, "\nRankings cut at %d results (`--depth %d`; the published protocol ranks the whole pool): mAP@%d is averaged over all relevant candidates, per language pair (mono, cross) or query language (multi), then macro-averaged. Language bias@%d: spread of the ranks of a question's parallel relevant candidates in the multilingual pool (lower is better; candidates beyond %d count at %d, so it is capped).\n", d, d, d, d, d, d+1)
	}
	return b.String()
}

// WriteCharts draws reports as PNG files in dir: mAP by setting across the
// methods (map.png) and a per-language-pair heatmap of mAP per method
// (pairs-<method>.png). It returns the files' names.
func WriteCharts(dir string, ds *qa.Dataset, reports []*Report) ([]string, error) {
	var files []string
	var series []plot.Series
	for _, r := range reports {
		series = append(series, plot.Series{Name: string(r.Method), Values: []float64{r.Mono.MAP, r.Cross.MAP, r.Multi.MAP}})
		name := "pairs-" + string(r.Method) + ".png"
		err := plot.Heatmap(filepath.Join(dir, name), fmt.Sprintf("%s: mAP%s per language pair (%s)", ds.Name, DepthLabel(r.Depth), r.Method),
			"candidate language", "question language", ds.Languages, ds.Languages, func(q, c string) (float64, bool) {
				v, ok := r.PairMAP[q+"->"+c]
				return v, ok
			})
		if err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	if len(reports) > 0 {
		if err := plot.Bars(filepath.Join(dir, "map.png"), fmt.Sprintf("%s: mAP%s by setting", ds.Name, DepthLabel(reports[0].Depth)), "mAP",
			[]string{"mono", "cross", "multi"}, series); err != nil {
			return nil, err
		}
		files = append(files, "map.png")
	}
	return files, nil
}

// WriteMIRACLRun writes MIRACL runs as a TREC run file (qid Q0 docid rank
// score tag).
func WriteMIRACLRun(path string, runs []MIRACLRun, tag string) error {
	return writeLines(path, func(w io.Writer) {
		for _, r := range runs {
			for i, d := range r.Ranking {
				fmt.Fprintf(w, "%s Q0 %s %d %.6f %s\n", r.Topic.QID, d, i+1, r.Scores[i], tag)
			}
		}
	})
}

// WriteReport writes report.json (the report, indented) and report.md into
// dir.
func WriteReport(dir string, report any, markdown string) error {
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return fmt.Errorf("report.json: %w", err)
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644),
		os.WriteFile(filepath.Join(dir, "report.md"), []byte(markdown), 0o644))
}
