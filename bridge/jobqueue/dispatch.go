package jobqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// dispatchScript enqueues each job whose id key it could set: KEYS[1] the
// stream, KEYS[2..] the id keys; ARGV[1] the retention in ms, ARGV[2..]
// the records.
var dispatchScript = redis.NewScript(`
local n = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'j', ARGV[i])
    n = n + 1
  end
end
return n`)

// maxDispatchBatch bounds the jobs one script call enqueues.
const maxDispatchBatch = 256

// dispatchBatch gathers concurrent Dispatch calls. When none is on its
// way to Redis, a call starts a sender that takes every call waiting, up to
// maxDispatchBatch jobs, into one script call, and again for those that
// arrived meanwhile, and ends when none waits (as the store's shared
// pipelines do). So concurrent callers (the mailbox reader applies 32
// replies at once, webhooks arrive together) share one round trip and one
// script call, no caller sends the others' jobs, and no goroutine outlives
// the calls.
type dispatchBatch struct {
	mu      sync.Mutex
	sending bool
	waiting []*dispatchCall
}

type dispatchCall struct {
	ids  []string
	recs []any
	done chan error // buffered: the sender never waits for the caller
}

// Dispatch enqueues effects, once per effect id, with the effects of the
// concurrent calls in one script call.
func (q *Queue) Dispatch(ctx context.Context, effects []bridge.Effect) error {
	if len(effects) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err // nothing queued
	}
	call := &dispatchCall{ids: make([]string, 0, len(effects)), recs: make([]any, 0, len(effects)),
		done: make(chan error, 1)}
	for _, e := range effects {
		p, err := json.Marshal(e)
		if err != nil {
			return err
		}
		r, err := json.Marshal(record{ID: e.ID, Payload: p})
		if err != nil {
			return err
		}
		call.ids = append(call.ids, e.ID)
		call.recs = append(call.recs, r)
	}
	b := &q.dispatches
	b.mu.Lock()
	b.waiting = append(b.waiting, call)
	if !b.sending {
		b.sending = true
		// The calls of others must not fail because this caller gives up.
		go q.sendDispatches(context.WithoutCancel(ctx))
	}
	b.mu.Unlock()
	select {
	case err := <-call.done:
		return err
	case <-ctx.Done():
		// It may still be enqueued: the effect is in its ticket's
		// outbox, handed over again later, once by its id.
		return ctx.Err()
	}
}

// sendDispatches sends the waiting calls, batch after batch, until none
// waits.
func (q *Queue) sendDispatches(ctx context.Context) {
	b := &q.dispatches
	for {
		b.mu.Lock()
		var batch []*dispatchCall
		n := 0
		for len(b.waiting) > 0 && (n == 0 || n+len(b.waiting[0].ids) <= maxDispatchBatch) {
			n += len(b.waiting[0].ids)
			batch = append(batch, b.waiting[0])
			b.waiting = b.waiting[1:]
		}
		if len(batch) == 0 {
			b.sending = false
			b.waiting = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ks := make([]string, 1, 1+n)
		ks[0] = q.keys.stream
		args := make([]any, 1, 1+n)
		args[0] = q.opts.Retention.Milliseconds()
		for _, c := range batch {
			for i, id := range c.ids {
				ks = append(ks, q.keys.idPrefix+id)
				args = append(args, c.recs[i])
			}
		}
		err := dispatchScript.Run(ctx, q.rdb, ks, args...).Err()
		for _, c := range batch {
			if err != nil {
				c.done <- fmt.Errorf("enqueue %s: %w", c.ids[0], err)
			} else {
				c.done <- nil
			}
		}
	}
}
