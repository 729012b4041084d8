package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/mail"
	"supportbridge/mail/compose"
)

func hkNote(id string, at time.Time) bridge.Notification {
	return bridge.Notification{ID: id, Type: bridge.NotifyTicketUpdated, TicketID: "42", Title: "t", CreatedAt: at}
}

// failingPrune fails its first prunes.
type failingPrune struct {
	*redisstore.Store
	fail int
}

func (f *failingPrune) PruneFeeds(ctx context.Context, before time.Time) (int, error) {
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("redis: connection refused")
	}
	return f.Store.PruneFeeds(ctx, before)
}

// hkBackends runs f on miniredis and on redis-server, with wait letting
// time pass for the keys' TTLs (miniredis only moves on when told).
func hkBackends(t *testing.T, f func(t *testing.T, addr string, wait func(time.Duration))) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, m.Addr(), m.FastForward)
	})
	t.Run("redis-server", func(t *testing.T) { f(t, redistest.Start(t).Addr, time.Sleep) })
}

func TestFeedPruneOncePerInterval(t *testing.T) {
	hkBackends(t, func(t *testing.T, addr string, wait func(time.Duration)) {
		ctx := context.Background()
		st := redisstore.New(redistest.Client(t, addr), redisstore.Options{Prefix: "hk:"})
		now := time.Now()
		for i, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 24 * time.Hour} {
			if err := st.AddNotification(ctx, "u1", hkNote(fmt.Sprintf("n%d", i), now.Add(-age))); err != nil {
				t.Fatal(err)
			}
		}
		const every = 300 * time.Millisecond
		replica := func(s pruneStore) *feedPruner {
			return &feedPruner{store: s, retention: 90 * 24 * time.Hour, quarantineRetention: 90 * 24 * time.Hour,
				every: every, log: slog.New(slog.DiscardHandler), now: time.Now}
		}
		// A stranger's mail quarantined long ago goes with the first prune.
		if err := st.Quarantine(ctx, bridge.QuarantinedMail{Key: "old", Reason: "sender not allowed",
			At: now.Add(-120 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		a, b := replica(st), replica(st)
		if n, ran, err := a.once(ctx); err != nil || !ran || n != 3 {
			t.Fatalf("first prune: removed %d, ran %v, %v", n, ran, err)
		}
		// Within the interval the other replica, and the same one, skip.
		if err := st.AddNotification(ctx, "u1", hkNote("n3", now.Add(-95*24*time.Hour))); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*feedPruner{b, a} {
			if _, ran, err := p.once(ctx); ran || err != nil {
				t.Fatalf("pruned again within the interval (%v)", err)
			}
		}
		wait(every + 50*time.Millisecond)
		if n, ran, err := b.once(ctx); err != nil || !ran || n != 1 {
			t.Fatalf("next interval: removed %d, ran %v, %v", n, ran, err)
		}
		unread, list, _ := st.Notifications(ctx, "u1", false, 10)
		if unread != 1 || len(list) != 1 || list[0].ID != "n2" {
			t.Fatalf("left: %d unread, %+v", unread, list)
		}

		// A failed prune gives the interval back: the next call retries.
		wait(every + 50*time.Millisecond)
		f := replica(&failingPrune{Store: st, fail: 1})
		if _, ran, err := f.once(ctx); !ran || err == nil {
			t.Fatalf("failing prune: ran %v, err %v", ran, err)
		}
		if _, ran, err := f.once(ctx); !ran || err != nil {
			t.Fatalf("retry after a failure: ran %v, err %v", ran, err)
		}
	})
}

// hkSender records alert mails and can fail.
type hkSender struct {
	mu   sync.Mutex
	sent []mail.Outgoing
	fail int
}

func (s *hkSender) Send(_ context.Context, m mail.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("smtp: 421 try later")
	}
	s.sent = append(s.sent, m)
	return nil
}

func (s *hkSender) mails() []mail.Outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail.Outgoing(nil), s.sent...)
}

