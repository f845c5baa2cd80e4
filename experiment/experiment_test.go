package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/trainer"
	"github.com/xling-ir/xling/vectorizer"
)

func tinyStudy() Config {
	c := Default()
	c.Size, c.VocabSize, c.Steps, c.BatchSize = "tiny", 3000, 40, 16
	c.Modes, c.Seeds = []trainer.Mode{trainer.ModeMono, trainer.ModeHybrid}, []uint64{1}
	c.Directions = []Direction{{Train: []string{"xquad-r"}, Eval: "mlqa-r"}}
	c.MaxQuestions = 20
	c.MIRACL.Langs = []string{"yo", "bn"} // 2,432 passages
	return c
}

// TestStudyEndToEnd runs a tiny study against a real Weaviate, checks the report's files and numbers, recomputes
// one model's numbers the way `xling eval` does, and resumes without
// redoing anything.
func TestStudyEndToEnd(t *testing.T) {
	data := sharedtest.Dir(t)
	srv := weaviatetest.Start(t, localweaviate.Options{Env: map[string]string{"QUERY_MAXIMUM_RESULTS": "100000"}})
	conn := indexer.Connection{URL: srv.URL(), GRPC: srv.GRPCHost}
	out := t.TempDir()
	opts := Options{Out: out, DataDir: data, Weaviate: conn}
	rep, err := Run(context.Background(), tinyStudy(), BudgetFull, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "report.json", "study.json", "xquad-r_to_mlqa-r-map.png", "xquad-r_to_mlqa-r-training.png",
		"xquad-r_to_mlqa-r-pairs-hybrid.png", "eval/xquad-r_to_mlqa-r/qrels", "eval/xquad-r_to_mlqa-r/hybrid-seed1.run"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	d := rep.Directions[0]
	methods := map[string]bool{}
	for _, s := range d.Summary {
		methods[s.Method] = true
	}
	for _, m := range []string{Untrained, "mono", "hybrid", HybridSearch, BM25} {
		if !methods[m] {
			t.Errorf("report lacks %s", m)
		}
	}
	// MIRACL: every model and BM25, labelled partial.
	if got := len(d.MIRACLSummary); got != 4 {
		t.Errorf("MIRACL summary has %d methods, want untrained, mono, hybrid and bm25: %+v", got, d.MIRACLSummary)
	}
	for _, s := range d.MIRACLSummary {
		if s.Method == BM25 && s.NDCG10.Mean < 0.2 {
			t.Errorf("BM25 nDCG@10 %.4f on MIRACL yo+bn: the evaluation is broken", s.NDCG10.Mean)
		}
	}
	bm25, _ := d.summary(BM25)
	if bm25.Mono.Mean < 0.1 {
		t.Errorf("BM25 monolingual mAP %.4f: the evaluation is broken", bm25.Mono.Mean)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"cannot tell these differences", "| hybrid |", "sha-256", "xling eval --dataset", "whole pool", "| mAP multi |", "| bm25 (@100) |", "| hybrid-search (@100) |", "MIRACL dev, monolingual (a PARTIAL corpus"} {
		if !strings.Contains(strings.ToLower(string(md)), strings.ToLower(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}

	// Recompute the hybrid model's numbers as `xling eval` does: load the
	// saved model, encode the (sampled) questions, evaluate in its collection.
	var hybrid Result
	for _, r := range d.Results {
		if r.Method == "hybrid" {
			hybrid = r
		}
	}
	ds, err := qa.LoadLAReQA(filepath.Join(data, "mlqa-r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ds = ds.Sample(tinyStudy().MaxQuestions)
	v, err := vectorizer.Load(filepath.Join(out, hybrid.Model), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	questions := ds.QuestionTexts()
	qv, err := v.Encode(context.Background(), questions, vectorizer.Query)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := v.Encode(context.Background(), indexer.Texts(indexer.Docs(ds, indexer.Sentence)), vectorizer.Passage)
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	exact, err := eval.NewVectorRanker(ds, pv)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := eval.Evaluate(context.Background(), exact, ds, eval.Dense, qv, eval.WholePool, 8)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(again.Multi.MAP-hybrid.Report.Multi.MAP) > 1e-12 || math.Abs(again.Cross.MAP-hybrid.Report.Cross.MAP) > 1e-12 || again.LanguageBias != hybrid.Report.LanguageBias {
		t.Errorf("recomputed multi %.6f cross %.6f bias %.2f; the report says %.6f %.6f %.2f", again.Multi.MAP, again.Cross.MAP, again.LanguageBias,
			hybrid.Report.Multi.MAP, hybrid.Report.Cross.MAP, hybrid.Report.LanguageBias)
	}
	// Weaviate ranked a sample's whole pools itself and agreed.
	c := hybrid.Check
	if c == nil || c.Rankings == 0 || c.Identical == 0 || c.MAPDiff > 1e-3 || c.WeaviateQPS <= 0 {
		t.Errorf("weaviate check of the hybrid model: %+v", c)
	} else {
		t.Logf("weaviate check: %d/%d rankings identical, max rank diff %d, mAP diff %.2g; %.1f queries/s in Weaviate, %.0f exactly",
			c.Identical, c.Rankings, c.MaxRankDiff, c.MAPDiff, c.WeaviateQPS, c.ExactQPS)
	}

	// Resuming reuses every model and evaluation: their files are untouched.
	runFile := filepath.Join(out, hybrid.Run)
	before, _ := os.Stat(runFile)
	model := filepath.Join(out, hybrid.Model, "model.safetensors")
	mBefore, _ := os.Stat(model)
	rep2, err := Run(context.Background(), tinyStudy(), BudgetFull, opts)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(runFile)
	mAfter, _ := os.Stat(model)
	if !after.ModTime().Equal(before.ModTime()) || !mAfter.ModTime().Equal(mBefore.ModTime()) {
		t.Error("resuming redid a finished evaluation or model")
	}
	a, _ := json.Marshal(rep.Directions[0].Summary)
	b, _ := json.Marshal(rep2.Directions[0].Summary)
	if string(a) != string(b) {
		t.Error("a resumed study reports other numbers")
	}
	// Resumed on a Weaviate that lost the hybrid model's collection, a
	// study with the hybrid search still to run indexes the model again.
	client, err := indexer.Connect(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Schema().ClassDeleter().WithClassName(hybrid.Collection).Do(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(out, "eval", "xquad-r_to_mlqa-r", "hybrid-search-seed1.json")); err != nil {
		t.Fatal(err)
	}
	rep3, err := Run(context.Background(), tinyStudy(), BudgetFull, opts)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := rep.Directions[0].summary(HybridSearch)
	s3, _ := rep3.Directions[0].summary(HybridSearch)
	if s1.Multi != s3.Multi || s1.Mono != s3.Mono {
		t.Errorf("hybrid search after re-indexing: %+v, before %+v", s3, s1)
	}

	// Another config in the same directory is refused.
	other := tinyStudy()
	other.Steps++
	if _, err := Run(context.Background(), other, BudgetFull, opts); err == nil || !strings.Contains(err.Error(), "another study") {
		t.Errorf("another study in the same directory: %v", err)
	}
}

func TestConfig(t *testing.T) {
	c := Default()
	if len(c.Seeds) < 3 || len(c.Modes) != 4 || len(c.Directions) != 2 {
		t.Fatalf("the full study needs 3 seeds, 4 modes, both directions: %+v", c)
	}
	demo, err := c.WithBudget(BudgetDemo)
	if err != nil || len(demo.Seeds) != 1 || demo.MaxQuestions == 0 || demo.Depth != 100 || c.Depth != eval.WholePool {
		t.Errorf("demo budget: %+v, %v", demo, err)
	}
	if x4, err := c.WithBudget("4"); err != nil || x4.Steps != 4*c.Steps {
		t.Errorf("budget 4: %d steps, %v", x4.Steps, err)
	}
	if _, err := c.WithBudget("lots"); err == nil {
		t.Error("budget lots accepted")
	}
	bad := c
	bad.Directions = []Direction{{Train: []string{"xquad-r", "mlqa-r"}, Eval: "mlqa-r"}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "own training data") {
		t.Errorf("evaluating on training data: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	os.WriteFile(path, []byte(`{"arch":"static","stepz":10}`), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "stepz") {
		t.Errorf("unknown field: %v", err)
	}
}

// TestAlphaGrid: several alphas train one hybrid model each, Weaviate's
// hybrid search fuses the alpha-0.5 one, and the report places the grid
// between cross (alpha 0) and mono (alpha 1: every batch monolingual, as
// hybrid's monolingual draws) and compares it with the paper's finding.
func TestAlphaGrid(t *testing.T) {
	c := Default()
	c.Alphas = []string{"0.3", "0.5", "0.7", "size"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.modelNames(), ","); got != "mono,x-x,cross,hybrid-0.3,hybrid-0.5,hybrid-0.7,hybrid-size" {
		t.Fatalf("models %s", got)
	}
	if got := c.searchModel(); got != "hybrid-0.5" {
		t.Errorf("hybrid search fuses %s, want hybrid-0.5", got)
	}
	c.Alphas = []string{"1.5"}
	if err := c.Validate(); err == nil {
		t.Error("alpha 1.5 accepted")
	}
	c.Alphas = []string{"0.3", "0.5", "0.7"}
	d := DirectionResult{}
	for name, multi := range map[string]float64{"cross": 0.05, "hybrid-0.3": 0.10, "hybrid-0.5": 0.12, "hybrid-0.7": 0.11, "x-x": 0.09, "mono": 0.08} {
		d.Summary = append(d.Summary, Summary{Method: name, Multi: Stat{Mean: multi}})
	}
	r := &Report{Config: c}
	pts := r.alphaGrid(d)
	var alphas []float64
	for _, p := range pts {
		alphas = append(alphas, p.Alpha)
	}
	if fmt.Sprint(alphas) != "[0 0.3 0.5 0.7 1]" {
		t.Fatalf("grid at %v", alphas)
	}
	text := r.alphaText(d)
	for _, want := range []string{"best multilingual mAP is at alpha 0.50 (hybrid-0.5, 0.1200)", "agrees with the paper", "| 0.00 | cross |", "| 1.00 | mono |", "tied with it: 0.50."} {
		if !strings.Contains(text, want) {
			t.Errorf("alpha text lacks %q:\n%s", want, text)
		}
	}
}

func TestClaims(t *testing.T) {
	c := Default()
	d := DirectionResult{}
	// Per seed: hybrid beats mono in multi by 0.05 ± 0.01, ties it in
	// mono, matches cross in cross, and lowers the bias by 30 ± 5 ranks.
	for seed := uint64(1); seed <= 3; seed++ {
		jitter := 0.01 * (float64(seed) - 2)
		add := func(method string, mono, cross, multi, bias float64) {
			d.Results = append(d.Results, Result{Method: method, Seed: seed, Report: &eval.Report{
				Mono: eval.Scores{MAP: mono}, Cross: eval.Scores{MAP: cross}, Multi: eval.Scores{MAP: multi}, LanguageBias: bias}})
		}
		add("mono", 0.50, 0.10, 0.20, 300)
		add("cross", 0.45, 0.30+jitter/2, 0.30, 150)
		add("hybrid", 0.50+jitter, 0.30, 0.25+jitter, 270-5*(float64(seed)-2))
	}
	r := &Report{Config: c}
	got := map[string]string{}
	for _, cl := range r.claims(d) {
		got[cl.Setting] = cl.Verdict
		if cl.Seeds != 3 {
			t.Errorf("%s paired over %d seeds", cl.Setting, cl.Seeds)
		}
	}
	want := map[string]string{"mono": "holds within seed noise", "multi": "holds: hybrid is better", "cross": "holds: within", "bias": "holds: lower"}
	for setting, prefix := range want {
		if !strings.HasPrefix(got[setting], prefix) {
			t.Errorf("%s: verdict %q, want %q...", setting, got[setting], prefix)
		}
	}
	d.Claims = r.claims(d)
	if text := r.claimsText(d); !strings.Contains(text, "| hybrid ≥ monolingual batches | multi |") {
		t.Errorf("claims table:\n%s", text)
	}
	// One seed gives no verdict.
	d.Results = d.Results[:3]
	for _, cl := range r.claims(d) {
		if cl.Verdict != "one seed: no verdict" {
			t.Errorf("%s with one seed: %q", cl.Setting, cl.Verdict)
		}
	}
}

func TestPartialReport(t *testing.T) {
	r := &Report{Config: Default(), Budget: BudgetFull, Started: time.Now().Add(-time.Hour), Finished: time.Now(),
		Pending: []string{"xquad-r → mlqa-r: seeds [2 3]", "mlqa-r → xquad-r"}}
	md := r.markdown(nil)
	if !strings.Contains(md, "**PARTIAL**") || !strings.Contains(md, "seeds [2 3]; mlqa-r → xquad-r") {
		t.Errorf("a report with pending work does not say so:\n%.600s", md)
	}
	r.Pending = nil
	if md := r.markdown(nil); strings.Contains(md, "PARTIAL") || !strings.Contains(md, "Took 1h0m0s") {
		t.Errorf("a finished report:\n%.600s", md)
	}
}
