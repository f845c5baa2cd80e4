package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
)

// collectionFlags are what index and eval share: the dataset and the
// Weaviate collection that holds it.
type collectionFlags struct {
	dataset, langs, class *string
	weaviate              weaviateFlags
}

func addCollectionFlags(fs *flag.FlagSet) collectionFlags {
	return collectionFlags{
		dataset:  fs.String("dataset", "", "LAReQA-layout directory (xquad-r, mlqa-r)"),
		langs:    fs.String("langs", "", "comma-separated languages; empty means all"),
		class:    fs.String("class", "", "collection name; empty means one derived from the dataset (xquad-r: XquadR)"),
		weaviate: addWeaviateFlags(fs),
	}
}

// open loads the dataset and says where its collection is.
func (c collectionFlags) open() (*qa.Dataset, indexer.Connection, string, error) {
	if *c.dataset == "" {
		return nil, indexer.Connection{}, "", fmt.Errorf("%w: --dataset is required", cli.ErrUsage)
	}
	conn, err := c.weaviate.connection(false)
	if err != nil {
		return nil, conn, "", err
	}
	ds, err := qa.LoadLAReQA(*c.dataset, splitList(*c.langs))
	if err != nil {
		return nil, conn, "", err
	}
	class := *c.class
	if class == "" {
		class = indexer.ClassName(ds.Name)
	}
	return ds, conn, class, nil
}

// splitList splits a comma-separated flag value; empty gives nil.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// runIndex loads a LAReQA dataset's candidates into a collection, with
// vectors from --model or from Weaviate's text2vec-transformers module.
func runIndex(ctx context.Context, fs *flag.FlagSet, args []string) error {
	coll := addCollectionFlags(fs)
	model := addModelFlags(fs, "model directory for --vectors self")
	vectors := fs.String("vectors", "self", "self: xling computes vectors with --model and sends them; weaviate: Weaviate's text2vec-transformers module does")
	candidate := fs.String("candidate", string(indexer.Sentence), "what is embedded: sentence or sentence+context")
	index := fs.String("index", "flat", "vector index: flat (exact) or hnsw")
	logs := addLogFlags(fs)
	log, err := logs.parse(fs, args)
	if err != nil {
		return err
	}
	mode := indexer.CandidateText(*candidate)
	if mode != indexer.Sentence && mode != indexer.SentenceWithContext {
		return fmt.Errorf("%w: --candidate %q (want sentence or sentence+context)", cli.ErrUsage, *candidate)
	}
	ds, conn, class, err := coll.open()
	if err != nil {
		return err
	}
	db, err := indexer.Open(ctx, conn, localweaviate.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	docs := indexer.Docs(ds, mode)
	var vecs [][]float32
	schema := indexer.Schema{Vectorizer: "none", Index: *index}
	switch *vectors {
	case "self":
		if *model.dir == "" {
			return fmt.Errorf("%w: --vectors self needs --model", cli.ErrUsage)
		}
		v, err := model.load(64, log)
		if err != nil {
			return err
		}
		defer v.Close()
		texts := indexer.Texts(docs)
		log.Info("encoding candidates", "count", len(texts), "model", *model.dir)
		if vecs, err = v.Encode(ctx, texts, vectorizer.Passage); err != nil {
			return err
		}
	case "weaviate":
		schema.Vectorizer = "text2vec-transformers"
	default:
		return fmt.Errorf("%w: --vectors %q (want self or weaviate)", cli.ErrUsage, *vectors)
	}
	im := db.Importer(class)
	im.Logger, im.Progress = log, os.Stderr
	if err := db.CheckReplicas(ctx, class); err != nil {
		return err
	}
	if err := im.EnsureCollection(ctx, schema); err != nil {
		return err
	}
	if err := im.Import(ctx, docs, vecs); err != nil {
		return err
	}
	n, err := im.Count(ctx)
	if err != nil {
		return err
	}
	log.Info("indexed", "collection", class, "objects", n, "candidates", len(docs), "embedded", *candidate)
	return nil
}
