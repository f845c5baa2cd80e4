package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/xling-ir/xling/indexer"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/vectorizer"
)

// The flag groups below are shared by the commands, as the go command
// shares its build flags: each is declared once, with one default and one
// variable, and cli.Parse applies the variable named in the usage.

// localWeaviate is the --weaviate value that starts a Weaviate on loopback.
const localWeaviate = "local"

// weaviateFlags say how to reach Weaviate.
type weaviateFlags struct {
	url, grpc *string
	apiKey    func() (string, error)
	cluster   *indexer.Cluster
}

func addWeaviateFlags(fs *flag.FlagSet) weaviateFlags {
	c := &indexer.Cluster{}
	fs.IntVar(&c.Shards, "shards", 0, "shards of each collection xling creates; 0 means Weaviate's default, one per node (env XLING_WEAVIATE_SHARDS)")
	fs.IntVar(&c.Replication, "replication", 0, "copies of each shard (Weaviate's replication factor); 0 means Weaviate's default, 1 (env XLING_WEAVIATE_REPLICATION)")
	fs.StringVar(&c.Consistency, "consistency", "", "replicas that must acknowledge an import and agree on a search: ONE, QUORUM or ALL; empty means Weaviate's default, QUORUM (env XLING_WEAVIATE_CONSISTENCY)")
	return weaviateFlags{
		url:     fs.String("weaviate", "http://localhost:8080", "Weaviate REST URL; "+localWeaviate+" starts one on loopback (experiment, bench index) (env XLING_WEAVIATE_URL)"),
		grpc:    fs.String("grpc", "", "Weaviate gRPC host:port; empty means the REST host, port 50051 (env XLING_WEAVIATE_GRPC)"),
		apiKey:  cli.APIKey(fs, "XLING_WEAVIATE_API_KEY"),
		cluster: c,
	}
}

// connection returns where Weaviate is. With canStart, --weaviate local
// gives an empty URL, which the packages read as "start one".
func (w weaviateFlags) connection(canStart bool) (indexer.Connection, error) {
	if err := w.cluster.Check(); err != nil {
		return indexer.Connection{}, fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	if *w.url == localWeaviate {
		if !canStart {
			return indexer.Connection{}, fmt.Errorf("%w: --weaviate %s: this command needs a running Weaviate (only experiment and bench index start one)", cli.ErrUsage, localWeaviate)
		}
		if *w.grpc != "" {
			return indexer.Connection{}, fmt.Errorf("%w: --grpc names a running Weaviate; it does not go with --weaviate %s", cli.ErrUsage, localWeaviate)
		}
		return indexer.Connection{Cluster: *w.cluster}, nil
	}
	if *w.url == "" {
		return indexer.Connection{}, fmt.Errorf("%w: --weaviate is empty (give a URL, or %s)", cli.ErrUsage, localWeaviate)
	}
	key, err := w.apiKey()
	return indexer.Connection{URL: *w.url, GRPC: *w.grpc, APIKey: key, Cluster: *w.cluster}, err
}

// modelFlags name a model directory and the libtorch threads that run it.
type modelFlags struct {
	dir     *string
	threads *int
}

// addModelFlags adds --model, whose usage says what the command does with
// it, and --threads.
func addModelFlags(fs *flag.FlagSet, usage string) modelFlags {
	return modelFlags{
		dir:     fs.String("model", "", usage+" (env XLING_MODEL)"),
		threads: addThreadsFlag(fs),
	}
}

const threadsUsage = "libtorch threads; the Go side of static models ignores it (env XLING_THREADS)"

func addThreadsFlag(fs *flag.FlagSet) *int { return fs.Int("threads", 1, threadsUsage) }

// addWorkersFlag is the serving commands' --workers; 0 resolves to
// vectorizer.AutoWorkers(--threads) once flags are parsed.
func addWorkersFlag(fs *flag.FlagSet) *int {
	return fs.Int("workers", 0, "forward passes at once, each on --threads libtorch threads; 0 means as many as fill the cores (env XLING_WORKERS)")
}

// load opens the model for batches of at most batch texts.
func (m modelFlags) load(batch int, log *slog.Logger) (*vectorizer.Vectorizer, error) {
	return vectorizer.Load(*m.dir, vectorizer.LoadOptions{Threads: *m.threads, BatchSize: batch, Logger: log})
}

// logFlags set the level and format of the logs on stderr.
type logFlags struct{ level, format *string }

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		level:  fs.String("log-level", "info", "debug, info, warn or error (env XLING_LOG_LEVEL)"),
		format: fs.String("log-format", "text", "text, or json: one JSON object a line, for log pipelines (env XLING_LOG_FORMAT)"),
	}
}

// logger returns the logger the flags ask for.
func (l logFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*l.level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q (want debug, info, warn or error)", cli.ErrUsage, *l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *l.format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q (want text or json)", cli.ErrUsage, *l.format)
}

// parse parses the command line and builds the logger, for the commands
// that log.
func (l logFlags) parse(fs *flag.FlagSet, args []string) (*slog.Logger, error) {
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	return l.logger()
}
