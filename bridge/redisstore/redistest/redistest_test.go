package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartSetGet(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q, want loopback", s.Addr)
	}
	ctx := context.Background()
	c := Client(t, s.Addr)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	// Standalone, as the contract says for one address.
	if _, ok := c.(*redis.Client); !ok {
		t.Errorf("Client(one addr) is %T, want *redis.Client", c)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "redis.log")); err != nil {
		t.Errorf("log file: %v", err)
	}
	// No snapshot options unless AOF: nothing written on shutdown.
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil || save["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want empty", save, err)
	}
}

func TestKillRestart(t *testing.T) {
	tests := []struct {
		name     string
		opts     []Option
		wantKept bool
	}{
		{name: "aof keeps acknowledged writes", opts: []Option{WithAOF()}, wantKept: true},
		// Shows the test above can fail: without AOF a crash loses data.
		{name: "no persistence loses them", opts: nil, wantKept: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := Start(t, tt.opts...)
			c := Client(t, s.Addr)
			for i := 0; i < 50; i++ {
				if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
					t.Fatalf("SET: %v", err)
				}
			}
			s.Kill()
			if err := ping(s.Addr); err == nil {
				t.Fatal("server still answers after Kill")
			}
			s.Restart(t)
			n, err := c.DBSize(ctx).Result()
			if err != nil {
				t.Fatalf("DBSIZE after restart: %v", err)
			}
			if kept := n == 50; kept != tt.wantKept {
				t.Fatalf("after kill+restart DBSIZE = %d; want kept=%v", n, tt.wantKept)
			}
		})
	}
}

func TestStopFreesPortAndIsIdempotent(t *testing.T) {
	s := Start(t)
	s.Stop()
	s.Stop()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatalf("port still taken after Stop: %v", err)
	}
	ln.Close()
	// Restart after Stop works too.
	s.Restart(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
}

func TestLaunchReportsTakenPort(t *testing.T) {
	NeedBinary(t, "redis-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := Start(t)
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = s.launch(port)
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("launch on a taken port: %v, want ErrAddrInUse", err)
	}
}

func TestStartOnFreePortRetriesBindErrors(t *testing.T) {
	tests := []struct {
		name      string
		failures  []error
		wantCalls int
		wantFail  bool
	}{
		{name: "first try", failures: nil, wantCalls: 1},
		{name: "two taken ports", failures: []error{ErrAddrInUse, ErrAddrInUse}, wantCalls: 3},
		{name: "three taken ports", failures: []error{ErrAddrInUse, ErrAddrInUse, ErrAddrInUse}, wantCalls: 3, wantFail: true},
		{name: "other error is not retried", failures: []error{errors.New("boom")}, wantCalls: 1, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			ft := &fakeTB{TB: t}
			ft.run(func() {
				StartOnFreePort(ft, func(port int) (*Process, error) {
					calls++
					if port <= 0 {
						t.Errorf("port %d", port)
					}
					if calls <= len(tt.failures) {
						return nil, tt.failures[calls-1]
					}
					return &Process{}, nil
				})
			})
			if calls != tt.wantCalls || ft.fatal != tt.wantFail {
				t.Fatalf("calls=%d fatal=%v; want %d, %v", calls, ft.fatal, tt.wantCalls, tt.wantFail)
			}
		})
	}
}

func TestNeedBinary(t *testing.T) {
	tests := []struct {
		name               string
		binary, env        string
		wantSkip, wantFail bool
	}{
		{name: "present", binary: "sh", env: "1"},
		{name: "missing skips", binary: "no-such-binary-supportbridge", env: ""},
		{name: "missing fails when required", binary: "no-such-binary-supportbridge", env: "1", wantFail: true},
		{name: "only 1 means required", binary: "no-such-binary-supportbridge", env: "true", wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tt.env)
			if tt.binary == "no-such-binary-supportbridge" && !tt.wantFail {
				tt.wantSkip = true
			}
			ft := &fakeTB{TB: t}
			var path string
			ft.run(func() { path = NeedBinary(ft, tt.binary) })
			if ft.skip != tt.wantSkip || ft.fatal != tt.wantFail {
				t.Fatalf("skip=%v fatal=%v; want %v, %v", ft.skip, ft.fatal, tt.wantSkip, tt.wantFail)
			}
			if !tt.wantSkip && !tt.wantFail && path == "" {
				t.Fatal("no path for a present binary")
			}
		})
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs)
	}
	ctx := context.Background()
	rc := c.Client(t)
	if _, ok := rc.(*redis.ClusterClient); !ok {
		t.Fatalf("Cluster.Client is %T, want *redis.ClusterClient", rc)
	}
	const n = 60
	for i := 0; i < n; i++ {
		if err := rc.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET through cluster: %v", err)
		}
	}
	for i := 0; i < n; i++ {
		got, err := rc.Get(ctx, fmt.Sprintf("key:%d", i)).Int()
		if err != nil || got != i {
			t.Fatalf("GET key:%d = %d, %v", i, got, err)
		}
	}
	// The keys really are spread over the nodes: it is a cluster, not one
	// server answering for all.
	holding := 0
	for _, addr := range c.Addrs {
		size, err := Client(t, addr).DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("DBSIZE %s: %v", addr, err)
		}
		if size > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Fatalf("keys on %d node(s), want them spread", holding)
	}
	// Keys of one hash tag stay on one slot, so multi-key commands work.
	if err := rc.MSet(ctx, "{t:1}:a", 1, "{t:1}:b", 2).Err(); err != nil {
		t.Fatalf("MSET same hash tag: %v", err)
	}

	// A node that crashes and comes back rejoins with its slots.
	c.Nodes[1].Kill()
	c.Nodes[1].Restart(t)
	c.WaitOK(t)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key:%d", i)
		if err := rc.Set(ctx, key, -i, 0).Err(); err != nil {
			t.Fatalf("SET %s after a node restart: %v", key, err)
		}
	}
}

func TestStartClusterNeedsThreeMasters(t *testing.T) {
	ft := &fakeTB{TB: t}
	ft.run(func() { StartCluster(ft, 2) })
	if !ft.fatal {
		t.Fatal("StartCluster(2) did not fail")
	}
}

func TestMiniredis(t *testing.T) {
	m := Miniredis(t)
	ctx := context.Background()
	c := Client(t, m.Addr())
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got := m.Keys(); len(got) != 1 || got[0] != "k" {
		t.Fatalf("miniredis keys = %v", got)
	}
}

// fakeTB records Skip and Fatal instead of ending the real test. Both stop
// the calling goroutine, as the testing package does, so run calls f on
// its own goroutine.
type fakeTB struct {
	testing.TB
	skip, fatal bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skip = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any) { f.fatal = true; runtime.Goexit() }
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	<-done
}
func (f *fakeTB) Cleanup(fn func())            { f.TB.Cleanup(fn) }
func (f *fakeTB) Logf(format string, a ...any) { f.TB.Logf(format, a...) }
