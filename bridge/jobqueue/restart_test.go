package jobqueue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore/redistest"
)

// TestRedisRestart: a queue whose Redis goes away while its workers wait
// for jobs takes them again once Redis is back, without a restart of its
// own (its group and stream kept by the AOF).
func TestRedisRestart(t *testing.T) {
	check := func(t *testing.T, q *jobqueue.Queue, down, up func()) {
		var n atomic.Int64
		run(t, q, func(context.Context, bridge.Effect) error { n.Add(1); return nil })
		time.Sleep(300 * time.Millisecond) // the workers wait in XREADGROUP
		down()
		time.Sleep(1500 * time.Millisecond)
		up()
		for deadline := time.Now().Add(10 * time.Second); ; {
			if q.Dispatch(context.Background(), []bridge.Effect{{ID: "after", Kind: bridge.EffectCallback}}) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Redis did not come back")
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitFor(t, "the job queued after the restart", func() bool { return n.Load() == 1 })
	}
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		q := jobqueue.New(redistest.Client(t, m.Addr()), jobqueue.Options{Queue: "rs", Block: 200 * time.Millisecond})
		check(t, q, m.Close, func() {
			if err := redistest.RestartMiniredis(m); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithAOF())
		q := jobqueue.New(redistest.Client(t, srv.Addr), jobqueue.Options{Queue: "rs", Block: 200 * time.Millisecond})
		check(t, q, srv.Kill, func() { srv.Restart(t) })
	})
}
