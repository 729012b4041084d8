// Package jobqueue runs the bridge's effects as durable jobs on a Redis
// Stream with a consumer group: a job survives restarts and the death of
// its replica, is retried with growing delays, is enqueued once per effect
// id, and lands in the dead letters when it is given up.
//
//   - Dispatch enqueues once per effect id: one script does SET NX on the
//     id's key (kept for Retention) and XADD.
//   - Workers take jobs with XREADGROUP BLOCK COUNT: a job is picked up as
//     soon as it is enqueued, several at once when they are waiting.
//   - A job is acknowledged (XACK + XDEL, batched) only after its handler
//     returned; a job whose consumer died stays in the group's pending
//     list and is reclaimed with XAUTOCLAIM once idle for Lease, its try
//     counted as failed (ErrLeaseExpired), so that a job that kills its
//     consumer each time ends in the dead letters. A running job's lease
//     is renewed (XCLAIM by its own consumer).
//   - A failed job moves, in one script, from the stream to a sorted set of
//     retries due at a time (doubling delay, or its kind's Schedule), or
//     to the dead letters (a hash by job id) when given up; a forwarder
//     moves due retries back onto the stream; Replay moves a dead job back.
//
// Every key of a queue carries the hash tag {queue}, so one queue lives in
// one Cluster slot and its scripts may touch all of its keys. The queue
// replaced asynq (BENCHMARKS.md, "Job queue"); MigrateAsynq moves the jobs
// an older version left there.
package jobqueue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// Options tune the queue.
type Options struct {
	// Queue names the queue; deployments sharing a Redis use different
	// names.
	Queue       string
	Concurrency int
	// RetryInitial and RetryMax bound the delay between tries: it doubles
	// from RetryInitial up to RetryMax (Postfix: 5 min → ~66 min).
	RetryInitial, RetryMax time.Duration
	// MaxRetry is a safety net; the worker gives a mail up after its
	// lifetime first.
	MaxRetry int
	// Retention keeps the id of a job (so an effect handed over again in
	// that time is not run again) for that long after its dispatch, or
	// after its last failed try.
	Retention time.Duration
	// PollInterval is how often due retries are looked for at most (a
	// retry scheduled by this process wakes the forwarder itself). New
	// jobs are not polled for: workers block on the stream.
	PollInterval    time.Duration
	ShutdownTimeout time.Duration
	// Lease is how long a job may stay unacknowledged without its
	// consumer renewing it before another consumer reclaims it (the
	// consumer died); renewed every Lease/3 while the handler runs.
	Lease time.Duration
	// Block is how long one XREADGROUP waits for a job (the longest a
	// shutdown waits for an idle taker).
	Block time.Duration
	// JobTimeout bounds one run of a handler.
	JobTimeout time.Duration
	// DeadMax and DeadFor bound the dead letters: the oldest beyond
	// DeadMax, and those older than DeadFor, are dropped when a job dies
	// (10,000 and 90 days by default).
	DeadMax int
	DeadFor time.Duration
	Logger  *slog.Logger
	// Schedules gives some kinds of effects a fixed retry schedule instead
	// of the doubling delay: the n-th retry waits Schedules[kind][n], and
	// after the last one the job is dead (callbacks: 5s, 5m, 30m, 2h, 5h,
	// 10h, 10h as Standard Webhooks has it).
	Schedules map[bridge.EffectKind][]time.Duration
	// OnDead is told of every job given up (alerts, metrics).
	OnDead func(job Job, err error)
	// OnDone is told of every job's outcome (metrics): err is nil on
	// success.
	OnDone func(kind bridge.EffectKind, err error)
}

