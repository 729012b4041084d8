package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge/redisstore/redistest"
)

// TestSentinelFailover runs the daemon on a Sentinel group (a master, its
// replica, one Sentinel), cuts the replica off, sends a webhook, kills the
// master with SIGKILL and lets the Sentinel promote the replica; a new
// replica of the new master is then started. (Not the old master
// restarted empty: a later failover could promote it and wipe the rest —
// one run here saw the Sentinel do just that.) The ENT retries what was
// not acknowledged. Every webhook answered 2xx must then be on the new
// master.
//
// With redis.wait_replicas 1 the webhook sent while the replica is cut off
// is answered 503 (no replica holds it), retried after the failover (once
// the new master has a replica again), and nothing is lost. With 0 it is
// answered 202 and lost in the failover: the second sub-test shows the
// check catching that, so it can fail.
func TestSentinelFailover(t *testing.T) {
	t.Run("wait_replicas 1: nothing acknowledged is lost", func(t *testing.T) {
		lost, cutOff := sentinelFailover(t, 1)
		if cutOff != http.StatusServiceUnavailable {
			t.Errorf("webhook while no replica holds it: %d, want 503", cutOff)
		}
		if len(lost) > 0 {
			t.Fatalf("acknowledged and lost in the failover: %v", lost)
		}
	})
	t.Run("wait_replicas 0: the check sees the loss", func(t *testing.T) {
		lost, cutOff := sentinelFailover(t, 0)
		if cutOff != http.StatusAccepted {
			t.Fatalf("webhook while no replica holds it: %d, want 202 (nothing waits)", cutOff)
		}
		if len(lost) != 1 {
			t.Fatalf("lost %v, want the one webhook sent while the replica was cut off", lost)
		}
		t.Logf("acknowledged and lost without wait_replicas, as expected: %v", lost)
	})
}

// sentinelFailover plays the scenario with wait_replicas and returns the
// tickets acknowledged but missing on the new master, and the answer to
// the webhook sent while the replica was cut off.
func sentinelFailover(t *testing.T, wait int) (lost []string, cutOffStatus int) {
	master := redistest.Start(t)
	replica := redistest.Start(t, redistest.WithReplicaOf(master.Addr))
	redistest.WaitReplicas(t, master.Addr, 1)
	// Down after 3 s of silence: shorter, a loaded machine makes the
	// Sentinel see a healthy master down.
	sentinel := redistest.StartSentinel(t, "mymaster", master.Addr, 1, 3*time.Second)

	const prefix = "sent:"
	cfg := benchConfig(sentinel.Addr, prefix)
	cfg.Redis.MasterName = "mymaster"
	cfg.Redis.WaitReplicas = wait
	cfg.Redis.WaitTimeout = 300 * time.Millisecond
	cfg.Redis.ReadTimeout = time.Second
	cfg.Redis.DialTimeout = time.Second
	ts := httptest.NewServer(quietDaemon(t, &cfg).handler)
	t.Cleanup(ts.Close)

	run := time.Now().UnixNano()
	acked := map[string]bool{}
	post := func(ticket string) int {
		code, err := postTicketCreated(ts.URL, ticket)
		if err != nil {
			return 0 // the ENT sees no answer and retries
		}
		if code/100 == 2 {
			acked[ticket] = true
		}
		return code
	}
	// The ENT's retry: the same webhook until it is acknowledged.
	retry := func(ticket string) {
		deadline := time.Now().Add(90 * time.Second)
		for post(ticket)/100 != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("webhook for %s never acknowledged", ticket)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := range 10 {
		retry(fmt.Sprintf("A%d-%d", run, i))
	}

	// The replica freezes for 2 s and the master drops its link: until
	// it wakes, nothing the master writes reaches it.
	rc := redistest.Client(t, replica.Addr)
	frozen := make(chan error, 1)
	go func() { frozen <- rc.Do(context.Background(), "debug", "sleep", "2").Err() }()
	time.Sleep(100 * time.Millisecond)
	mc := redistest.Client(t, master.Addr)
	if err := mc.Do(context.Background(), "client", "kill", "type", "replica").Err(); err != nil {
		t.Fatalf("drop the replica's link: %v", err)
	}
	cutOff := fmt.Sprintf("B%d", run)
	cutOffStatus = post(cutOff)
	master.Kill()
	if err := <-frozen; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		addr, err := sentinel.Master(ctx)
		if err == nil && addr == replica.Addr {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no failover to %s: master %q, %v", replica.Addr, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A replica for the new master, so that writes can be acknowledged
	// again.
	redistest.Start(t, redistest.WithReplicaOf(replica.Addr))
	if !acked[cutOff] {
		retry(cutOff)
	}
	for i := range 5 {
		retry(fmt.Sprintf("C%d-%d", run, i))
	}

	for ticket := range acked {
		n, err := rc.Exists(context.Background(), prefix+"{t:"+ticket+"}:doc").Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		if n != 1 {
			lost = append(lost, ticket)
		}
	}
	return lost, cutOffStatus
}

// TestReadyzCountsReplicas: with wait_replicas, /readyz says unavailable,
// and why, while fewer replicas are online than every acknowledgement
// waits for.
func TestReadyzCountsReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, redistest.WithReplicaOf(master.Addr))
	redistest.WaitReplicas(t, master.Addr, 1)
	cfg := benchConfig(master.Addr, "ready:")
	cfg.Redis.WaitReplicas = 1
	cfg.Redis.WaitTimeout = 200 * time.Millisecond
	ts := httptest.NewServer(quietDaemon(t, &cfg).handler)
	t.Cleanup(ts.Close)
	readyz := func() (int, string) {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("with its replica: %d %s", code, body)
	}
	// One webhook while the replica is online is acknowledged.
	if code := postStatus(t, ts.URL, "R1"); code != http.StatusAccepted {
		t.Fatalf("webhook with the replica: %d", code)
	}
	replica.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := readyz()
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "0 of 1 replicas online") {
				t.Fatalf("reason: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica stopped, still %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Without it, webhooks get 503 and the metric counts the round trip
	// that fell short.
	if code := postStatus(t, ts.URL, "R2"); code != http.StatusServiceUnavailable {
		t.Fatalf("webhook without the replica: %d, want 503", code)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^supportbridge_redis_not_replicated_total [1-9]`).Match(b) {
		t.Fatalf("metrics do not count the failed wait:\n%s", b)
	}
}

// postStatus posts a signed ticket.created webhook and returns the status.
func postStatus(t *testing.T, base, ticket string) int {
	t.Helper()
	code, err := postTicketCreated(base, ticket)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// postTicketCreated posts a signed ticket.created webhook for ticket (its
// webhook-id derived from it) and returns the status.
func postTicketCreated(base, ticket string) (int, error) {
	resp, err := http.DefaultClient.Do(signedRequest(base, "wh-"+ticket, []byte(ticketCreated(ticket, "s1"))))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestOnlineReplicas(t *testing.T) {
	info := "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n" +
		"slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0\r\n" +
		"slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n" +
		"slave2:ip=127.0.0.1,port=7003,state=online,offset=42,lag=1\r\n" +
		"master_failover_state:no-failover\r\n"
	if n := onlineReplicas(info); n != 2 {
		t.Fatalf("online replicas %d, want 2", n)
	}
	if n := onlineReplicas("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"); n != 0 {
		t.Fatalf("online replicas %d, want 0", n)
	}
}
