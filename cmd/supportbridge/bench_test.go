package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/webhook"
)

// redisBenchmarkSET runs redis-benchmark's SET test against addr with the
// same number of clients, and returns its requests per second: the
// baseline the ingest rate is compared with.
func redisBenchmarkSET(b *testing.B, host, port string, clients int) float64 {
	bin := redistest.NeedBinary(b, "redis-benchmark")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", "200000",
		"-t", "set", "-q").CombinedOutput()
	if err != nil {
		b.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`SET: ([0-9.]+) requests per second`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("redis-benchmark output not understood:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return rps
}

// BenchmarkWebhookIngest measures signed webhooks per second and their p99
// latency through the real HTTP handler against a real redis-server, with
// the same concurrency as the redis-benchmark baseline run right after.
// Reports: webhooks/s, p50-ms, p99-ms, redis-SET/s and ratio.
func BenchmarkWebhookIngest(b *testing.B) {
	benchIngest(b, redistest.Start(b), nil)
}

// BenchmarkWebhookIngestReplicated is BenchmarkWebhookIngest with a replica
// and redis.wait_replicas 1: what waiting for the replica costs. Its
// baseline, redis-benchmark, runs against the same master, replica
// attached.
func BenchmarkWebhookIngestReplicated(b *testing.B) {
	srv := redistest.Start(b)
	redistest.Start(b, redistest.WithReplicaOf(srv.Addr))
	redistest.WaitReplicas(b, srv.Addr, 1)
	benchIngest(b, srv, func(c *config.Config) { c.Redis.WaitReplicas = 1 })
}

// benchIngest is the ingest benchmark on srv, its configuration changed by
// configure when not nil.
func benchIngest(b *testing.B, srv *redistest.Server, configure func(*config.Config)) {
	const clients = 32
	cfg := benchConfig(srv.Addr, "bench:")
	if configure != nil {
		configure(&cfg)
	}
	d := quietDaemon(b, &cfg)
	ts := httptest.NewServer(d.handler)
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	key, _ := webhook.ParseSecret(testSecret)

	post := func(id string, body []byte) (time.Duration, error) {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/webhooks/ent", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		webhook.SignHeaders(req.Header, key, id, time.Now(), body)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 202 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}
	// Tickets to comment on, made before the clock runs.
	const tickets = 500
	run := time.Now().UnixNano()
	for i := range tickets {
		if _, err := post(fmt.Sprintf("pre-%d-%d", run, i), []byte(ticketCreated(fmt.Sprintf("b%d-%d", run, i), "s1"))); err != nil {
			b.Fatal(err)
		}
	}
	// Bodies are built before the clock runs: the load generator shares the
	// two cores with the daemon and Redis, and should cost as little as it can.
	bodies := make([][]byte, b.N)
	for i := range b.N {
		if i%4 == 0 {
			bodies[i] = []byte(ticketCreated(fmt.Sprintf("n%d-%d", run, i), "s1"))
		} else {
			bodies[i] = []byte(comment(fmt.Sprintf("b%d-%d", run, i%tickets), fmt.Sprintf("c%d-%d", run, i), "u-ref1"))
		}
	}
	lat := make([]time.Duration, b.N)
	statsBefore := commandStats(context.Background(), b, d)
	stopProfile := windowProfile(b, "ingest")
	b.ResetTimer()
	elapsed, failed := fanOut(b.N, clients, func(i int) error {
		d, err := post(fmt.Sprintf("w-%d-%d", run, i), bodies[i])
		lat[i] = d
		return err
	})
	b.StopTimer()
	stopProfile()
	if failed > 0 {
		b.Fatalf("%d webhooks failed", failed)
	}
	logCommandBudget(b, "webhook", statsBefore, commandStats(context.Background(), b, d), b.N)
	slices.Sort(lat)
	rps := float64(b.N) / elapsed.Seconds()
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(rps, "webhooks/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if b.N >= 1000 {
		host, port := srv.Addr[:len(srv.Addr)-len(strconv.Itoa(srv.Port))-1], strconv.Itoa(srv.Port)
		base := redisBenchmarkSET(b, host, port, clients)
		b.ReportMetric(base, "redis-SET/s")
		b.ReportMetric(rps/base, "ratio")
	}
}

// fanOut calls fn(i) for every i in [0, n) from workers goroutines and
// returns the time it took and how many calls failed: the load generator
// of the benchmarks.
func fanOut(n, workers int, fn func(i int) error) (time.Duration, int64) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), failed.Load()
}

