package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// The digest runs over a Redis store (miniredis, and redis-server where it
// matters: claims and leases), with a mailer that keeps the digests it is
// given. What the mails look like is mail's (golden files).

// runOutbox is a digest mailer that keeps what it sends, by address; its
// first sends or composes can fail, and sends can be slow.
type runOutbox struct {
	mu          sync.Mutex
	n           int
	composed    map[string]bridge.ReferentDigest // by Message-ID
	sent        map[string][]bridge.ReferentDigest
	failSends   int
	sendErr     error // what the failed sends return; nil: a temporary error
	failCompose int
	delay       time.Duration
}

func newRunOutbox() *runOutbox {
	return &runOutbox{composed: map[string]bridge.ReferentDigest{}, sent: map[string][]bridge.ReferentDigest{}}
}

func (o *runOutbox) ComposeDigest(dg bridge.ReferentDigest) (bridge.OutgoingMail, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failCompose > 0 {
		o.failCompose--
		return bridge.OutgoingMail{}, errors.New("no template")
	}
	o.n++
	id := fmt.Sprintf("dig.%d@ent.example", o.n)
	o.composed[id] = dg
	return bridge.OutgoingMail{MessageID: id, From: "assistance@ent.example", To: []string{dg.Referent.Email},
		Raw: []byte("Subject: digest\r\n")}, nil
}

func (o *runOutbox) Send(_ context.Context, m bridge.OutgoingMail) error {
	time.Sleep(o.delay)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failSends > 0 {
		o.failSends--
		if o.sendErr != nil {
			return o.sendErr
		}
		return errors.New("451 4.3.0 try again later")
	}
	for _, to := range m.To {
		o.sent[to] = append(o.sent[to], o.composed[m.MessageID])
	}
	return nil
}

func (o *runOutbox) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.sent {
		out[k] = len(v)
	}
	return out
}

func (o *runOutbox) total() int {
	n := 0
	for _, v := range o.counts() {
		n += v
	}
	return n
}

func (o *runOutbox) digests(to string) []bridge.ReferentDigest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]bridge.ReferentDigest(nil), o.sent[to]...)
}

// newTickets are the ids of the "new demands" of a digest, structure by
// structure.
func newTickets(dg bridge.ReferentDigest) []string {
	ids := []string{}
	for _, s := range dg.Structures {
		for _, it := range s.New {
			ids = append(ids, s.Structure.ID+"/"+it.TicketID)
		}
	}
	return ids
}

// lockedBuffer is a buffer the logs of several goroutines go to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func paris() *time.Location { return bridge.DefaultDigestLocation() }

// parisTime is a local time in Paris.
func parisTime(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, paris())
}

const (
	runDailySpec  = "CRON_TZ=Europe/Paris 0 8 * * 1-5"
	runWeeklySpec = "CRON_TZ=Europe/Paris 0 8 * * 1"
)

// runEnv is one Redis with referents and demands, a mailer, and digest
// runs ("replicas") on them.
type runEnv struct {
	t      *testing.T
	addr   string // redis
	prefix string
	store  *redisstore.Store
	svc    *bridge.Service
	clock  *runClock
	mail   *runOutbox
	logs   *lockedBuffer
}

type runClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *runClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *runClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func newRunEnv(t *testing.T, redisAddr, prefix string) *runEnv {
	t.Helper()
	e := &runEnv{t: t, addr: redisAddr, prefix: prefix, clock: &runClock{}, mail: newRunOutbox(), logs: &lockedBuffer{}}
	e.store = redisstore.New(redistest.Client(t, redisAddr), redisstore.Options{Prefix: prefix})
	e.svc = bridge.NewService(e.store, bridge.WithClock(e.clock.now))
	return e
}

func (e *runEnv) structures(sts ...bridge.Structure) {
	e.t.Helper()
	if err := e.svc.SeedStructures(context.Background(), sts); err != nil {
		e.t.Fatal(err)
	}
}

