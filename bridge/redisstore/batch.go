package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of callers that wait at the same time to Redis
// in one pipeline: one write and one read for all of them instead of a round
// trip each. On this kind of machine a round trip's system calls cost more
// than the commands themselves, and the daemon's workers (HTTP handlers,
// job slots, mailbox workers) call the store concurrently, so batches form
// by themselves under load; a lone caller is sent at once, without waiting.
//
// Each caller's commands stay together and in order in the pipeline, and
// each command keeps its own result and error: batching changes the
// number of round trips, not what any command does. Scripts stay atomic
// one by one; nothing is atomic across callers (no MULTI).
//
// No goroutine lives longer than the queue is non-empty: a flusher is
// started when work arrives and fewer than lanes are running, and ends
// when it finds the queue empty.
//
// With waitReplicas set, a pipeline of do callers ends with an increment of
// a fence key and WAIT: Redis answers once that many replicas hold every
// write the master made up to the fence (the replication stream is one,
// in order, so this covers the job queue's writes made on other
// connections before, and the writes a duplicate's answer relies on).
// The callers of a pipeline that timed out get ErrNotReplicated: their
// writes are on the master, they retry as after any error, and the retry
// is idempotent. Callers of read are not held by it.
type batcher struct {
	rdb   redis.UniversalClient
	lanes int // flushers in flight at the most (pipelines in parallel)
	max   int // callers per pipeline at the most

	waitReplicas    int
	waitTimeout     time.Duration
	fenceKey        string
	onNotReplicated func()

	mu      sync.Mutex
	queue   []*batchReq
	running int

	calls, pipelines atomic.Int64 // how well it batches
}

type batchReq struct {
	build func(redis.Pipeliner)
	write bool
	done  chan struct{}
	err   error // set before done is closed
}

// ErrNotReplicated is returned to a writer whose writes did not reach the
// configured number of replicas in time (they are on the master).
var ErrNotReplicated = errors.New("redis: the write did not reach enough replicas in time")

func newBatcher(rdb redis.UniversalClient, lanes, perPipeline int) *batcher {
	return &batcher{rdb: rdb, lanes: max(1, lanes), max: max(1, perPipeline)}
}

// do queues build, which adds the caller's commands to a pipeline, and
// returns once that pipeline has run (and, with waitReplicas, is held by
// the replicas): the caller then reads its commands' results. It returns
// ctx's error if ctx ends first; the commands may still run, as a command
// sent just before a cancellation may.
func (b *batcher) do(ctx context.Context, build func(redis.Pipeliner)) error {
	return b.enqueue(ctx, build, true)
}

// read is do for the callers that only show what is stored (the read
// API): they do not wait for the replicas.
func (b *batcher) read(ctx context.Context, build func(redis.Pipeliner)) error {
	return b.enqueue(ctx, build, false)
}

func (b *batcher) enqueue(ctx context.Context, build func(redis.Pipeliner), write bool) error {
	if err := ctx.Err(); err != nil {
		return err // nothing queued: the commands never run
	}
	r := &batchReq{build: build, write: write, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if b.running < b.lanes {
		b.running++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush runs the queue's callers in pipelines until the queue is empty.
func (b *batcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := make([]*batchReq, n)
		copy(batch, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		b.calls.Add(int64(n))
		b.pipelines.Add(1)

		pipe := b.rdb.Pipeline()
		writes := false
		for _, r := range batch {
			r.build(pipe)
			writes = writes || r.write
		}
		var wait *redis.Cmd
		if writes && b.waitReplicas > 0 {
			// Last in the pipeline, on its connection: WAIT covers
			// what that connection wrote last, which the fence makes
			// the master's latest write.
			pipe.Incr(context.Background(), b.fenceKey)
			// (WAIT 0 would block for ever: at least 1 ms.)
			wait = pipe.Do(context.Background(), "wait", b.waitReplicas, max(1, b.waitTimeout.Milliseconds()))
		}
		// Each command holds its own error (a redis.Nil, a script's error,
		// or the connection's for all): Exec's is only the first of them,
		// so the callers read their own. The client's read and write
		// timeouts bound the round trip.
		_, _ = pipe.Exec(context.Background())
		werr := b.replicated(wait)
		if werr != nil && b.onNotReplicated != nil {
			b.onNotReplicated()
		}
		for _, r := range batch {
			if r.write {
				r.err = werr
			}
			close(r.done)
		}
	}
}

// replicated tells the writers whether WAIT found enough replicas.
func (b *batcher) replicated(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
	}
	if n < int64(b.waitReplicas) {
		return fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, b.waitReplicas, b.waitTimeout)
	}
	return nil
}

// scriptCall is one script call carried in a shared pipeline by EVALSHA.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// add puts the call in pipe.
func (c *scriptCall) add(ctx context.Context, pipe redis.Pipeliner) {
	c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
}

// result is the call's answer once its pipeline ran. Redis answers NOSCRIPT
// when it does not hold the script (after a restart, a failover, a SCRIPT
// FLUSH): the call then goes again with its source (EVAL, which also loads
// it), through the shared pipelines, so that it is replicated like the
// others.
func (c *scriptCall) result(ctx context.Context, b *batcher) (any, error) {
	res, err := c.cmd.Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		var again *redis.Cmd
		if err := b.do(ctx, func(pipe redis.Pipeliner) {
			again = c.script.Eval(ctx, pipe, c.keys, c.args...)
		}); err != nil {
			return nil, err
		}
		return again.Result()
	}
	return res, err
}

// runScript runs one script call through the shared pipelines.
func (s *Store) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	c := &scriptCall{script: script, keys: keys, args: args}
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) { c.add(ctx, pipe) }); err != nil {
		return nil, err
	}
	return c.result(ctx, s.batch)
}
