package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/checksum"
	"github.com/xling-ir/xling/internal/jsonfile"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/trainer"
	"github.com/xling-ir/xling/vectorizer"
)

// Options says where a study runs; none of it changes the numbers.
type Options struct {
	Out     string // run directory: models, evaluations, report
	DataDir string // holds the datasets the config names
	// Weaviate to evaluate in; an empty URL starts a local one whose data
	// lives in Out/weaviate, so a resumed study finds its collections.
	Weaviate indexer.Connection
	Threads  int
	Logger   *slog.Logger
	Progress io.Writer // the importer's progress bar; nil for none
}

// Untrained and the baselines' names in the results.
const (
	Untrained    = "untrained"
	BM25         = "bm25"
	HybridSearch = "hybrid-search" // Weaviate's hybrid search with the hybrid model's vectors
)

// Result is one method's evaluation of one direction with one seed.
type Result struct {
	Method     string       `json:"method"` // a batch mode, untrained, bm25 or hybrid-search
	Seed       uint64       `json:"seed"`
	Model      string       `json:"model,omitempty"` // model directory, relative to Out
	Collection string       `json:"collection"`
	Run        string       `json:"trec_run"` // TREC run file, relative to Out
	Report     *eval.Report `json:"report"`
	// Check is Weaviate's own whole-pool ranking of a sample, against the
	// exact rankings Report scores (dense methods, whole pools only).
	Check *Check `json:"weaviate_check,omitempty"`
}

// Check compares, on the questions of the first few question ids,
// Weaviate's whole-pool rankings with the exact in-memory rankings that a
// whole-pool study scores: Weaviate returns about 64,000 results a second
// here, so ranking every pool whole in it would take the full study about
// 14 hours, and the in-memory ranking takes seconds.
type Check struct {
	Questions int `json:"questions"`
	Rankings  int `json:"rankings"`
	// Identical counts the rankings whose relevant candidates sit at the
	// same ranks in both; MaxRankDiff is the largest difference elsewhere
	// (float32 sums in another order can swap near-equal candidates).
	Identical   int     `json:"identical"`
	MaxRankDiff int     `json:"max_rank_diff"`
	MAPDiff     float64 `json:"map_diff"` // largest |mAP| difference over the settings, on the sample
	// Queries per second of the sample's rankings: in Weaviate, and
	// exactly in memory.
	WeaviateQPS float64 `json:"weaviate_queries_per_s"`
	ExactQPS    float64 `json:"exact_queries_per_s"`
}

// checkQuestionIDs is how many question ids a Check ranks in Weaviate.
const checkQuestionIDs = 8

// baselineDepth cuts the rankings of Weaviate's BM25 and hybrid search in
// a whole-pool study: those rank only in Weaviate, whose whole pools cost
// about 20 times a cut at 100 (the report marks them @100).
const baselineDepth = 100

// study is a run in progress.
type study struct {
	cfg  Config
	opts Options
	log  *slog.Logger
}

// Run runs (or resumes) the study and writes report.json, report.md and the
// charts to opts.Out. Finished models and evaluations are reused: each is
// written only when complete, so an interrupted study loses at most the one
// in progress.
func Run(ctx context.Context, cfg Config, budget string, opts Options) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &study{cfg: cfg, opts: opts, log: opts.Logger}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	if err := s.claim(budget); err != nil {
		return nil, err
	}
	started := time.Now()
	sums, err := s.checksums()
	if err != nil {
		return nil, err
	}

	// Weaviate first: one named and down fails the run now, not after the
	// training.
	db, err := indexer.Open(ctx, opts.Weaviate, localweaviate.Options{DataDir: filepath.Join(opts.Out, "weaviate"), Logger: s.log,
		// The whole multilingual pool in one ranking: MLQA-R holds about
		// 20,500 candidates a direction, far under this.
		Env: map[string]string{"QUERY_MAXIMUM_RESULTS": "1000000"}})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ev := &evaluator{study: s, importer: func(class string) *indexer.Importer {
		im := db.Importer(class)
		im.Logger, im.Progress = s.log, opts.Progress
		return im
	}, search: db.Search}

	// The report is rewritten after every seed of every direction, so that
	// a study stopped part-way has its finished results to show, marked
	// partial with what is pending.
	var (
		done []DirectionResult
		rep  *Report
	)
	pendingAfter := func(n int) []string {
		var names []string
		for _, d := range cfg.Directions[n:] {
			names = append(names, d.Name())
		}
		return names
	}
	write := func(dirs []DirectionResult, pending []string) error {
		rep = &Report{Config: cfg, Budget: budget, Started: started, Finished: time.Now(), Data: sums, Versions: versions(db.Version),
			Directions: dirs, Pending: pending}
		rep.summarise()
		return rep.write(opts.Out)
	}
	ev.report = func(current *DirectionResult, pending []string) error {
		return write(append(slices.Clone(done), *current), append(pending, pendingAfter(len(done)+1)...))
	}
	for _, d := range cfg.Directions {
		if err := s.train(ctx, d); err != nil {
			return nil, err
		}
		dr, err := ev.direction(ctx, d)
		if err != nil {
			return nil, err
		}
		done = append(done, *dr)
		if err := write(done, pendingAfter(len(done))); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// claim records the study's config in Out, or checks that a resumed study
// is the same one.
func (s *study) claim(budget string) error {
	path := filepath.Join(s.opts.Out, "study.json")
	want, _ := json.MarshalIndent(struct {
		Budget string `json:"budget"`
		Config Config `json:"config"`
	}{budget, s.cfg}, "", "  ")
	have, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(path, append(want, '\n'), 0o644)
	}
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(have)) != strings.TrimSpace(string(want)) {
		return fmt.Errorf("%s holds another study (see its study.json): resume it with the same config and budget, or choose another --out", s.opts.Out)
	}
	return nil
}

