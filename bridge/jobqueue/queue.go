// Package jobqueue runs the bridge's effects as durable jobs on Redis with
// asynq: a job survives restarts, is retried with growing delays, is
// enqueued once per effect id, and lands in the dead letters (asynq's
// archive) when it is given up.
package jobqueue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// Options tune the queue.
type Options struct {
	// Queue names the asynq queue; asynq has no key prefix of its own, so
	// deployments sharing a Redis use different names.
	Queue       string
	Concurrency int
	// RetryInitial and RetryMax bound the delay between tries: it doubles
	// from RetryInitial up to RetryMax (Postfix: 5 min → ~66 min).
	RetryInitial, RetryMax time.Duration
	// MaxRetry is a safety net; the worker gives a mail up after its
	// lifetime first.
	MaxRetry int
	// Retention keeps finished jobs (and so their ids) for that long, so an
	// effect handed over again in that time is not run again.
	Retention time.Duration
	// PollInterval is how often an idle worker looks for new jobs, and how
	// often retries that are due are moved back to the queue.
	PollInterval    time.Duration
	ShutdownTimeout time.Duration
	// Dequeuers is how many job takers (asynq servers) share Concurrency;
	// 0 means one per 4 slots, at most 4.
	Dequeuers int
	Logger    *slog.Logger
	// LibraryLogger, when set, takes asynq's own lines (its forwarder
	// and heartbeat errors repeat while Redis is down: give it a
	// rate-limited logger); Logger otherwise.
	LibraryLogger *slog.Logger
	// asynq keeps due times in whole seconds: delays under a second are
	// rounded.
	//
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
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = 5 * time.Minute
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 66 * time.Minute
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = 500
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Queue is the durable effect queue.
type Queue struct {
	rdb       redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
	opts      Options
}

var _ bridge.Dispatcher = (*Queue)(nil)

// New returns a queue over rdb (which it does not close).
func New(rdb redis.UniversalClient, opts Options) *Queue {
	opts.defaults()
	return &Queue{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb), opts: opts}
}

const taskPrefix = "effect:"

// Dispatch enqueues effects, once per effect id.
func (q *Queue) Dispatch(ctx context.Context, effects []bridge.Effect) error {
	for _, e := range effects {
		payload, err := json.Marshal(e)
		if err != nil {
			return err
		}
		task := asynq.NewTask(taskPrefix+string(e.Kind), payload)
		maxRetry := q.opts.MaxRetry
		if sched, ok := q.opts.Schedules[e.Kind]; ok {
			maxRetry = len(sched)
		}
		_, err = q.client.EnqueueContext(ctx, task, asynq.TaskID(e.ID), asynq.Queue(q.opts.Queue),
			asynq.MaxRetry(maxRetry), asynq.Retention(q.opts.Retention), asynq.Timeout(10*time.Minute))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue %s: %w", e.ID, err)
		}
	}
	return nil
}

// RetryDelay is the delay before the n-th retry (n from 0): it doubles from
// initial up to max (bridge.Backoff).
func RetryDelay(n int, initial, max time.Duration) time.Duration {
	return bridge.Backoff(n, initial, max)
}

// Handler carries out one effect (bridge.Worker.Handle).
type Handler func(ctx context.Context, e bridge.Effect) error

