package jobqueue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
)

// scriptCalls is how many EVALSHA and EVAL Redis has run, or -1 where
// INFO does not tell (miniredis).
func scriptCalls(rdb redis.UniversalClient) int {
	s, err := readStats(rdb)
	if err != nil {
		return -1
	}
	return int(s.calls["evalsha"] + s.calls["eval"])
}

// TestDispatchShared: 64 callers dispatching at once, some of the same
// effects, and one whose context is cancelled: every effect runs once,
// every other caller is answered, and the calls share script calls.
func TestDispatchShared(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "shared", Block: 100 * time.Millisecond})
		c := countRuns(t, q)
		before := scriptCalls(rdb)
		const callers = 64
		start := make(chan struct{})
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				effs := []bridge.Effect{{ID: fmt.Sprintf("e%d", i), Kind: bridge.EffectNotify},
					{ID: fmt.Sprintf("e%d", (i+1)%callers), Kind: bridge.EffectNotify}, // also another's
					{ID: fmt.Sprintf("own%d", i), Kind: bridge.EffectCallback}}
				ctx := context.Background()
				if i == 7 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					cancel()
				}
				<-start
				errs[i] = q.Dispatch(ctx, effs)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil && i != 7 {
				t.Errorf("caller %d: %v", i, err)
			}
		}
		if before >= 0 {
			calls := scriptCalls(rdb) - before
			t.Logf("%d callers, %d script calls", callers, calls)
			if calls >= callers {
				t.Errorf("%d script calls for %d concurrent callers: none shared", calls, callers)
			}
		}
		for id, n := range c.settle(t, "every effect", 2*callers-1) {
			if n != 1 {
				t.Errorf("%s ran %d times", id, n)
			}
		}
	})
}