// ticket creates a demand recorded at the given time.
func (e *runEnv) ticket(id, structure, subject string, at time.Time) {
	e.t.Helper()
	e.clock.set(at)
	_, err := e.svc.Apply(context.Background(), bridge.Event{ID: "wh-" + id, Type: bridge.EventTicketCreated,
		NewTicket: &bridge.NewTicket{ID: id, StructureID: structure, Subject: subject,
			Owner: bridge.Person{ID: "u-owner-" + id, DisplayName: "Léa Dupont"}}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// replica returns a digest run of its own (own Redis connection) whose
// clock is now.
func (e *runEnv) replica(now func() time.Time) *bridge.DigestRun {
	e.t.Helper()
	store := redisstore.New(redistest.Client(e.t, e.addr), redisstore.Options{Prefix: e.prefix})
	return e.replicaOn(store, now)
}

func (e *runEnv) replicaOn(store bridge.DigestRunStore, now func() time.Time) *bridge.DigestRun {
	e.t.Helper()
	scheds := map[bridge.Digest]bridge.DigestSchedule{}
	for p, spec := range map[bridge.Digest]string{bridge.DigestDaily: runDailySpec, bridge.DigestWeekly: runWeeklySpec} {
		s, err := cron.ParseStandard(spec)
		if err != nil {
			e.t.Fatal(err)
		}
		scheds[p] = bridge.DigestSchedule{Schedule: s, Location: paris()}
	}
	return &bridge.DigestRun{
		Store:     store,
		Mailer:    e.mail,
		Schedules: scheds,
		Holder:    fmt.Sprintf("replica-%p", store),
		Log:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       now,
		LeaseTTL:  10 * time.Second,
		LeaseWait: 20 * time.Second,
		LeasePoll: 10 * time.Millisecond,
	}
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// school is the usual test structure: one daily referent of each
// language, a weekly one, one who wants none, one without an address.
func school() []bridge.Structure {
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

// backends runs f on miniredis and on a real redis-server.
func backends(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("miniredis", func(t *testing.T) { f(t, redistest.Miniredis(t).Addr()) })
	t.Run("redis-server", func(t *testing.T) { f(t, redistest.Start(t).Addr) })
}

func TestDigestRun(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		ctx := context.Background()
		e := newRunEnv(t, addr, "dg:")
		e.structures(school()...)
		e.ticket("42", "s1", "Écran blanc sur Pronote", parisTime(2025, 3, 3, 12, 0))
		e.ticket("43", "s2", "Trop tard", parisTime(2025, 3, 4, 9, 0)) // after the window: s2 stays empty
		d := e.replica(fixed(parisTime(2025, 3, 4, 10, 0)))

		rep, err := d.RunLast(ctx, bridge.DigestDaily)
		if err != nil {
			t.Fatal(err)
		}
		want := bridge.DigestReport{Period: bridge.DigestDaily, Key: "2025-03-04",
			Window: bridge.DigestWindow{From: parisTime(2025, 3, 3, 8, 0), To: parisTime(2025, 3, 4, 8, 0)},
			Sent:   1, Empty: 1, NoAddress: 1}
		if rep.Key != want.Key || !rep.Window.From.Equal(want.Window.From) || !rep.Window.To.Equal(want.Window.To) ||
			rep.Sent != 1 || rep.Empty != 1 || rep.NoAddress != 1 || rep.Failed != 0 || rep.AlreadySent != 0 || rep.Pending != 0 {
			t.Fatalf("report %s, want %s", rep, want)
		}
		if got := e.mail.counts(); len(got) != 1 || got["martin@school.example"] != 1 {
			t.Fatalf("mails %v", got)
		}
		dg := e.mail.digests("martin@school.example")[0]
		if dg.Referent.ID != "u-ref1" || dg.Period != bridge.DigestDaily || !dg.Window.From.Equal(want.Window.From) ||
			!dg.Window.To.Equal(want.Window.To) || !reflect.DeepEqual(newTickets(dg), []string{"s1/42"}) {
			t.Errorf("digest %+v", dg)
		}
		state, _, err := e.store.DigestState(ctx, "u-ref1", "daily", "2025-03-04")
		if err != nil || state != bridge.DigestStateSent {
			t.Errorf("state %q, %v", state, err)
		}

		// Again, and from another replica: done, nothing more.
		for _, r := range []*bridge.DigestRun{d, e.replica(fixed(parisTime(2025, 3, 4, 18, 0)))} {
			rep, err := r.RunLast(ctx, bridge.DigestDaily)
			if err != nil || !rep.AlreadyDone || rep.String() != "digest daily 2025-03-04: already done" {
				t.Fatalf("second run: %s, %v", rep, err)
			}
		}
		// The weekly digest of the week holds the demand too, for the
		// weekly referent only.
		rep, err = d.Run(ctx, bridge.DigestWeekly, parisTime(2025, 3, 10, 8, 0))
		if err != nil || rep.Sent != 1 || rep.Key != "2025-W11" {
			t.Fatalf("weekly: %s, %v", rep, err)
		}
		if got := e.mail.counts(); len(got) != 2 || got["hebdo@school.example"] != 1 {
			t.Fatalf("mails %v", got)
		}
		if dg := e.mail.digests("hebdo@school.example")[0]; dg.Period != bridge.DigestWeekly || dg.Referent.Locale != "en" ||
			!dg.Window.From.Equal(parisTime(2025, 3, 3, 8, 0)) || !reflect.DeepEqual(newTickets(dg), []string{"s1/42"}) {
			t.Errorf("weekly digest %+v", dg)
		}
		logs := e.logs.String()
		if strings.Contains(logs, "martin@school.example") || strings.Contains(logs, "Écran blanc") {
			t.Error("an address or mail content in the logs")
		}
		if !strings.Contains(logs, "digest sent") || !strings.Contains(logs, "referent=u-ref1") {
			t.Errorf("the sends are not logged:\n%s", logs)
		}
	})
}

func TestDigestRunNothingToSay(t *testing.T) {
	e := newRunEnv(t, redistest.Miniredis(t).Addr(), "dg:")
	e.structures(school()...)
	e.ticket("1", "s1", "Ancienne", parisTime(2025, 2, 1, 12, 0))
	ctx := context.Background()
	e.clock.set(parisTime(2025, 2, 2, 12, 0))
	if _, err := e.svc.Apply(ctx, bridge.Event{ID: "wh-st", Type: bridge.EventStatusChanged, TicketID: "1",
		Status: bridge.StatusResolved, Actor: bridge.Person{ID: "u-ref1"}}); err != nil {
		t.Fatal(err)
	}
	d := e.replica(fixed(parisTime(2025, 3, 4, 10, 0)))
	rep, err := d.RunLast(ctx, bridge.DigestDaily)
	if err != nil || rep.Sent != 0 || rep.Empty != 3 || rep.Failed != 0 {
		t.Fatalf("report %s, %v", rep, err)
	}
	if n := e.mail.total(); n != 0 {
		t.Fatalf("%d mails with nothing to say", n)
	}
	if done, _ := e.store.DigestRunDone(ctx, "daily", "2025-03-04"); !done {
		t.Error("an empty period is not marked done")
	}
}

func TestDigestRunRetriesAFailedSend(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		temporary bool
	}{
		{"temporary", nil, true},
		{"permanent", bridge.Permanent(errors.New("550 5.1.1 no such user")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newRunEnv(t, redistest.Miniredis(t).Addr(), "dg:")
			e.structures(school()...)
			e.ticket("42", "s1", "Écran blanc", parisTime(2025, 3, 3, 12, 0))
			e.mail.failSends, e.mail.sendErr = 1, tt.err
			d := e.replica(fixed(parisTime(2025, 3, 4, 10, 0)))

			rep, err := d.RunLast(ctx, bridge.DigestDaily)
			if err != nil || rep.Failed != 1 || rep.Sent != 0 || rep.Result(nil) != "incomplete" {
				t.Fatalf("first run: %s, %v", rep, err)
			}
			if done, _ := e.store.DigestRunDone(ctx, "daily", "2025-03-04"); done {
				t.Fatal("a period with a failed send is marked done")
			}
			if state, _, _ := e.store.DigestState(ctx, "u-ref1", "daily", "2025-03-04"); state != bridge.DigestStateNone {
				t.Fatalf("claim not released: %q", state)
			}
			if want := fmt.Sprintf("temporary=%t", tt.temporary); !strings.Contains(e.logs.String(), want) {
				t.Errorf("the failed send is not logged with %s:\n%s", want, e.logs.String())
			}
			rep, err = d.RunLast(ctx, bridge.DigestDaily)
			if err != nil || rep.Sent != 1 || rep.Failed != 0 {
				t.Fatalf("second run: %s, %v", rep, err)
			}
			rep, err = d.RunLast(ctx, bridge.DigestDaily)
			if err != nil || !rep.AlreadyDone {
				t.Fatalf("third run: %s, %v", rep, err)
			}
			if got := e.mail.counts(); got["martin@school.example"] != 1 {
				t.Fatalf("mails %v", got)
			}
		})
	}
}

// TestDigestRunComposeFailure: a digest that cannot be composed is
// released, and a later run sends it.
func TestDigestRunComposeFailure(t *testing.T) {
	ctx := context.Background()
	e := newRunEnv(t, redistest.Miniredis(t).Addr(), "dg:")
	e.structures(school()...)
	e.ticket("42", "s1", "Écran blanc", parisTime(2025, 3, 3, 12, 0))
	e.mail.failCompose = 1
	d := e.replica(fixed(parisTime(2025, 3, 4, 10, 0)))
	rep, err := d.RunLast(ctx, bridge.DigestDaily)
	if err != nil || rep.Failed != 1 || rep.Sent != 0 {
		t.Fatalf("first run: %s, %v", rep, err)
	}
	if state, _, _ := e.store.DigestState(ctx, "u-ref1", "daily", "2025-03-04"); state != bridge.DigestStateNone {
		t.Fatalf("claim not released: %q", state)
	}
	if !strings.Contains(e.logs.String(), "digest not composed") {
		t.Error("the failure is not logged")
	}
	if rep, err := d.RunLast(ctx, bridge.DigestDaily); err != nil || rep.Sent != 1 {
		t.Fatalf("second run: %s, %v", rep, err)
	}
}

// TestDigestRunPendingClaim: a run that died after claiming a digest
// leaves it pending; later runs neither send it (it may have gone) nor
// close the period, and say so.
func TestDigestRunPendingClaim(t *testing.T) {
	ctx := context.Background()
	m := redistest.Miniredis(t)
	e := newRunEnv(t, m.Addr(), "dg:")
	e.structures(school()...)
	e.ticket("42", "s1", "Écran blanc", parisTime(2025, 3, 3, 12, 0))
	stale := time.Now().Add(-3 * time.Hour).UnixMilli()
	if err := m.Set("dg:digest:{r:u-ref1}:daily:2025-03-04", fmt.Sprintf("pending:%d", stale)); err != nil {
		t.Fatal(err)
	}
	d := e.replica(fixed(parisTime(2025, 3, 4, 10, 0)))
	for i := 0; i < 2; i++ {
		rep, err := d.RunLast(ctx, bridge.DigestDaily)
		if err != nil || rep.Pending != 1 || rep.Sent != 0 || rep.AlreadyDone {
			t.Fatalf("run %d: %s, %v", i, rep, err)
		}
	}
	if n := e.mail.total(); n != 0 {
		t.Fatalf("%d mails for a pending claim", n)
	}
	if !strings.Contains(e.logs.String(), "left pending by a run that stopped") {
		t.Error("the stale claim is not reported")
	}
}

// noLease is a store whose lease is always granted: as if the lease had
// expired under a slow replica. Claims alone must keep digests single.
type noLease struct{ *redisstore.Store }

func (noLease) AcquireLease(context.Context, string, string, time.Duration) (int64, bool, error) {
	return 1, true, nil
}
func (noLease) RenewLease(context.Context, string, string, int64, time.Duration) (bool, error) {
	return true, nil
}
func (noLease) ReleaseLease(context.Context, string, string, int64) error { return nil }

// raceSchools are n structures, each with a referent and a demand in the
// window of Tuesday 4 March 2025.
func raceSchools(e *runEnv, n int) []string {
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
		e.ticket(fmt.Sprintf("t%d", i), fmt.Sprintf("s%d", i), "Demande", parisTime(2025, 3, 3, 12, i))
	}
	return addrs
}

func exactlyOnce(t *testing.T, e *runEnv, addrs []string) {
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

// TestDigestRunsRacing runs replicas on one Redis: their runs, and runs
// whose lease is lost, send one digest a referent and period.
func TestDigestRunsRacing(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		now := fixed(parisTime(2025, 3, 4, 10, 0))
		at := parisTime(2025, 3, 4, 8, 0)

		t.Run("runs", func(t *testing.T) {
			e := newRunEnv(t, addr, "race1:")
			addrs := raceSchools(e, 6)
			e.mail.delay = 20 * time.Millisecond
			replicas := []*bridge.DigestRun{e.replica(now), e.replica(now)}
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := replicas[i%2].Run(context.Background(), bridge.DigestDaily, at); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			exactlyOnce(t, e, addrs)
		})

		t.Run("lease lost", func(t *testing.T) {
			e := newRunEnv(t, addr, "race2:")
			addrs := raceSchools(e, 6)
			e.mail.delay = 20 * time.Millisecond
			var sent atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				r := e.replicaOn(noLease{redisstore.New(redistest.Client(t, addr), redisstore.Options{Prefix: "race2:"})}, now)
				wg.Add(1)
				go func() {
					defer wg.Done()
					rep, err := r.Run(context.Background(), bridge.DigestDaily, at)
					if err != nil {
						t.Error(err)
					}
					sent.Add(int64(rep.Sent))
				}()
			}
			wg.Wait()
			exactlyOnce(t, e, addrs)
			if sent.Load() != int64(len(addrs)) {
				t.Errorf("reports say %d sent", sent.Load())
			}
			// A later run finds every digest sent and closes the period.
			r := e.replica(now)
			rep, err := r.Run(context.Background(), bridge.DigestDaily, at)
			if err != nil || (!rep.AlreadyDone && rep.AlreadySent != len(addrs)) {
				t.Fatalf("later run: %s, %v", rep, err)
			}
			if rep, err := r.Run(context.Background(), bridge.DigestDaily, at); err != nil || !rep.AlreadyDone {
				t.Fatalf("last run: %s, %v", rep, err)
			}
			exactlyOnce(t, e, addrs)
		})

		t.Run("busy", func(t *testing.T) {
			// Another replica keeps the lease past LeaseWait: the run
			// gives up and says so.
			e := newRunEnv(t, addr, "race3:")
			raceSchools(e, 1)
			if _, ok, err := e.store.AcquireLease(context.Background(), "digest:daily", "other", time.Minute); err != nil || !ok {
				t.Fatalf("lease: %v, %v", ok, err)
			}
			r := e.replica(now)
			r.LeaseWait = 50 * time.Millisecond
			rep, err := r.Run(context.Background(), bridge.DigestDaily, at)
			if err != nil || !rep.Busy || rep.Result(nil) != "busy" || e.mail.total() != 0 {
				t.Fatalf("run: %s, %v; mails %v", rep, err, e.mail.counts())
			}
		})
	})
}