// Run works the queue until ctx ends, then lets running jobs finish (up to
// ShutdownTimeout; an unfinished job runs again later: handlers are
// idempotent).
func (q *Queue) Run(ctx context.Context, handle Handler) error {
	log := q.opts.Logger
	servers := q.opts.servers()
	per := max(1, q.opts.Concurrency/servers)
	cfg := asynq.Config{
		Concurrency: per,
		Queues:      map[string]int{q.opts.Queue: 1},
		RetryDelayFunc: func(n int, _ error, t *asynq.Task) time.Duration {
			if sched := q.opts.Schedules[bridge.EffectKind(strings.TrimPrefix(t.Type(), taskPrefix))]; len(sched) > 0 {
				return sched[min(n, len(sched)-1)]
			}
			return RetryDelay(n, q.opts.RetryInitial, q.opts.RetryMax)
		},
		TaskCheckInterval:        q.opts.PollInterval,
		DelayedTaskCheckInterval: q.opts.PollInterval,
		ShutdownTimeout:          q.opts.ShutdownTimeout,
		Logger:                   asynqLogger{cmp.Or(q.opts.LibraryLogger, log)},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, task *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			dead := n >= maxRetry || errors.Is(err, asynq.SkipRetry)
			level := slog.LevelWarn
			if dead {
				level = slog.LevelError
			}
			log.LogAttrs(ctx, level, "job failed", slog.String("job", id),
				slog.String("type", task.Type()), slog.Int("retried", n), slog.Bool("dead", dead),
				slog.String("error", err.Error()))
			if dead && q.opts.OnDead != nil {
				j := Job{ID: id, Kind: strings.TrimPrefix(task.Type(), taskPrefix), State: "archived",
					Retried: n, LastError: err.Error(), FailedAt: time.Now()}
				var e bridge.Effect
				if json.Unmarshal(task.Payload(), &e) == nil {
					j.TicketID = e.TicketID
				}
				q.opts.OnDead(j, err)
			}
		}),
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskPrefix, func(ctx context.Context, task *asynq.Task) error {
		var e bridge.Effect
		if err := json.Unmarshal(task.Payload(), &e); err != nil {
			return fmt.Errorf("%w: bad payload: %v", asynq.SkipRetry, err)
		}
		err := handle(ctx, e)
		if q.opts.OnDone != nil {
			q.opts.OnDone(e.Kind, err)
		}
		if bridge.IsPermanent(err) {
			return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
		}
		return err
	})
	// asynq's server takes its jobs one at a time: each dequeue waits for
	// the previous one's round trip to Redis. Several servers in one
	// process (as several replicas would) take jobs in parallel; each runs
	// its share of the concurrency.
	var started []*asynq.Server
	for range servers {
		srv := asynq.NewServerFromRedisClient(q.rdb, cfg)
		if err := srv.Start(mux); err != nil {
			for _, s := range started {
				s.Shutdown()
			}
			return fmt.Errorf("job queue: %w", err)
		}
		started = append(started, srv)
	}
	<-ctx.Done()
	var wg sync.WaitGroup
	for _, s := range started {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown()
		}()
	}
	wg.Wait()
	return nil
}

// servers is how many asynq servers share the concurrency: one per 4 job
// slots, at most 4.
func (o *Options) servers() int {
	if o.Dequeuers > 0 {
		return min(o.Dequeuers, o.Concurrency)
	}
	return max(1, min(4, o.Concurrency/4))
}

// Close releases the queue's client handles (not the Redis client).
func (q *Queue) Close() error {
	return errors.Join(q.client.Close(), q.inspector.Close())
}

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

func toJob(t *asynq.TaskInfo) Job {
	j := Job{ID: t.ID, Kind: strings.TrimPrefix(t.Type, taskPrefix), State: t.State.String(), Retried: t.Retried,
		LastError: t.LastErr, FailedAt: t.LastFailedAt, NextRunAt: t.NextProcessAt}
	var e bridge.Effect
	if json.Unmarshal(t.Payload, &e) == nil {
		j.TicketID = e.TicketID
	}
	return j
}

// Dead lists the jobs that were given up.
func (q *Queue) Dead() ([]Job, error) {
	var out []Job
	for page := 1; ; page++ {
		tasks, err := q.inspector.ListArchivedTasks(q.opts.Queue, asynq.PageSize(100), asynq.Page(page))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return out, nil
			}
			return nil, err
		}
		for _, t := range tasks {
			out = append(out, toJob(t))
		}
		if len(tasks) < 100 {
			return out, nil
		}
	}
}

// Retrying lists the jobs waiting for their next try.
func (q *Queue) Retrying() ([]Job, error) {
	tasks, err := q.inspector.ListRetryTasks(q.opts.Queue, asynq.PageSize(1000))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, toJob(t))
	}
	return out, nil
}

// Replay puts a dead job back into the queue.
func (q *Queue) Replay(id string) error {
	return q.inspector.RunTask(q.opts.Queue, id)
}

// Depths counts the jobs in each state.
type Depths struct {
	Pending, Active, Scheduled, Retry, Dead, Completed int
}

// Depths returns the queue's counts.
func (q *Queue) Depths() (Depths, error) {
	info, err := q.inspector.GetQueueInfo(q.opts.Queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return Depths{}, nil
	}
	if err != nil {
		return Depths{}, err
	}
	return Depths{Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled, Retry: info.Retry,
		Dead: info.Archived, Completed: info.Completed}, nil
}

// asynqLogger sends asynq's own log lines to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) {
	a.l.Debug(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a asynqLogger) Info(args ...any) {
	a.l.Info(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a asynqLogger) Warn(args ...any) {
	a.l.Warn(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a asynqLogger) Error(args ...any) {
	a.l.Error(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), slog.String("component", "asynq"))
}
