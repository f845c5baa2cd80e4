package indexer

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// TestEvaluateInWeaviate evaluates MLQA-R (de, es) inside a real Weaviate
// under the whole-pool protocol and checks the dense numbers against the
// same complete rankings computed exactly in Go from the same vectors, and
// that BM25 is far above chance.
func TestEvaluateInWeaviate(t *testing.T) {
	dir := sharedtest.Dir(t)
	ds, err := qa.LoadLAReQA(filepath.Join(dir, "mlqa-r"), []string{"de", "es"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vectorizer.Load(vectorizertest.Tiny(t), vectorizer.LoadOptions{BatchSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	docs := Docs(ds, Sentence)
	texts := Texts(docs)
	ctx := context.Background()
	cvecs, err := v.Encode(ctx, texts, vectorizer.Passage)
	if err != nil {
		t.Fatal(err)
	}
	questions := ds.QuestionTexts()
	qvecs, err := v.Encode(ctx, questions, vectorizer.Query)
	if err != nil {
		t.Fatal(err)
	}

	srv := weaviatetest.Start(t, localweaviate.Options{})
	client, err := Connect(Connection{URL: srv.URL(), GRPC: srv.GRPCHost})
	if err != nil {
		t.Fatal(err)
	}
	im := &Importer{Client: client, Class: "MlqaR"}
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	if err := im.Import(ctx, docs, cvecs); err != nil {
		t.Fatal(err)
	}
	search, err := DialSearch(Connection{URL: srv.URL(), GRPC: srv.GRPCHost})
	if err != nil {
		t.Fatal(err)
	}
	defer search.Close()
	// Dense whole-pool is the protocol checked against Go; BM25 and hybrid
	// are checked for sense at 100, where they cost a tenth as much.
	evaluate := func(ds *qa.Dataset, method eval.Method, vecs [][]float32) (*eval.Report, []eval.Run, error) {
		depth := eval.WholePool
		if method != eval.Dense {
			depth = 100
		}
		return eval.Evaluate(ctx, search.Ranker("MlqaR", method, ds), ds, method, vecs, depth, 8)
	}
	dense, runs, err := evaluate(ds, eval.Dense, qvecs)
	if err != nil {
		t.Fatal(err)
	}

	// A language subset of the indexed dataset: its candidates keep their
	// identity, and its multilingual pool is its own languages only.
	de, err := qa.LoadLAReQA(filepath.Join(dir, "mlqa-r"), []string{"de"})
	if err != nil {
		t.Fatal(err)
	}
	deVecs := make([][]float32, 0, len(de.Questions))
	for i, q := range ds.Questions {
		if q.Lang == "de" {
			deVecs = append(deVecs, qvecs[i])
		}
	}
	sub, _, err := evaluate(de, eval.Dense, deVecs)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(sub.PairMAP["de->de"]-dense.PairMAP["de->de"]) > 1e-9 || math.Abs(sub.Multi.MAP-dense.PairMAP["de->de"]) > 1e-9 {
		t.Errorf("de alone: de->de %.6f, multi %.6f; in de+es de->de was %.6f", sub.PairMAP["de->de"], sub.Multi.MAP, dense.PairMAP["de->de"])
	}

	// The same rankings, exactly, in Go.
	perID := map[string]int{} // answers of a question id: one per language
	for _, q := range ds.Questions {
		perID[q.ID]++
	}
	exact := make([]eval.Run, len(runs))
	for i, r := range runs {
		scores := make([]float32, len(cvecs))
		for c, cv := range cvecs {
			if r.Target != "all" && ds.Candidates[c].Lang != r.Target {
				scores[c] = -2 // outside the filtered pool
				continue
			}
			var dot float32
			for d := range cv {
				dot += cv[d] * qvecs[r.Question][d]
			}
			scores[c] = dot
		}
		pool := 0
		for _, c := range ds.Candidates {
			if r.Target == "all" || c.Lang == r.Target {
				pool++
			}
		}
		// A whole-pool dense ranking holds every answer; the run keeps
		// the first eval.TRECDepth results for the TREC files.
		answers := 1
		if r.Target == "all" {
			answers = perID[ds.Questions[r.Question].ID]
		}
		if len(r.Found) != answers || len(r.Ranking) != min(pool, eval.TRECDepth) {
			t.Fatalf("%s pool of question %d: %d of %d answers found, %d results kept", r.Target, r.Question, len(r.Found), answers, len(r.Ranking))
		}
		exact[i] = r
		exact[i].Ranking, exact[i].Found = eval.Rank(scores)[:pool], nil
	}
	want := eval.Score(ds, exact, eval.Dense, eval.WholePool)
	t.Logf("dense in Weaviate: mono %.4f cross %.4f multi %.4f, bias %.1f; exact in Go: mono %.4f cross %.4f multi %.4f",
		dense.Mono.MAP, dense.Cross.MAP, dense.Multi.MAP, dense.LanguageBias, want.Mono.MAP, want.Cross.MAP, want.Multi.MAP)
	for name, pair := range map[string][2]float64{"mono": {dense.Mono.MAP, want.Mono.MAP}, "cross": {dense.Cross.MAP, want.Cross.MAP}, "multi": {dense.Multi.MAP, want.Multi.MAP}} {
		if math.Abs(pair[0]-pair[1]) > 1e-3 {
			t.Errorf("%s mAP in Weaviate %.5f, exact %.5f", name, pair[0], pair[1])
		}
	}
	// Weaviate's float32 distances may order near-equal candidates apart
	// from Go's: a rank or two for a few, out of 4,149.
	if math.Abs(dense.LanguageBias-want.LanguageBias) > 0.5 {
		t.Errorf("language bias in Weaviate %.2f, exact %.2f", dense.LanguageBias, want.LanguageBias)
	}
	if dense.Mono.Averaged != 2 || dense.Cross.Averaged != 2 || dense.Multi.Averaged != 2 {
		t.Errorf("averaged over %d mono pairs, %d cross pairs, %d query languages; want 2, 2, 2", dense.Mono.Averaged, dense.Cross.Averaged, dense.Multi.Averaged)
	}

	bm25, cutRuns, err := evaluate(ds, eval.BM25, nil)
	if err != nil {
		t.Fatal(err)
	}
	// BM25's statistics are the collection's, not the filtered pool's: the
	// whole-pool evaluation ranks a question once over every language and
	// restricts that ranking, and must put each answer where the search
	// filtered to its language does.
	_, wholeRuns, err := eval.Evaluate(ctx, search.Ranker("MlqaR", eval.BM25, ds), ds, eval.BM25, nil, eval.WholePool, 8)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i, r := range cutRuns {
		for key, rank := range r.Found {
			if got := wholeRuns[i].Found[key]; got != rank {
				t.Fatalf("%s pool of question %d: the filtered search ranks answer %d at %d, the restricted whole ranking at %d", r.Target, r.Question, key, rank, got)
			}
			checked++
		}
	}
	if checked < 500 {
		t.Errorf("only %d answers ranked within 100 by BM25 to compare", checked)
	}
	// Chance is about 1/2,000 in a pool of that size; BlockMax WAND gave 0.09.
	t.Logf("bm25: mono %.4f cross %.4f multi %.4f; top-10 shares %v", bm25.Mono.MAP, bm25.Cross.MAP, bm25.Multi.MAP, bm25.Top10Share)
	if bm25.Mono.MAP < 0.3 {
		t.Errorf("BM25 monolingual mAP %.4f is not clearly above chance", bm25.Mono.MAP)
	}
	// Hybrid fuses the two: at least as good as the weaker in the
	// monolingual setting, where BM25 carries it.
	hybrid, _, err := evaluate(ds, eval.Hybrid, qvecs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hybrid: mono %.4f cross %.4f multi %.4f", hybrid.Mono.MAP, hybrid.Cross.MAP, hybrid.Multi.MAP)
	if hybrid.Mono.MAP < min(bm25.Mono.MAP, dense.Mono.MAP) {
		t.Errorf("hybrid monolingual mAP %.4f is below both BM25's %.4f and dense's %.4f", hybrid.Mono.MAP, bm25.Mono.MAP, dense.Mono.MAP)
	}
}