// TestDigestRunCatchUp: at start, the last scheduled period is run when it
// is not done (the daemon was down at its time), and only then.
func TestDigestRunCatchUp(t *testing.T) {
	backends(t, func(t *testing.T, addr string) {
		e := newRunEnv(t, addr, "dg:")
		e.structures(school()...)
		e.ticket("42", "s1", "Écran blanc", parisTime(2025, 3, 3, 12, 0))
		var reports []string
		up := func(now time.Time) {
			r := e.replica(fixed(now))
			r.OnRun = func(rep bridge.DigestReport, err error) {
				reports = append(reports, string(rep.Period)+" "+rep.Key+" "+rep.Result(err))
			}
			for _, p := range []bridge.Digest{bridge.DigestDaily, bridge.DigestWeekly} {
				r.CatchUp(context.Background(), p)
			}
		}
		// Down at 08:00 on Tuesday, up at 10:00: caught up once. (The
		// week before Monday 08:00 had nothing to say.)
		up(parisTime(2025, 3, 4, 10, 0))
		if got := e.mail.counts(); got["martin@school.example"] != 1 || len(got) != 1 {
			t.Fatalf("after catch-up: %v", got)
		}
		// Restarted, and a second replica: nothing more.
		up(parisTime(2025, 3, 4, 10, 5))
		up(parisTime(2025, 3, 4, 17, 0))
		if got := e.mail.counts(); got["martin@school.example"] != 1 || len(got) != 1 {
			t.Fatalf("after restarts: %v", got)
		}
		// Down again over Wednesday 08:00: Wednesday's digest, with the
		// demand of Tuesday afternoon as the only new one.
		e.ticket("44", "s1", "Imprimante en panne", parisTime(2025, 3, 4, 15, 0))
		up(parisTime(2025, 3, 5, 9, 0))
		dgs := e.mail.digests("martin@school.example")
		if len(dgs) != 2 {
			t.Fatalf("%d digests, want 2", len(dgs))
		}
		if !dgs[1].Window.To.Equal(parisTime(2025, 3, 5, 8, 0)) || !reflect.DeepEqual(newTickets(dgs[1]), []string{"s1/44"}) {
			t.Errorf("Wednesday's digest: %v, new %v", dgs[1].Window, newTickets(dgs[1]))
		}
		want := []string{
			"daily 2025-03-04 done", "weekly 2025-W10 done",
			"daily 2025-03-04 already_done", "weekly 2025-W10 already_done",
			"daily 2025-03-04 already_done", "weekly 2025-W10 already_done",
			"daily 2025-03-05 done", "weekly 2025-W10 already_done",
		}
		if !reflect.DeepEqual(reports, want) {
			t.Errorf("runs %q, want %q", reports, want)
		}
	})
}

