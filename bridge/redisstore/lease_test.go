package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// leaseBackend is a Redis to test leases on, and a way to let time pass for
// its TTLs: miniredis's clock only moves when told to.
type leaseBackend struct {
	rdb    redis.UniversalClient
	elapse func(d time.Duration)
}

func leaseBackends(t *testing.T, f func(t *testing.T, b leaseBackend)) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, leaseBackend{rdb: redistest.Client(t, m.Addr()), elapse: m.FastForward})
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, leaseBackend{rdb: redistest.Client(t, srv.Addr), elapse: time.Sleep})
	})
}

func leaseStore(rdb redis.UniversalClient) *redisstore.Store {
	return redisstore.New(rdb, redisstore.Options{Prefix: "sbtest:"})
}

func mustAcquire(t *testing.T, st *redisstore.Store, name, holder string, ttl time.Duration) int64 {
	t.Helper()
	fence, ok, err := st.AcquireLease(context.Background(), name, holder, ttl)
	if err != nil || !ok {
		t.Fatalf("acquire %s by %s: ok=%v err=%v", name, holder, ok, err)
	}
	if fence <= 0 {
		t.Fatalf("acquire %s by %s: fence %d", name, holder, fence)
	}
	return fence
}

func wantHolder(t *testing.T, st *redisstore.Store, name, holder string, fence int64) {
	t.Helper()
	h, f, err := st.LeaseHolder(context.Background(), name)
	if err != nil || h != holder || f != fence {
		t.Fatalf("LeaseHolder(%s) = %q, %d, %v; want %q, %d", name, h, f, err, holder, fence)
	}
}

func TestLeaseExclusiveAndFences(t *testing.T) {
	leaseBackends(t, func(t *testing.T, b leaseBackend) {
		ctx := context.Background()
		st := leaseStore(b.rdb)
		const name = "imap:INBOX"
		wantHolder(t, st, name, "", 0)

		f1 := mustAcquire(t, st, name, "replica-a", time.Minute)
		wantHolder(t, st, name, "replica-a", f1)
		for _, holder := range []string{"replica-b", "replica-a"} {
			if f, ok, err := st.AcquireLease(ctx, name, holder, time.Minute); err != nil || ok || f != 0 {
				t.Fatalf("second acquisition by %s: fence %d ok=%v err=%v", holder, f, ok, err)
			}
		}
		// Another lease name is independent.
		mustAcquire(t, st, "digest:daily", "replica-b", time.Minute)

		// A release by someone else, or under an old fence, frees nothing.
		if err := st.ReleaseLease(ctx, name, "replica-b", f1); err != nil {
			t.Fatal(err)
		}
		if err := st.ReleaseLease(ctx, name, "replica-a", f1-1); err != nil {
			t.Fatal(err)
		}
		wantHolder(t, st, name, "replica-a", f1)

		if err := st.ReleaseLease(ctx, name, "replica-a", f1); err != nil {
			t.Fatal(err)
		}
		wantHolder(t, st, name, "", 0)
		f2 := mustAcquire(t, st, name, "replica-b", time.Minute)
		if f2 <= f1 {
			t.Fatalf("fence after re-acquisition %d, want > %d", f2, f1)
		}
		wantHolder(t, st, name, "replica-b", f2)
		// Holders may contain the separator.
		if err := st.ReleaseLease(ctx, name, "replica-b", f2); err != nil {
			t.Fatal(err)
		}
		f3 := mustAcquire(t, st, name, "host:1234:x", time.Minute)
		if f3 <= f2 {
			t.Fatalf("fence %d, want > %d", f3, f2)
		}
		wantHolder(t, st, name, "host:1234:x", f3)

		if _, _, err := st.AcquireLease(ctx, name, "x", 0); err == nil {
			t.Error("a zero ttl was accepted")
		}
	})
}

