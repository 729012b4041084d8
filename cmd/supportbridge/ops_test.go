package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/mail/imapreader"
)

// opsConfig writes a configuration for the ops tests; ent adds keys to the
// ent section, extra whole sections.
func opsConfig(t *testing.T, redisAddr, ent, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log_level: debug
instance_id: ops-test
redis: {addrs: [%q], key_prefix: "ops:", dial_timeout: 1s}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}"]
  api_tokens: [%q]
%s
jobs: {poll_interval: 50ms}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: daily}]}
%s`, redisAddr, testToken, ent, extra)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var opsEnv = getenvWith(map[string]string{"SB_TEST_SECRET": testSecret})

// opsResult is what one run of a command printed and returned.
type opsResult struct {
	stdout, stderr string
	code           int // the exit status main would use
}

func (r opsResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func runOps(t *testing.T, args ...string) opsResult {
	t.Helper()
	var out, errb syncBuffer
	err := run(context.Background(), append([]string{"supportbridge"}, args...), opsEnv, &out, &errb)
	r := opsResult{stdout: out.String(), stderr: errb.String()}
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.code
	default:
		r.code = 1
		r.stderr += err.Error()
	}
	return r
}

// mustOps runs a command that must succeed.
func mustOps(t *testing.T, args ...string) opsResult {
	t.Helper()
	r := runOps(t, args...)
	if r.code != 0 {
		t.Fatalf("%v: %s", args, r)
	}
	return r
}

// opsJSON runs a command with --json and decodes its one document.
func opsJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := mustOps(t, append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v: not JSON: %v\n%s", args, err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("%v: more than one JSON document:\n%s", args, r.stdout)
	}
}

type jobsDoc struct {
	State string    `json:"state"`
	Jobs  []jobView `json:"jobs"`
}

type statusDoc = deploymentStatus

// failingENT is the ENT's callback endpoint: while failing it drops the
// connection (an error that quotes the URL, secret token included), then
// it records what it got.
type failingENT struct {
	failing  atomic.Bool
	mu       sync.Mutex
	received []string // webhook-id of each callback answered 2xx
}

func (f *failingENT) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.failing.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	f.received = append(f.received, r.Header.Get("webhook-id"))
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *failingENT) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

func waitOps(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOpsJobs: callbacks to an ENT that fails are retried once and
// dead-lettered; the ops commands list them (retrying, then dead), and
// once the ENT is fixed a replay delivers every one of them.
func TestOpsJobs(t *testing.T) {
	srv := redistest.Start(t)
	ent := &failingENT{}
	ent.failing.Store(true)
	hs := httptest.NewServer(ent)
	t.Cleanup(hs.Close)
	const urlToken = "tok-in-the-callback-url-0042"
	cfg := opsConfig(t, srv.Addr, fmt.Sprintf(`  callback_url: "%s/cb?token=%s"
  callback_secret: %q
  callback_retry_schedule: [2s]`, hs.URL, urlToken, testSecret), "")

	if r := mustOps(t, "jobs", "list", "--config", cfg); !strings.Contains(r.stdout, "no dead job") {
		t.Errorf("empty deployment: %s", r)
	}
	d := startDaemon(t, cfg)
	const tickets = 12 // one replayed alone, the rest enough for a progress report
	for i := range tickets {
		if a := d.post(t, nextID(), ticketCreated(fmt.Sprintf("J%d", i), "s1")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
	}

	// First failure: the callbacks wait for their one retry.
	var retrying jobsDoc
	waitOps(t, "retrying callbacks", 20*time.Second, func() bool {
		opsJSON(t, &retrying, "jobs", "list", "--retry", "--config", cfg)
		return len(retrying.Jobs) > 0
	})
	if j := retrying.Jobs[0]; retrying.State != "retry" || j.Kind != "callback" || j.NextRunAt.IsZero() {
		t.Errorf("retrying job %+v", retrying)
	}

	// Then dead: one notification.created callback per ticket at least.
	var st statusDoc
	waitOps(t, "dead callbacks", 30*time.Second, func() bool {
		opsJSON(t, &st, "status", "--config", cfg)
		q := st.Queue
		return q.Dead >= tickets && q.Pending+q.Active+q.Retry == 0
	})
	var dead jobsDoc
	opsJSON(t, &dead, "jobs", "list", "--dead", "--config", cfg)
	if len(dead.Jobs) != st.Queue.Dead || dead.State != "dead" {
		t.Errorf("%d dead jobs listed, status counts %d", len(dead.Jobs), st.Queue.Dead)
	}
	perTicket := map[string]bool{}
	for _, j := range dead.Jobs {
		if j.Kind != "callback" || j.State != "archived" || j.Retried != 1 || j.FailedAt.IsZero() {
			t.Errorf("dead job %+v", j)
		}
		// The callback client keeps the URL out of its errors; the ops
		// scrubbing stays as a second guard.
		if j.LastError == "" || strings.Contains(j.LastError, urlToken) {
			t.Errorf("last error not scrubbed: %q", j.LastError)
		}
		perTicket[j.TicketID] = true
	}
	if len(perTicket) != tickets {
		t.Errorf("dead jobs for %d tickets, want %d: %+v", len(perTicket), tickets, dead.Jobs)
	}
	table := mustOps(t, "jobs", "list", "--config", cfg)
	for _, want := range []string{"ID", "KIND", "TICKET", "LAST ERROR", dead.Jobs[0].ID, "callback", "J3",
		fmt.Sprintf("%d dead job(s)", len(dead.Jobs))} {
		if !strings.Contains(table.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, table.stdout)
		}
	}
	for _, secret := range []string{urlToken, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if strings.Contains(table.stdout+table.stderr, secret) {
			t.Errorf("a secret is shown: %q", secret)
		}
	}
	if r := mustOps(t, "status", "--config", cfg); !strings.Contains(r.stdout, "dead jobs need an operator") {
		t.Errorf("status table: %s", r)
	}

	// Replaying what does not exist, or nothing, fails clearly.
	if r := runOps(t, "jobs", "replay", "--config", cfg, "no-such-job"); r.code != 1 || !strings.Contains(r.stderr, "no-such-job: no such job") {
		t.Errorf("unknown id: %s", r)
	}
	if r := runOps(t, "jobs", "replay", "--config", cfg); r.code != 2 || !strings.Contains(r.stderr, "--all") {
		t.Errorf("no ids: %s", r)
	}
	if r := runOps(t, "jobs", "replay", "--all", "--config", cfg, dead.Jobs[0].ID); r.code != 2 {
		t.Errorf("--all and ids: %s", r)
	}

	// One by id, then the rest with --all once the ENT is fixed.
	ent.failing.Store(false)
	first := dead.Jobs[0].ID
	if r := mustOps(t, "jobs", "replay", "--config", cfg, first); !strings.Contains(r.stdout, "replayed 1/1") {
		t.Errorf("replay one: %s", r)
	}
	waitOps(t, "the replayed callback", 20*time.Second, func() bool { return len(ent.ids()) >= 1 })
	if got := ent.ids(); got[0] != first {
		t.Errorf("delivered %v, want %s first", got, first)
	}
	rest := len(dead.Jobs) - 1
	r := mustOps(t, "jobs", "replay", "--all", "--config", cfg)
	if want := fmt.Sprintf("replayed %d/%d job(s)", rest, rest); !strings.Contains(r.stdout, want) {
		t.Errorf("replay all: want %q in %s", want, r)
	}
	// A long replay shows its progress on the way.
	if want := fmt.Sprintf("replayed %d/%d…", rest, rest); !strings.Contains(r.stderr, want) ||
		strings.Count(r.stderr, "replayed ") < 2 {
		t.Errorf("replay progress: want %q and steps before it in %s", want, r)
	}
	waitOps(t, "every replayed callback", 30*time.Second, func() bool { return len(ent.ids()) >= len(dead.Jobs) })
	got, want := ent.ids(), []string{}
	for _, j := range dead.Jobs {
		want = append(want, j.ID)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v\nwant %v", got, want)
	}
	waitOps(t, "an empty dead letter list", 10*time.Second, func() bool {
		return strings.Contains(mustOps(t, "jobs", "list", "--config", cfg).stdout, "no dead job")
	})
	var replayed struct {
		Replayed []string        `json:"replayed"`
		Failed   []replayFailure `json:"failed"`
	}
	opsJSON(t, &replayed, "jobs", "replay", "--all", "--config", cfg)
	if len(replayed.Replayed) != 0 || len(replayed.Failed) != 0 {
		t.Errorf("nothing left to replay: %+v", replayed)
	}
}

// opsDaemon builds the daemon's parts in the test, as the commands do,
// to put state in Redis without serving.
func opsDaemon(t *testing.T, cfgPath string) *daemon {
	t.Helper()
	cfg, err := config.Load(cfgPath, opsEnv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, newLogger(&syncBuffer{}, "warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

type quarantineDoc struct {
	Mails []quarantinedView `json:"mails"`
}

// TestOpsQuarantineTicketStatus: mails quarantined by the inbound processor
// are listed, one is assigned to a ticket (once, however often it is
// assigned), one that was never downloaded can only be discarded; the
// ticket then shows the reply in its timeline, and the status follows.
// No daemon runs: the jobs the commands cause stay pending, which shows
// that the commands start no worker, and neither the HTTP listener nor the
// IMAP reader.
func TestOpsQuarantineTicketStatus(t *testing.T) {
	srv := redistest.Start(t)
	imapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var imapDials atomic.Int32
	go func() {
		for {
			c, err := imapLn.Accept()
			if err != nil {
				return
			}
			imapDials.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { imapLn.Close() })
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	cfg := opsConfig(t, srv.Addr, "", deskConfig("127.0.0.1:1")+fmt.Sprintf(
		"imap: {addr: %q, tls: none, username: u, password: imap-password-42}\n", imapLn.Addr()))
	// The HTTP address is taken: a command that tried to serve would fail.
	cfgText, _ := os.ReadFile(cfg)
	_ = os.WriteFile(cfg, []byte(strings.Replace(string(cfgText), "listen: 127.0.0.1:0", "listen: "+busy.Addr().String(), 1)), 0o600)

	ctx := context.Background()
	d := opsDaemon(t, cfg)
	d.seedStructures(ctx)
	if _, err := d.svc.Apply(ctx, bridge.Event{ID: "ev-q1", Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: "Q1", StructureID: "s1", Owner: bridge.Person{ID: "u-owner", DisplayName: "Léa Dupont", Email: "lea@school.example"},
		Category: bridge.Category{App: "pronote", Label: "Pronote"}, Subject: "Écran blanc dans Pronote",
		Description: "Depuis ce matin, la page reste blanche.", Locale: "fr", CreatedAt: time.Now().Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if r := mustOps(t, "quarantine", "list", "--config", cfg); !strings.Contains(r.stdout, "no quarantined mail") {
		t.Errorf("empty quarantine: %s", r)
	}

	// A stranger's answer (kept raw) and a mail too large to download.
	proc, err := newInboundProcessor(d.cfg, d.log, d.svc, d.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := deskReply("Inconnu <stranger@elsewhere.example>", "Re: [ENT-Q1] Écran blanc dans Pronote", "",
		"Videz le cache du navigateur, puis reconnectez-vous.")
	v, err := proc.Handle(ctx, imapreader.FetchedMessage{UID: 7, UIDValidity: 77, Size: int64(len(raw)), Raw: raw})
	if err != nil || v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("stranger's mail: %+v %v", v, err)
	}
	if v, err := proc.Handle(ctx, imapreader.FetchedMessage{UID: 8, UIDValidity: 77, Size: 50 << 20, TooLarge: true}); err != nil ||
		v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("large mail: %+v %v", v, err)
	}
	// A subject that would drive the operator's terminal.
	if err := d.store.Quarantine(ctx, bridge.QuarantinedMail{Key: "esc-subject", From: "x@elsewhere.example",
		Subject: "hello \x1b[2J\x1b]0;pwned\x07", Reason: "no ticket matched", At: time.Now(), Size: 1200}); err != nil {
		t.Fatal(err)
	}

	var q quarantineDoc
	opsJSON(t, &q, "quarantine", "list", "--config", cfg)
	if len(q.Mails) != 3 {
		t.Fatalf("quarantine %+v", q)
	}
	byReason := map[string]quarantinedView{}
	for _, m := range q.Mails {
		byReason[strings.SplitN(m.Reason, " (", 2)[0]] = m
	}
	stranger, large := byReason["sender not allowed"], byReason["too large"]
	if !stranger.Kept || stranger.From != "stranger@elsewhere.example" || stranger.Key == "" ||
		!strings.Contains(stranger.Subject, "[ENT-Q1]") || stranger.Size != int64(len(raw)) {
		t.Errorf("stranger's mail %+v", stranger)
	}
	if large.Kept || large.Key == "" || large.Size != 50<<20 {
		t.Errorf("large mail %+v", large)
	}
	table := mustOps(t, "quarantine", "list", "--config", cfg)
	for _, want := range []string{"KEY", "RECEIVED", "FROM", "SUBJECT", "REASON", "SIZE", stranger.Key, large.Key,
		"stranger@elsewhere.example", "sender not allowed", "too large", "50.0 MiB", "3 quarantined mail(s)"} {
		if !strings.Contains(table.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, table.stdout)
		}
	}
	if strings.ContainsAny(table.stdout, "\x1b\x07") {
		t.Errorf("control characters reach the terminal: %q", table.stdout)
	}

	var st statusDoc
	opsJSON(t, &st, "status", "--config", cfg)
	if st.Quarantined != 3 || st.Queue.Pending == 0 || st.IMAP.Mailbox != "INBOX" || !st.IMAP.Configured ||
		st.IMAP.LeaseHolder != "" || st.IMAP.Checkpoint != nil {
		t.Errorf("status before: %+v", st)
	}
	pending := st.Queue.Pending

	// Assign: clear refusals first, and nothing changes.
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown ticket", []string{stranger.Key, "NOPE"}, 1, `ticket "NOPE" does not exist`},
		{"never downloaded", []string{large.Key, "Q1"}, 1, "quarantined without being downloaded"},
		{"unknown key", []string{"no-such-key", "Q1"}, 1, `no quarantined mail has the key "no-such-key"`},
		{"missing ticket id", []string{stranger.Key}, 2, "give the mail's key and the ticket id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runOps(t, append([]string{"quarantine", "assign", "--config", cfg}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit %d and %q: %s", tc.code, tc.want, r)
			}
		})
	}
	opsJSON(t, &q, "quarantine", "list", "--config", cfg)
	if len(q.Mails) != 3 {
		t.Fatalf("a refused assignment changed the quarantine: %+v", q)
	}

	r := mustOps(t, "quarantine", "assign", "--config", cfg, stranger.Key, "Q1")
	if !strings.Contains(r.stdout, "applied to ticket Q1") {
		t.Errorf("assign: %s", r)
	}
	view, err := d.svc.Ticket(ctx, "Q1")
	if err != nil {
		t.Fatal(err)
	}
	var desk []bridge.Exchange
	for _, x := range view.Exchanges {
		if x.Origin == bridge.OriginDesk {
			desk = append(desk, x)
		}
	}
	if len(desk) != 1 || !strings.Contains(desk[0].Body, "Videz le cache") || strings.Contains(desk[0].Body, "a écrit") ||
		desk[0].Author.Email != "stranger@elsewhere.example" {
		t.Fatalf("desk exchanges after assign: %+v", view.Exchanges)
	}
	opsJSON(t, &q, "quarantine", "list", "--config", cfg)
	for _, m := range q.Mails {
		if m.Key == stranger.Key {
			t.Errorf("assigned mail still quarantined: %+v", q)
		}
	}

	// Assigned again after a crash between the apply and the removal: the
	// reply is not added twice.
	if err := d.store.Quarantine(ctx, stranger.QuarantinedMail); err != nil {
		t.Fatal(err)
	}
	var again struct {
		Key      string `json:"key"`
		TicketID string `json:"ticket_id"`
		Outcome  string `json:"outcome"`
	}
	opsJSON(t, &again, "quarantine", "assign", "--config", cfg, stranger.Key, "Q1")
	if again.Outcome != string(bridge.Duplicate) || again.TicketID != "Q1" {
		t.Errorf("second assignment: %+v", again)
	}
	if view, _ = d.svc.Ticket(ctx, "Q1"); len(view.Exchanges) != 1 {
		t.Errorf("exchanges after a second assignment: %+v", view.Exchanges)
	}
	if r := runOps(t, "quarantine", "assign", "--config", cfg, stranger.Key, "Q1"); r.code != 1 {
		t.Errorf("assigning a mail no longer quarantined: %s", r)
	}

	// Discard.
	for _, key := range []string{large.Key, "esc-subject"} {
		if r := mustOps(t, "quarantine", "discard", "--config", cfg, key); !strings.Contains(r.stdout, "discarded") {
			t.Errorf("discard: %s", r)
		}
	}
	if r := runOps(t, "quarantine", "discard", "--config", cfg, large.Key); r.code != 1 || !strings.Contains(r.stderr, "no quarantined mail") {
		t.Errorf("discard twice: %s", r)
	}
	if r := mustOps(t, "quarantine", "list", "--config", cfg); !strings.Contains(r.stdout, "no quarantined mail") {
		t.Errorf("after discards: %s", r)
	}

	// The ticket with its timeline.
	show := mustOps(t, "ticket", "show", "--config", cfg, "Q1")
	for _, want := range []string{"ticket Q1: Écran blanc dans Pronote", "status", "new", "Léa Dupont <lea@school.example>",
		"escalation", "not_done", "Depuis ce matin", "exchanges (1)", "desk", "Videz le cache", "timeline (",
		"created", "desk_replied"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("ticket show lacks %q:\n%s", want, show.stdout)
		}
	}
	if _, timeline, _ := strings.Cut(show.stdout, "timeline ("); strings.Index(timeline, "created") > strings.Index(timeline, "desk_replied") {
		t.Errorf("timeline out of order:\n%s", show.stdout)
	}
	var tv bridge.TicketView
	r = mustOps(t, "ticket", "show", "Q1", "--config", cfg, "--json") // flags after the id too
	if err := json.Unmarshal([]byte(r.stdout), &tv); err != nil {
		t.Fatalf("ticket show --json: %v\n%s", err, r.stdout)
	}
	if tv.ID != "Q1" || len(tv.Exchanges) != 1 || len(tv.Events) < 2 ||
		!sort.SliceIsSorted(tv.Events, func(i, j int) bool { return tv.Events[i].At.Before(tv.Events[j].At) }) {
		t.Errorf("ticket json %+v", tv)
	}
	types := map[bridge.TimelineKind]bool{}
	for _, e := range tv.Events {
		types[e.Type] = true
	}
	if !types["desk_replied"] {
		t.Errorf("events %+v", tv.Events)
	}
	if r := runOps(t, "ticket", "show", "--config", cfg, "NOPE"); r.code != 1 || !strings.Contains(r.stderr, `ticket "NOPE" does not exist`) {
		t.Errorf("unknown ticket: %s", r)
	}

	// The poller as a replica leaves it in Redis.
	fence, ok, err := d.store.AcquireLease(ctx, redisstore.CheckpointLease("INBOX"), "replica-a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	written := time.Now().Add(-90 * time.Second)
	if err := d.store.SaveCheckpoint(ctx, "INBOX", redisstore.Checkpoint{UIDValidity: 77, LastUID: 41, Fence: fence,
		UpdatedAt: written}); err != nil {
		t.Fatal(err)
	}
	opsJSON(t, &st, "status", "--config", cfg)
	cp := st.IMAP.Checkpoint
	if st.IMAP.LeaseHolder != "replica-a" || st.IMAP.LeaseFence != fence || cp == nil || cp.UIDValidity != 77 ||
		cp.LastUID != 41 || cp.Fence != fence || cp.AgeSeconds < 89 || cp.AgeSeconds > 600 || st.Quarantined != 0 {
		t.Errorf("status after: %+v %+v", st, cp)
	}
	// No worker ran: the jobs of the ticket and of the reply still wait.
	if st.Queue.Pending <= pending || st.Queue.Active != 0 {
		t.Errorf("queue %+v (pending before the assignment: %d)", st.Queue, pending)
	}
	table = mustOps(t, "status", "--config", cfg)
	for _, want := range []string{"pending", "dead", "imap poller", "replica-a (fence", "uidvalidity 77, last uid 41",
		"ago", "quarantined mails"} {
		if !strings.Contains(table.stdout, want) {
			t.Errorf("status table lacks %q:\n%s", want, table.stdout)
		}
	}
	if strings.Contains(table.stdout+table.stderr, "imap-password-42") {
		t.Error("a secret is shown")
	}
	if n := imapDials.Load(); n != 0 {
		t.Errorf("the commands dialled the IMAP server %d times", n)
	}
}

// TestOpsBadInvocations: usage errors exit 2 with the usage; a Redis that
// does not answer exits 1 with a clear message. No Redis is needed.
func TestOpsBadInvocations(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there any more
	cfg := opsConfig(t, down, "", "")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"jobs alone", []string{"jobs"}, 2, "usage:"},
		{"unknown jobs subcommand", []string{"jobs", "purge", "--config", cfg}, 2, `unknown subcommand "purge"`},
		{"no config", []string{"jobs", "list"}, 2, "--config FILE is required"},
		{"dead and retry", []string{"jobs", "list", "--dead", "--retry", "--config", cfg}, 2, "exclude each other"},
		{"unknown flag", []string{"status", "--config", cfg, "--verbose"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"status", "--config", cfg, "extra"}, 2, `unexpected argument "extra"`},
		{"quarantine alone", []string{"quarantine"}, 2, "usage:"},
		{"discard without key", []string{"quarantine", "discard", "--config", cfg}, 2, "give the key of one mail"},
		{"ticket without id", []string{"ticket", "show", "--config", cfg}, 2, "give one ticket id"},
		{"missing config file", []string{"status", "--config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "none.yaml"},
		{"redis down", []string{"status", "--config", cfg}, 1, "redis " + down + " unreachable"},
		{"redis down, list", []string{"quarantine", "list", "--config", cfg}, 1, "unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runOps(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Errorf("want exit %d and %q on stderr: %s", tc.code, tc.want, r)
			}
		})
	}
}

func TestOpsFlagsAnywhere(t *testing.T) {
	cases := []struct {
		args     []string
		wantRest []string
		wantJSON bool
	}{
		{[]string{"--config", "f", "a", "b"}, []string{"a", "b"}, false},
		{[]string{"a", "--json", "--config", "f", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "b", "--config=f", "--json"}, []string{"a", "b"}, true},
		{[]string{"--config", "f", "--", "-x", "--json"}, []string{"-x", "--json"}, false},
	}
	for _, tc := range cases {
		f := newOpsFlags("test", &syncBuffer{})
		rest, err := f.parse(tc.args)
		if err != nil || strings.Join(rest, " ") != strings.Join(tc.wantRest, " ") || *f.json != tc.wantJSON || *f.config != "f" {
			t.Errorf("%v: rest %v json %v config %q err %v", tc.args, rest, *f.json, *f.config, err)
		}
	}
}

func TestReplayProgressSteps(t *testing.T) {
	for _, tc := range []struct{ total, step int }{{0, 0}, {9, 0}, {10, 1}, {25, 2}, {1000, 100}} {
		if got := replayProgress(tc.total); got != tc.step {
			t.Errorf("replayProgress(%d) = %d, want %d", tc.total, got, tc.step)
		}
	}
}

func TestTerminalSafeText(t *testing.T) {
	cases := []struct {
		in        string
		keepLines bool
		want      string
	}{
		{"Écran blanc", false, "Écran blanc"},
		{"a\x1b[2Jb\x07", false, "a [2Jb "},
		{"one\ntwo\tthree\r", true, "one\ntwo\tthree "},
		{"one\ntwo", false, "one two"},
		{"\u202Egnp.exe", false, " gnp.exe"},
		{"bad\xffbyte", false, "bad\uFFFDbyte"},
	}
	for _, tc := range cases {
		if got := terminalSafe(tc.in, tc.keepLines); got != tc.want {
			t.Errorf("terminalSafe(%q, %v) = %q, want %q", tc.in, tc.keepLines, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{{"  a\n  b ", 10, "a b"}, {"abcdef", 4, "abc…"}, {"Écrans", 5, "Écra…"}, {"", 5, "-"}, {"\x1b", 5, "-"}} {
		if got := tableCell(tc.in, tc.max); got != tc.want {
			t.Errorf("tableCell(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestSecretScrubber(t *testing.T) {
	cfg := &config.Config{}
	cfg.ENT.CallbackURL = "https://bridge:pw-in-url@ent.example/cb?token=query-secret"
	cfg.SMTP.Password = "smtp-password"
	cfg.Redis.Password = "redis-pass"
	cfg.ENT.APITokens = []config.Secret{"tok-0123456789abcdef", "tok-0123456789abcdef-longer"}
	cfg.Operators.MetricsTokens = []config.Secret{"metrics-0123456789"}
	cfg.ENT.CallbackExtraSecrets = []config.Secret{"whsec_extra-callback"}
	s := secretScrubber(cfg)
	in := `callback: Post "https://bridge:pw-in-url@ent.example/cb?token=query-secret": EOF; ` +
		"auth smtp-password refused; redis-pass; tok-0123456789abcdef-longer; metrics-0123456789; whsec_extra-callback; " +
		`Post "https://bridge:***@ent.example/cb?token=query-secret": EOF` // as net/http quotes it
	got := s.Replace(in)
	for _, secret := range []string{"pw-in-url", "query-secret", "smtp-password", "redis-pass", "tok-0123456789abcdef", "metrics-0123456789", "extra-callback"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q left in %q", secret, got)
		}
	}
	if !strings.Contains(got, `"https://ent.example/cb?[redacted]"`) || strings.Count(got, "[redacted]") != 7 {
		t.Errorf("scrubbed: %q", got)
	}
	if got := uniqueIDs([]string{"a", "b", "a", "c", "b"}); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("unique: %v", got)
	}
}
