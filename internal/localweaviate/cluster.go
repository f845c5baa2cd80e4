package localweaviate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cluster is several Weaviate nodes on loopback that form one cluster:
// Raft for the schema (every node a voter) and gossip for membership, as
// Weaviate's own local development cluster is set up (CLUSTER_IN_LOCALHOST,
// RAFT_JOIN naming each node with its Raft port, which is how a node finds
// the others' Raft ports). Each node has its own ports and data directory.
type Cluster struct {
	Nodes []*Server
}

// StartCluster launches n nodes and returns once every node is ready and
// sees the other n-1 as healthy. opts.DataDir, if set, holds a directory
// per node; opts.Port is ignored. The caller must Stop it.
func StartCluster(ctx context.Context, n int, opts Options) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("weaviate cluster of %d nodes: want at least 1", n)
	}
	log, bin, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	ports, err := clusterPorts(n)
	if err != nil {
		return nil, err
	}
	var join []string
	for i, p := range ports {
		join = append(join, fmt.Sprintf("%s:%d", nodeName(i), p.raft))
	}
	c := &Cluster{}
	for i, p := range ports {
		// Node 1 bootstraps alone and the others join it. With every node
		// expecting n, the simultaneous bootstrap formed no cluster in about
		// three starts of four here ("no known peers, aborting election");
		// the others' n cannot be reached by their notifications alone, so
		// none of them founds a second cluster before it joins.
		expect := n
		if i == 0 {
			expect = 1
		}
		env := map[string]string{
			"CLUSTER_HOSTNAME":      nodeName(i),
			"CLUSTER_IN_LOCALHOST":  "true",
			"RAFT_JOIN":             strings.Join(join, ","),
			"RAFT_BOOTSTRAP_EXPECT": strconv.Itoa(expect),
		}
		if i > 0 {
			env["CLUSTER_JOIN"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0].gossip))
		}
		o := opts
		if opts.DataDir != "" {
			o.DataDir = fmt.Sprintf("%s/%s", opts.DataDir, nodeName(i))
		}
		s, err := newNode(o, bin, p, env)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	if err := c.Nodes[0].launch(ctx, log); err != nil {
		c.Stop()
		return nil, err
	}
	for _, s := range c.Nodes[1:] {
		if err := s.spawn(log); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, s := range c.Nodes[1:] {
		if err := s.waitReady(ctx, s.timeout); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitHealthy(ctx, n, c.Nodes[0].timeout); err != nil {
		c.Stop()
		return nil, err
	}
	log.Info("weaviate cluster ready", "nodes", n, "urls", c.URLs())
	return c, nil
}

func nodeName(i int) string { return "node" + strconv.Itoa(i+1) }

// URLs are the nodes' REST URLs.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.URL()
	}
	return out
}

// WaitHealthy waits until some node reports want nodes HEALTHY (through
// /v1/nodes, which asks every node), within timeout.
func (c *Cluster) WaitHealthy(ctx context.Context, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	last := errors.New("no node answered")
	for {
		for _, s := range c.Nodes {
			healthy, err := healthyNodes(ctx, client, s.URL())
			if err != nil {
				last = err
				continue
			}
			if healthy >= want {
				return nil
			}
			last = fmt.Errorf("%s sees %d healthy nodes", s.URL(), healthy)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("weaviate cluster: %d healthy nodes not reached within %s: %v", want, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func healthyNodes(ctx context.Context, client *http.Client, url string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/nodes", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Nodes []struct{ Name, Status string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s/v1/nodes: %w", url, err)
	}
	n := 0
	for _, node := range body.Nodes {
		if node.Status == "HEALTHY" {
			n++
		}
	}
	return n, nil
}

// Stop stops every node and removes the data directories it created.
func (c *Cluster) Stop() error {
	var errs []error
	for _, s := range c.Nodes {
		if err := s.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// clusterPorts picks free ports for n nodes. A node's data port must be
// its gossip port + 1 and its Raft RPC port its Raft port + 1: that is how
// the others reach them.
func clusterPorts(n int) ([]nodePorts, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	listen := func(port int) (int, error) {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			return 0, err
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	pair := func() (int, error) {
		for try := 0; try < 100; try++ {
			p, err := listen(0)
			if err != nil {
				return 0, err
			}
			if p < 65535 {
				if _, err := listen(p + 1); err == nil {
					return p, nil
				}
			}
		}
		return 0, errors.New("no two consecutive free ports after 100 tries")
	}
	out := make([]nodePorts, n)
	for i := range out {
		var p nodePorts
		var err error
		for _, dst := range []*int{&p.http, &p.grpc, &p.pprof} {
			if *dst, err = listen(0); err != nil {
				return nil, fmt.Errorf("find a free port: %w", err)
			}
		}
		if p.gossip, err = pair(); err != nil {
			return nil, err
		}
		if p.raft, err = pair(); err != nil {
			return nil, err
		}
		p.data, p.raftRPC = p.gossip+1, p.raft+1
		out[i] = p
	}
	return out, nil
}
