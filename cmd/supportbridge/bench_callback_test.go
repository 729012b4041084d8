package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// cbWaiter is an ENT that signals each callback's arrival.
type cbWaiter struct {
	mu     sync.Mutex
	bodies [][]byte
	got    chan struct{}
}

func (c *cbWaiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, body)
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *cbWaiter) has(needle []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bodies {
		if bytes.Contains(b, needle) {
			return true
		}
	}
	return false
}

// BenchmarkReplyToCallback measures the whole loop of a desk reply, end to
// end: from its delivery into a real Dovecot to the ENT receiving the
// ticket.desk_replied callback, through the daemon in its own process with
// its default settings (IDLE, jobs polled every 200ms) on a real
// redis-server. Reports the median and p99 in milliseconds; the target is
// a median under 1 s.
func BenchmarkReplyToCallback(b *testing.B) {
	dc := mailtest.StartDovecot(b)
	srv := redistest.Start(b)
	desk := mailtest.StartSMTPSink(b)
	ent := &cbWaiter{got: make(chan struct{}, 1)}
	hs := httptest.NewServer(ent)
	b.Cleanup(hs.Close)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
instance_id: bench
redis: {addrs: [%q], key_prefix: "cbl:"}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}"]
  api_tokens: [%q]
  callback_url: %q
  callback_secret: %q
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: never}]}
%s%s`, srv.Addr, testToken, hs.URL+"/cb", testSecret, deskConfig(desk.Addr), imapConfig(dc))
	path := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	d := startChild(b, path).daemon()
	if a := d.post(b, nextID(), ticketCreated("CBL", "s1")); a.Status != 202 {
		b.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := d.post(b, nextID(), escalation("CBL")); a.Status != 202 {
		b.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	rssWait(b, d, "CBL", 20*time.Second, func(a answer) bool { return escalationStatus(a) == "successful" })
	time.Sleep(time.Second) // the reader is connected and idle

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf("Réponse numéro %d du support.", i)
		needle := []byte(body)
		start := time.Now()
		dc.Deliver(b, deskReply("julie@desk.example", "RE: [ENT-CBL] écran", "", body))
		for !ent.has(needle) {
			select {
			case <-ent.got:
			case <-time.After(30 * time.Second):
				b.Fatalf("no ticket.desk_replied callback for reply %d", i)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
}
