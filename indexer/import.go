// Package indexer loads multilingual retrieval sets into Weaviate and
// evaluates retrieval there.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/google/uuid"
	"github.com/weaviate/weaviate-go-client/v4/weaviate"
	"github.com/weaviate/weaviate-go-client/v4/weaviate/auth"
	"github.com/weaviate/weaviate-go-client/v4/weaviate/graphql"
	wgrpc "github.com/weaviate/weaviate-go-client/v4/weaviate/grpc"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/xling-ir/xling/qa"
)

// namespace roots xling's deterministic object ids (UUID v5).
var namespace = uuid.MustParse("6f1c3c1e-2b3a-5d4e-9a8b-786c696e6721")

// ObjectID is the UUID v5 of a candidate: the same dataset, language and
// candidate id always give the same object, so a re-run or resumed import
// overwrites instead of duplicating.
func ObjectID(dataset, lang, candidate string) strfmt.UUID {
	return strfmt.UUID(uuid.NewSHA1(namespace, []byte(dataset+"\x00"+lang+"\x00"+candidate)).String())
}

// Doc is one candidate as stored in Weaviate.
type Doc struct {
	ID       strfmt.UUID
	Key      int    // index in the dataset's candidate list
	Lang     string // ISO 639-1
	Text     string // what is embedded
	Parallel string // shared by parallel candidates across languages
	Source   string // dataset name
}

// CandidateText says how a LAReQA candidate is embedded.
type CandidateText string

const (
	Sentence            CandidateText = "sentence"         // the sentence alone
	SentenceWithContext CandidateText = "sentence+context" // LAReQA's: the sentence, then its paragraph
)

// Docs turns a dataset's candidates into documents.
func Docs(ds *qa.Dataset, mode CandidateText) []Doc {
	out := make([]Doc, len(ds.Candidates))
	for i, c := range ds.Candidates {
		text := c.Text
		if mode == SentenceWithContext {
			text = c.Text + "\n" + c.Context
		}
		id := fmt.Sprintf("%d/%d", c.Para, c.Sent)
		out[i] = Doc{ID: ObjectID(ds.Name, c.Lang, id), Key: i, Lang: c.Lang, Text: text, Parallel: fmt.Sprintf("%s/%d", ds.Name, c.Para), Source: ds.Name}
	}
	return out
}

// Texts are the docs' texts, in order: what an encoder embeds.
func Texts(docs []Doc) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Text
	}
	return out
}

// Connection says how to reach Weaviate.
type Connection struct {
	URL     string // http://host:port
	GRPC    string // host:port of the gRPC API; empty means the REST port's host with port 50051
	APIKey  string // for secured instances
	Cluster Cluster
}

// Cluster says how collections are laid out on a Weaviate cluster and how
// many replicas must answer; the zero value keeps Weaviate's defaults.
type Cluster struct {
	// Shards and Replication shape the collections xling creates: 0 leaves
	// Weaviate's defaults (a shard per node, one copy of each).
	Shards, Replication int
	// Consistency is how many replicas must acknowledge a write or agree
	// on a read: ONE, QUORUM or ALL; "" leaves Weaviate's default (QUORUM).
	Consistency string
}

// Check fails on values Weaviate would refuse, naming them.
func (c Cluster) Check() error {
	if c.Shards < 0 || c.Replication < 0 {
		return fmt.Errorf("shards %d, replication %d: want 0 (Weaviate's default) or more", c.Shards, c.Replication)
	}
	return CheckConsistency(c.Consistency)
}

// Connect builds a client that imports over gRPC.
func Connect(c Connection) (*weaviate.Client, error) {
	gh, secure, err := grpcHost(c)
	if err != nil {
		return nil, err
	}
	scheme, host, _ := strings.Cut(c.URL, "://")
	// No start-up wait: a restarting Weaviate is the importer's retries' job.
	cfg := weaviate.Config{Host: host, Scheme: scheme}
	cfg.GrpcConfig = &wgrpc.Config{Host: gh, Secured: secure}
	if c.APIKey != "" {
		cfg.AuthConfig = auth.ApiKey{Value: c.APIKey}
	}
	client, err := weaviate.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to weaviate at %s: %w", c.URL, err)
	}
	return client, nil
}

