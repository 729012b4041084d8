// Package redistest starts real servers for tests: redis-server (alone or as
// a Cluster), miniredis, and the process helpers that mail/mailtest shares
// (free ports, process groups, readiness, logs shown on failure).
//
// A test that needs a real binary calls NeedBinary (through Start and the
// like): it is skipped when the binary is missing, unless
// SUPPORTBRIDGE_REQUIRE_SERVERS=1, which CI sets, makes that a failure.
// Every server listens on 127.0.0.1 only, on a port found free, lives in its
// own temporary directory and is stopped by PID when its test ends.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a redis-server started by Start.
type Server struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// Port is the TCP port of Addr.
	Port int
	// BusPort is the Cluster bus port of a StartCluster node, else 0.
	BusPort int
	// Dir is the server's working directory (AOF, nodes.conf) and holds
	// its log, redis.log.
	Dir string

	bin     string
	logPath string
	extra   []string // options on top of the common ones
	cluster bool
	proc    *Process
}

// Option changes how Start configures redis-server.
type Option func(*config)

type config struct {
	aof       bool
	cluster   bool
	replicaOf string
}

// WithAOF turns on the append-only file with an fsync after every write, so
// that a Kill then Restart finds every acknowledged write again.
func WithAOF() Option {
	return func(c *config) { c.aof = true }
}

// WithReplicaOf makes the server a replica of the master at addr. Its
// DEBUG command is open to local clients, so that a test can stall it
// (DEBUG SLEEP) as a slow or cut-off replica.
func WithReplicaOf(addr string) Option {
	return func(c *config) { c.replicaOf = addr }
}

// Start runs redis-server on 127.0.0.1 and a free port, in its own
// t.TempDir(), and returns once it answers PING. It is stopped when the test
// ends; its log is shown if the test failed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return startIn(t, t.TempDir(), opts...)
}

func startIn(t testing.TB, dir string, opts ...Option) *Server {
	t.Helper()
	bin := NeedBinary(t, "redis-server")
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{Dir: dir, bin: bin, logPath: filepath.Join(dir, "redis.log")}
	if cfg.aof {
		s.extra = append(s.extra, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		// No snapshots: nothing to write to disk, nothing reloaded.
		s.extra = append(s.extra, "--save", "", "--appendonly", "no")
	}
	// A replica's first sync starts at once rather than after 5 s.
	s.extra = append(s.extra, "--repl-diskless-sync-delay", "0")
	if cfg.replicaOf != "" {
		host, port, err := net.SplitHostPort(cfg.replicaOf)
		if err != nil {
			t.Fatalf("WithReplicaOf(%q): %v", cfg.replicaOf, err)
		}
		s.extra = append(s.extra, "--replicaof", host, port, "--enable-debug-command", "local")
	}
	s.cluster = cfg.cluster
	if cfg.cluster {
		s.extra = append(s.extra,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in Dir
			"--cluster-node-timeout", "5000")
	}
	LogOnFailure(t, s.logPath)

	s.proc, s.Port = StartOnFreePort(t, func(port int) (*Process, error) {
		if s.cluster {
			// The bus port defaults to port+10000, which may be taken
			// or beyond 65535: pick a free one too (redis 7 has
			// cluster-port). Fresh on every attempt, like port.
			s.BusPort = FreePort(t)
			if s.BusPort == port {
				return nil, fmt.Errorf("%w: bus port equals port %d", ErrAddrInUse, port)
			}
		}
		return s.launch(port)
	})
	s.Addr = loopback(s.Port)
	t.Cleanup(s.Stop)
	return s
}

// launch starts redis-server on port and waits until it answers PING.
func (s *Server) launch(port int) (*Process, error) {
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--daemonize", "no", // logs to stdout, which goes to redis.log
	}, s.extra...)
	if s.cluster {
		args = append(args, "--cluster-port", strconv.Itoa(s.BusPort))
	}
	p, err := StartProcess(s.logPath, s.bin, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(func() error { return ping(loopback(port)) }); err != nil {
		p.Kill()
		return nil, LaunchError(s.logPath, err)
	}
	return p, nil
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	s.proc.Kill()
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 10s) and waits.
// It is safe to call more than once.
func (s *Server) Stop() {
	s.proc.Terminate(10 * time.Second)
}

// Restart starts the server again on the same port and directory (with
// WithAOF, the data is reloaded; a Cluster node keeps its bus port and
// nodes.conf, so it rejoins) and waits until it answers PING. A server
// still running is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	// The port was ours a moment ago; a bind failure means it lingers or
	// someone took it, so retry briefly before giving up.
	for attempt := 0; attempt < 5; attempt++ {
		var p *Process
		if p, err = s.launch(s.Port); err == nil {
			s.proc = p
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart redis-server on %s: %v", s.Addr, err)
}

// ping sends an inline PING and expects +PONG. A server still loading its
// AOF answers -LOADING, which is not ready yet.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Miniredis starts an in-memory miniredis, closed when the test ends.
func Miniredis(t testing.TB) *miniredis.Miniredis {
	t.Helper()
	return miniredis.RunT(t)
}

// RestartMiniredis starts a closed miniredis again on its port, its data
// kept. miniredis's own Restart leaves the server's context cancelled by
// Close, and a blocking command (XREADGROUP BLOCK, BLPOP…) then returns
// without an answer, its client waiting until its read timeout: the
// context is renewed first, as a restarted Redis would serve them.
func RestartMiniredis(m *miniredis.Miniredis) error {
	m.Lock()
	m.Ctx, m.CtxCancel = context.WithCancel(context.Background())
	m.Unlock()
	return m.Restart()
}

// Client returns a go-redis universal client for one address (a standalone
// client), closed when the test ends.
func Client(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mkdir creates dir (and its parents) or fails the test.
func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	return dir
}
