package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/jsonfile"
	"github.com/xling-ir/xling/trainer"
	"github.com/xling-ir/xling/vectorizer"
)

// MIRACLSet is the MIRACL evaluation every model also gets: monolingual
// retrieval over a corpus, nDCG@10 and Recall@100 beside BM25.
type MIRACLSet struct {
	Corpus string `json:"corpus"` // under the data directory: JSON lines, optionally .gz
	Topics string `json:"topics"` // under the data directory: dev topics and qrels
	// Langs keeps these languages of the corpus; empty keeps all.
	Langs []string `json:"langs,omitempty"`
	// Partial says the corpus is not MIRACL's whole corpus: every table
	// says so, and its numbers are not comparable with published ones.
	Partial bool `json:"partial"`
}

// MIRACLResult is one model's (or BM25's) MIRACL evaluation.
type MIRACLResult struct {
	Method string             `json:"method"`
	Seed   uint64             `json:"seed"`
	Report *eval.MIRACLReport `json:"report"`
}

// MIRACLSummary is one method's MIRACL numbers over seeds: each seed's
// mean over languages.
type MIRACLSummary struct {
	Method string `json:"method"`
	Seeds  int    `json:"seeds"`
	NDCG10 Stat   `json:"ndcg@10"`
	Recall Stat   `json:"recall@100"`
}

// miraclDepth is where MIRACL recall is cut.
const miraclDepth = 100

// miracl evaluates the model in dir on MIRACL (and BM25 with it when
// bm25), unless a finished evaluation is cached. Each model's collection is
// dropped once evaluated: the scores and runs are what is kept.
func (e *evaluator) miracl(ctx context.Context, d Direction, method string, seed uint64, dir string, bm25 bool) ([]MIRACLResult, error) {
	path := filepath.Join(e.opts.Out, "eval", d.key(), fmt.Sprintf("miracl-%s-seed%d.json", method, seed))
	var cached []MIRACLResult
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &cached) == nil && len(cached) > 0 {
		return cached, nil
	}
	v, err := e.load(dir)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	set := e.cfg.MIRACL
	m := indexer.MIRACLEval{Corpus: e.source(set.Corpus), Topics: e.source(set.Topics), Langs: set.Langs, Partial: set.Partial, Depth: miraclDepth, Log: e.log}
	class := className(d, "miracl_"+method, seed)
	e.log.Info("miracl", "direction", d.Name(), "method", method, "seed", seed, "collection", class)
	im := e.importer(class)
	passages := func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Passage) }
	queries := func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Query) }
	rep, runs, err := m.Run(ctx, im, e.search, passages, queries, bm25)
	if err != nil {
		return nil, fmt.Errorf("miracl %s seed %d: %w", method, seed, err)
	}
	var out []MIRACLResult
	for how, rs := range runs {
		name := method
		if how == eval.BM25 {
			name = BM25
		}
		run := filepath.Join(filepath.Dir(path), fmt.Sprintf("miracl-%s-seed%d.run", name, seed))
		if err := eval.WriteMIRACLRun(run, rs, name); err != nil {
			return nil, err
		}
		one := *rep
		one.Results = map[eval.Method][]eval.MIRACLScores{how: rep.Results[how]}
		out = append(out, MIRACLResult{Method: name, Seed: seed, Report: &one})
	}
	if err := jsonfile.Write(path, out); err != nil {
		return nil, err
	}
	return out, im.Drop(ctx)
}

// summariseMIRACL averages each method's MIRACL scores over languages,
// then states the spread over seeds.
func (d *DirectionResult) summariseMIRACL(order []string) {
	d.MIRACLSummary = nil
	for _, m := range order {
		var ndcg, rec []float64
		for _, r := range d.MIRACL {
			if r.Method != m {
				continue
			}
			var n, rc float64
			var langs int
			for _, scores := range r.Report.Results {
				for _, s := range scores {
					n, rc, langs = n+s.NDCG10, rc+s.Recall, langs+1
				}
			}
			if langs > 0 {
				ndcg, rec = append(ndcg, n/float64(langs)), append(rec, rc/float64(langs))
			}
		}
		if len(ndcg) > 0 {
			d.MIRACLSummary = append(d.MIRACLSummary, MIRACLSummary{Method: m, Seeds: len(ndcg), NDCG10: stat(ndcg), Recall: stat(rec)})
		}
	}
}

// miraclText tabulates MIRACL and says whether the paper's finding holds:
// monolingual batches best on monolingual MIRACL.
func (r *Report) miraclText(d DirectionResult) string {
	if len(d.MIRACLSummary) == 0 {
		return ""
	}
	var b strings.Builder
	label := "the whole corpus"
	if r.Config.MIRACL.Partial {
		label = "a PARTIAL corpus (only dev topics with a judged-relevant passage in it are scored): not comparable with published MIRACL numbers"
	}
	fmt.Fprintf(&b, "### MIRACL dev, monolingual (%s)\n\nnDCG@10 and Recall@%d averaged over languages, then over seeds (±).\n\n| method | seeds | nDCG@10 | Recall@%d |\n|---|---|---|---|\n", label, miraclDepth, miraclDepth)
	best := MIRACLSummary{NDCG10: Stat{Mean: math.Inf(-1)}}
	for _, s := range d.MIRACLSummary {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", s.Method, s.Seeds, pm(s.NDCG10, 4), pm(s.Recall, 4))
		if s.Method != BM25 && s.Method != Untrained && s.NDCG10.Mean > best.NDCG10.Mean {
			best = s
		}
	}
	if best.Method != "" {
		fmt.Fprintf(&b, "\nThe paper found monolingual batches best on monolingual MIRACL. Here the best trained model is %s (nDCG@10 %.4f)", best.Method, best.NDCG10.Mean)
		if best.Method == string(trainer.ModeMono) || best.Method == string(trainer.ModeXX) {
			b.WriteString(": monolingual batches, as in the paper.")
		} else {
			b.WriteString(": not monolingual batches, unlike the paper.")
		}
		if len(r.Config.Seeds) < 3 {
			b.WriteString(" (One seed: the differences may be seed noise.)")
		}
		b.WriteString("\n")
	}
	return b.String() + "\n"
}
