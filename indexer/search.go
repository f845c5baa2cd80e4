package indexer

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Searcher queries a collection over Weaviate's gRPC API: the Go client
// (v4) imports over gRPC but searches only through GraphQL, which costs
// several times more per query, and the full XQuAD-R protocol is 157,000
// queries per model.
type Searcher struct {
	conn   *grpc.ClientConn
	client pb.WeaviateClient
	apiKey string
	// Consistency is how many replicas must agree on a search's objects:
	// ONE, QUORUM or ALL; "" leaves Weaviate's default (QUORUM).
	Consistency string
}

// ConsistencyLevels are the levels Weaviate knows, for flags to check.
var ConsistencyLevels = []string{"ONE", "QUORUM", "ALL"}

// CheckConsistency fails on a level Weaviate does not know.
func CheckConsistency(level string) error {
	if level == "" || slices.Contains(ConsistencyLevels, level) {
		return nil
	}
	return fmt.Errorf("consistency level %q: want one of %s", level, strings.Join(ConsistencyLevels, ", "))
}

// Hit is one search result: the object's id and its similarity (1 -
// cosine distance for vectors, the BM25 or fused score otherwise).
type Hit struct {
	ID    string
	Score float64
}

// Query is one search: a vector, or BM25 / hybrid keywords, in a collection,
// optionally restricted to candidates of some languages.
type Query struct {
	Class  string
	Vector []float32 // nearVector, or hybrid's vector side
	Text   string    // BM25, or hybrid's keyword side
	Alpha  float64   // hybrid only: weight of the vector side
	Hybrid bool
	Langs  []string // empty means every language
	Limit  int
}

// DialSearch connects to c's gRPC endpoint. It does not wait for Weaviate:
// a search fails until it answers.
func DialSearch(c Connection) (*Searcher, error) {
	host, secure, err := grpcHost(c)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if secure {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("weaviate gRPC at %s: %w", host, err)
	}
	return &Searcher{conn: conn, client: pb.NewWeaviateClient(conn), apiKey: c.APIKey, Consistency: c.Cluster.Consistency}, nil
}

// grpcHost is c.GRPC, or the REST host with Weaviate's default gRPC port.
func grpcHost(c Connection) (host string, secure bool, err error) {
	scheme, rest, ok := strings.Cut(c.URL, "://")
	if !ok || rest == "" {
		return "", false, fmt.Errorf("weaviate URL %q: want scheme://host:port", c.URL)
	}
	host = c.GRPC
	if host == "" {
		host = strings.Split(rest, ":")[0] + ":50051"
	}
	return host, scheme == "https", nil
}

// Close closes the connection.
func (s *Searcher) Close() error { return s.conn.Close() }

// Search runs q and returns its hits, best first.
func (s *Searcher) Search(ctx context.Context, q Query) ([]Hit, error) {
	req := &pb.SearchRequest{
		Collection:  q.Class,
		Limit:       uint32(q.Limit),
		Uses_127Api: true,
		Metadata:    &pb.MetadataRequest{Uuid: true, Distance: true, Score: true},
		Properties:  &pb.PropertiesRequest{},
	}
	switch {
	case q.Hybrid:
		req.HybridSearch = &pb.Hybrid{Query: q.Text, Properties: []string{"text"}, Alpha: float32(q.Alpha),
			FusionType: pb.Hybrid_FUSION_TYPE_RELATIVE_SCORE, VectorBytes: vectorBytes(q.Vector)}
	case q.Vector != nil:
		req.NearVector = &pb.NearVector{VectorBytes: vectorBytes(q.Vector)}
	default:
		req.Bm25Search = &pb.BM25{Query: q.Text, Properties: []string{"text"}}
	}
	if f := langFilter(q.Langs); f != nil {
		req.Filters = f
	}
	if s.Consistency != "" {
		level := pb.ConsistencyLevel(pb.ConsistencyLevel_value["CONSISTENCY_LEVEL_"+s.Consistency])
		req.ConsistencyLevel = &level
	}
	if s.apiKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.apiKey)
	}
	reply, err := s.client.Search(ctx, req)
	if err != nil && strings.Contains(err.Error(), "query maximum results exceeded") {
		scope := "every language"
		if len(q.Langs) > 0 {
			scope = "languages " + strings.Join(q.Langs, ",")
		}
		return nil, fmt.Errorf("search %s (%s): Weaviate refuses to return %d results for one query: its QUERY_MAXIMUM_RESULTS is lower (10000 unless set); raise that variable in the Weaviate server's environment to at least %d, or ask for fewer results: %w",
			q.Class, scope, q.Limit, q.Limit, err)
	}
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Class, err)
	}
	hits := make([]Hit, len(reply.Results))
	for i, r := range reply.Results {
		m := r.GetMetadata()
		h := Hit{ID: m.GetId()}
		switch {
		case m.GetDistancePresent():
			h.Score = 1 - float64(m.GetDistance())
		case m.GetScorePresent():
			h.Score = float64(m.GetScore())
		}
		hits[i] = h
	}
	return hits, nil
}

// langFilter restricts a search to candidates of langs.
func langFilter(langs []string) *pb.Filters {
	equal := func(lang string) *pb.Filters {
		return &pb.Filters{Operator: pb.Filters_OPERATOR_EQUAL,
			Target:    &pb.FilterTarget{Target: &pb.FilterTarget_Property{Property: "lang"}},
			TestValue: &pb.Filters_ValueText{ValueText: lang}}
	}
	switch len(langs) {
	case 0:
		return nil
	case 1:
		return equal(langs[0])
	}
	or := &pb.Filters{Operator: pb.Filters_OPERATOR_OR}
	for _, l := range langs {
		or.Filters = append(or.Filters, equal(l))
	}
	return or
}

// vectorBytes is the little-endian float32 encoding gRPC's vector_bytes
// carries.
func vectorBytes(v []float32) []byte {
	if v == nil {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
