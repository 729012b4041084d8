package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/compose"
	"supportbridge/mail/mailtest"
	"supportbridge/mail/smtpclient"
)

// digMailServer is an in-process SMTP server (mailtest.StartSMTP); it
// tells what it accepted by recipient.
type digMailServer struct {
	srv  *mailtest.SMTPServer
	addr string
}

func digStartMail(t *testing.T) *digMailServer {
	t.Helper()
	srv := mailtest.StartSMTP(t, mailtest.WithDomain("mail.test"))
	return &digMailServer{srv: srv, addr: srv.Addr}
}

func (s *digMailServer) counts() map[string]int {
	out := map[string]int{}
	for _, m := range s.srv.Messages() {
		for _, to := range m.To {
			out[to]++
		}
	}
	return out
}

func (s *digMailServer) total() int {
	n := 0
	for _, v := range s.counts() {
		n += v
	}
	return n
}

func (s *digMailServer) mails(to string) [][]byte {
	var out [][]byte
	for _, m := range s.srv.Messages() {
		for _, rcpt := range m.To {
			if rcpt == to {
				out = append(out, m.Data)
			}
		}
	}
	return out
}

// waitMails waits until the server holds n mails.
func (s *digMailServer) waitMails(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.total() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d mails after %s, want %d: %v", s.total(), within, n, s.counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func digParseSubject(t *testing.T, raw []byte) (subject string, h gomail.Header) {
	t.Helper()
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := mr.Header.Subject()
	return s, mr.Header
}

func digText(t *testing.T, raw []byte) string {
	t.Helper()
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, _ := io.ReadAll(p.Body)
				return strings.ReplaceAll(string(b), "\r\n", "\n")
			}
		}
	}
}

// digParisTime is a local time in Paris.
func digParisTime(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, parisTime())
}

func parisTime() *time.Location { return bridge.DefaultDigestLocation() }

const (
	digDailySpec  = "CRON_TZ=Europe/Paris 0 8 * * 1-5"
	digWeeklySpec = "CRON_TZ=Europe/Paris 0 8 * * 1"
)

func digMustParse(t testing.TB, spec string) bridge.DigestSchedule {
	t.Helper()
	s, err := parseDigestSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// digLastOccurrence is the last time of spec at or before now (when the
// digest command's period began).
func digLastOccurrence(t testing.TB, spec string, now time.Time) time.Time {
	t.Helper()
	s := digMustParse(t, spec)
	loc := s.Location
	if loc == nil {
		loc = parisTime()
	}
	var last time.Time
	for at := s.Schedule.Next(now.In(loc).Add(-48 * time.Hour)); !at.After(now); at = s.Schedule.Next(at) {
		last = at
	}
	return last
}

// TestParseDigestSchedule: a spec's periods are in its CRON_TZ, else in
// the default zone, where cron runs the bare specs.
func TestParseDigestSchedule(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec string
		zone *time.Location
	}{
		{digDailySpec, parisTime()},
		{"CRON_TZ=America/New_York 0 22 * * *", ny},
		{"30 7 * * *", nil},
		{"@every 1s", nil},
	} {
		s, err := parseDigestSchedule(tt.spec)
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		if s.Location.String() != tt.zone.String() || (s.Location == nil) != (tt.zone == nil) {
			t.Errorf("%s: zone %v, want %v", tt.spec, s.Location, tt.zone)
		}
	}
	if _, err := parseDigestSchedule("0 8 * *"); err == nil {
		t.Error("a bad spec is accepted")
	}
}

// digEnv is one Redis with referents and demands, an SMTP server, and
// digesters ("replicas") on them.
type digEnv struct {
	t      *testing.T
	addr   string // redis
	prefix string
	store  *redisstore.Store
	svc    *bridge.Service
	clock  *digClock
	mail   *digMailServer
	logs   *syncBuffer
}

type digClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *digClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *digClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func newDigEnv(t *testing.T, redisAddr, prefix string) *digEnv {
	t.Helper()
	e := &digEnv{t: t, addr: redisAddr, prefix: prefix, clock: &digClock{}, mail: digStartMail(t), logs: &syncBuffer{}}
	e.store = redisstore.New(redistest.Client(t, redisAddr), redisstore.Options{Prefix: prefix})
	e.svc = bridge.NewService(e.store, bridge.WithClock(e.clock.now))
	return e
}

func (e *digEnv) structures(sts ...bridge.Structure) {
	e.t.Helper()
	if err := e.svc.SeedStructures(context.Background(), sts); err != nil {
		e.t.Fatal(err)
	}
}

// ticket creates a demand recorded at the given time.
func (e *digEnv) ticket(id, structure, subject string, at time.Time) {
	e.t.Helper()
	e.clock.set(at)
	_, err := e.svc.Apply(context.Background(), bridge.Event{ID: "wh-" + id, Type: bridge.EventTicketCreated,
		NewTicket: &bridge.NewTicket{ID: id, StructureID: structure, Subject: subject,
			Owner: bridge.Person{ID: "u-owner-" + id, DisplayName: "Léa Dupont"}}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// replica returns a digester of its own (own Redis connection) whose
// clock is now.
func (e *digEnv) replica(now func() time.Time, specs map[bridge.Digest]string) *bridge.DigestRun {
	e.t.Helper()
	store := redisstore.New(redistest.Client(e.t, e.addr), redisstore.Options{Prefix: e.prefix})
	return e.replicaOn(store, now, specs)
}

func (e *digEnv) replicaOn(store bridge.DigestRunStore, now func() time.Time, specs map[bridge.Digest]string) *bridge.DigestRun {
	e.t.Helper()
	if specs == nil {
		specs = map[bridge.Digest]string{bridge.DigestDaily: digDailySpec, bridge.DigestWeekly: digWeeklySpec}
	}
	scheds := map[bridge.Digest]bridge.DigestSchedule{}
	for p, spec := range specs {
		scheds[p] = digMustParse(e.t, spec)
	}
	sender := &smtpclient.Sender{Addr: e.mail.addr, TLS: "none", Timeout: 5 * time.Second}
	e.t.Cleanup(func() { sender.Close() })
	return &bridge.DigestRun{
		Store: store,
		Mailer: &compose.DigestMailer{Composer: &compose.DigestComposer{From: &netmail.Address{Name: "Assistance ENT", Address: "assistance@ent.example"},
			Identity: "supportbridge", Domain: "ent.example", LinkBase: "https://ent.example/t/"},
			Sender: sender},
		Schedules: scheds,
		Holder:    fmt.Sprintf("replica-%p", store),
		Log:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       now,
		LeaseTTL:  10 * time.Second,
		LeaseWait: 20 * time.Second,
		LeasePoll: 10 * time.Millisecond,
	}
}

// digScheduler starts the daemon's scheduler on run.
func digScheduler(ctx context.Context, run *bridge.DigestRun) *digestScheduler {
	return startDigestScheduler(ctx, run, run.Log)
}

func digFixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// digSchool is the usual test structure: one daily referent of each
// language, a weekly one, one who wants none, one without an address.
func digSchool() []bridge.Structure {
	return []bridge.Structure{
		{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", Referents: []bridge.Referent{
			{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: bridge.DigestDaily},
			{ID: "u-week", DisplayName: "M. Hebdo", Email: "hebdo@school.example", Digest: bridge.DigestWeekly, Locale: "en"},
			{ID: "u-never", DisplayName: "M. Jamais", Email: "jamais@school.example", Digest: bridge.DigestNever},
			{ID: "u-noaddr", DisplayName: "Sans adresse", Digest: bridge.DigestDaily},
		}},
		{ID: "s2", Name: "Collège Jean Moulin", Referents: []bridge.Referent{
			{ID: "u-ref2", DisplayName: "Ms Quiet", Email: "quiet@school.example", Digest: bridge.DigestDaily, Locale: "en"},
		}},
	}
}

// digBackends runs f on miniredis and on a real redis-server.
func digBackends(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("miniredis", func(t *testing.T) { f(t, redistest.Miniredis(t).Addr()) })
	t.Run("redis-server", func(t *testing.T) { f(t, redistest.Start(t).Addr) })
}

// digRaceSchools are n structures, each with a referent and a demand in
// the window of Tuesday 4 March 2025.
func digRaceSchools(e *digEnv, n int) []string {
	var sts []bridge.Structure
	var addrs []string
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("ref%d@school.example", i)
		sts = append(sts, bridge.Structure{ID: fmt.Sprintf("s%d", i), Name: fmt.Sprintf("École %d", i),
			Referents: []bridge.Referent{{ID: fmt.Sprintf("u-%d", i), Email: addr, Digest: bridge.DigestDaily}}})
		addrs = append(addrs, addr)
	}
	e.structures(sts...)
	for i := 0; i < n; i++ {
		e.ticket(fmt.Sprintf("t%d", i), fmt.Sprintf("s%d", i), "Demande", digParisTime(2025, 3, 3, 12, i))
	}
	return addrs
}

func digExactlyOnce(t *testing.T, e *digEnv, addrs []string) {
	t.Helper()
	got := e.mail.counts()
	for _, a := range addrs {
		if got[a] != 1 {
			t.Errorf("%s got %d digests, want 1 (all: %v)", a, got[a], got)
		}
	}
	if len(got) != len(addrs) {
		t.Errorf("mails to %v", got)
	}
}

// TestDigestSchedulersRacing runs the cron schedulers of two replicas on
// one Redis: one digest a referent and period (the runs themselves race in
// bridge's tests).
func TestDigestSchedulersRacing(t *testing.T) {
	digBackends(t, func(t *testing.T, addr string) {
		now := digFixed(digParisTime(2025, 3, 4, 10, 0))
		e := newDigEnv(t, addr, "race3:")
		addrs := digRaceSchools(e, 4)
		specs := map[bridge.Digest]string{bridge.DigestDaily: "@every 1s"}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := digScheduler(ctx, e.replica(now, specs))
		b := digScheduler(ctx, e.replica(now, specs))
		e.mail.waitMails(t, len(addrs), 10*time.Second)
		time.Sleep(2500 * time.Millisecond) // two more ticks each
		cancel()
		a.stop()
		b.stop()
		digExactlyOnce(t, e, addrs)
	})
}

// TestDigestSchedulerCatchesUp: the scheduler runs the catch-up at start,
// and stop waits for it; the mails are the composer's.
func TestDigestSchedulerCatchesUp(t *testing.T) {
	digBackends(t, func(t *testing.T, addr string) {
		e := newDigEnv(t, addr, "dg:")
		e.structures(digSchool()...)
		e.ticket("42", "s1", "Écran blanc", digParisTime(2025, 3, 3, 12, 0))
		up := func(now time.Time) {
			ctx, cancel := context.WithCancel(context.Background())
			s := digScheduler(ctx, e.replica(digFixed(now), nil))
			// The daily and weekly cron times are far away: only the
			// catch-up can send; stop waits for it (ctx still alive).
			s.stop()
			cancel()
		}
		// Down at 08:00 on Tuesday, up at 10:00: caught up once.
		up(digParisTime(2025, 3, 4, 10, 0))
		if got := e.mail.counts(); got["martin@school.example"] != 1 || len(got) != 1 {
			t.Fatalf("after catch-up: %v", got)
		}
		subject, h := digParseSubject(t, e.mail.mails("martin@school.example")[0])
		if subject != "Assistance ENT : résumé du mardi 4 mars 2025" || h.Get("Auto-Submitted") != "auto-generated" ||
			h.Get("Precedence") != "bulk" || h.Get("X-Loop") != "supportbridge" {
			t.Errorf("subject %q, headers %v", subject, h.Header)
		}
		// Restarted, and a second replica: nothing more.
		up(digParisTime(2025, 3, 4, 10, 5))
		up(digParisTime(2025, 3, 4, 17, 0))
		if got := e.mail.counts(); got["martin@school.example"] != 1 || len(got) != 1 {
			t.Fatalf("after restarts: %v", got)
		}
		// Down again over Wednesday 08:00: Wednesday's digest, with the
		// demand of Tuesday afternoon.
		e.ticket("44", "s1", "Imprimante en panne", digParisTime(2025, 3, 4, 15, 0))
		up(digParisTime(2025, 3, 5, 9, 0))
		mails := e.mail.mails("martin@school.example")
		if len(mails) != 2 {
			t.Fatalf("%d digests, want 2", len(mails))
		}
		if subject, _ := digParseSubject(t, mails[1]); subject != "Assistance ENT : résumé du mercredi 5 mars 2025" {
			t.Errorf("subject %q", subject)
		}
		if text := digText(t, mails[1]); !strings.Contains(text, "Nouvelles demandes (1)\n- n° 44 – Imprimante en panne") {
			t.Errorf("Wednesday's digest:\n%s", text)
		}
	})
}

// digPanicky panics on the first calls for structures.
type digPanicky struct {
	*redisstore.Store
	left atomic.Int64
}

func (p *digPanicky) Structures(ctx context.Context) ([]bridge.Structure, error) {
	if p.left.Add(-1) >= 0 {
		panic("boom: structures")
	}
	return p.Store.Structures(ctx)
}

func TestDigestPanicIsRecovered(t *testing.T) {
	e := newDigEnv(t, redistest.Miniredis(t).Addr(), "dg:")
	e.structures(digSchool()...)
	e.ticket("42", "s1", "Écran blanc", digParisTime(2025, 3, 3, 12, 0))
	store := &digPanicky{Store: redisstore.New(redistest.Client(t, e.addr), redisstore.Options{Prefix: "dg:"})}
	store.left.Store(2) // the catch-up and the first tick panic
	d := e.replicaOn(store, digFixed(digParisTime(2025, 3, 4, 10, 0)),
		map[bridge.Digest]string{bridge.DigestDaily: "@every 1s"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := digScheduler(ctx, d)
	e.mail.waitMails(t, 1, 10*time.Second)
	cancel()
	s.stop()
	if n := strings.Count(e.logs.String(), "digest cron: panic"); n < 2 {
		t.Errorf("%d panics logged, want 2:\n%s", n, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "boom: structures") {
		t.Error("the panic's value is not logged")
	}
	if got := e.mail.counts(); got["martin@school.example"] != 1 || len(got) != 1 {
		t.Errorf("mails %v", got)
	}
}

// digCommandConfig writes a configuration for the digest command.
func digCommandConfig(t *testing.T, redisAddr, smtpAddr, dailySpec string, withMail bool) string {
	t.Helper()
	mailCfg := ""
	if withMail {
		mailCfg = fmt.Sprintf(`desk:
  address: support@desk.example
  from: "Assistance ENT <assistance@ent.example>"
  reply_to: assistance@ent.example
  allowed_senders: ["*@desk.example"]
  signing_key: "0123456789abcdef-signing"
smtp: {addr: %q, tls: none, timeout: 5s}
`, smtpAddr)
	}
	cfg := fmt.Sprintf(`redis: {addrs: [%q], key_prefix: "cmd:"}
ent:
  webhook_secrets: [%q]
  api_tokens: [%q]
  link_base: "https://ent.example/assistance/"
digest: {daily: %q, default_locale: fr}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A",
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: daily},
                 {id: u-ref9, display_name: "M. Jamais", email: "jamais@school.example", digest: never}]}
%s`, redisAddr, testSecret, testToken, dailySpec, mailCfg)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDigestCommand(t *testing.T) {
	m := redistest.Miniredis(t)
	smtpSrv := digStartMail(t)
	const spec = "CRON_TZ=UTC 0 3 * * *"
	at := digLastOccurrence(t, spec, time.Now())
	// A demand of the last period, stored as the daemon would have.
	e := newDigEnv(t, m.Addr(), "cmd:")
	// The structure as the configuration declares it (the command stores it
	// too): a demand needs its structure known.
	e.structures(bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", Referents: []bridge.Referent{
		{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: bridge.DigestDaily},
		{ID: "u-ref9", DisplayName: "M. Jamais", Email: "jamais@school.example", Digest: bridge.DigestNever}}})
	e.ticket("42", "s1", "Écran blanc sur Pronote", at.Add(-time.Hour))
	path := digCommandConfig(t, m.Addr(), smtpSrv.addr, spec, true)

	digest := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"supportbridge", "digest"}, args...),
			getenvWith(nil), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	out, errOut, err := digest("--config", path, "--period", "daily")
	if now := digLastOccurrence(t, spec, time.Now()); !now.Equal(at) {
		t.Skip("the test ran across 03:00 UTC")
	}
	if err != nil {
		t.Fatalf("digest: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "1 sent") || !strings.Contains(out, at.Format("2006-01-02")) {
		t.Errorf("stdout %q", out)
	}
	if got := smtpSrv.counts(); len(got) != 1 || got["martin@school.example"] != 1 {
		t.Fatalf("mails %v", got)
	}
	text := digText(t, smtpSrv.mails("martin@school.example")[0])
	if !strings.Contains(text, "Écran blanc sur Pronote") || !strings.Contains(text, "https://ent.example/assistance/42") {
		t.Errorf("digest:\n%s", text)
	}

	// Once per period: running it again sends nothing.
	out, errOut, err = digest("--config", path)
	if err != nil || !strings.Contains(out, "already done") {
		t.Fatalf("second run: %v %q %s", err, out, errOut)
	}
	if n := smtpSrv.total(); n != 1 {
		t.Fatalf("%d mails after the second run", n)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad period", []string{"--config", path, "--period", "monthly"}, 2, "daily or weekly"},
		{"no config", []string{"--period", "daily"}, 2, "--config FILE is required"},
		{"unknown flag", []string{"--config", path, "--force"}, 2, "flag provided but not defined"},
		{"no mail configured", []string{"--config", digCommandConfig(t, m.Addr(), "", spec, false)}, 1, "no mail configured"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := digest(tt.args...)
			if ee, ok := err.(exitError); !ok || ee.code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("err %v, stderr %q", err, errOut)
			}
		})
	}
	if n := smtpSrv.total(); n != 1 {
		t.Fatalf("%d mails in the end", n)
	}
}

