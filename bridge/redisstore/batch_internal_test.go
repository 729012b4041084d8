package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore/redistest"
)

// Callers that wait while a pipeline is out share the next one, and each
// reads its own results and errors.
func TestBatcherSharesPipelines(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis-server"} {
		t.Run(backend, func(t *testing.T) {
			var rdb redis.UniversalClient
			if backend == "miniredis" {
				rdb = redistest.Client(t, redistest.Miniredis(t).Addr())
			} else {
				rdb = redistest.Client(t, redistest.Start(t).Addr)
			}
			ctx := context.Background()
			if err := rdb.Set(ctx, "k-even", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			b := newBatcher(rdb, 1, 64)
			// The first caller's pipeline is held until ten more wait.
			release, held := make(chan struct{}), make(chan struct{})
			firstDone := make(chan error, 1)
			go func() {
				firstDone <- b.do(ctx, func(pipe redis.Pipeliner) {
					close(held)
					<-release
					pipe.Ping(ctx)
				})
			}()
			<-held
			const n = 10
			var wg sync.WaitGroup
			results := make([]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					var get *redis.StringCmd
					var incr *redis.IntCmd
					if err := b.do(ctx, func(pipe redis.Pipeliner) {
						key := "k-odd" // missing: its redis.Nil is this caller's alone
						if i%2 == 0 {
							key = "k-even"
						}
						get = pipe.Get(ctx, key)
						incr = pipe.Incr(ctx, fmt.Sprintf("n-%d", i))
					}); err != nil {
						errs[i] = err
						return
					}
					results[i], errs[i] = get.Result()
					if v, err := incr.Result(); err != nil || v != 1 {
						errs[i] = fmt.Errorf("incr: %d, %v", v, err)
					}
				})
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				b.mu.Lock()
				queued := len(b.queue)
				b.mu.Unlock()
				if queued == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d callers queued, want %d", queued, n)
				}
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			if err := <-firstDone; err != nil {
				t.Fatal(err)
			}
			for i := range n {
				switch {
				case i%2 == 0 && (errs[i] != nil || results[i] != "v"):
					t.Errorf("caller %d: %q, %v", i, results[i], errs[i])
				case i%2 == 1 && !errors.Is(errs[i], redis.Nil):
					t.Errorf("caller %d: want redis.Nil, got %q, %v", i, results[i], errs[i])
				}
			}
			if calls, pipes := b.calls.Load(), b.pipelines.Load(); calls != n+1 || pipes != 2 {
				t.Fatalf("%d calls in %d pipelines, want %d in 2", calls, pipes, n+1)
			}
			// Idle, it leaves no flusher behind.
			b.mu.Lock()
			running := b.running
			b.mu.Unlock()
			if running != 0 {
				t.Fatalf("%d flushers still running", running)
			}
		})
	}
}

// A caller whose context ends stops waiting; the batcher goes on.
func TestBatcherCallerGivesUp(t *testing.T) {
	rdb := redistest.Client(t, redistest.Miniredis(t).Addr())
	b := newBatcher(rdb, 1, 64)
	release, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = b.do(context.Background(), func(pipe redis.Pipeliner) {
			close(held)
			<-release
			pipe.Ping(context.Background())
		})
	}()
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.do(ctx, func(pipe redis.Pipeliner) { pipe.Ping(ctx) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	close(release)
	var ping *redis.StatusCmd
	if err := b.do(context.Background(), func(pipe redis.Pipeliner) { ping = pipe.Ping(context.Background()) }); err != nil || ping.Err() != nil {
		t.Fatalf("after a caller gave up: %v, %v", err, ping.Err())
	}
}

// A script Redis lost (a restart, SCRIPT FLUSH) is loaded again: the
// pipelined EVALSHA's NOSCRIPT falls back to a direct run.
func TestCommitAfterScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redistest.Client(t, srv.Addr)
	s := New(rdb, Options{Prefix: "flush:"})
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoadTicket(ctx, "1", "e"); err == nil {
		t.Fatal("a missing ticket loaded")
	}
	// Any commit will do: a creation of ticket 1 at version 1.
	dup, _, err := s.Commit(ctx, newTicketCommit("1"))
	if err != nil || dup {
		t.Fatalf("commit after SCRIPT FLUSH: dup %v, %v", dup, err)
	}
}

func newTicketCommit(id string) bridge.Commit {
	return bridge.Commit{EventID: "created-" + id, Ticket: bridge.Ticket{ID: id, Version: 1, Status: bridge.StatusNew}}
}

// A caller whose context has already ended sends nothing.
func TestBatcherEndedContextSendsNothing(t *testing.T) {
	rdb := redistest.Client(t, redistest.Miniredis(t).Addr())
	b := newBatcher(rdb, 1, 64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.do(ctx, func(pipe redis.Pipeliner) { pipe.Set(context.Background(), "never", "1", 0) }); !errors.Is(err, context.Canceled) {
		t.Fatalf("want canceled, got %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, err := rdb.Exists(context.Background(), "never").Result(); err != nil || n != 0 {
		t.Fatalf("the command ran: %d, %v", n, err)
	}
	if b.calls.Load() != 0 {
		t.Fatalf("%d calls sent", b.calls.Load())
	}
}
