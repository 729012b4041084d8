package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
)

// BenchmarkFeedFanOut measures feed writes per second: b.N notifications
// (ticket.updated by someone else) on tickets of a school whose
// structure chain has 20 referents (12 on the school, 8 on its parent),
// each notification written to the owner's and every referent's feed
// through the real job handler (load the ticket, walk the structures,
// apply the rules, write each feed exactly once with its unread count) on
// a real redis-server, with 16 jobs at once. redis-benchmark's SET with
// the same number of clients is the baseline, run right after on the same
// server. Reports: feed-writes/s, notifications/s, redis-SET/s, ratio.
func BenchmarkFeedFanOut(b *testing.B) {
	const (
		workers   = 16
		onSchool  = 12
		onParent  = 8
		tickets   = 200
		perNotify = onSchool + onParent + 1 // referents and the owner
	)
	srv := redistest.Start(b)
	cfg := benchConfig(srv.Addr, "benchfeed:")
	parent := config.Structure{ID: "academie", Name: "Académie"}
	school := config.Structure{ID: "s1", Name: "Lycée Victor Hugo", ParentID: "academie", EscalationEnabled: true}
	for i := range onSchool {
		school.Referents = append(school.Referents, config.Referent{ID: fmt.Sprintf("ref-s-%d", i), Digest: "never"})
	}
	for i := range onParent {
		parent.Referents = append(parent.Referents, config.Referent{ID: fmt.Sprintf("ref-a-%d", i), Digest: "never", Locale: "en"})
	}
	cfg.Structures = []config.Structure{parent, school}
	d := quietDaemon(b, &cfg)
	ctx := context.Background()
	d.seedStructures(ctx)
	ts := httptest.NewServer(d.handler)
	defer ts.Close()
	run := time.Now().UnixNano()
	for i := range tickets {
		req := signedRequest(ts.URL, fmt.Sprintf("fan-%d-%d", run, i), []byte(ticketCreated(fmt.Sprintf("f%d-%d", run, i), "s1")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 202 {
			b.Fatalf("create: %d", resp.StatusCode)
		}
	}
	effects := make([]bridge.Effect, b.N)
	agent := &bridge.Person{ID: "agent-desk", DisplayName: "Support"}
	for i := range b.N {
		effects[i] = bridge.Effect{ID: fmt.Sprintf("fan-%d-%d:notify:ticket.updated", run, i), Kind: bridge.EffectNotify,
			TicketID: fmt.Sprintf("f%d-%d", run, i%tickets), Notify: bridge.NotifyTicketUpdated, Actor: agent, At: time.Now()}
	}

	b.ResetTimer()
	elapsed, failed := fanOut(b.N, workers, func(i int) error { return d.worker.Handle(ctx, effects[i]) })
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d notifications failed", failed)
	}
	// Every feed got its notifications: the school's first referent is
	// notified of each one.
	unread, _, err := d.store.Notifications(ctx, "ref-s-0", true, 1)
	if err != nil || unread < b.N {
		b.Fatalf("ref-s-0 has %d unread, want at least %d (%v)", unread, b.N, err)
	}
	writes := float64(b.N*perNotify) / elapsed.Seconds()
	b.ReportMetric(writes, "feed-writes/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
	if b.N >= 1000 {
		host, port := srv.Addr[:len(srv.Addr)-len(strconv.Itoa(srv.Port))-1], strconv.Itoa(srv.Port)
		base := redisBenchmarkSET(b, host, port, workers)
		b.ReportMetric(base, "redis-SET/s")
		b.ReportMetric(writes/base, "ratio")
	}
}
