package jobqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore/redistest"
)

// asynqTask enqueues an effect as versions before the stream queue did.
func asynqTask(t *testing.T, c *asynq.Client, id string, opts ...asynq.Option) {
	t.Helper()
	payload, _ := json.Marshal(bridge.Effect{ID: id, Kind: bridge.EffectCallback, TicketID: "T-" + id})
	opts = append(opts, asynq.TaskID(id), asynq.Queue("mig-jobs"), asynq.MaxRetry(5))
	if _, err := c.Enqueue(asynq.NewTask("effect:callback", payload), opts...); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateAsynq: the jobs an older version left in asynq (pending,
// scheduled, retrying, dead, and one running when its worker died) are
// moved into the stream queue and removed from asynq; the live ones run
// once each, the dead one stays dead with its reason, the retried one
// keeps its count, and a second migration (or one cut short and run
// again) moves nothing twice.
func TestMigrateAsynq(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		ctx := context.Background()
		c := asynq.NewClientFromRedisClient(rdb)
		ins := asynq.NewInspectorFromRedisClient(rdb)
		asynqTask(t, c, "retried")
		// One try that fails, by an asynq server of the older version.
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{"mig-jobs": 1},
			RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
			Logger:         asynqQuiet{}, LogLevel: asynq.FatalLevel})
		tried := make(chan struct{}, 1)
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			tried <- struct{}{}
			return errors.New("503 from the ENT")
		})); err != nil {
			t.Fatal(err)
		}
		<-tried
		waitFor(t, "the retry", func() bool {
			r, err := ins.ListRetryTasks("mig-jobs")
			return err == nil && len(r) == 1
		})
		srv.Shutdown()
		asynqTask(t, c, "pending")
		asynqTask(t, c, "later", asynq.ProcessIn(time.Hour))
		asynqTask(t, c, "dead")
		if err := ins.ArchiveTask("mig-jobs", "dead"); err != nil {
			t.Fatal(err)
		}
		// A job its worker held when it was killed: in asynq's active list
		// with a lease, as its dequeue leaves it.
		asynqTask(t, c, "running")
		if err := rdb.LRem(ctx, "asynq:{mig-jobs}:pending", 0, "running").Err(); err != nil {
			t.Fatal(err)
		}
		rdb.LPush(ctx, "asynq:{mig-jobs}:active", "running")
		rdb.ZAdd(ctx, "asynq:{mig-jobs}:lease", redis.Z{Score: float64(time.Now().Unix() + 30), Member: "running"})
		rdb.HSet(ctx, "asynq:{mig-jobs}:t:running", "state", "active")

		q := jobqueue.New(rdb, jobqueue.Options{Queue: "mig-jobs", PollInterval: 50 * time.Millisecond,
			Block: 100 * time.Millisecond})
		n, err := q.MigrateAsynq(ctx)
		if err != nil || n != 5 {
			t.Fatalf("migrated %d, %v; want 5", n, err)
		}
		if qs, _ := ins.Queues(); slices.Contains(qs, "mig-jobs") {
			t.Errorf("asynq queue still there: %v", qs)
		}
		if n, err := q.MigrateAsynq(ctx); err != nil || n != 0 {
			t.Errorf("second migration: %d, %v", n, err)
		}
		dead, err := q.Dead()
		if err != nil || len(dead) != 1 || dead[0].ID != "dead" || dead[0].TicketID != "T-dead" || dead[0].Kind != "callback" {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		runs := countRuns(t, q).settle(t, "the migrated jobs", 4)
		if len(runs) != 4 {
			t.Errorf("%d jobs ran, want 4: %v", len(runs), runs)
		}
		for _, id := range []string{"retried", "pending", "later", "running"} {
			if runs[id] != 1 {
				t.Errorf("%s ran %d times (%v)", id, runs[id], runs)
			}
		}
		// Handed over again by its outbox, a migrated effect is known.
		if err := q.Dispatch(ctx, []bridge.Effect{{ID: "pending", Kind: bridge.EffectCallback}}); err != nil {
			t.Fatal(err)
		}
		if d, err := q.Depths(); err != nil || d.Pending != 0 {
			t.Errorf("depths after dispatching a migrated id again: %+v %v", d, err)
		}
	})
}

// TestMigrateAsynqLeavesLiveWorkers: while an asynq server of an older
// version still runs, the job it is running is left to it.
func TestMigrateAsynqLeavesLiveWorkers(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		ctx := context.Background()
		c := asynq.NewClientFromRedisClient(rdb)
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{"mig-jobs": 1},
			Logger: asynqQuiet{}, LogLevel: asynq.FatalLevel, ShutdownTimeout: 5 * time.Second})
		started, release := make(chan struct{}), make(chan struct{})
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			close(started)
			<-release
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		asynqTask(t, c, "busy")
		<-started
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "mig-jobs"})
		if n, err := q.MigrateAsynq(ctx); err != nil || n != 0 {
			t.Fatalf("migrated %d, %v; want 0 while its worker runs it", n, err)
		}
		close(release)
	})
}

type asynqQuiet struct{}

func (asynqQuiet) Debug(...any) {}
func (asynqQuiet) Info(...any)  {}
func (asynqQuiet) Warn(...any)  {}
func (asynqQuiet) Error(...any) {}
func (asynqQuiet) Fatal(...any) {}

// TestMigrateAsynqCluster: on a Redis Cluster (asynq's keys in one slot,
// the queue's in another) the migration moves the jobs all the same, and
// with nothing left in asynq it costs one SMEMBERS.
func TestMigrateAsynqCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	rdb := c.Client(t)
	ctx := context.Background()
	ac := asynq.NewClientFromRedisClient(rdb)
	asynqTask(t, ac, "c-pending")
	asynqTask(t, ac, "c-dead")
	if err := asynq.NewInspectorFromRedisClient(rdb).ArchiveTask("mig-jobs", "c-dead"); err != nil {
		t.Fatal(err)
	}
	q := jobqueue.New(rdb, jobqueue.Options{Queue: "mig-jobs", Block: 100 * time.Millisecond})
	if n, err := q.MigrateAsynq(ctx); err != nil || n != 2 {
		t.Fatalf("migrated %d, %v; want 2", n, err)
	}
	if n, err := q.MigrateAsynq(ctx); err != nil || n != 0 {
		t.Fatalf("second migration: %d, %v", n, err)
	}
	d, err := q.Depths()
	if err != nil || d.Pending != 1 || d.Dead != 1 {
		t.Fatalf("depths %+v, %v", d, err)
	}
}

// TestMigrateAsynqForeignTask: a task in that asynq queue whose payload is
// not one of our effects is not run, nor lost: it becomes a dead letter
// an operator sees, with its payload kept.
func TestMigrateAsynqForeignTask(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		c := asynq.NewClientFromRedisClient(rdb)
		if _, err := c.Enqueue(asynq.NewTask("effect:callback", []byte("not json {")), asynq.TaskID("foreign"),
			asynq.Queue("mig-jobs")); err != nil {
			t.Fatal(err)
		}
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "mig-jobs"})
		if n, err := q.MigrateAsynq(context.Background()); err != nil || n != 1 {
			t.Fatalf("migrated %d, %v; want 1", n, err)
		}
		dead, err := q.Dead()
		if err != nil || len(dead) != 1 || dead[0].ID != "foreign" || dead[0].FailedAt.IsZero() ||
			!strings.Contains(dead[0].LastError, "not an effect") {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		if d, err := q.Depths(); err != nil || d.Pending != 0 {
			t.Errorf("depths %+v, %v: a foreign task must not run", d, err)
		}
	})
}
