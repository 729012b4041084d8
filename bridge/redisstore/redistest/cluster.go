package redistest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas, started by
// StartCluster.
type Cluster struct {
	// Addrs are the nodes' addresses, "127.0.0.1:<port>".
	Addrs []string
	// Nodes are the servers, in the order of Addrs; a node can be killed
	// and restarted (it keeps its ports and nodes.conf, and rejoins).
	Nodes []*Server
}

// StartCluster starts masters (at least 3, as redis-cli requires) redis-server
// nodes with cluster mode on, joins them with `redis-cli --cluster create
// … --cluster-replicas 0`, and returns once every node reports
// cluster_state:ok and knows all the others. The nodes are stopped when the
// test ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("StartCluster: redis-cli needs at least 3 masters, got %d", masters)
	}
	cli := NeedBinary(t, "redis-cli")
	root := t.TempDir()
	c := &Cluster{}
	for i := 0; i < masters; i++ {
		dir := filepath.Join(root, "node"+strconv.Itoa(i))
		s := startIn(t, mkdir(t, dir), func(cfg *config) { cfg.cluster = true })
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	out, err := c.create(ctx, cli)
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s\n%s", err, out, c.views())
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("cluster of %d: %v\nredis-cli said:\n%s\n%s", masters, err, out, c.views())
	}
	return c
}

// clusterTimeout bounds forming a cluster: usually 2s, far more on a
// loaded machine, where gossip handshakes time out and start over.
const clusterTimeout = 90 * time.Second

// create runs redis-cli --cluster create and returns its output. Once
// redis-cli has assigned the slots and waits for the nodes to find each
// other, every node is also told to meet every other one: redis-cli only
// introduces each node to the first, and relies on gossip for the rest,
// which can take long on a loaded machine.
func (c *Cluster) create(ctx context.Context, cli string) ([]byte, error) {
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var out, stderr bytes.Buffer // stderr is filled by another goroutine
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	met := false
	for sc.Scan() {
		out.Write(sc.Bytes())
		out.WriteByte('\n')
		if !met && strings.Contains(sc.Text(), "Waiting for the cluster to join") {
			met = true
			if err := c.meetAll(ctx); err != nil {
				fmt.Fprintf(&out, "(redistest: extra CLUSTER MEET failed: %v)\n", err)
			}
		}
	}
	err = cmd.Wait()
	out.Write(stderr.Bytes())
	return out.Bytes(), err
}

// meetAll sends CLUSTER MEET for every pair of nodes, with the bus port.
func (c *Cluster) meetAll(ctx context.Context) error {
	for _, from := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: from.Addr, MaxRetries: -1})
		for _, to := range c.Nodes {
			if to == from {
				continue
			}
			err := rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", to.Port, to.BusPort).Err()
			if err != nil {
				rc.Close()
				return fmt.Errorf("%s meets %s: %w", from.Addr, to.Addr, err)
			}
		}
		rc.Close()
	}
	return nil
}

// views returns what every node thinks of the cluster, for failure reports.
func (c *Cluster) views() string {
	var b strings.Builder
	for _, addr := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		nodes, err := rc.ClusterNodes(ctx).Result()
		cancel()
		rc.Close()
		if err != nil {
			nodes = err.Error()
		}
		fmt.Fprintf(&b, "CLUSTER NODES on %s:\n%s\n", addr, nodes)
	}
	return b.String()
}

// Client returns a go-redis cluster client over all the nodes, closed when
// the test ends.
func (c *Cluster) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.Addrs, IsClusterMode: true})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// WaitOK waits until every node reports cluster_state:ok and knows all the
// nodes, e.g. after a node was restarted.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("cluster: %v", err)
	}
}

func (c *Cluster) waitOK(ctx context.Context) error {
	for _, addr := range c.Addrs {
		if err := waitNodeOK(ctx, addr, len(c.Addrs)); err != nil {
			return fmt.Errorf("node %s: %w", addr, err)
		}
	}
	return nil
}

func waitNodeOK(ctx context.Context, addr string, nodes int) error {
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rc.Close()
	want := "cluster_known_nodes:" + strconv.Itoa(nodes)
	var last string
	for {
		info, err := rc.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = strings.TrimSpace(info)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ok: %s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