// signedRequest is a webhook request signed with testSecret, for load
// generators (no testing.TB: it may run on any goroutine).
func signedRequest(base, id string, body []byte) *http.Request {
	key, _ := webhook.ParseSecret(testSecret)
	req, _ := http.NewRequest("POST", base+"/v1/webhooks/ent", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	webhook.SignHeaders(req.Header, key, id, time.Now(), body)
	return req
}

// quietDaemon is a daemon on cfg that logs nothing, closed when the test
// ends (after its deferred calls). It has stored the configured
// structures, as serve does when it starts.
func quietDaemon(tb testing.TB, cfg *config.Config) *daemon {
	tb.Helper()
	d, err := newDaemon(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.close)
	if len(cfg.Structures) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d.seedStructures(ctx)
		for _, st := range cfg.Structures {
			if _, err := d.store.Structure(ctx, st.ID); err != nil {
				tb.Fatalf("configured structure %s not stored: %v", st.ID, err)
			}
		}
	}
	return d
}

// benchConfig is the defaults with the test's secrets, a real Redis and
// writeConfig's school s1 (u-ref1 its referent): the daemon of the
// in-process benchmarks.
func benchConfig(redisAddr, prefix string) config.Config {
	cfg := config.Default()
	cfg.Redis.Addrs = []string{redisAddr}
	cfg.Redis.KeyPrefix = prefix
	cfg.ENT.WebhookSecrets = []config.Secret{testSecret}
	cfg.ENT.APITokens = []config.Secret{testToken}
	cfg.Structures = []config.Structure{{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: true,
		Referents: []config.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: "never"}}}}
	return cfg
}

// commandStats returns how many times the Redis server has run each
// command (INFO commandstats): the commands a script runs count under their
// own names, as they do in total_commands_processed.
func commandStats(ctx context.Context, b *testing.B, d *daemon) map[string]int64 {
	info, err := d.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			b.Fatalf("commandstats %q: %v", line, err)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// logCommandBudget logs the Redis commands run between two commandStats,
// per unit of work (a mail, a reply, a webhook), most first: where a
// benchmark's Redis commands go.
func logCommandBudget(b *testing.B, unit string, before, after map[string]int64, n int) {
	type row struct {
		name  string
		calls int64
	}
	var rows []row
	var total int64
	for name, calls := range after {
		if d := calls - before[name]; d > 0 {
			rows = append(rows, row{name, d})
			total += d
		}
	}
	slices.SortFunc(rows, func(a, c row) int { return cmp.Compare(c.calls, a.calls) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "Redis commands per %s: %.2f =", unit, float64(total)/float64(n))
	for _, r := range rows {
		if per := float64(r.calls) / float64(n); per >= 0.05 {
			fmt.Fprintf(&sb, " %s %.2f", r.name, per)
		}
	}
	b.Log(sb.String())
}

// windowProfile profiles this process's CPU over a benchmark's timed
// window only, when SUPPORTBRIDGE_BENCH_CPUPROFILE names a directory: the
// profile goes to <dir>/<name>.prof (go test's own -cpuprofile would also
// take the setup before the clock and the baselines after it; do not set
// both). The returned stop ends it; a no-op otherwise.
func windowProfile(b *testing.B, name string) (stop func()) {
	dir := os.Getenv("SUPPORTBRIDGE_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}
