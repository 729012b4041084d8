package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// Versions before this queue kept their jobs in asynq, in a queue of the
// same name. MigrateAsynq moves what such a version left there into this
// queue, so that an upgrade loses no mail, notification or callback.

// migrateScript adds one job taken from asynq, once by its id: KEYS: id
// key, stream, dead, dead-at; ARGV: record, "dead" or "run", retention ms,
// failure time ms, job id. It returns 0 when the id was known already (a
// migration cut short after this step, or an effect dispatched again by
// this version).
var migrateScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
if ARGV[2] == 'dead' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
else
  redis.call('XADD', KEYS[2], '*', 'j', ARGV[1])
end
return 1`)

// requeueActiveScript puts the active jobs of asynq workers that are gone
// back into asynq's pending list (what asynq's own recoverer would have
// done had one of its servers still run): KEYS: asynq's active list,
// lease set, pending list; ARGV: the task key prefix.
var requeueActiveScript = redis.NewScript(`
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  redis.call('LREM', KEYS[1], 0, id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('LPUSH', KEYS[3], id)
  redis.call('HSET', ARGV[1] .. id, 'state', 'pending')
end
return #ids`)

// MigrateAsynq moves the jobs left in asynq's queue of the same name
// (pending, scheduled, retrying, dead, and running ones whose workers are
// gone) into this queue, then removes that queue. Dead jobs stay dead;
// the others run soon, keeping their retry count (a retry comes earlier
// than asynq would have run it: jobs are idempotent). A job is added here
// before it is deleted there, once by its id, so a migration cut short is
// finished by the next. While an asynq server of an older version still
// runs, its running jobs are left to it; the next call takes what remains.
// It returns how many jobs it moved.
func (q *Queue) MigrateAsynq(ctx context.Context) (int, error) {
	ins := asynq.NewInspectorFromRedisClient(q.rdb)
	defer ins.Close()
	name := q.opts.Queue
	queues, err := ins.Queues()
	if err != nil {
		return 0, fmt.Errorf("asynq queues: %w", err)
	}
	if !slices.Contains(queues, name) {
		return 0, nil
	}
	servers, err := ins.Servers()
	if err != nil {
		return 0, fmt.Errorf("asynq servers: %w", err)
	}
	if len(servers) == 0 {
		prefix := "asynq:{" + name + "}:"
		if err := requeueActiveScript.Run(ctx, q.rdb, []string{prefix + "active", prefix + "lease", prefix + "pending"},
			prefix+"t:").Err(); err != nil {
			return 0, fmt.Errorf("asynq active jobs: %w", err)
		}
	}
	moved := 0
	for _, list := range []struct {
		list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
		dead bool
	}{{ins.ListPendingTasks, false}, {ins.ListScheduledTasks, false}, {ins.ListRetryTasks, false},
		{ins.ListArchivedTasks, true}} {
		for {
			// Always the first page: each task taken is deleted.
			tasks, err := list.list(name, asynq.PageSize(500), asynq.Page(1))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return moved, fmt.Errorf("asynq jobs: %w", err)
			}
			for _, t := range tasks {
				if err := q.migrateTask(ctx, t, list.dead); err != nil {
					return moved, err
				}
				if err := ins.DeleteTask(name, t.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
					return moved, fmt.Errorf("asynq job %s: %w", t.ID, err)
				}
				moved++
			}
			if len(tasks) < 500 {
				break
			}
		}
	}
	if len(servers) == 0 {
		// Nothing of it is left; its statistics and name go too.
		if err := ins.DeleteQueue(name, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return moved, fmt.Errorf("asynq queue: %w", err)
		}
	}
	return moved, nil
}

func (q *Queue) migrateTask(ctx context.Context, t *asynq.TaskInfo, dead bool) error {
	payload := json.RawMessage(t.Payload)
	lastErr := t.LastErr
	var e bridge.Effect
	if !json.Valid(payload) || json.Unmarshal(payload, &e) != nil || e.ID == "" {
		// Not one of ours: kept as a dead letter, for an operator to see.
		payload, _ = json.Marshal(string(t.Payload))
		dead = true
		lastErr = "moved from asynq: its payload is not an effect of this bridge"
	}
	rec := record{ID: t.ID, Retried: t.Retried, Payload: payload, LastErr: lastErr}
	failedAt := t.LastFailedAt
	if dead && failedAt.IsZero() {
		failedAt = time.Now()
	}
	if !failedAt.IsZero() {
		rec.FailedAt = failedAt.UnixMilli()
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	where := "run"
	if dead {
		where = "dead"
	}
	err = migrateScript.Run(ctx, q.rdb, []string{q.keys.idPrefix + t.ID, q.keys.stream, q.keys.dead, q.keys.deadAt},
		raw, where, q.opts.Retention.Milliseconds(), rec.FailedAt, t.ID).Err()
	if err != nil {
		return fmt.Errorf("migrate asynq job %s: %w", t.ID, err)
	}
	return nil
}