// TestServeSendsMissedDigest starts the daemon after a scheduled time it
// missed: it sends that period's digest once, on its own.
func TestServeSendsMissedDigest(t *testing.T) {
	m := redistest.Miniredis(t)
	smtpSrv := digStartMail(t)
	const spec = "CRON_TZ=UTC 0 3 * * *"
	at := digLastOccurrence(t, spec, time.Now())
	e := newDigEnv(t, m.Addr(), "e2e:")
	// The structure as writeConfig declares it (the daemon stores it too):
	// a demand needs its structure known.
	e.structures(bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: true,
		Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: bridge.DigestDaily}}})
	e.ticket("42", "s1", "Écran blanc sur Pronote", at.Add(-time.Hour))
	cfg := writeConfig(t, m.Addr(), deskConfig(smtpSrv.addr)+fmt.Sprintf("digest: {daily: %q}\n", spec))
	d := startDaemon(t, cfg)
	smtpSrv.waitMails(t, 1, 10*time.Second)
	digWaitMetric(t, d, `supportbridge_digest_runs_total{period="daily",result="done"} 1`)
	d.stop(t)
	if now := digLastOccurrence(t, spec, time.Now()); !now.Equal(at) {
		t.Skip("the test ran across 03:00 UTC")
	}
	if got := smtpSrv.counts(); len(got) != 1 || got["martin@school.example"] != 1 {
		t.Fatalf("mails %v", got)
	}
	// Restarted: nothing more.
	d = startDaemon(t, cfg)
	time.Sleep(500 * time.Millisecond)
	d.stop(t)
	if n := smtpSrv.total(); n != 1 {
		t.Fatalf("%d mails after a restart", n)
	}
}

// digWaitMetric waits until the daemon's /metrics shows line.
func digWaitMetric(t *testing.T, d *daemonUnderTest, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for time.Now().Before(deadline) {
		resp, err := http.Get(d.base + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), line+"\n") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("metrics never showed %s:\n%s", line, body)
}
