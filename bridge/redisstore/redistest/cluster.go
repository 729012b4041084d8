package redistest

import (
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

	ctx, cancel := waitCtx()
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("cluster of %d: %v\nredis-cli said:\n%s", masters, err, out)
	}
	return c
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
	ctx, cancel := waitCtx()
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
