package indexer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata/sharedtest"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/miracl"
	"github.com/xling-ir/xling/vectorizer"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// TestMIRACLPartial streams the 62,697 passages of the partial MIRACL
// corpus into a real Weaviate (vectors from a static model, so encoding is
// not what the test waits on), twice, and evaluates BM25 on the dev topics
// whose judged passages it holds, labelled partial.
func TestMIRACLPartial(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of import")
	}
	data := sharedtest.Dir(t)
	cfg, _ := vectorizer.StaticSizeConfig("tiny", 4000)
	v, err := vectorizer.Load(vectorizertest.Model(t, cfg, vectorizer.DefaultOptions(), 1), vectorizer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()
	encode := func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Passage) }

	srv := weaviatetest.Start(t, localweaviate.Options{})
	conn := Connection{URL: srv.URL(), GRPC: srv.GRPCHost}
	client, err := Connect(conn)
	if err != nil {
		t.Fatal(err)
	}
	im := &Importer{Client: client, Class: "Miracl"}
	if err := im.EnsureCollection(ctx, Schema{Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(data, "miracl-partial", "corpus.jsonl")
	loaded, err := ImportMIRACL(ctx, im, corpus, nil, encode, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Loading a language again neither duplicates nor loses anything.
	if _, err := ImportMIRACL(ctx, im, corpus, []string{"yo"}, encode, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := im.Count(ctx); err != nil || n != 62697 {
		t.Fatalf("%d objects (%v), want 62,697", n, err)
	}
	if len(loaded) != 17 || len(loaded["en"]) != 4901 {
		t.Errorf("loaded %d languages, %d English passages; want 17 and 4,901", len(loaded), len(loaded["en"]))
	}

	search, err := DialSearch(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer search.Close()
	var topics []miracl.Judged
	for _, lang := range []string{"de", "en", "sw", "th"} {
		kept, all, err := miracl.JudgedTopics(filepath.Join(data, "miracl"), lang, loaded[lang])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d dev topics have a judged-relevant passage in the partial corpus", lang, len(kept), all)
		if lang == "th" && len(kept) != 0 {
			t.Errorf("th has no passages in the partial corpus, yet %d topics were kept", len(kept))
		}
		topics = append(topics, kept...)
	}
	ranker, docids := search.MIRACLRanker("Miracl", eval.BM25, loaded)
	scores, runs, err := eval.EvaluateMIRACL(ctx, ranker, topics, nil, docids, 100, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(topics) {
		t.Fatalf("%d runs for %d topics", len(runs), len(topics))
	}
	for _, s := range scores {
		t.Logf("bm25 %s (partial corpus): %d topics, nDCG@10 %.4f, recall@100 %.4f", s.Lang, s.Topics, s.NDCG10, s.Recall)
		if !s.Partial || s.Topics == 0 {
			t.Errorf("%s: %+v", s.Lang, s)
		}
		// A pool of a few thousand passages: chance nDCG@10 is near 0.
		if s.NDCG10 < 0.1 {
			t.Errorf("%s: BM25 nDCG@10 %.4f is not clearly above chance", s.Lang, s.NDCG10)
		}
	}
}
