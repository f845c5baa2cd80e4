package experiment

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/eval/plot"
	"github.com/xling-ir/xling/internal/buildinfo"
	"github.com/xling-ir/xling/internal/torchx"
	"github.com/xling-ir/xling/trainer"
)

// Report is a finished study: report.json holds it whole.
type Report struct {
	Config     Config            `json:"config"`
	Budget     string            `json:"budget"`
	Versions   map[string]string `json:"versions"`
	Data       map[string]string `json:"data_sha256"`
	Directions []DirectionResult `json:"directions"`
	// Pending names the directions not evaluated yet: the report of a
	// study still running, or stopped, is partial.
	Pending    []string  `json:"pending,omitempty"`
	Conclusion string    `json:"conclusion"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
}

// DirectionResult is one zero-shot pairing's evaluations.
type DirectionResult struct {
	Direction    Direction `json:"direction"`
	Name         string    `json:"name"`
	Questions    int       `json:"questions"`     // evaluated
	AllQuestions int       `json:"all_questions"` // in the dataset
	Languages    []string  `json:"languages"`
	Results      []Result  `json:"results"`
	Summary      []Summary `json:"summary"`
	// MIRACL holds every model's MIRACL evaluation (config miracl).
	MIRACL        []MIRACLResult  `json:"miracl,omitempty"`
	MIRACLSummary []MIRACLSummary `json:"miracl_summary,omitempty"`
	Claims        []Claim         `json:"claims,omitempty"`
	Curves        []curve         `json:"-"`
}

type curve struct{ Mode, Path string }

// Summary is one method's numbers over seeds: mean and sample standard
// deviation.
type Summary struct {
	Method string             `json:"method"`
	Seeds  int                `json:"seeds"`
	Depth  int                `json:"depth"` // of its rankings: eval.WholePool, or a cut
	Mono   Stat               `json:"map_mono"`
	Cross  Stat               `json:"map_cross"`
	Multi  Stat               `json:"map_multi"`
	NDCG10 Stat               `json:"ndcg@10_multi"`
	Recall Stat               `json:"recall@depth_multi"`
	MRR10  Stat               `json:"mrr@10_multi"`
	Bias   Stat               `json:"language_bias"`
	Pairs  map[string]float64 `json:"pair_map"` // mean over seeds
}

// Stat is a mean and its spread over seeds (0 with one seed).
type Stat struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

func stat(xs []float64) Stat {
	s := Stat{}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			s.Std += (x - s.Mean) * (x - s.Mean)
		}
		s.Std = math.Sqrt(s.Std / float64(len(xs)-1))
	}
	return s
}

// order is how methods are listed: the baseline first, then the modes.
func (r *Report) order() []string {
	return append(append([]string{Untrained}, r.Config.modelNames()...), HybridSearch, BM25)
}

func (r *Report) summarise() {
	for i := range r.Directions {
		d := &r.Directions[i]
		d.Summary = nil
		for _, m := range r.order() {
			var mono, cross, multi, ndcg, rec, mrr, bias []float64
			pairs := map[string]float64{}
			depth := 0
			for _, res := range d.Results {
				if res.Method != m {
					continue
				}
				rep := res.Report
				depth = rep.Depth
				mono, cross, multi = append(mono, rep.Mono.MAP), append(cross, rep.Cross.MAP), append(multi, rep.Multi.MAP)
				ndcg, rec, mrr = append(ndcg, rep.Multi.NDCG10), append(rec, rep.Multi.Recall), append(mrr, rep.Multi.MRR10)
				bias = append(bias, rep.LanguageBias)
				for k, v := range rep.PairMAP {
					pairs[k] += v
				}
			}
			if len(mono) == 0 {
				continue
			}
			for k := range pairs {
				pairs[k] /= float64(len(mono))
			}
			d.Summary = append(d.Summary, Summary{Method: m, Seeds: len(mono), Depth: depth, Mono: stat(mono), Cross: stat(cross), Multi: stat(multi),
				NDCG10: stat(ndcg), Recall: stat(rec), MRR10: stat(mrr), Bias: stat(bias), Pairs: pairs})
		}
		d.summariseMIRACL(r.order())
		d.Claims = r.claims(*d)
	}
	r.Conclusion = r.conclude()
}

func (d *DirectionResult) summary(method string) (Summary, bool) {
	for _, s := range d.Summary {
		if s.Method == method {
			return s, true
		}
	}
	return Summary{}, false
}

// conclude answers the study's question from the numbers: hybrid (and
// cross) against monolingual (X-X) training, in the multilingual pool and
// in language bias. A difference counts only when it exceeds twice the
// larger spread over at least three seeds.
func (r *Report) conclude() string {
	var b strings.Builder
	for _, d := range r.Directions {
		mono, ok1 := d.summary(string(trainer.ModeMono))
		hyb, ok2 := d.summary(r.Config.searchModel())
		if !ok1 || !ok2 {
			continue
		}
		// The seeds evaluated so far: a partial report may have fewer
		// than the config's.
		seeds := min(mono.Seeds, hyb.Seeds)
		dm := hyb.Multi.Mean - mono.Multi.Mean
		db := hyb.Bias.Mean - mono.Bias.Mean
		fmt.Fprintf(&b, "On %s (zero-shot, %d questions), hybrid-batch training reaches a multilingual-pool mAP of %.4f against %.4f for monolingual (X-X) training (%+.4f, %+.1f%%), cross-lingual mAP %.4f against %.4f, monolingual mAP %.4f against %.4f, and a language bias of %.1f against %.1f ranks (%+.1f; lower is better).",
			d.Name, d.Questions, hyb.Multi.Mean, mono.Multi.Mean, dm, 100*dm/math.Max(mono.Multi.Mean, 1e-9),
			hyb.Cross.Mean, mono.Cross.Mean, hyb.Mono.Mean, mono.Mono.Mean, hyb.Bias.Mean, mono.Bias.Mean, db)
		if cr, ok := d.summary(string(trainer.ModeCross)); ok {
			fmt.Fprintf(&b, " Cross-lingual batches alone give %.4f multilingual mAP and a bias of %.1f.", cr.Multi.Mean, cr.Bias.Mean)
		}
		if seeds < 3 {
			fmt.Fprintf(&b, " With %d seed(s) evaluated this run cannot tell these differences from seed noise: it needs 3 seeds (`--budget full`) before drawing a conclusion.\n\n", seeds)
			continue
		}
		noise := 2 * math.Max(hyb.Multi.Std, mono.Multi.Std)
		biasNoise := 2 * math.Max(hyb.Bias.Std, mono.Bias.Std)
		switch {
		case dm > noise && db < -biasNoise:
			fmt.Fprintf(&b, " Over %d seeds both differences exceed twice the spread (%.4f mAP, %.1f ranks): hybrid training beats monolingual training in the multilingual setting and lowers language bias at this scale.\n\n", seeds, noise, biasNoise)
		case dm > noise:
			fmt.Fprintf(&b, " Over %d seeds the mAP gain exceeds twice the spread (%.4f), but the bias difference does not (%.1f ranks): hybrid training beats monolingual training in the multilingual setting; lower language bias is not shown at this scale.\n\n", seeds, noise, biasNoise)
		case dm < -noise:
			fmt.Fprintf(&b, " Over %d seeds hybrid training is worse than monolingual training in the multilingual setting by more than twice the spread (%.4f): at this scale it does not beat it.\n\n", seeds, noise)
		default:
			fmt.Fprintf(&b, " Over %d seeds the mAP difference is within twice the spread (%.4f): at this scale hybrid training does not measurably beat monolingual training in the multilingual setting.\n\n", seeds, noise)
		}
	}
	return strings.TrimSpace(b.String())
}

// versions are what a rerun needs to match.
func versions(weaviate string) map[string]string {
	return map[string]string{"go": runtime.Version(), "libtorch": torchx.Version(), "weaviate": weaviate,
		"os/arch": runtime.GOOS + "/" + runtime.GOARCH, "xling": buildinfo.Revision()}
}

func (r *Report) write(dir string) error {
	pngs, err := r.charts(dir)
	if err != nil {
		return err
	}
	return eval.WriteReport(dir, r, r.markdown(pngs))
}

// charts draws, per direction: mAP by setting across methods, a
// per-language-pair heatmap per method, and the training curves.
func (r *Report) charts(dir string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, d := range r.Directions {
		key := d.Direction.key()
		var groups = []string{"mono", "cross", "multi"}
		var series []plot.Series
		for _, s := range d.Summary {
			series = append(series, plot.Series{Name: s.Method, Values: []float64{s.Mono.Mean, s.Cross.Mean, s.Multi.Mean}})
		}
		bars := key + "-map.png"
		if err := plot.Bars(filepath.Join(dir, bars), "mAP"+eval.DepthLabel(r.Config.Depth)+" on "+d.Direction.Eval+" (mean over seeds)", "mAP", groups, series); err != nil {
			return nil, err
		}
		out[d.Name] = append(out[d.Name], bars)
		for _, s := range d.Summary {
			heat := fmt.Sprintf("%s-pairs-%s.png", key, s.Method)
			err := plot.Heatmap(filepath.Join(dir, heat), fmt.Sprintf("%s: mAP per language pair (%s)", d.Direction.Eval, s.Method),
				"candidate language", "question language", d.Languages, d.Languages, func(row, col string) (float64, bool) {
					v, ok := s.Pairs[row+"->"+col]
					return v, ok
				})
			if err != nil {
				return nil, err
			}
			out[d.Name] = append(out[d.Name], heat)
		}
		var lines []plot.Line
		for _, c := range d.Curves {
			l, err := readCurve(c.Path)
			if err != nil {
				return nil, err
			}
			l.Name = c.Mode
			lines = append(lines, l)
		}
		if pts := r.alphaGrid(d); len(pts) > 2 {
			var mapLine, biasLine plot.Line
			for _, p := range pts {
				mapLine.X, mapLine.Y = append(mapLine.X, p.Alpha), append(mapLine.Y, p.Multi.Mean)
				biasLine.X, biasLine.Y = append(biasLine.X, p.Alpha), append(biasLine.Y, p.Bias.Mean)
			}
			mapLine.Name, biasLine.Name = "multilingual mAP"+eval.DepthLabel(r.Config.Depth), "language bias"
			for _, c := range []struct {
				file, y string
				line    plot.Line
			}{{key + "-alpha-map.png", "mAP", mapLine}, {key + "-alpha-bias.png", "ranks", biasLine}} {
				title := fmt.Sprintf("%s against alpha on %s (0: cross, 1: x-x)", c.line.Name, d.Direction.Eval)
				if err := plot.Lines(filepath.Join(dir, c.file), title, "alpha (probability of a monolingual batch)", c.y, []plot.Line{c.line}); err != nil {
					return nil, err
				}
				out[d.Name] = append(out[d.Name], c.file)
			}
		}
		curves := key + "-training.png"
		if err := plot.Lines(filepath.Join(dir, curves), "training loss ("+strings.Join(d.Direction.Train, "+")+", first seed)", "step", "InfoNCE loss", lines); err != nil {
			return nil, err
		}
		out[d.Name] = append(out[d.Name], curves)
	}
	return out, nil
}

func readCurve(path string) (plot.Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return plot.Line{}, err
	}
	defer f.Close()
	var l plot.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s trainer.StepLog
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return l, fmt.Errorf("%s: %w", path, err)
		}
		l.X, l.Y = append(l.X, float64(s.Step)), append(l.Y, s.Loss)
	}
	return l, sc.Err()
}

// alphaPoint is one model on the alpha axis.
type alphaPoint struct {
	Alpha  float64
	Method string
	Summary
}

// alphaGrid places the hybrid models by alpha, with cross-lingual batches
// at 0 and monolingual batches (mono: every batch one language, which is
// what hybrid draws with probability alpha) at 1; "size" has no fixed
// place and is left out.
func (r *Report) alphaGrid(d DirectionResult) []alphaPoint {
	var pts []alphaPoint
	add := func(alpha float64, method string) {
		if s, ok := d.summary(method); ok {
			pts = append(pts, alphaPoint{Alpha: alpha, Method: method, Summary: s})
		}
	}
	add(0, string(trainer.ModeCross))
	for _, m := range r.Config.models() {
		if a, err := strconv.ParseFloat(m.Alpha, 64); err == nil && m.Mode == trainer.ModeHybrid {
			add(a, m.Name)
		}
	}
	add(1, string(trainer.ModeMono))
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Alpha < pts[j].Alpha })
	return pts
}

// alphaText tabulates the alpha grid and says whether it agrees with the
// paper: 0.5 best, and stable over 0.4-0.6.
func (r *Report) alphaText(d DirectionResult) string {
	pts := r.alphaGrid(d)
	hybrids := 0
	for _, p := range pts {
		if p.Alpha > 0 && p.Alpha < 1 {
			hybrids++
		}
	}
	if hybrids < 2 {
		return ""
	}
	var b strings.Builder
	at := eval.DepthLabel(r.Config.Depth)
	fmt.Fprintf(&b, "### Hybrid batches against alpha\n\n| alpha | model | mAP%s multi | mAP%s mono | mAP%s cross | language bias%s |\n|---|---|---|---|---|---|\n", at, at, at, at)
	best, near := pts[0], []alphaPoint{}
	for _, p := range pts {
		fmt.Fprintf(&b, "| %.2f | %s | %s | %s | %s | %s |\n", p.Alpha, p.Method, pm(p.Multi, 4), pm(p.Mono, 4), pm(p.Cross, 4), pm(p.Bias, 1))
		if p.Multi.Mean > best.Multi.Mean {
			best = p
		}
		if p.Alpha >= 0.4 && p.Alpha <= 0.6 {
			near = append(near, p)
		}
	}
	fmt.Fprintf(&b, "\nThe paper found alpha 0.5 best for multilingual retrieval and stable over 0.4–0.6. Here the best multilingual mAP is at alpha %.2f (%s, %.4f).", best.Alpha, best.Method, best.Multi.Mean)
	if len(near) > 1 {
		lo, hi := near[0].Multi.Mean, near[0].Multi.Mean
		for _, p := range near {
			lo, hi = math.Min(lo, p.Multi.Mean), math.Max(hi, p.Multi.Mean)
		}
		fmt.Fprintf(&b, " Over 0.4–0.6 it moves by %.4f (%.1f%% of the best).", hi-lo, 100*(hi-lo)/math.Max(best.Multi.Mean, 1e-9))
	}
	agree := best.Alpha >= 0.4 && best.Alpha <= 0.6
	if agree {
		b.WriteString(" That agrees with the paper: the best alpha lies in 0.4–0.6.")
	} else {
		b.WriteString(" That does not agree with the paper: the best alpha lies outside 0.4–0.6.")
	}
	if n := len(r.Config.Seeds); n == 1 {
		b.WriteString(" (One seed: the differences may be seed noise.)")
	} else {
		// Within twice the larger spread of the best: tied with it.
		var tied []string
		for _, p := range pts {
			if best.Multi.Mean-p.Multi.Mean <= 2*math.Max(best.Multi.Std, p.Multi.Std) {
				tied = append(tied, fmt.Sprintf("%.2f", p.Alpha))
			}
		}
		fmt.Fprintf(&b, " Over %d seeds, the alphas within twice the seed spread of the best, so tied with it: %s.", n, strings.Join(tied, ", "))
	}
	return b.String() + "\n\n"
}

// depthText says how deep the rankings go.
func depthText(depth int) string {
	if depth == eval.WholePool {
		return "every question ranking its setting's whole pool, as LAReQA and the paper do: the dense models' pools exactly from the vectors imported, Weaviate ranking a sample's whole pools itself as a check"
	}
	return fmt.Sprintf("rankings cut at %d results: mAP@%d and a language bias capped at %d, not comparable with the paper's whole-pool figures", depth, depth, depth)
}

func (r *Report) markdown(pngs map[string][]string) string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# xling study: multilingual vs monolingual retrieval training, zero-shot\n\n")
	fmt.Fprintf(&b, "Budget **%s**: %s encoder (%s), %d steps of %d pairs per model, modes %s, seeds %v, evaluated inside Weaviate (%s index, %s candidates, %s).",
		r.Budget, c.Arch, c.Size, c.Steps, c.BatchSize, strings.Join(c.modelNames(), ", "), c.Seeds, c.Index, c.Candidate, depthText(c.Depth))
	if r.Budget == BudgetDemo {
		b.WriteString(" This is the reduced demo, not the study: one seed, a sample of questions, rankings cut at 100 where the study ranks whole pools (so mAP@100 and a capped language bias), no MIRACL and no hybrid-search baseline. It cannot conclude; `xling experiment --budget full` runs the whole study.")
	}
	if len(r.Pending) > 0 {
		fmt.Fprintf(&b, " **PARTIAL**: written %s, %s into this run (a resumed study counts from its resumption); not evaluated yet: %s. Rerunning the same command resumes the study and rewrites this report.\n\n",
			r.Finished.Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Second), strings.Join(r.Pending, "; "))
	} else {
		fmt.Fprintf(&b, " Took %s (a resumed study counts from its resumption).\n\n", r.Finished.Sub(r.Started).Round(time.Second))
	}
	b.WriteString("## Answer\n\n" + r.Conclusion + "\n\n")
	for _, d := range r.Directions {
		fmt.Fprintf(&b, "## %s\n\n", d.Name)
		sample := ""
		if d.Questions < d.AllQuestions {
			sample = fmt.Sprintf(" (a sample: the questions of the first %d question ids, every pool whole)", c.MaxQuestions)
		}
		fmt.Fprintf(&b, "%d of %d questions%s in %s. mAP: LAReQA's, over all relevant candidates, per language pair (mono, cross) or query language (multi), then macro-averaged; language bias: max − min rank of a question's parallel relevant candidates in the multilingual pool (lower is better). ± is the standard deviation over seeds.\n\n",
			d.Questions, d.AllQuestions, sample, strings.Join(d.Languages, ", "))
		at := eval.DepthLabel(c.Depth)
		fmt.Fprintf(&b, "| method | seeds | mAP%s mono | mAP%s cross | mAP%s multi | nDCG@10 multi | Recall@%d multi | MRR@10 multi | language bias%s |\n|---|---|---|---|---|---|---|---|---|\n", at, at, at, eval.RecallAt(c.Depth), at)
		cut := false
		for _, s := range d.Summary {
			method := s.Method
			if s.Depth != c.Depth {
				method += " (" + eval.DepthLabel(s.Depth) + ")"
				cut = true
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", method, s.Seeds, pm(s.Mono, 4), pm(s.Cross, 4), pm(s.Multi, 4), pm(s.NDCG10, 4), pm(s.Recall, 4), pm(s.MRR10, 4), pm(s.Bias, 1))
		}
		if cut {
			fmt.Fprintf(&b, "\nRows marked @%d rank in Weaviate only (BM25 and hybrid search need the database), cut at %d: their mAP is mAP@%d and their bias is capped, so compare them on nDCG@10, Recall@100 and MRR@10. The dense models' whole pools are ranked exactly from the vectors imported, and Weaviate ranks the first %d question ids' whole pools itself as a check (report.json, `weaviate_check`).\n", baselineDepth, baselineDepth, baselineDepth, checkQuestionIDs)
		}
		b.WriteString("\n" + r.claimsText(d) + r.alphaText(d) + r.miraclText(d))
		for _, p := range pngs[d.Name] {
			fmt.Fprintf(&b, "![%s](%s)\n", p, p)
		}
		b.WriteString("\nEvery number above is recomputable: the TREC run files (`trec_eval -m map -m ndcg_cut.10 -m recall.100`; a run file holds a ranking's first 100 results, so there trec_eval's map is AP@100; the whole-pool mAP is recomputed by `xling eval`) and, with Weaviate running on this study's data directory, `xling eval`:\n\n")
		seen := map[string]bool{}
		for _, res := range d.Results {
			if seen[res.Method] {
				continue
			}
			seen[res.Method] = true
			line := fmt.Sprintf("xling eval --dataset <data>/%s --class %s --depth %d --max-questions %d", d.Direction.Eval, res.Collection, res.Report.Depth, c.MaxQuestions)
			switch res.Method {
			case BM25:
				line += " --bm25"
			case HybridSearch:
				line += " --model " + res.Model + " --bm25=false --hybrid"
			default:
				line += " --model " + res.Model + " --bm25=false --hybrid=false"
			}
			fmt.Fprintf(&b, "    %s    # %s, run %s\n", line, res.Method, res.Run)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Reproduce\n\nVersions:\n\n")
	for _, k := range slices.Sorted(maps.Keys(r.Versions)) {
		fmt.Fprintf(&b, "- %s: %s\n", k, r.Versions[k])
	}
	b.WriteString("\nData (SHA-256):\n\n")
	for _, k := range slices.Sorted(maps.Keys(r.Data)) {
		fmt.Fprintf(&b, "- `%s` %s\n", k, r.Data[k])
	}
	cfg, _ := json.MarshalIndent(r.Config, "", "  ")
	fmt.Fprintf(&b, "\nThe exact config (`xling experiment --config FILE --budget full` with this file reruns it; the budget was %s):\n\n```json\n%s\n```\n", r.Budget, cfg)
	return b.String()
}

func pm(s Stat, digits int) string {
	if s.Std == 0 {
		return fmt.Sprintf("%.*f", digits, s.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", digits, s.Mean, digits, s.Std)
}
