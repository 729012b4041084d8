package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a redis-server in Sentinel mode, started by StartSentinel,
// watching one master group.
type Sentinel struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// MasterName is the group it watches.
	MasterName string

	proc *Process
}

// StartSentinel starts one Sentinel watching the master at masterAddr as
// group name, with a quorum of one and short timers (the master is judged
// down after down-after of silence), and returns once it knows the master
// and replicas replicas of it. It is stopped when the test ends.
func StartSentinel(t testing.TB, name, masterAddr string, replicas int, downAfter time.Duration) *Sentinel {
	t.Helper()
	bin := NeedBinary(t, "redis-server")
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatalf("StartSentinel: master %q: %v", masterAddr, err)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "sentinel.log")
	LogOnFailure(t, logPath)
	s := &Sentinel{MasterName: name}
	var sport int
	s.proc, sport = StartOnFreePort(t, func(p int) (*Process, error) {
		// Sentinel rewrites its configuration file: one per attempt.
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(p)+".conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s %s %s 1
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 3000
sentinel parallel-syncs %s 1
`, p, dir, name, host, port, name, downAfter.Milliseconds(), name, name)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return nil, err
		}
		proc, err := StartProcess(logPath, bin, conf, "--sentinel", "--daemonize", "no")
		if err != nil {
			return nil, err
		}
		if err := proc.WaitReady(func() error { return ping(loopback(p)) }); err != nil {
			proc.Kill()
			return nil, LaunchError(logPath, err)
		}
		return proc, nil
	})
	s.Addr = loopback(sport)
	t.Cleanup(func() { s.proc.Terminate(10 * time.Second) })

	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		got, err := c.Replicas(ctx, name).Result()
		if err == nil && len(got) >= replicas {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sentinel on %s: %d of %d replicas of %s known (%v)\n%s", s.Addr, len(got), replicas, name, err, TailFile(logPath, 4096))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Master is the address the Sentinel gives for its group's master now.
func (s *Sentinel) Master(ctx context.Context) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel answered %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitReplicas waits until n replicas of the master at masterAddr are
// online and acknowledge a write made for the purpose (WAIT answers n):
// from then on they receive every write.
func WaitReplicas(t testing.TB, masterAddr string, n int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: masterAddr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := 0, c.Incr(context.Background(), "redistest:replicated").Err()
		if err == nil {
			got, err = c.Do(context.Background(), "wait", n, 500).Int()
		}
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			info, _ := c.Info(context.Background(), "replication").Result()
			t.Fatalf("master %s: %d of %d replicas acknowledge (%v):\n%s", masterAddr, got, n, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
