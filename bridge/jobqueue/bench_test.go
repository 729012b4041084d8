package jobqueue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore/redistest"
)

// openQueue opens the queue as the daemon sets it up (its defaults: poll
// interval 200 ms, 7 days of retention), with 8 job slots.
func openQueue(rdb redis.UniversalClient) *jobqueue.Queue {
	return jobqueue.New(rdb, jobqueue.Options{Queue: "bench", Concurrency: 8})
}

// serverStats is what INFO ALL says of the work Redis did.
type serverStats struct {
	commands int64            // total_commands_processed
	cpu      float64          // used_cpu_sys + used_cpu_user, seconds
	calls    map[string]int64 // commandstats: calls by command
}

func statsOf(b *testing.B, rdb redis.UniversalClient) serverStats {
	s, err := readStats(rdb)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// readStats reads INFO ALL; miniredis does not answer it.
func readStats(rdb redis.UniversalClient) (serverStats, error) {
	info, err := rdb.Info(context.Background(), "all").Result()
	if err != nil {
		return serverStats{}, err
	}
	s := serverStats{calls: map[string]int64{}}
	for line := range strings.SplitSeq(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "total_commands_processed":
			s.commands, _ = strconv.ParseInt(v, 10, 64)
		case k == "used_cpu_sys" || k == "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += f
		case strings.HasPrefix(k, "cmdstat_"):
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			s.calls[strings.TrimPrefix(k, "cmdstat_")], _ = strconv.ParseInt(calls, 10, 64)
		}
	}
	return s, nil
}

// report adds the Redis work per job between two INFO ALL (less the first
// INFO itself) and logs the commands per job.
func report(b *testing.B, before, after serverStats, jobs int) {
	n := float64(jobs)
	b.ReportMetric(float64(after.commands-before.commands-1)/n, "cmds/job")
	b.ReportMetric((after.cpu-before.cpu)*1e6/n, "redis-µs/job")
	type row struct {
		cmd string
		per float64
	}
	var rows []row
	for cmd, c := range after.calls {
		d := c - before.calls[cmd]
		if cmd == "info" {
			d--
		}
		if d > 0 {
			rows = append(rows, row{cmd, float64(d) / n})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].per > rows[j].per })
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, " %s=%.2f", r.cmd, r.per)
	}
	b.Logf("%d jobs, commands per job:%s", jobs, sb.String())
}

func benchServer(b *testing.B) redis.UniversalClient {
	rdb := redistest.Client(b, redistest.Start(b).Addr)
	return rdb
}

// runQueue works q with handle until the returned stop is called.
func runQueue(q *jobqueue.Queue, handle jobqueue.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, handle) }()
	return func() { cancel(); <-done; q.Close() }
}

var runSeq atomic.Int64

// BenchmarkQueue: b.N jobs dispatched one per call by 4 producers while 8
// job slots run a handler that does nothing, on a redis-server. jobs/s from the first dispatch to the last handler's
// return; Redis commands and CPU per job from INFO (the queue's background
// work included), with the commands per job logged by command.
func BenchmarkQueue(b *testing.B) {
	rdb := benchServer(b)
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	prefix := fmt.Sprintf("r%d-", runSeq.Add(1))
	var handled atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	q := openQueue(rdb)
	stop := runQueue(q, func(context.Context, bridge.Effect) error {
		if handled.Add(1) == n {
			close(all)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // the workers are up
	before := statsOf(b, rdb)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	const producers = 4
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < b.N; i += producers {
				e := bridge.Effect{ID: prefix + strconv.Itoa(i), Kind: bridge.EffectCallback, TicketID: strconv.Itoa(i)}
				if err := q.Dispatch(ctx, []bridge.Effect{e}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d jobs handled", handled.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	time.Sleep(300 * time.Millisecond) // the last completions land
	after := statsOf(b, rdb)
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	report(b, before, after, b.N)
}

// BenchmarkPickup: the time from Dispatch to the handler's start with an
// idle queue (b.N samples, each after an idle pause of 50 to 150 ms, as
// a callback queued by a mail between two others), on a redis-server.
// redis-cmds/s is the Redis commands per second
// over the run, mostly idle: the cost of waiting for jobs.
func BenchmarkPickup(b *testing.B) {
	rdb := benchServer(b)
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	prefix := fmt.Sprintf("p%d-", runSeq.Add(1))
	started := make(chan time.Time, 1)
	q := openQueue(rdb)
	stop := runQueue(q, func(context.Context, bridge.Effect) error {
		started <- time.Now()
		return nil
	})
	defer stop()
	time.Sleep(300 * time.Millisecond)
	lat := make([]time.Duration, 0, b.N)
	before := statsOf(b, rdb)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(50*time.Millisecond + rand.N(100*time.Millisecond))
		at := time.Now()
		if err := q.Dispatch(ctx, []bridge.Effect{{ID: prefix + strconv.Itoa(i), Kind: bridge.EffectCallback}}); err != nil {
			b.Fatal(err)
		}
		select {
		case s := <-started:
			lat = append(lat, s.Sub(at))
		case <-time.After(10 * time.Second):
			b.Fatal("not picked up")
		}
	}
	b.StopTimer()
	after := statsOf(b, rdb)
	b.ReportMetric(float64(after.commands-before.commands-1)/time.Since(start).Seconds(), "redis-cmds/s")
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
}