func (o *Options) defaults() {
	if o.Queue == "" {
		o.Queue = "supportbridge"
	}
	positive(&o.Concurrency, 8)
	positive(&o.RetryInitial, 5*time.Minute)
	positive(&o.RetryMax, 66*time.Minute)
	positive(&o.MaxRetry, 500)
	positive(&o.Retention, 7*24*time.Hour)
	positive(&o.PollInterval, 200*time.Millisecond)
	positive(&o.ShutdownTimeout, 10*time.Second)
	positive(&o.Lease, 30*time.Second)
	positive(&o.Block, time.Second)
	positive(&o.JobTimeout, 10*time.Minute)
	positive(&o.DeadMax, 10000)
	positive(&o.DeadFor, 90*24*time.Hour)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// positive sets *v to def unless it is above zero.
func positive[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ErrNotFound is returned by Replay for a job that is not in the dead
// letters.
var ErrNotFound = errors.New("no such job")

// Queue is the durable effect queue on a Redis Stream.
type Queue struct {
	rdb  redis.UniversalClient
	opts Options
	keys keys
	// wake tells the forwarder a retry was scheduled by this process.
	wake chan struct{}
	// dispatches gathers the Dispatch calls that arrive while one is on
	// its way to Redis: they go together in the next script call.
	dispatches dispatchBatch
}

var _ bridge.Dispatcher = (*Queue)(nil)

const group = "workers"

type keys struct {
	// deadAt orders the dead letters by failure time (ms), for trimming.
	stream, retry, dead, deadAt, idPrefix string
}

func keysOf(queue string) keys {
	p := "sbq:{" + queue + "}:"
	return keys{stream: p + "s", retry: p + "retry", dead: p + "dead", deadAt: p + "dead-at", idPrefix: p + "id:"}
}

// New returns a queue over rdb (which it does not close).
func New(rdb redis.UniversalClient, opts Options) *Queue {
	opts.defaults()
	return &Queue{rdb: rdb, opts: opts, keys: keysOf(opts.Queue), wake: make(chan struct{}, 1)}
}

// record is a job as it travels: the stream entry's one field, a retry's
// member, a dead letter's value.
type record struct {
	ID       string          `json:"id"`
	Retried  int             `json:"n,omitempty"`
	Payload  json.RawMessage `json:"p"`
	LastErr  string          `json:"e,omitempty"`
	FailedAt int64           `json:"f,omitempty"` // Unix ms
	// Due is a retry's due time (Unix ms): it keeps members unique.
	Due int64 `json:"d,omitempty"`
}

// Handler carries out one effect (bridge.Worker.Handle).
type Handler func(ctx context.Context, e bridge.Effect) error

// delivery is a job taken from the stream.
type delivery struct {
	entry   string // stream entry id
	rec     record
	started time.Time
}

// Run works the queue until ctx ends, then lets running jobs finish (up to
// ShutdownTimeout; an unfinished job is reclaimed later by a consumer:
// handlers are idempotent).
func (q *Queue) Run(ctx context.Context, handle Handler) error {
	if err := q.ensureGroup(ctx); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	r := &runner{q: q, handle: handle, consumer: consumerName(), slots: make(chan struct{}, q.opts.Concurrency),
		acks: make(chan ack, q.opts.Concurrency*4), running: map[string]time.Time{}}
	return r.run(ctx)
}

func (q *Queue) ensureGroup(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.keys.stream, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

func consumerName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

type ack struct {
	entry   string
	retried bool // the id key's retention restarts now
	id      string
}

type runner struct {
	q        *Queue
	handle   Handler
	consumer string
	slots    chan struct{}
	acks     chan ack
	// work hands the jobs taken to Concurrency long-lived goroutines:
	// their stacks, once grown by a handler (templates, MIME), stay grown,
	// where a goroutine per job grew a new one each time.
	work chan delivery

	// jobCtx is the jobs' context: cancelled ShutdownTimeout after the
	// run's; jobs counts the running ones.
	jobCtx context.Context
	jobs   sync.WaitGroup
	// stopAcks ends the acker (after one last batch).
	stopAcks chan struct{}

	mu      sync.Mutex
	running map[string]time.Time // entry id → started
}

func (r *runner) run(ctx context.Context) error {
	jobCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	r.jobCtx, r.stopAcks = jobCtx, make(chan struct{})
	var loops sync.WaitGroup
	ackDone := make(chan struct{})
	go func() { defer close(ackDone); r.acker() }()
	r.work = make(chan delivery, cap(r.slots))
	for range cap(r.slots) {
		go r.worker()
	}
	defer close(r.work)
	for _, loop := range []func(context.Context){r.forwarder, r.renewer} {
		loops.Add(1)
		go func() { defer loops.Done(); loop(ctx) }()
	}
	// The taker: one XREADGROUP for as many jobs as there are free slots;
	// every Lease/2, first one XAUTOCLAIM for the jobs of dead consumers.
	nextReclaim := time.Now()
	for ctx.Err() == nil {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
	more:
		for n < cap(r.slots) {
			select {
			case r.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		if time.Now().After(nextReclaim) {
			nextReclaim = time.Now().Add(r.q.opts.Lease / 2)
			if err := r.reclaim(ctx); err != nil && ctx.Err() == nil {
				r.q.opts.Logger.Warn("job queue: reclaim", slog.String("error", err.Error()))
			}
		}
		ds, err := r.read(ctx, n)
		if err != nil && ctx.Err() == nil {
			r.q.opts.Logger.Warn("job queue: read", slog.String("error", err.Error()))
			sleep(ctx, r.q.opts.PollInterval)
		}
		for range n - len(ds) {
			<-r.slots
		}
		r.start(ds)
	}
	loops.Wait()
	finished := make(chan struct{})
	go func() { r.jobs.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(r.q.opts.ShutdownTimeout):
		r.q.opts.Logger.Warn("job queue: jobs still running at shutdown; another consumer will reclaim them")
	}
	stopJobs()
	close(r.stopAcks) // after this, a late job is not acknowledged: it is reclaimed
	<-ackDone
	r.leave(context.WithoutCancel(ctx))
	return nil
}

// leave takes the stopped consumer out of the group if nothing is pending
// under its name: XGROUP DELCONSUMER drops a consumer's pending entries,
// which would then never run. Nothing adds to its pending list any more,
// so checking first is enough; a consumer left behind only costs a line
// in XINFO CONSUMERS.
func (r *runner) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p, err := r.q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: r.q.keys.stream, Group: group,
		Start: "-", End: "+", Count: 1, Consumer: r.consumer}).Result()
	if err == nil && len(p) == 0 {
		_ = r.q.rdb.XGroupDelConsumer(ctx, r.q.keys.stream, group, r.consumer).Err()
	}
}

// start hands the jobs taken to the workers, each in a slot already held
// (so a worker is free for it, or about to be).
func (r *runner) start(ds []delivery) {
	for _, d := range ds {
		r.mu.Lock()
		r.running[d.entry] = d.started
		r.mu.Unlock()
		r.jobs.Add(1)
		r.work <- d
	}
}

// worker runs the jobs handed to it until the run ends.
func (r *runner) worker() {
	for d := range r.work {
		r.runJob(r.jobCtx, d)
		<-r.slots
		r.jobs.Done()
	}
}

// read takes up to n jobs, waiting up to Block for the first.
func (r *runner) read(ctx context.Context, n int) ([]delivery, error) {
	res, err := r.q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: r.consumer,
		Streams: []string{r.q.keys.stream, ">"}, Count: int64(n), Block: r.q.opts.Block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		// The stream was deleted under us (FLUSHALL): make it again.
		err = r.q.ensureGroup(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []delivery
	for _, s := range res {
		out = append(out, r.deliveries(s.Messages)...)
	}
	return out, nil
}

func (r *runner) deliveries(msgs []redis.XMessage) []delivery {
	now := time.Now()
	out := make([]delivery, 0, len(msgs))
	for _, m := range msgs {
		d := delivery{entry: m.ID, started: now}
		s, _ := m.Values["j"].(string)
		if err := json.Unmarshal([]byte(s), &d.rec); err != nil {
			d.rec = record{ID: "entry-" + m.ID, Payload: json.RawMessage(strconv.Quote(s))}
		}
		out = append(out, d)
	}
	return out
}

func (r *runner) runJob(ctx context.Context, d delivery) {
	defer func() {
		r.mu.Lock()
		delete(r.running, d.entry)
		r.mu.Unlock()
	}()
	var e bridge.Effect
	var err error
	if uerr := json.Unmarshal(d.rec.Payload, &e); uerr != nil {
		err = bridge.Permanent(fmt.Errorf("bad payload: %v", uerr))
	} else {
		jctx, cancel := context.WithTimeout(ctx, r.q.opts.JobTimeout)
		err = r.handle(jctx, e)
		cancel()
		if r.q.opts.OnDone != nil {
			r.q.opts.OnDone(e.Kind, err)
		}
	}
	if ctx.Err() != nil && err != nil {
		return // shutting down: left to be reclaimed
	}
	if err == nil {
		select {
		case r.acks <- ack{entry: d.entry, retried: d.rec.Retried > 0, id: d.rec.ID}:
		case <-ctx.Done():
		}
		return
	}
	r.fail(ctx, d, e, err)
}

// failScript takes a failed job off the stream and puts it in the retries
// (ARGV[3] its due time in ms) or, when ARGV[3] is "dead", the dead
// letters, which it trims. KEYS: stream, retries, dead, id key, dead-at;
// ARGV: entry id, group, due, record, job id, retention ms, now ms, oldest
// dead letter kept (ms), most dead letters kept.
var failScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[2], ARGV[1]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[3] == 'dead' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[5])
  local drop = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[8], 'LIMIT', 0, 100)
  local extra = redis.call('ZCARD', KEYS[5]) - #drop - tonumber(ARGV[9])
  if extra > 0 then
    drop = redis.call('ZRANGE', KEYS[5], 0, #drop + extra - 1)
  end
  for _, id in ipairs(drop) do
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', KEYS[5], id)
  end
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
redis.call('PEXPIRE', KEYS[4], ARGV[6])
return 1`)

func (r *runner) fail(ctx context.Context, d delivery, e bridge.Effect, err error) {
	o := r.q.opts
	maxRetry := o.MaxRetry
	sched := o.Schedules[e.Kind]
	if len(sched) > 0 {
		maxRetry = len(sched)
	}
	n := d.rec.Retried
	dead := n >= maxRetry || bridge.IsPermanent(err)
	now := time.Now()
	rec := d.rec
	rec.LastErr, rec.FailedAt = err.Error(), now.UnixMilli()
	due := "dead"
	if !dead {
		delay := bridge.Backoff(n, o.RetryInitial, o.RetryMax)
		if len(sched) > 0 {
			delay = sched[min(n, len(sched)-1)]
		}
		rec.Retried = n + 1
		rec.Due = now.Add(delay).UnixMilli()
		due = strconv.FormatInt(rec.Due, 10)
	}
	level := slog.LevelWarn
	if dead {
		level = slog.LevelError
	}
	o.Logger.LogAttrs(ctx, level, "job failed", slog.String("job", rec.ID), slog.String("type", string(e.Kind)),
		slog.Int("retried", n), slog.Bool("dead", dead), slog.String("error", err.Error()))
	raw, _ := json.Marshal(rec)
	moved, serr := failScript.Run(context.WithoutCancel(ctx), r.q.rdb,
		[]string{r.q.keys.stream, r.q.keys.retry, r.q.keys.dead, r.q.keys.idPrefix + rec.ID, r.q.keys.deadAt},
		d.entry, group, due, raw, rec.ID, o.Retention.Milliseconds(), now.UnixMilli(),
		now.Add(-o.DeadFor).UnixMilli(), o.DeadMax).Int()
	if serr != nil {
		o.Logger.Warn("job queue: schedule retry", slog.String("job", rec.ID), slog.String("error", serr.Error()))
		return // still pending: reclaimed after the lease
	}
	if moved == 0 {
		return // already acknowledged (a run by a consumer that reclaimed it)
	}
	if dead {
		if o.OnDead != nil {
			o.OnDead(toJob(rec, "archived", time.Time{}), err)
		}
		return
	}
	select {
	case r.q.wake <- struct{}{}:
	default:
	}
}

// acker acknowledges finished jobs in batches: XACK and XDEL for all the
// jobs that finished while the previous batch was on its way.
func (r *runner) acker() {
	var batch []ack
	for {
		var a ack
		select {
		case a = <-r.acks:
		case <-r.stopAcks:
			select {
			case a = <-r.acks:
			default:
				return
			}
		}
		batch = append(batch[:0], a)
	drain:
		for len(batch) < 512 {
			select {
			case a := <-r.acks:
				batch = append(batch, a)
			default:
				break drain
			}
		}
		for try := 0; ; try++ {
			err := r.ackBatch(batch)
			if err == nil {
				break
			}
			if try == 3 {
				r.q.opts.Logger.Warn("job queue: acknowledge; the jobs will be reclaimed and run again",
					slog.Int("jobs", len(batch)), slog.String("error", err.Error()))
				break
			}
			time.Sleep(100 * time.Millisecond << try)
		}
	}
}

func (r *runner) ackBatch(batch []ack) error {
	ids := make([]string, len(batch))
	for i, a := range batch {
		ids[i] = a.entry
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, r.q.keys.stream, group, ids...)
		p.XDel(ctx, r.q.keys.stream, ids...)
		for _, a := range batch {
			if a.retried {
				p.PExpire(ctx, r.q.keys.idPrefix+a.id, r.q.opts.Retention)
			}
		}
		return nil
	})
	return err
}

// forwardScript moves due retries back onto the stream and returns the
// next due time (ms), or -1. KEYS: retries, stream; ARGV: now (ms).
var forwardScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', m)
  redis.call('ZREM', KEYS[1], m)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
return tonumber(next[2])`)

func (r *runner) forwarder(ctx context.Context) {
	for ctx.Err() == nil {
		now := time.Now()
		next, err := forwardScript.Run(ctx, r.q.rdb, []string{r.q.keys.retry, r.q.keys.stream}, now.UnixMilli()).Int64()
		wait := r.q.opts.PollInterval
		if err == nil && next >= 0 {
			wait = min(wait, max(time.Millisecond, time.UnixMilli(next).Sub(time.Now())))
		}
		select {
		case <-time.After(wait):
		case <-r.q.wake:
		case <-ctx.Done():
		}
	}
}

// ErrLeaseExpired is the failure of a try whose consumer stopped (died)
// while it ran: it counts as a failed try, so that a job that kills its consumer
// each time ends in the dead letters.
var ErrLeaseExpired = errors.New("job queue: lease expired (its consumer stopped)")

// reclaim takes over the jobs left pending by a dead consumer for longer
// than the lease, and fails their try with ErrLeaseExpired: each is
// retried after its delay, or is dead.
func (r *runner) reclaim(ctx context.Context) error {
	start := "0-0"
	for {
		msgs, next, err := r.q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: r.q.keys.stream, Group: group,
			Consumer: r.consumer, MinIdle: r.q.opts.Lease, Start: start, Count: 100}).Result()
		if err != nil {
			return err
		}
		for _, d := range r.deliveries(msgs) {
			var e bridge.Effect
			err := ErrLeaseExpired
			if uerr := json.Unmarshal(d.rec.Payload, &e); uerr != nil {
				err = bridge.Permanent(fmt.Errorf("bad payload: %v", uerr))
			}
			r.fail(ctx, d, e, err)
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
}

// renewScript renews the lease of the entries still pending under this
// consumer (not those another consumer reclaimed meanwhile). KEYS: stream;
// ARGV: group, consumer, entry ids.
var renewScript = redis.NewScript(`
local mine = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then mine[#mine + 1] = ARGV[i] end
end
local n = #mine
if n > 0 then
  mine[n + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(mine))
end
return n`)

// renewer renews the lease of the jobs this consumer has been running for
// more than a third of it.
func (r *runner) renewer(ctx context.Context) {
	every := r.q.opts.Lease / 3
	for sleep(ctx, every) {
		r.mu.Lock()
		var ids []string
		for id, at := range r.running {
			if time.Since(at) >= every {
				ids = append(ids, id)
			}
		}
		r.mu.Unlock()
		if len(ids) > 0 {
			args := []any{group, r.consumer}
			for _, id := range ids {
				args = append(args, id)
			}
			if err := renewScript.Run(ctx, r.q.rdb, []string{r.q.keys.stream}, args...).Err(); err != nil && ctx.Err() == nil {
				r.q.opts.Logger.Warn("job queue: renew leases", slog.String("error", err.Error()))
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// Close releases nothing: the queue holds only the Redis client, which it
// does not close.
func (q *Queue) Close() error { return nil }

// Job is a job as the ops commands show it.
type Job struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	TicketID  string    `json:"ticket_id"`
	State     string    `json:"state"`
	Retried   int       `json:"retried"`
	LastError string    `json:"last_error,omitempty"`
	FailedAt  time.Time `json:"failed_at,omitzero"`
	NextRunAt time.Time `json:"next_run_at,omitzero"`
}

// Depths counts the jobs in each state.
type Depths struct {
	Pending, Active, Retry, Dead int
}

func toJob(rec record, state string, next time.Time) Job {
	j := Job{ID: rec.ID, State: state, Retried: rec.Retried, LastError: rec.LastErr, NextRunAt: next}
	if rec.FailedAt > 0 {
		j.FailedAt = time.UnixMilli(rec.FailedAt)
	}
	var e bridge.Effect
	if json.Unmarshal(rec.Payload, &e) == nil {
		j.Kind, j.TicketID = string(e.Kind), e.TicketID
	}
	return j
}

// Dead lists the jobs that were given up, oldest failure first.
func (q *Queue) Dead() ([]Job, error) {
	all, err := q.rdb.HGetAll(context.Background(), q.keys.dead).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(all))
	for _, v := range all {
		var rec record
		if json.Unmarshal([]byte(v), &rec) == nil {
			out = append(out, toJob(rec, "archived", time.Time{}))
		}
	}
	slices.SortFunc(out, func(a, b Job) int {
		return cmp.Or(a.FailedAt.Compare(b.FailedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Retrying lists the jobs waiting for their next try (the first 1000).
func (q *Queue) Retrying() ([]Job, error) {
	zs, err := q.rdb.ZRangeWithScores(context.Background(), q.keys.retry, 0, 999).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(zs))
	for _, z := range zs {
		var rec record
		s, _ := z.Member.(string)
		if json.Unmarshal([]byte(s), &rec) == nil {
			out = append(out, toJob(rec, "retry", time.UnixMilli(int64(z.Score))))
		}
	}
	return out, nil
}

// replayScript moves a dead job back onto the stream. KEYS: dead, stream,
// dead-at; ARGV: job id.
var replayScript = redis.NewScript(`
local j = redis.call('HGET', KEYS[1], ARGV[1])
if not j then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'j', j)
return 1`)

// Replay puts a dead job back into the queue; ErrNotFound if there is no
// such dead job. A replayed job keeps its retry count: if it fails again it
// is dead again.
func (q *Queue) Replay(id string) error {
	n, err := replayScript.Run(context.Background(), q.rdb, []string{q.keys.dead, q.keys.stream, q.keys.deadAt}, id).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return nil
}

// Depths returns the queue's counts (finished jobs leave nothing but their
// id key: they are not counted). The stream holds the jobs not taken yet
// and those taken but not finished (the group's pending list): finished
// ones are deleted from it.
func (q *Queue) Depths() (Depths, error) {
	ctx := context.Background()
	var groups *redis.XInfoGroupsCmd
	var length, retry, dead *redis.IntCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		length = p.XLen(ctx, q.keys.stream)
		groups = p.XInfoGroups(ctx, q.keys.stream)
		retry = p.ZCard(ctx, q.keys.retry)
		dead = p.HLen(ctx, q.keys.dead)
		return nil
	})
	var d Depths
	if err != nil && !strings.Contains(err.Error(), "no such key") {
		return d, err
	}
	if gs, gerr := groups.Result(); gerr == nil {
		for _, g := range gs {
			if g.Name == group {
				d.Active = int(g.Pending)
			}
		}
	}
	d.Pending = max(0, int(length.Val())-d.Active)
	d.Retry, d.Dead = int(retry.Val()), int(dead.Val())
	return d, nil
}
