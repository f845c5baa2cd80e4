package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/shareddata"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
)

// IndexOptions configures the indexer benchmark.
type IndexOptions struct {
	// The encoder: a random static one encodes fastest, leaving Weaviate
	// to measure.
	ModelOptions
	// Weaviate to measure; an empty URL starts a local one.
	Weaviate indexer.Connection
	// Questions samples the evaluation (question ids, in every language);
	// 0 runs the full XQuAD-R protocol, about 157,000 queries per index.
	Questions int
}

// Index imports all of XQuAD-R with the model's vectors into a flat and an
// hnsw collection, timing each import (objects/s) and the evaluation
// (queries/s), and prints what the approximate index costs in mAP.
func Index(ctx context.Context, w io.Writer, opts IndexOptions) error {
	data, err := shareddata.Dir()
	if err != nil {
		return err
	}
	ds, err := qa.LoadLAReQA(filepath.Join(data, "xquad-r"), nil)
	if err != nil {
		return err
	}
	dir, v, cleanup, err := opts.load(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	db, err := indexer.Open(ctx, opts.Weaviate, localweaviate.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	client, search := db.Client, db.Search

	docs := indexer.Docs(ds, indexer.Sentence)
	texts := indexer.Texts(docs)
	start := time.Now()
	vecs, err := v.Encode(ctx, texts, vectorizer.Passage)
	if err != nil {
		return err
	}
	sample := ds.Sample(opts.Questions)
	questions := sample.QuestionTexts()
	qvecs, err := v.Encode(ctx, questions, vectorizer.Query)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "model %s: %s; encoded %d candidates and %d questions in %s\n", dir, Describe(v.Config), len(docs), len(questions), time.Since(start).Round(time.Millisecond))

	maps := map[string]float64{}
	for _, index := range []string{"flat", "hnsw"} {
		class := "BenchXquadR" + index
		_ = client.Schema().ClassDeleter().WithClassName(class).Do(ctx) // a fresh collection: no upserts
		im := &indexer.Importer{Client: client, Class: class}
		if err := im.EnsureCollection(ctx, indexer.Schema{Vectorizer: "none", Index: index}); err != nil {
			return err
		}
		start := time.Now()
		if err := im.Import(ctx, docs, vecs); err != nil {
			return err
		}
		took := time.Since(start)
		fmt.Fprintf(w, "import  %-4s %6d objects in %8s: %8.0f objects/s\n", index, len(docs), took.Round(time.Millisecond), float64(len(docs))/took.Seconds())
		start = time.Now()
		rep, _, err := eval.Evaluate(ctx, search.Ranker(class, eval.Dense, sample), sample, eval.Dense, qvecs, 100, 8)
		if err != nil {
			return err
		}
		took = time.Since(start)
		queries := rep.Mono.Queries + rep.Cross.Queries + rep.Multi.Queries
		fmt.Fprintf(w, "queries %-4s %6d queries in %8s: %8.0f queries/s  (mAP mono %.4f, cross %.4f, multi %.4f)\n",
			index, queries, took.Round(time.Millisecond), float64(queries)/took.Seconds(), rep.Mono.MAP, rep.Cross.MAP, rep.Multi.MAP)
		maps[index] = rep.Multi.MAP
	}
	fmt.Fprintf(w, "hnsw - flat multilingual mAP: %+.4f (the approximate index's cost; flat is exact)\n", maps["hnsw"]-maps["flat"])
	return nil
}
