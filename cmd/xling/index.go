package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weaviate/weaviate-go-client/v4/weaviate"

	"github.com/xling-ir/xling/bench"
	"github.com/xling-ir/xling/eval"
	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/miracl"
	"github.com/xling-ir/xling/qa"
	"github.com/xling-ir/xling/vectorizer"
)

// collectionFlags are what index and eval share: the dataset and the
// Weaviate collection that holds it.
type collectionFlags struct {
	dataset, langs, url, grpc, class *string
	apiKey                           func() (string, error)
}

func addCollectionFlags(fs *flag.FlagSet) collectionFlags {
	return collectionFlags{
		dataset: fs.String("dataset", "", "LAReQA-layout directory (xquad-r, mlqa-r)"),
		langs:   fs.String("langs", "", "comma-separated languages; empty means all"),
		url:     fs.String("weaviate", cli.Env("XLING_WEAVIATE_URL", "http://localhost:8080"), "Weaviate REST URL (env XLING_WEAVIATE_URL)"),
		grpc:    fs.String("grpc", cli.Env("XLING_WEAVIATE_GRPC", ""), "Weaviate gRPC host:port; empty means the REST host, port 50051 (env XLING_WEAVIATE_GRPC)"),
		apiKey:  cli.APIKey(fs, "XLING_WEAVIATE_API_KEY"),
		class:   fs.String("class", "", "collection name; empty means one derived from the dataset (xquad-r: XquadR)"),
	}
}

// open loads the dataset and connects to Weaviate.
func (c collectionFlags) open() (*qa.Dataset, *weaviate.Client, string, error) {
	if *c.dataset == "" {
		return nil, nil, "", fmt.Errorf("%w: --dataset is required", cli.ErrUsage)
	}
	var keep []string
	if *c.langs != "" {
		keep = strings.Split(*c.langs, ",")
	}
	ds, err := qa.LoadLAReQA(*c.dataset, keep)
	if err != nil {
		return nil, nil, "", err
	}
	class := *c.class
	if class == "" {
		class = indexer.ClassName(ds.Name)
	}
	conn, err := c.connection()
	if err != nil {
		return nil, nil, "", err
	}
	client, err := indexer.Connect(conn)
	return ds, client, class, err
}

func (c collectionFlags) connection() (indexer.Connection, error) {
	key, err := c.apiKey()
	return indexer.Connection{URL: *c.url, GRPC: *c.grpc, APIKey: key}, err
}

func runIndex(ctx context.Context, fs *flag.FlagSet, args []string) error {
	coll := addCollectionFlags(fs)
	vectors := fs.String("vectors", "self", "self: xling computes vectors with --model and sends them; weaviate: Weaviate's text2vec-transformers module does")
	model := fs.String("model", cli.Env("XLING_MODEL", ""), "model directory for --vectors self (env XLING_MODEL)")
	candidate := fs.String("candidate", string(indexer.Sentence), "what is embedded: sentence or sentence+context")
	index := fs.String("index", "flat", "vector index: flat (exact) or hnsw")
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	mode := indexer.CandidateText(*candidate)
	if mode != indexer.Sentence && mode != indexer.SentenceWithContext {
		return fmt.Errorf("%w: --candidate %q (want sentence or sentence+context)", cli.ErrUsage, *candidate)
	}
	ds, client, class, err := coll.open()
	if err != nil {
		return err
	}
	docs := indexer.Docs(ds, mode)
	var vecs [][]float32
	schema := indexer.Schema{Vectorizer: "none", Index: *index}
	switch *vectors {
	case "self":
		if *model == "" {
			return fmt.Errorf("%w: --vectors self needs --model", cli.ErrUsage)
		}
		v, err := vectorizer.Load(*model, vectorizer.LoadOptions{Threads: *threads, BatchSize: 64, Logger: logger()})
		if err != nil {
			return err
		}
		defer v.Close()
		texts := indexer.Texts(docs)
		logger().Info("encoding candidates", "count", len(texts), "model", *model)
		if vecs, err = v.Encode(ctx, texts, vectorizer.Passage); err != nil {
			return err
		}
	case "weaviate":
		schema.Vectorizer = "text2vec-transformers"
	default:
		return fmt.Errorf("%w: --vectors %q (want self or weaviate)", cli.ErrUsage, *vectors)
	}
	im := &indexer.Importer{Client: client, Class: class, Logger: logger(), Progress: os.Stderr}
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
	logger().Info("indexed", "collection", class, "objects", n, "candidates", len(docs), "embedded", *candidate)
	return nil
}