// Importer writes documents into one collection.
type Importer struct {
	Client    *weaviate.Client
	Class     string
	BatchSize int           // objects per batch; 0 means 200
	Retries   int           // attempts per batch; 0 means 8
	Backoff   time.Duration // first retry delay, doubled each time; 0 means 500 ms
	Logger    *slog.Logger
	Progress  io.Writer // a progress line per batch, if set
	// Cluster shapes the collection EnsureCollection creates and says how
	// many replicas must acknowledge each object.
	Cluster Cluster
}

// Schema says how the collection is built.
type Schema struct {
	Vectorizer string // "none" (vectors sent along) or "text2vec-transformers"
	Index      string // "flat" (exact, the default) or "hnsw"
	// DenseOnly leaves the text out of the inverted index: no BM25 or
	// hybrid search, and an import that skips Weaviate's costliest work
	// (MIRACL's 62,697 passages).
	DenseOnly bool
}

// Exists reports whether the collection exists.
func (im *Importer) Exists(ctx context.Context) (bool, error) {
	ok, err := im.Client.Schema().ClassExistenceChecker().WithClassName(im.Class).Do(ctx)
	if err != nil {
		return false, fmt.Errorf("weaviate: check collection %s: %w", im.Class, err)
	}
	return ok, nil
}

// EnsureCollection creates the collection unless it exists. Only the text is
// vectorised (not the class name, not the other properties): otherwise the
// vectors would measure the wrong input.
func (im *Importer) EnsureCollection(ctx context.Context, s Schema) error {
	exists, err := im.Exists(ctx)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	if s.Index == "" {
		s.Index = "flat"
	}
	skip := map[string]any{}
	var moduleConfig map[string]any
	if s.Vectorizer == "text2vec-transformers" {
		skip = map[string]any{"text2vec-transformers": map[string]any{"skip": true}}
		moduleConfig = map[string]any{"text2vec-transformers": map[string]any{"vectorizeClassName": false, "poolingStrategy": "masked_mean"}}
	}
	text := &models.Property{Name: "text", DataType: []string{"text"}}
	if s.DenseOnly {
		off := false
		text.IndexSearchable, text.IndexFilterable = &off, &off
	}
	class := &models.Class{
		Class: im.Class, Vectorizer: s.Vectorizer, VectorIndexType: s.Index, ModuleConfig: moduleConfig,
		Properties: []*models.Property{
			text,
			{Name: "lang", DataType: []string{"text"}, Tokenization: "field", ModuleConfig: skip},
			{Name: "parallel", DataType: []string{"text"}, Tokenization: "field", ModuleConfig: skip},
			{Name: "source", DataType: []string{"text"}, Tokenization: "field", ModuleConfig: skip},
			{Name: "key", DataType: []string{"int"}, ModuleConfig: skip},
		},
	}
	if n := im.Cluster.Shards; n > 0 {
		class.ShardingConfig = map[string]any{"desiredCount": n}
	}
	if n := im.Cluster.Replication; n > 0 {
		class.ReplicationConfig = &models.ReplicationConfig{Factor: int64(n)}
	}
	if err := im.Client.Schema().ClassCreator().WithClass(class).Do(ctx); err != nil {
		return fmt.Errorf("weaviate: create collection %s: %w", im.Class, err)
	}
	return nil
}

// Drop deletes the collection and its objects.
func (im *Importer) Drop(ctx context.Context) error {
	if err := im.Client.Schema().ClassDeleter().WithClassName(im.Class).Do(ctx); err != nil {
		return fmt.Errorf("weaviate: delete collection %s: %w", im.Class, err)
	}
	return nil
}

