package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
)

func TestPruneQuarantine(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		st := redisstore.New(rdb, redisstore.Options{Prefix: "qp:"})
		now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		// 1,200 old strangers' mails (more than one batch), 3 recent ones.
		for i := range 1203 {
			at := now.Add(-100 * 24 * time.Hour).Add(time.Duration(i) * time.Second)
			if i >= 1200 {
				at = now.Add(-time.Duration(i-1199) * time.Hour)
			}
			q := bridge.QuarantinedMail{Key: fmt.Sprintf("k%d", i), Reason: "sender not allowed", At: at}
			if err := st.Quarantine(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		n, err := st.PruneQuarantine(ctx, now.Add(-90*24*time.Hour))
		if err != nil || n != 1200 {
			t.Fatalf("pruned %d, %v; want 1200", n, err)
		}
		left, err := st.Quarantined(ctx)
		if err != nil || len(left) != 3 || left[0].Key != "k1200" {
			t.Fatalf("left %+v, %v", left, err)
		}
		if n, err := st.PruneQuarantine(ctx, now.Add(-90*24*time.Hour)); err != nil || n != 0 {
			t.Fatalf("second prune: %d, %v", n, err)
		}
	})
}