// runEval evaluates a collection made by `xling index`: dense retrieval
// with --model's query vectors, and Weaviate's BM25 and hybrid search on the
// same collection.
func runEval(ctx context.Context, fs *flag.FlagSet, args []string) error {
	coll := addCollectionFlags(fs)
	model := fs.String("model", cli.Env("XLING_MODEL", ""), "model directory for query vectors; empty evaluates BM25 only (env XLING_MODEL)")
	bm25 := fs.Bool("bm25", true, "also evaluate Weaviate's BM25 as a baseline")
	hybrid := fs.Bool("hybrid", true, "with --model, also evaluate Weaviate's hybrid search (BM25 + vector, alpha 0.5)")
	depth := fs.Int("depth", 100, "results per query; mAP and recall are cut there")
	concurrency := fs.Int("concurrency", 8, "queries in flight")
	sample := fs.Int("max-questions", 0, "evaluate the questions of the first N question ids only (every pool whole), as a sampled study does; 0 means all")
	out := fs.String("out", "eval", "directory for report.json, report.md and TREC run/qrels files")
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *model == "" && !*bm25 {
		return fmt.Errorf("%w: give --model, --bm25, or both", cli.ErrUsage)
	}
	ds, _, class, err := coll.open()
	if err != nil {
		return err
	}
	ds = ds.Sample(*sample)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	conn, err := coll.connection()
	if err != nil {
		return err
	}
	search, err := indexer.DialSearch(conn)
	if err != nil {
		return err
	}
	defer search.Close()
	var reports []*eval.Report
	evaluate := func(method eval.Method, vecs [][]float32) error {
		logger().Info("evaluating in weaviate", "method", method, "questions", len(ds.Questions), "collection", class)
		rep, runs, err := eval.Evaluate(ctx, search.Ranker(class, method, ds), ds, method, vecs, *depth, *concurrency)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
		name := string(method)
		return eval.WriteTREC(filepath.Join(*out, name+".run"), filepath.Join(*out, name+".qrels"), ds, runs, name)
	}
	if *model != "" {
		v, err := vectorizer.Load(*model, vectorizer.LoadOptions{Threads: *threads, BatchSize: 64, Logger: logger()})
		if err != nil {
			return err
		}
		questions := ds.QuestionTexts()
		vecs, err := v.Encode(ctx, questions, vectorizer.Query)
		v.Close()
		if err != nil {
			return err
		}
		if err := evaluate(eval.Dense, vecs); err != nil {
			return err
		}
		if *hybrid {
			if err := evaluate(eval.Hybrid, vecs); err != nil {
				return err
			}
		}
	}
	if *bm25 {
		if err := evaluate(eval.BM25, nil); err != nil {
			return err
		}
	}
	if _, err := eval.WriteCharts(*out, ds, reports); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(reports, "", "  ")
	md := eval.Markdown(reports)
	if err := errors.Join(os.WriteFile(filepath.Join(*out, "report.json"), b, 0o644), os.WriteFile(filepath.Join(*out, "report.md"), []byte(md), 0o644)); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

// runMIRACL streams a MIRACL corpus into Weaviate and evaluates the dev
// topics monolingually (nDCG@10, recall at the depth), dense and BM25.
func runMIRACL(ctx context.Context, fs *flag.FlagSet, args []string) error {
	corpus := fs.String("corpus", "", "MIRACL corpus: JSON lines {lang, docid, title, text}, optionally .gz (e.g. miracl-partial/corpus.jsonl)")
	topics := fs.String("topics", "", "directory of MIRACL dev topics and qrels (topics.miracl-v1.0-<lang>-dev.tsv, qrels...)")
	partial := fs.Bool("partial", true, "the corpus is not the whole MIRACL corpus: say so in the report (its numbers are not comparable with published ones)")
	langs := fs.String("langs", "", "comma-separated languages; empty means every language in the corpus")
	url := fs.String("weaviate", cli.Env("XLING_WEAVIATE_URL", "http://localhost:8080"), "Weaviate REST URL (env XLING_WEAVIATE_URL)")
	grpc := fs.String("grpc", cli.Env("XLING_WEAVIATE_GRPC", ""), "Weaviate gRPC host:port; empty means the REST host, port 50051 (env XLING_WEAVIATE_GRPC)")
	apiKey := cli.APIKey(fs, "XLING_WEAVIATE_API_KEY")
	class := fs.String("class", "Miracl", "collection name")
	model := fs.String("model", cli.Env("XLING_MODEL", ""), "model directory for passage and query vectors; empty evaluates BM25 only (env XLING_MODEL)")
	depth := fs.Int("depth", 100, "results per query; recall is cut there")
	out := fs.String("out", "eval-miracl", "directory for report.json, report.md and TREC run files")
	threads := fs.Int("threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *corpus == "" || *topics == "" {
		return fmt.Errorf("%w: give --corpus and --topics", cli.ErrUsage)
	}
	key, err := apiKey()
	if err != nil {
		return err
	}
	conn := indexer.Connection{URL: *url, GRPC: *grpc, APIKey: key}
	client, err := indexer.Connect(conn)
	if err != nil {
		return err
	}
	var keep []string
	if *langs != "" {
		keep = strings.Split(*langs, ",")
	}
	var v *vectorizer.Vectorizer
	var encode func([]string) ([][]float32, error)
	if *model != "" {
		if v, err = vectorizer.Load(*model, vectorizer.LoadOptions{Threads: *threads, BatchSize: 64, Logger: logger()}); err != nil {
			return err
		}
		defer v.Close()
		encode = func(texts []string) ([][]float32, error) { return v.Encode(ctx, texts, vectorizer.Passage) }
	}
	im := &indexer.Importer{Client: client, Class: *class, Logger: logger()}
	if err := im.EnsureCollection(ctx, indexer.Schema{Vectorizer: "none", Index: "flat"}); err != nil {
		return err
	}
	loaded, err := indexer.ImportMIRACL(ctx, im, *corpus, keep, encode, logger())
	if err != nil {
		return err
	}
	var all []miracl.Judged
	totals := map[string]int{}
	for lang := range loaded {
		kept, n, err := miracl.JudgedTopics(*topics, lang, loaded[lang])
		if errors.Is(err, os.ErrNotExist) {
			logger().Warn("no dev topics for a corpus language", "lang", lang)
			continue
		}
		if err != nil {
			return err
		}
		totals[lang] = n
		all = append(all, kept...)
	}
	search, err := indexer.DialSearch(conn)
	if err != nil {
		return err
	}
	defer search.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	results := map[string][]eval.MIRACLScores{}
	var md strings.Builder
	label := "the whole corpus"
	if *partial {
		label = "a PARTIAL corpus: only dev topics with a judged-relevant passage in it are scored, against the relevant passages it holds; not comparable with published MIRACL numbers"
	}
	fmt.Fprintf(&md, "# MIRACL dev, monolingual, in Weaviate (%s)\n\n| method | lang | topics scored | dev topics | nDCG@10 | Recall@%d |\n|---|---|---|---|---|---|\n", label, *depth)
	methods := []eval.Method{eval.BM25}
	if v != nil {
		methods = append([]eval.Method{eval.Dense}, methods...)
	}
	for _, method := range methods {
		var vecs [][]float32
		if method == eval.Dense {
			queries := make([]string, len(all))
			for i, t := range all {
				queries[i] = t.Query
			}
			if vecs, err = v.Encode(ctx, queries, vectorizer.Query); err != nil {
				return err
			}
		}
		ranker, docids := search.MIRACLRanker(*class, method, loaded)
		scores, runs, err := eval.EvaluateMIRACL(ctx, ranker, all, vecs, docids, *depth, 8, *partial)
		if err != nil {
			return err
		}
		for i := range scores {
			scores[i].All = totals[scores[i].Lang]
			s := scores[i]
			fmt.Fprintf(&md, "| %s | %s | %d | %d | %.4f | %.4f |\n", method, s.Lang, s.Topics, s.All, s.NDCG10, s.Recall)
		}
		results[string(method)] = scores
		if err := eval.WriteMIRACLRun(filepath.Join(*out, string(method)+".run"), runs, string(method)); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(map[string]any{"partial_corpus": *partial, "depth": *depth, "results": results}, "", "  ")
	if err := errors.Join(os.WriteFile(filepath.Join(*out, "report.json"), b, 0o644), os.WriteFile(filepath.Join(*out, "report.md"), []byte(md.String()), 0o644)); err != nil {
		return err
	}
	fmt.Print(md.String())
	return nil
}

func runBenchIndex(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var o bench.IndexOptions
	fs.StringVar(&o.Model, "model", cli.Env("XLING_MODEL", ""), "model directory; empty means a random model of --arch and --size")
	fs.StringVar(&o.Arch, "arch", "static", "random model when no --model: static (encodes fastest, so Weaviate is what is measured) or transformer")
	fs.StringVar(&o.Size, "size", "small", "random model size: tiny, small or base")
	fs.IntVar(&o.Questions, "questions", 0, "evaluate the questions of the first N question ids; 0 means the full protocol (~157,000 queries per index)")
	fs.IntVar(&o.Threads, "threads", envInt("XLING_THREADS", 1), "libtorch threads (env XLING_THREADS)")
	url := fs.String("weaviate", cli.Env("XLING_WEAVIATE_URL", ""), "Weaviate REST URL; empty starts a local one (env XLING_WEAVIATE_URL)")
	grpc := fs.String("grpc", cli.Env("XLING_WEAVIATE_GRPC", ""), "Weaviate gRPC host:port (env XLING_WEAVIATE_GRPC)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	o.Weaviate = indexer.Connection{URL: *url, GRPC: *grpc}
	return bench.Index(ctx, os.Stdout, o)
}