// source resolves a dataset name under the data directory.
func (s *study) source(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(s.opts.DataDir, name)
}

// loadTrain reads a direction's training data: LAReQA directories or
// SQuAD-format FILE.json:LANG.
func (s *study) loadTrain(d Direction) ([]trainer.Item, error) {
	var items []trainer.Item
	for _, src := range d.Train {
		ds, err := qa.LoadSource(s.source(src), nil)
		if err != nil {
			return nil, fmt.Errorf("training data of %s: %w", d.Name(), err)
		}
		items = append(items, trainer.Items(ds)...)
	}
	return items, nil
}

func (s *study) runDir(d Direction, mode string, seed uint64) string {
	return filepath.Join(s.opts.Out, "runs", d.key(), fmt.Sprintf("%s-seed%d", mode, seed))
}

// modelDir is a method's exported model: a trained model's last step, or
// for the untrained baseline the starting model of the first run.
func (s *study) modelDir(d Direction, method string, seed uint64) string {
	if method == Untrained {
		return filepath.Join(s.runDir(d, s.cfg.modelNames()[0], seed), "init")
	}
	return filepath.Join(s.runDir(d, method, seed), "model")
}

// train trains every mode and seed of d that has not finished.
func (s *study) train(ctx context.Context, d Direction) error {
	items, err := s.loadTrain(d)
	if err != nil {
		return err
	}
	// One split for every model: the same data, whatever the mode or seed.
	train, valid := trainer.Split(items, 0.05, 1)
	for _, seed := range s.cfg.Seeds {
		for _, m := range s.cfg.models() {
			mode := m.Name
			dir := s.runDir(d, m.Name, seed)
			if _, err := os.Stat(filepath.Join(dir, "done.json")); err == nil {
				continue
			}
			c := trainer.DefaultConfig()
			c.Arch, c.Mode, c.Seed = s.cfg.Arch, m.Mode, seed
			if m.Mode == trainer.ModeHybrid {
				if c.Alpha, err = trainer.ParseAlpha(m.Alpha, train); err != nil {
					return err
				}
			}
			c.Steps, c.BatchSize, c.Size, c.VocabSize, c.MaxLength = s.cfg.Steps, s.cfg.BatchSize, s.cfg.Size, s.cfg.VocabSize, s.cfg.MaxLength
			c.LR = s.cfg.LR // 0: the trainer's default for the architecture
			c.CheckpointEvery, c.EvalEvery, c.LogEvery = max(c.Steps/5, 1), c.Steps, max(c.Steps/10, 1)
			s.log.Info("training", "direction", d.Name(), "mode", mode, "seed", seed, "steps", c.Steps, "pairs", len(train))
			run := &trainer.Run{Dir: dir, Config: c, Train: train, Valid: valid, Logger: s.log, Threads: s.opts.Threads}
			res, err := run.Execute(ctx)
			if err != nil {
				return fmt.Errorf("train %s %s seed %d: %w", d.Name(), mode, seed, err)
			}
			if err := jsonfile.Write(filepath.Join(dir, "done.json"), map[string]any{"step": res.Step, "loss": res.Loss}); err != nil {
				return err
			}
		}
	}
	return nil
}