// Import writes docs (with vectors, unless the collection vectorises) in
// batches. A failed batch is retried with exponential backoff, so a slow or
// restarting Weaviate costs time, not objects; ids are deterministic, so a
// retried or repeated batch never duplicates.
func (im *Importer) Import(ctx context.Context, docs []Doc, vectors [][]float32) error {
	if vectors != nil && len(vectors) != len(docs) {
		return fmt.Errorf("import: %d vectors for %d documents", len(vectors), len(docs))
	}
	size, retries, backoff := im.BatchSize, im.Retries, im.Backoff
	if size <= 0 {
		size = 200
	}
	if retries <= 0 {
		retries = 8
	}
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	log := im.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	for lo := 0; lo < len(docs); lo += size {
		hi := min(lo+size, len(docs))
		objs := make([]*models.Object, 0, hi-lo)
		for i := lo; i < hi; i++ {
			d := docs[i]
			o := &models.Object{Class: im.Class, ID: d.ID, Properties: map[string]any{
				"text": d.Text, "lang": d.Lang, "parallel": d.Parallel, "source": d.Source, "key": d.Key}}
			if vectors != nil {
				o.Vector = vectors[i]
			}
			objs = append(objs, o)
		}
		delay := backoff
		for attempt := 1; ; attempt++ {
			err := im.batch(ctx, objs)
			if err == nil {
				break
			}
			if attempt == retries || ctx.Err() != nil {
				return fmt.Errorf("import objects %d-%d of %d: %w (after %d attempts)", lo, hi-1, len(docs), err, attempt)
			}
			log.Warn("batch failed; retrying", "objects", fmt.Sprintf("%d-%d", lo, hi-1), "attempt", attempt, "in", delay, "err", err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			delay = min(2*delay, 30*time.Second)
		}
		if im.Progress != nil {
			done := hi
			rate := float64(done) / time.Since(start).Seconds()
			eta := time.Duration(float64(len(docs)-done) / rate * float64(time.Second))
			fmt.Fprintf(im.Progress, "\rimport %s: %d/%d objects (%.0f%%), %.0f objects/s, ETA %s   ", im.Class, done, len(docs), 100*float64(done)/float64(len(docs)), rate, eta.Round(time.Second))
			if done == len(docs) {
				fmt.Fprintln(im.Progress)
			}
		}
	}
	return nil
}

func (im *Importer) batch(ctx context.Context, objs []*models.Object) error {
	b := im.Client.Batch().ObjectsBatcher().WithObjects(objs...)
	if c := im.Cluster.Consistency; c != "" {
		b = b.WithConsistencyLevel(c)
	}
	resp, err := b.Do(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range resp {
		if r.Result != nil && r.Result.Errors != nil {
			for _, e := range r.Result.Errors.Error {
				errs = append(errs, fmt.Errorf("object %s: %s", r.ID, e.Message))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d objects failed, first: %w", len(errs), errs[0])
	}
	return nil
}

// Count returns the number of objects in the collection.
func (im *Importer) Count(ctx context.Context) (int, error) {
	resp, err := im.Client.GraphQL().Aggregate().WithClassName(im.Class).
		WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
	if err != nil {
		return 0, fmt.Errorf("weaviate: count %s: %w", im.Class, err)
	}
	if len(resp.Errors) > 0 {
		return 0, fmt.Errorf("weaviate: count %s: %s", im.Class, resp.Errors[0].Message)
	}
	rows, _ := resp.Data["Aggregate"].(map[string]any)[im.Class].([]any)
	if len(rows) == 0 {
		return 0, errors.New("weaviate: count: empty answer")
	}
	n, _ := rows[0].(map[string]any)["meta"].(map[string]any)["count"].(float64)
	return int(n), nil
}

// ClassName turns a name (xquad-r) into a Weaviate class name (XquadR):
// ASCII letters and digits, each run of anything else dropped and the
// letter after it capitalised, as Weaviate's class names allow.
func ClassName(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			if up && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		} else {
			up = true
		}
	}
	return b.String()
}