// TestDigestRunTick: a tick runs the period that just began, after the
// previous one when that is not done.
func TestDigestRunTick(t *testing.T) {
	ctx := context.Background()
	e := newRunEnv(t, redistest.Miniredis(t).Addr(), "dg:")
	e.structures(school()...)
	e.ticket("42", "s1", "Écran blanc", parisTime(2025, 3, 3, 12, 0))
	var reports []string
	onRun := func(rep bridge.DigestReport, err error) {
		reports = append(reports, rep.Key+" "+rep.Result(err))
	}
	// Tuesday's send fails.
	e.mail.failSends = 1
	r := e.replica(fixed(parisTime(2025, 3, 4, 8, 0)))
	r.OnRun = onRun
	r.Tick(ctx, bridge.DigestDaily)
	// Wednesday's tick sends Tuesday's, then Wednesday's.
	r = e.replica(fixed(parisTime(2025, 3, 5, 8, 0)))
	r.OnRun = onRun
	r.Tick(ctx, bridge.DigestDaily)
	want := []string{"2025-03-03 done", "2025-03-04 incomplete", "2025-03-04 done", "2025-03-05 done"}
	if !reflect.DeepEqual(reports, want) {
		t.Errorf("runs %q, want %q", reports, want)
	}
	dgs := e.mail.digests("martin@school.example")
	if len(dgs) != 2 || !dgs[0].Window.To.Equal(parisTime(2025, 3, 4, 8, 0)) || !dgs[1].Window.To.Equal(parisTime(2025, 3, 5, 8, 0)) {
		t.Errorf("digests %v", dgs)
	}
	// A run that ends on ctx does not start.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	reports = nil
	r = e.replica(fixed(parisTime(2025, 3, 6, 8, 0)))
	r.OnRun = onRun
	r.Tick(cctx, bridge.DigestDaily)
	if len(reports) != 0 {
		t.Errorf("runs after ctx ended: %q", reports)
	}
}

// brokenStore fails to read the runs' marks.
type brokenStore struct{ *redisstore.Store }

func (brokenStore) DigestRunDone(context.Context, string, string) (bool, error) {
	return false, errors.New("redis down")
}

func TestDigestRunStoreError(t *testing.T) {
	e := newRunEnv(t, redistest.Miniredis(t).Addr(), "dg:")
	r := e.replicaOn(brokenStore{e.store}, fixed(parisTime(2025, 3, 4, 10, 0)))
	var got []string
	r.OnRun = func(rep bridge.DigestReport, err error) { got = append(got, rep.Key+" "+rep.Result(err)) }
	r.CatchUp(context.Background(), bridge.DigestDaily)
	if !reflect.DeepEqual(got, []string{"2025-03-04 error"}) {
		t.Errorf("runs %q", got)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "digest run failed") || !strings.Contains(logs, "period_key=2025-03-04") ||
		!strings.Contains(logs, "redis down") {
		t.Errorf("the failure is not logged:\n%s", logs)
	}
}