// checksums are SHA-256 sums of every dataset file the study reads.
func (s *study) checksums() (map[string]string, error) {
	out := map[string]string{}
	add := func(path string) error {
		sum, err := checksum.File(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.opts.DataDir, path)
		out[rel] = sum
		return nil
	}
	seen := map[string]bool{}
	if m := s.cfg.MIRACL; m != nil {
		if err := add(s.source(m.Corpus)); err != nil {
			return nil, err
		}
		for _, kind := range []string{"topics", "qrels"} {
			files, _ := filepath.Glob(filepath.Join(s.source(m.Topics), kind, "*"))
			sort.Strings(files)
			for _, f := range files {
				if err := add(f); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, d := range s.cfg.Directions {
		for _, src := range append(append([]string{}, d.Train...), d.Eval) {
			files, err := qa.SourceFiles(s.source(src))
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				if seen[f] {
					continue
				}
				seen[f] = true
				if err := add(f); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// evaluator indexes and evaluates models in Weaviate.
type evaluator struct {
	*study
	importer func(class string) *indexer.Importer
	search   *indexer.Searcher
	// report writes the report with current, the direction in progress,
	// and what is still pending in it.
	report func(current *DirectionResult, pending []string) error
}

// className is the collection of one direction's model: Xling, then the
// direction, method and seed.
func className(d Direction, method string, seed uint64) string {
	return "Xling" + indexer.ClassName(fmt.Sprintf("%s_%s_s%d", d.key(), method, seed))
}

// direction evaluates every model of d, and the baselines.
func (e *evaluator) direction(ctx context.Context, d Direction) (*DirectionResult, error) {
	full, err := qa.LoadLAReQA(e.source(d.Eval), nil)
	if err != nil {
		return nil, fmt.Errorf("evaluation data of %s: %w", d.Name(), err)
	}
	ds := full.Sample(e.cfg.MaxQuestions)
	dr := &DirectionResult{Direction: d, Name: d.Name(), Questions: len(ds.Questions), AllQuestions: len(full.Questions), Languages: ds.Languages}
	for _, name := range e.cfg.modelNames() {
		dr.Curves = append(dr.Curves, curve{Mode: name, Path: filepath.Join(e.runDir(d, name, e.cfg.Seeds[0]), "train.jsonl")})
	}
	for si, seed := range e.cfg.Seeds {
		models := append([]string{Untrained}, e.cfg.modelNames()...)
		for _, method := range models {
			dir := e.modelDir(d, method, seed)
			r, err := e.model(ctx, d, ds, method, seed, dir)
			if err != nil {
				return nil, err
			}
			dr.Results = append(dr.Results, *r)
			if method == e.cfg.searchModel() && contains(e.cfg.Baselines, "hybrid") {
				if r, err = e.baseline(ctx, d, ds, HybridSearch, seed, r.Collection, dir); err != nil {
					return nil, err
				}
				dr.Results = append(dr.Results, *r)
			}
		}
		if e.cfg.MIRACL != nil {
			for _, method := range models {
				// BM25 ignores vectors: one run, beside the first untrained model.
				bm25 := method == Untrained && seed == e.cfg.Seeds[0] && contains(e.cfg.Baselines, "bm25")
				rs, err := e.miracl(ctx, d, method, seed, e.modelDir(d, method, seed), bm25)
				if err != nil {
					return nil, err
				}
				dr.MIRACL = append(dr.MIRACL, rs...)
			}
		}
		if seed == e.cfg.Seeds[0] && contains(e.cfg.Baselines, "bm25") {
			// BM25 ignores vectors: one run on the untrained collection.
			r, err := e.baseline(ctx, d, ds, BM25, seed, className(d, Untrained, seed), "")
			if err != nil {
				return nil, err
			}
			dr.Results = append(dr.Results, *r)
		}
		if rest := e.cfg.Seeds[si+1:]; len(rest) > 0 {
			if err := e.report(dr, []string{fmt.Sprintf("%s: seeds %v", d.Name(), rest)}); err != nil {
				return nil, err
			}
		}
	}
	return dr, nil
}

// cached returns a finished evaluation, if there is one.
func (e *evaluator) cached(d Direction, method string, seed uint64) (*Result, string) {
	path := filepath.Join(e.opts.Out, "eval", d.key(), fmt.Sprintf("%s-seed%d.json", method, seed))
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path
	}
	var r Result
	if json.Unmarshal(b, &r) != nil || r.Report == nil {
		return nil, path
	}
	return &r, path
}

// model indexes ds's candidates with the model's vectors in a collection of
// its own and evaluates the model's query vectors there.
func (e *evaluator) model(ctx context.Context, d Direction, ds *qa.Dataset, method string, seed uint64, dir string) (*Result, error) {
	if r, _ := e.cached(d, method, seed); r != nil {
		return r, nil
	}
	v, err := e.load(dir)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	class, vecs, err := e.index(ctx, d, ds, method, seed, v)
	if err != nil {
		return nil, err
	}
	qvecs, err := v.Encode(ctx, ds.QuestionTexts(), vectorizer.Query)
	if err != nil {
		return nil, err
	}
	if e.cfg.Depth != eval.WholePool {
		return e.evaluate(ctx, d, ds, method, seed, class, dir, e.search.Ranker(class, eval.Dense, ds), eval.Dense, qvecs, e.cfg.Depth, nil)
	}
	exact, err := eval.NewVectorRanker(ds, vecs)
	if err != nil {
		return nil, err
	}
	check, err := e.check(ctx, ds, exact, class, v)
	if err != nil {
		return nil, fmt.Errorf("%s, %s, seed %d: %w", d.Name(), method, seed, err)
	}
	return e.evaluate(ctx, d, ds, method, seed, class, dir, exact, eval.Dense, qvecs, eval.WholePool, check)
}

// load opens a model directory as every evaluation in the study runs it.
func (s *study) load(dir string) (*vectorizer.Vectorizer, error) {
	return vectorizer.Load(dir, vectorizer.LoadOptions{Threads: s.opts.Threads, BatchSize: 64, Logger: s.log})
}

// index imports ds's candidates with v's vectors into the collection of
// the model method and seed, and returns it and the vectors.
func (e *evaluator) index(ctx context.Context, d Direction, ds *qa.Dataset, method string, seed uint64, v *vectorizer.Vectorizer) (string, [][]float32, error) {
	class := className(d, method, seed)
	docs := indexer.Docs(ds, indexer.CandidateText(e.cfg.Candidate))
	e.log.Info("indexing", "direction", d.Name(), "method", method, "seed", seed, "collection", class, "candidates", len(docs))
	vecs, err := v.Encode(ctx, indexer.Texts(docs), vectorizer.Passage)
	if err != nil {
		return "", nil, err
	}
	im := e.importer(class)
	if err := im.EnsureCollection(ctx, indexer.Schema{Vectorizer: "none", Index: e.cfg.Index}); err != nil {
		return "", nil, err
	}
	return class, vecs, im.Import(ctx, docs, vecs)
}

// ensureIndexed indexes the model method's collection again if Weaviate
// lacks it: a study resumed on another Weaviate (or after its data was
// removed) has the model's evaluation cached but not its collection,
// which BM25 and hybrid search still need.
func (e *evaluator) ensureIndexed(ctx context.Context, d Direction, ds *qa.Dataset, method string, seed uint64) error {
	ok, err := e.importer(className(d, method, seed)).Exists(ctx)
	if err != nil || ok {
		return err
	}
	v, err := e.load(e.modelDir(d, method, seed))
	if err != nil {
		return err
	}
	defer v.Close()
	_, _, err = e.index(ctx, d, ds, method, seed, v)
	return err
}

// check ranks a sample's whole pools in Weaviate and exactly, and fails if
// their mAPs differ by more than float32 rounding explains.
func (e *evaluator) check(ctx context.Context, ds *qa.Dataset, exact eval.Ranker, class string, v *vectorizer.Vectorizer) (*Check, error) {
	sample := ds.Sample(checkQuestionIDs)
	qvecs, err := v.Encode(ctx, sample.QuestionTexts(), vectorizer.Query)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	got, gotRuns, err := eval.Evaluate(ctx, e.search.Ranker(class, eval.Dense, sample), sample, eval.Dense, qvecs, eval.WholePool, 2)
	if err != nil {
		return nil, err
	}
	mid := time.Now()
	want, wantRuns, err := eval.Evaluate(ctx, exact, sample, eval.Dense, qvecs, eval.WholePool, 2)
	if err != nil {
		return nil, err
	}
	c := &Check{Questions: len(sample.Questions), Rankings: len(gotRuns)}
	n := float64(len(sample.Questions))
	c.WeaviateQPS, c.ExactQPS = n/mid.Sub(start).Seconds(), n/time.Since(mid).Seconds()
	for i, r := range gotRuns {
		same := true
		for key, rank := range wantRuns[i].Found {
			if d := max(rank-r.Found[key], r.Found[key]-rank); d != 0 {
				same, c.MaxRankDiff = false, max(c.MaxRankDiff, d)
			}
		}
		if same {
			c.Identical++
		}
	}
	for _, pair := range [][2]float64{{got.Mono.MAP, want.Mono.MAP}, {got.Cross.MAP, want.Cross.MAP}, {got.Multi.MAP, want.Multi.MAP}} {
		c.MAPDiff = max(c.MAPDiff, math.Abs(pair[0]-pair[1]))
	}
	e.log.Info("weaviate check", "questions", c.Questions, "identical", fmt.Sprintf("%d/%d", c.Identical, c.Rankings), "max_rank_diff", c.MaxRankDiff,
		"weaviate_queries_per_s", fmt.Sprintf("%.1f", c.WeaviateQPS), "exact_queries_per_s", fmt.Sprintf("%.0f", c.ExactQPS))
	if c.MAPDiff > 1e-3 {
		return nil, fmt.Errorf("weaviate check: Weaviate's whole-pool mAP differs from the exact ranking's by %.4f on %d questions: the collection does not hold these vectors", c.MAPDiff, c.Questions)
	}
	return c, nil
}

// baseline evaluates a Weaviate search on an existing collection: BM25, or
// hybrid search with the model in dir.
func (e *evaluator) baseline(ctx context.Context, d Direction, ds *qa.Dataset, method string, seed uint64, class, dir string) (*Result, error) {
	if r, _ := e.cached(d, method, seed); r != nil {
		return r, nil
	}
	depth := e.cfg.Depth
	if depth == eval.WholePool {
		depth = baselineDepth
	}
	model := Untrained // BM25 searches the untrained model's collection
	if method == HybridSearch {
		model = e.cfg.searchModel()
	}
	if err := e.ensureIndexed(ctx, d, ds, model, seed); err != nil {
		return nil, err
	}
	if method == BM25 {
		return e.evaluate(ctx, d, ds, method, seed, class, "", e.search.Ranker(class, eval.BM25, ds), eval.BM25, nil, depth, nil)
	}
	v, err := e.load(dir)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	qvecs, err := v.Encode(ctx, ds.QuestionTexts(), vectorizer.Query)
	if err != nil {
		return nil, err
	}
	return e.evaluate(ctx, d, ds, method, seed, class, dir, e.search.Ranker(class, eval.Hybrid, ds), eval.Hybrid, qvecs, depth, nil)
}

// evaluate ranks ds's questions through r and writes the result.
func (e *evaluator) evaluate(ctx context.Context, d Direction, ds *qa.Dataset, method string, seed uint64, class, dir string, r eval.Ranker, how eval.Method, qvecs [][]float32, depth int, check *Check) (*Result, error) {
	start := time.Now()
	where := "in weaviate"
	if _, ok := r.(*eval.VectorRanker); ok {
		where = "exactly, from the vectors imported"
	}
	e.log.Info("evaluating "+where, "direction", d.Name(), "method", method, "seed", seed, "questions", len(ds.Questions))
	rep, runs, err := eval.Evaluate(ctx, r, ds, how, qvecs, depth, 8)
	if err != nil {
		return nil, err
	}
	queries := rep.Mono.Queries + rep.Cross.Queries + rep.Multi.Queries
	e.log.Info("evaluated", "method", method, "seed", seed, "queries", queries, "queries_per_s", fmt.Sprintf("%.0f", float64(queries)/time.Since(start).Seconds()),
		"map_mono", fmt.Sprintf("%.4f", rep.Mono.MAP), "map_cross", fmt.Sprintf("%.4f", rep.Cross.MAP), "map_multi", fmt.Sprintf("%.4f", rep.Multi.MAP))
	_, path := e.cached(d, method, seed)
	base := strings.TrimSuffix(path, ".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := eval.WriteTREC(base+".run", filepath.Join(filepath.Dir(path), "qrels"), ds, runs, method); err != nil {
		return nil, err
	}
	rel := func(p string) string {
		if p == "" {
			return ""
		}
		rp, _ := filepath.Rel(e.opts.Out, p)
		return rp
	}
	res := &Result{Method: method, Seed: seed, Model: rel(dir), Collection: class, Run: rel(base + ".run"), Report: rep, Check: check}
	return res, jsonfile.Write(path, res)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
