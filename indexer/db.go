package indexer

import (
	"context"
	"fmt"

	"github.com/weaviate/weaviate-go-client/v4/weaviate"

	"github.com/xling-ir/xling/internal/localweaviate"
)

// DB is one Weaviate, reached over REST (schema, imports) and gRPC
// (search).
type DB struct {
	Client  *weaviate.Client
	Search  *Searcher
	Version string
	URL     string
	Cluster Cluster // for the importers the caller makes (see Importer)
	server  *localweaviate.Server
}

// Importer returns an importer into class on this database, with its
// cluster settings.
func (db *DB) Importer(class string) *Importer {
	return &Importer{Client: db.Client, Class: class, Cluster: db.Cluster}
}

// Open connects to c and checks that Weaviate answers, so that a server
// named and down fails before any work. An empty c.URL starts a Weaviate
// on loopback with local's options; Close stops it.
func Open(ctx context.Context, c Connection, local localweaviate.Options) (*DB, error) {
	db := &DB{}
	if c.URL == "" {
		srv, err := localweaviate.Start(ctx, local)
		if err != nil {
			return nil, err
		}
		db.server = srv
		c = Connection{URL: srv.URL(), GRPC: srv.GRPCHost, Cluster: c.Cluster}
	}
	db.URL, db.Cluster = c.URL, c.Cluster
	fail := func(err error) (*DB, error) {
		db.Close()
		return nil, err
	}
	client, err := Connect(c)
	if err != nil {
		return fail(err)
	}
	meta, err := client.Misc().MetaGetter().Do(ctx)
	if err != nil {
		return fail(fmt.Errorf("weaviate at %s: %w", c.URL, err))
	}
	search, err := DialSearch(c)
	if err != nil {
		return fail(err)
	}
	db.Client, db.Search, db.Version = client, search, meta.Version
	return db, nil
}

// Close closes the gRPC connection and stops a Weaviate Open started.
func (db *DB) Close() error {
	var err error
	if db.Search != nil {
		err = db.Search.Close()
	}
	if db.server != nil {
		if serr := db.server.Stop(); err == nil {
			err = serr
		}
	}
	return err
}
