package redisstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// TestWaitReplicas: with WaitReplicas, a change is answered once a replica
// holds it; while the replica is stalled the change fails with
// ErrNotReplicated (what of it reached the master stays there), reads
// still answer, and the retry once the replica is back succeeds, held by
// the replica too.
func TestWaitReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, redistest.WithReplicaOf(master.Addr))
	redistest.WaitReplicas(t, master.Addr, 1)
	mc := redistest.Client(t, master.Addr)
	rc := redistest.Client(t, replica.Addr)
	ctx := context.Background()

	st := redisstore.New(mc, redisstore.Options{Prefix: "sbwait:", WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	svc := bridge.NewService(st)
	now := time.Now()
	mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
	mustApply(t, svc, createdEvent("T1", "s1", now), bridge.Applied)
	// Acknowledged, so on the replica already: no sleep needed to see it.
	if n, err := rc.Exists(ctx, "sbwait:{t:T1}:doc").Result(); err != nil || n != 1 {
		t.Fatalf("replica after an acknowledged change: exists=%d, %v", n, err)
	}

	// The replica stops reading its master for 2 s.
	stalled := make(chan error, 1)
	go func() { stalled <- rc.Do(ctx, "debug", "sleep", "2").Err() }()
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	_, err := svc.Apply(ctx, createdEvent("T2", "s1", now))
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("change while the replica is stalled: %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("the failed change took %v; the wait is 300ms", d)
	}
	// The read API does not wait for the replicas.
	if _, err := svc.Ticket(ctx, "T1"); err != nil {
		t.Fatalf("read while the replica is stalled: %v", err)
	}
	if err := <-stalled; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	// The sender's retry: whatever of it reached the master before, it
	// is answered now, and the replica holds it.
	if got, err := svc.Apply(ctx, createdEvent("T2", "s1", now)); err != nil || (got != bridge.Applied && got != bridge.Duplicate) {
		t.Fatalf("retry once the replica is back: %s, %v", got, err)
	}
	if n, err := rc.Exists(ctx, "sbwait:{t:T2}:doc").Result(); err != nil || n != 1 {
		t.Fatalf("replica after the retry: exists=%d, %v", n, err)
	}
}

// TestWaitReplicasWithoutReplica: asked to wait for a replica that does
// not exist, every change fails after the wait, none is answered as if it
// were safe.
func TestWaitReplicasWithoutReplica(t *testing.T) {
	srv := redistest.Start(t)
	var told atomic.Int64
	st := redisstore.New(redistest.Client(t, srv.Addr), redisstore.Options{Prefix: "sbwait:", WaitReplicas: 1,
		WaitTimeout: 100 * time.Millisecond, OnNotReplicated: func() { told.Add(1) }})
	svc := bridge.NewService(st)
	if _, err := svc.Apply(context.Background(), structureEvent("s1", true)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Apply(context.Background(), createdEvent("T1", "s1", time.Now())); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("change with no replica: %v, want ErrNotReplicated", err)
	}
	if told.Load() == 0 {
		t.Fatal("OnNotReplicated was not told")
	}
}