func TestLeaseRenew(t *testing.T) {
	leaseBackends(t, func(t *testing.T, b leaseBackend) {
		ctx := context.Background()
		st := leaseStore(b.rdb)
		const name = "imap:INBOX"
		const ttl = time.Second
		f := mustAcquire(t, st, name, "a", ttl)

		for _, tt := range []struct {
			holder string
			fence  int64
		}{{"b", f}, {"a", f + 1}, {"a", f - 1}} {
			ok, err := st.RenewLease(ctx, name, tt.holder, tt.fence, time.Minute)
			if err != nil || ok {
				t.Errorf("renew by %s fence %d: ok=%v err=%v, want refused", tt.holder, tt.fence, ok, err)
			}
		}
		// Renewals by the holder keep it past its first TTL.
		for i := 0; i < 3; i++ {
			b.elapse(ttl / 3)
			ok, err := st.RenewLease(ctx, name, "a", f, ttl)
			if err != nil || !ok {
				t.Fatalf("renew %d by the holder: ok=%v err=%v", i, ok, err)
			}
		}
		wantHolder(t, st, name, "a", f)
		if _, ok, _ := st.AcquireLease(ctx, name, "b", ttl); ok {
			t.Fatal("b acquired a renewed lease")
		}

		// Once it expired, renewing it is refused and b takes it over.
		b.elapse(ttl + 100*time.Millisecond)
		if ok, err := st.RenewLease(ctx, name, "a", f, ttl); err != nil || ok {
			t.Fatalf("renew after expiry: ok=%v err=%v", ok, err)
		}
		fb := mustAcquire(t, st, name, "b", time.Minute)
		if fb <= f {
			t.Fatalf("fence of the new holder %d, want > %d", fb, f)
		}
		wantHolder(t, st, name, "b", fb)
		// a's late renewal must not revive its lease over b's.
		if ok, _ := st.RenewLease(ctx, name, "a", f, time.Minute); ok {
			t.Fatal("the old holder renewed the new holder's lease")
		}
	})
}

func TestCheckpointFenced(t *testing.T) {
	leaseBackends(t, func(t *testing.T, b leaseBackend) {
		ctx := context.Background()
		st := leaseStore(b.rdb)
		const box = "INBOX"
		lease := redisstore.CheckpointLease(box)

		cp, err := st.LoadCheckpoint(ctx, box)
		if err != nil || cp != (redisstore.Checkpoint{}) {
			t.Fatalf("checkpoint before any: %+v, %v", cp, err)
		}
		// Without the lease, nothing is written.
		err = st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 7, LastUID: 3, Fence: 1})
		if !errors.Is(err, redisstore.ErrStaleFence) {
			t.Fatalf("save without a lease: %v, want ErrStaleFence", err)
		}

		fa := mustAcquire(t, st, lease, "a", time.Minute)
		at := time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC)
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 7, LastUID: 3, Fence: fa, UpdatedAt: at}); err != nil {
			t.Fatalf("save by the holder: %v", err)
		}
		want := redisstore.Checkpoint{UIDValidity: 7, LastUID: 3, Fence: fa, UpdatedAt: at}
		if cp, err := st.LoadCheckpoint(ctx, box); err != nil || cp != want {
			t.Fatalf("loaded %+v, %v; want %+v", cp, err, want)
		}
		// A fence other than the lease's is refused, even a newer one.
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 7, LastUID: 9, Fence: fa + 1}); !errors.Is(err, redisstore.ErrStaleFence) {
			t.Fatalf("save under a fence the lease does not have: %v", err)
		}
		// LastUID never goes down under the same UIDVALIDITY...
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 7, LastUID: 2, Fence: fa}); err != nil {
			t.Fatal(err)
		}
		if cp, _ := st.LoadCheckpoint(ctx, box); cp.LastUID != 3 || cp.UpdatedAt.IsZero() || cp.UpdatedAt.Equal(at) {
			t.Fatalf("after a lower LastUID: %+v", cp)
		}
		// ...but starts again under a new one.
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 8, LastUID: 0, Fence: fa}); err != nil {
			t.Fatal(err)
		}
		if cp, _ := st.LoadCheckpoint(ctx, box); cp.UIDValidity != 8 || cp.LastUID != 0 {
			t.Fatalf("after a new UIDVALIDITY: %+v", cp)
		}
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 8, LastUID: 1<<32 - 1, Fence: fa}); err != nil {
			t.Fatal(err)
		}
		if cp, _ := st.LoadCheckpoint(ctx, box); cp.LastUID != 1<<32-1 {
			t.Fatalf("largest UID: %+v", cp)
		}

		// a's lease expires; b takes over and writes; a's late write is
		// refused and changes nothing.
		if ok, err := st.RenewLease(ctx, lease, "a", fa, 200*time.Millisecond); err != nil || !ok {
			t.Fatalf("shorten the lease: %v %v", ok, err)
		}
		b.elapse(300 * time.Millisecond)
		fb := mustAcquire(t, st, lease, "b", time.Minute)
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 9, LastUID: 5, Fence: fb}); err != nil {
			t.Fatal(err)
		}
		err = st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 9, LastUID: 50, Fence: fa})
		if !errors.Is(err, redisstore.ErrStaleFence) {
			t.Fatalf("save by the old holder: %v, want ErrStaleFence", err)
		}
		if cp, _ := st.LoadCheckpoint(ctx, box); cp.LastUID != 5 || cp.Fence != fb {
			t.Fatalf("after a stale save: %+v", cp)
		}

		// Through the shape the IMAP reader uses.
		if err := st.SaveMailboxCheckpoint(ctx, box, 9, 6, fb); err != nil {
			t.Fatal(err)
		}
		if v, u, f, err := st.LoadMailboxCheckpoint(ctx, box); err != nil || v != 9 || u != 6 || f != fb {
			t.Fatalf("LoadMailboxCheckpoint = %d %d %d %v", v, u, f, err)
		}
		if err := st.SaveMailboxCheckpoint(ctx, box, 9, 7, fa); !errors.Is(err, redisstore.ErrStaleFence) {
			t.Fatalf("SaveMailboxCheckpoint with a stale fence: %v", err)
		}

		// Checkpoints of other mailboxes are apart.
		if cp, err := st.LoadCheckpoint(ctx, "Other"); err != nil || cp != (redisstore.Checkpoint{}) {
			t.Fatalf("checkpoint of another mailbox: %+v, %v", cp, err)
		}
	})
}

