package indexer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/weaviate/weaviate/entities/models"
)

// CheckReplicas fails, naming what is missing, when too few of class's
// replicas are on healthy nodes for the consistency level db.Cluster asks
// for (QUORUM when unset). Weaviate refuses such writes itself, after the
// importer's retries; but it answers a vector search from the replicas it
// reaches and only logs the failed consistency check, so an evaluation
// would silently read whatever one node holds. A collection that does not
// exist yet is checked against the replication it will be created with.
func (db *DB) CheckReplicas(ctx context.Context, class string) error {
	level := db.Cluster.Consistency
	if level == "" {
		level = "QUORUM"
	}
	if level == "ONE" {
		return nil
	}
	// A cluster that lost most of its nodes cannot even answer this: its
	// Raft has no leader, and Weaviate's error says so.
	failed := func(err error) error {
		return fmt.Errorf("weaviate at %s: checking that consistency %s can be met for %s: %w", db.URL, level, class, err)
	}
	exists, err := db.Client.Schema().ClassExistenceChecker().WithClassName(class).Do(ctx)
	if err != nil {
		return failed(err)
	}
	factor := db.Cluster.Replication
	if exists {
		c, err := db.Client.Schema().ClassGetter().WithClassName(class).Do(ctx)
		if err != nil {
			return failed(err)
		}
		if c.ReplicationConfig != nil {
			factor = int(c.ReplicationConfig.Factor)
		}
	}
	if factor <= 1 {
		return nil
	}
	need := factor
	if level == "QUORUM" {
		need = factor/2 + 1
	}
	getter := db.Client.Cluster().NodesStatusGetter().WithOutput("verbose")
	if exists {
		getter = getter.WithClass(class)
	}
	st, err := getter.Do(ctx)
	if err != nil {
		return failed(err)
	}
	var report []string // what Weaviate says of each node it knows
	healthy := 0
	holders := map[string]int{}
	for _, n := range st.Nodes {
		status := "without a status"
		if n.Status != nil {
			status = *n.Status
		}
		report = append(report, n.Name+" "+status)
		if status != models.NodeStatusStatusHEALTHY {
			continue
		}
		healthy++
		for _, s := range n.Shards {
			if s.Class == class {
				holders[s.Name]++
			}
		}
	}
	slices.Sort(report)
	fail := func(what string, have int) error {
		return fmt.Errorf("weaviate: consistency %s needs %d of the %d replicas of each shard of %s, but %s %d on healthy nodes (Weaviate reports %s): start the nodes that are down, or lower --consistency",
			level, need, factor, class, what, have, strings.Join(report, ", "))
	}
	if !exists {
		if healthy < need {
			return fail("the cluster has", healthy)
		}
		return nil
	}
	shards := make([]string, 0, len(holders))
	for s := range holders {
		shards = append(shards, s)
	}
	slices.Sort(shards)
	for _, s := range shards {
		if holders[s] < need {
			return fail("shard "+s+" has", holders[s])
		}
	}
	return nil
}
