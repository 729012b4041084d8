package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

func TestClaimWindow(t *testing.T) {
	m := redistest.Miniredis(t)
	s := New(redistest.Client(t, m.Addr()), Options{Prefix: "w:"})
	ctx := context.Background()

	// Racing replicas: exactly one wins.
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.ClaimWindow(ctx, "alert:callback", time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claims won, want 1", won.Load())
	}
	// Other windows are independent.
	if ok, _ := s.ClaimWindow(ctx, "alert:esc", time.Hour); !ok {
		t.Error("another window was taken")
	}
	// Released: claimable again; expired: claimable again.
	if err := s.ReleaseWindow(ctx, "alert:callback"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ClaimWindow(ctx, "alert:callback", time.Hour); !ok {
		t.Error("not claimable after release")
	}
	m.FastForward(time.Hour)
	if ok, _ := s.ClaimWindow(ctx, "alert:esc", time.Hour); !ok {
		t.Error("not claimable after expiry")
	}
	if _, err := s.ClaimWindow(ctx, "x", 0); err == nil {
		t.Error("a zero ttl was accepted")
	}
}