// A fence counter lost while its checkpoint survived (a flush of one key,
// an eviction) must not leave every later save refused.
func TestLeaseFenceCounterLost(t *testing.T) {
	leaseBackends(t, func(t *testing.T, b leaseBackend) {
		ctx := context.Background()
		st := leaseStore(b.rdb)
		lease := redisstore.CheckpointLease("INBOX")
		var f int64
		for i := 0; i < 3; i++ {
			f = mustAcquire(t, st, lease, "a", time.Minute)
			if err := st.ReleaseLease(ctx, lease, "a", f); err != nil {
				t.Fatal(err)
			}
		}
		f = mustAcquire(t, st, lease, "a", time.Minute)
		if err := st.SaveCheckpoint(ctx, "INBOX", redisstore.Checkpoint{UIDValidity: 1, LastUID: 10, Fence: f}); err != nil {
			t.Fatal(err)
		}
		if err := st.ReleaseLease(ctx, lease, "a", f); err != nil {
			t.Fatal(err)
		}
		keys, err := b.rdb.Keys(ctx, "sbtest:{l:"+lease+"}:fence").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("fence counter key: %v %v", keys, err)
		}
		if err := b.rdb.Del(ctx, keys[0]).Err(); err != nil {
			t.Fatal(err)
		}
		g := mustAcquire(t, st, lease, "b", time.Minute)
		if g <= f {
			t.Fatalf("fence after the counter was lost: %d, want > %d", g, f)
		}
		if err := st.SaveCheckpoint(ctx, "INBOX", redisstore.Checkpoint{UIDValidity: 1, LastUID: 11, Fence: g}); err != nil {
			t.Fatalf("save after the counter was lost: %v", err)
		}
	})
}

// Many replicas racing for one lease: exactly one wins each round.
func TestLeaseRace(t *testing.T) {
	leaseBackends(t, func(t *testing.T, b leaseBackend) {
		ctx := context.Background()
		st := leaseStore(b.rdb)
		seen := map[int64]bool{}
		for round := 0; round < 5; round++ {
			var mu sync.Mutex
			var wg sync.WaitGroup
			var winners []string
			var fence int64
			for i := 0; i < 8; i++ {
				holder := string(rune('a' + i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					f, ok, err := st.AcquireLease(ctx, "race", holder, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						winners = append(winners, holder)
						fence = f
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: winners %v", round, winners)
			}
			if seen[fence] {
				t.Fatalf("fence %d given twice", fence)
			}
			seen[fence] = true
			if err := st.ReleaseLease(ctx, "race", winners[0], fence); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// On a Cluster, the lease, its counter and the checkpoint it fences share a
// slot: the scripts would fail with CROSSSLOT otherwise.
func TestLeaseOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("forming a cluster takes a while")
	}
	c := redistest.StartCluster(t, 3)
	st := leaseStore(c.Client(t))
	ctx := context.Background()
	for _, box := range []string{"INBOX", "Desk/Replies", "Boîte"} {
		lease := redisstore.CheckpointLease(box)
		f := mustAcquire(t, st, lease, "a", time.Minute)
		if ok, err := st.RenewLease(ctx, lease, "a", f, time.Minute); err != nil || !ok {
			t.Fatalf("renew %s: %v %v", box, ok, err)
		}
		if err := st.SaveCheckpoint(ctx, box, redisstore.Checkpoint{UIDValidity: 3, LastUID: 4, Fence: f}); err != nil {
			t.Fatalf("save %s: %v", box, err)
		}
		if cp, err := st.LoadCheckpoint(ctx, box); err != nil || cp.LastUID != 4 || cp.Fence != f {
			t.Fatalf("load %s: %+v %v", box, cp, err)
		}
		if err := st.ReleaseLease(ctx, lease, "a", f); err != nil {
			t.Fatal(err)
		}
		wantHolder(t, st, lease, "", 0)
	}
}