func TestOperatorAlertOncePerWindow(t *testing.T) {
	st := redisstore.New(redistest.Client(t, redistest.Miniredis(t).Addr()), redisstore.Options{Prefix: "hk:"})
	sender := &hkSender{fail: 1}
	var mu sync.Mutex
	results := map[string]int{}
	replica := func(name, locale string) *alerter {
		return &alerter{store: st, sender: sender, window: time.Hour, locale: locale, instance: name,
			composer: &compose.AlertComposer{From: &netmail.Address{Address: "assistance@ent.example"}, Domain: "ent.example"},
			to:       []*netmail.Address{{Address: "ops@ent.example"}},
			log:      slog.New(slog.DiscardHandler),
			outcome:  func(r string) { mu.Lock(); results[r]++; mu.Unlock() },
			events:   make(chan deadJob, 4)}
	}
	a, b := replica("replica-a", "fr"), replica("replica-b", "en")
	ctx := context.Background()
	cb := func(id string) deadJob {
		return deadJob{job: jobqueue.Job{ID: id, Kind: "callback", TicketID: "42"}, reason: "callback: HTTP 503", at: time.Now()}
	}
	// The first send fails: the window is given back, the next dead letter
	// (on the other replica) mails.
	a.handle(ctx, cb("cb-1"))
	b.handle(ctx, cb("cb-2"))
	a.handle(ctx, cb("cb-3"))
	b.handle(ctx, cb("cb-4"))
	// Another kind has its own window.
	a.handle(ctx, deadJob{job: jobqueue.Job{ID: "esc-9", Kind: "escalate", TicketID: "43"}, reason: "smtp: 550 no such user"})
	got := sender.mails()
	if len(got) != 2 {
		t.Fatalf("%d alert mails, want 2", len(got))
	}
	if results["failed"] != 1 || results["sent"] != 2 || results["suppressed"] != 2 {
		t.Errorf("outcomes %v", results)
	}
	text := hkBody(t, got[0].Raw)
	for _, want := range []string{"Job: cb-2", "Ticket: 42", "Reason: callback: HTTP 503", "Replica: replica-b",
		"supportbridge jobs replay --config FILE --all"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
	if fr := hkBody(t, got[1].Raw); !strings.Contains(fr, "Tâche : esc-9") {
		t.Errorf("French alert:\n%s", fr)
	}

	// deadLetter never blocks: beyond the queue, alerts are dropped.
	for i := range 10 {
		a.deadLetter(jobqueue.Job{ID: fmt.Sprint(i), Kind: "callback"}, errors.New("x"))
	}
	if results["dropped"] != 6 {
		t.Errorf("%d dropped, want 6", results["dropped"])
	}
	var none *alerter
	none.deadLetter(jobqueue.Job{}, nil) // alerts off: a no-op
	<-none.start(ctx)
}

// TestServeAlertsOperatorsAndPrunesFeeds runs the daemon: callbacks to an
// ENT that is down are given up and the operators get one mail about them;
// feed entries past their retention disappear.
func TestServeAlertsOperatorsAndPrunesFeeds(t *testing.T) {
	srv := redistest.Start(t)
	smtpSrv := digStartMail(t)
	ent := &failingENT{}
	ent.failing.Store(true)
	hs := httptest.NewServer(ent)
	t.Cleanup(hs.Close)
	cfg := opsConfig(t, srv.Addr, fmt.Sprintf(`  callback_url: "%s/cb"
  callback_secret: %q
  callback_retry_schedule: [1s]`, hs.URL, testSecret), deskConfig(smtpSrv.addr)+`operators:
  emails: ["Exploitation <ops@ent.example>"]
notifications: {retention: 2s, prune_interval: 200ms}
`)
	d := startDaemon(t, cfg)
	defer d.stop(t)
	for i := range 3 {
		if a := d.post(t, nextID(), ticketCreated(fmt.Sprintf("HK%d", i), "s1")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
	}
	feed := func() (unread int, items int) {
		a := d.get(t, "/v1/users/u-ref1/notifications")
		var doc struct {
			Unread        int               `json:"unread"`
			Notifications []json.RawMessage `json:"notifications"`
		}
		if err := json.Unmarshal(a.Raw, &doc); err != nil || a.Status != 200 {
			t.Fatalf("feed: %d %s", a.Status, a.Raw)
		}
		return doc.Unread, len(doc.Notifications)
	}
	// The notifications arrive (written by jobs), then go with their
	// retention.
	waitOps(t, "feed written", 10*time.Second, func() bool { u, n := feed(); return u == 3 && n == 3 })
	smtpSrv.waitMails(t, 1, 20*time.Second)
	waitOps(t, "feed pruned", 10*time.Second, func() bool { u, n := feed(); return u == 0 && n == 0 })
	digWaitMetric(t, d, `supportbridge_operator_alerts_total{result="sent"} 1`)
	time.Sleep(2 * time.Second) // the other callbacks die meanwhile: still one mail
	if got := smtpSrv.counts(); len(got) != 1 || got["ops@ent.example"] != 1 {
		t.Fatalf("alert mails %v", got)
	}
	subject, h := digParseSubject(t, smtpSrv.mails("ops@ent.example")[0])
	if subject != "supportbridge : une tâche callback a été abandonnée, action requise" || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("alert subject %q, headers %v", subject, h.Map())
	}
	if raw := string(smtpSrv.mails("ops@ent.example")[0]); strings.Contains(raw, hs.URL) || strings.Contains(raw, testSecret) {
		t.Error("the alert shows the callback URL or a secret")
	}
}

// hkBody is the decoded text of a single-part mail.
func hkBody(t *testing.T, raw []byte) string {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(p.Body)
	return string(b)
}

// TestServeMetricsToken: with operators.metrics_tokens, /metrics wants one
// of them (an API token does not do).
func TestServeMetricsToken(t *testing.T) {
	m := redistest.Miniredis(t)
	d := startDaemon(t, writeConfig(t, m.Addr(), "operators: {metrics_tokens: [\"scrape-token-0123456789\"]}\n"))
	defer d.stop(t)
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {testToken, 401}, {"scrape-token-0123456789", 200}} {
		req, _ := http.NewRequest("GET", d.base+"/metrics", nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if a := do(t, req); a.Status != c.want {
			t.Errorf("token %q: %d, want %d", c.token, a.Status, c.want)
		}
	}
}

// TestLogDurations: durations in the JSON log read as durations, not as
// nanoseconds.
func TestLogDurations(t *testing.T) {
	var buf strings.Builder
	log := newLogger(&buf, "info")
	log.Info("x", slog.Duration("retention", 2160*time.Hour), slog.Duration("wait", 1500*time.Microsecond))
	if got := buf.String(); !strings.Contains(got, `"retention":"2160h0m0s"`) || !strings.Contains(got, `"wait":"1.5ms"`) {
		t.Errorf("log line %s", got)
	}
}

// TestReadyWaitsForStructures: a replica is not ready until the
// configuration's structures are stored (a demand for one of them would
// get unknown_structure meanwhile).
func TestReadyWaitsForStructures(t *testing.T) {
	m := redistest.Miniredis(t)
	cfg, err := config.Load(writeConfig(t, m.Addr(), ""), getenvWith(map[string]string{"SB_TEST_SECRET": testSecret}))
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	ctx := context.Background()
	if err := d.ready(ctx); err == nil || !strings.Contains(err.Error(), "structures") {
		t.Errorf("ready before the structures are stored: %v", err)
	}
	d.seedStructures(ctx)
	if err := d.ready(ctx); err != nil {
		t.Errorf("ready after: %v", err)
	}
}
