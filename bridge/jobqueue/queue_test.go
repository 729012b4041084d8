package jobqueue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// The queue's guarantees, on miniredis and on redis-server: one delivery
// after temporary failures, dead letters, replay, once per effect id,
// pick-up without a poll, a dead consumer's job reclaimed, a long job's
// lease renewed, a shutdown leaving a job to be reclaimed, a Cluster.

// fakeMailer stands for the SMTP side: it fails as told, and records what
// the server accepted.
type fakeMailer struct {
	mu       sync.Mutex
	failures []error // returned in order before succeeding
	accepted []bridge.OutgoingMail
	seq      int
}

func (f *fakeMailer) NewMessageID(ticketID, kind string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("<sb.%s.%s.%d@ent.example>", kind, ticketID, f.seq)
}

func (f *fakeMailer) ComposeEscalation(in bridge.EscalationMail) (bridge.OutgoingMail, error) {
	return bridge.OutgoingMail{MessageID: in.MessageID, Raw: []byte("escalation " + in.Ticket.ID)}, nil
}

func (f *fakeMailer) ComposeFollowUp(in bridge.FollowUpMail) (bridge.OutgoingMail, error) {
	body := "note " + in.Note
	if in.Exchange != nil {
		body = "comment " + in.Exchange.ID
	}
	return bridge.OutgoingMail{MessageID: in.MessageID, Raw: []byte(fmt.Sprintf("%s refs=%v", body, in.References))}, nil
}

func (f *fakeMailer) Send(_ context.Context, m bridge.OutgoingMail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return err
	}
	f.accepted = append(f.accepted, m)
	return nil
}

func (f *fakeMailer) sent() []bridge.OutgoingMail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bridge.OutgoingMail(nil), f.accepted...)
}

type harness struct {
	svc    *bridge.Service
	store  *redisstore.Store
	queue  *jobqueue.Queue
	mailer *fakeMailer
}

// run works q with handle until the test ends.
func run(t *testing.T, q *jobqueue.Queue, handle jobqueue.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// runCounter counts the runs of each effect id on a queue it works.
type runCounter struct {
	mu   sync.Mutex
	runs map[string]int
}

// countRuns works q until the test ends, each job counted and done.
func countRuns(t *testing.T, q *jobqueue.Queue) *runCounter {
	c := &runCounter{runs: map[string]int{}}
	run(t, q, func(_ context.Context, e bridge.Effect) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.runs[e.ID]++
		return nil
	})
	return c
}

// settle waits until n effect ids have run, gives a second run of any
// of them the time to land, and returns the counts.
func (c *runCounter) settle(t *testing.T, what string, n int) map[string]int {
	t.Helper()
	waitFor(t, what, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.runs) >= n
	})
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.runs)
}

func newHarness(t *testing.T, rdb redis.UniversalClient, mailer *fakeMailer, lifetime time.Duration) *harness {
	store := redisstore.New(rdb, redisstore.Options{Prefix: "jq:"})
	q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-test", RetryInitial: 50 * time.Millisecond,
		RetryMax: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond, Block: 100 * time.Millisecond})
	svc := bridge.NewService(store, bridge.WithDispatcher(q))
	w := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: store, Mailer: mailer, Lifetime: lifetime})
	run(t, q, w.Handle)
	return &harness{svc: svc, store: store, queue: q, mailer: mailer}
}

func seed(t *testing.T, svc *bridge.Service, ticketID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.Apply(ctx, bridge.Event{ID: "st", Type: bridge.EventStructureUpserted,
		Structure: &bridge.Structure{ID: "s1", Name: "Lycée", EscalationEnabled: true,
			Referents: []bridge.Referent{{ID: "u-ref"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Apply(ctx, bridge.Event{ID: "c-" + ticketID, Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: ticketID, StructureID: "s1", Owner: bridge.Person{ID: "u1"}, Subject: "Écran blanc", CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Apply(ctx, bridge.Event{ID: "e-" + ticketID, Type: bridge.EventEscalationRequested,
		TicketID: ticketID, Actor: bridge.Person{ID: "u-ref"}}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func escalationOf(t *testing.T, svc *bridge.Service, id string) bridge.Escalation {
	v, err := svc.Ticket(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Escalation
}

// backends runs f on miniredis and on a real redis-server; addr is the
// server's, for a second process.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, addr string)) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, redistest.Client(t, m.Addr()), m.Addr())
	})
	t.Run("redis-server", func(t *testing.T) {
		addr := redistest.Start(t).Addr
		f(t, redistest.Client(t, addr), addr)
	})
}

var errTemp = errors.New("451 4.3.0 try again later")

func TestTemporaryFailuresEndInOneDelivery(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		m := &fakeMailer{failures: []error{errTemp, errTemp, errTemp}}
		h := newHarness(t, rdb, m, time.Hour)
		seed(t, h.svc, "42")
		waitFor(t, "escalation successful", func() bool {
			return escalationOf(t, h.svc, "42").Status == bridge.EscalationSuccessful
		})
		// Comments made after the escalation follow, threaded.
		if _, err := h.svc.Apply(context.Background(), bridge.Event{ID: "cm1", Type: bridge.EventTicketCommented,
			TicketID: "42", Comment: &bridge.Comment{ID: "c1", Author: bridge.Person{ID: "u1"}, Body: "précision"}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "follow-up", func() bool { return len(m.sent()) == 2 })
		time.Sleep(300 * time.Millisecond)
		sent := m.sent()
		if len(sent) != 2 {
			t.Fatalf("%d mails accepted, want 2", len(sent))
		}
		esc := escalationOf(t, h.svc, "42")
		if esc.RootMessageID != sent[0].MessageID {
			t.Errorf("root %q, sent %q", esc.RootMessageID, sent[0].MessageID)
		}
		if want := fmt.Sprintf("comment c1 refs=[%s]", sent[0].MessageID); string(sent[1].Raw) != want {
			t.Errorf("follow-up %q, want %q", sent[1].Raw, want)
		}
		thread, _ := h.store.Thread(context.Background(), "42")
		if len(thread) != 2 {
			t.Errorf("thread %v", thread)
		}
		d, err := h.queue.Depths()
		if err != nil || d != (jobqueue.Depths{}) {
			t.Errorf("depths %+v, %v: want all zero", d, err)
		}
	})
}

func TestPermanentFailureFailsEscalation(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		m := &fakeMailer{failures: []error{bridge.Permanent(errors.New("550 5.1.1 no such user"))}}
		h := newHarness(t, rdb, m, time.Hour)
		seed(t, h.svc, "43")
		waitFor(t, "escalation failed", func() bool {
			return escalationOf(t, h.svc, "43").Status == bridge.EscalationFailed
		})
		esc := escalationOf(t, h.svc, "43")
		if esc.LastError == "" || len(m.sent()) != 0 {
			t.Errorf("escalation %+v, sent %d", esc, len(m.sent()))
		}
		waitFor(t, "dead letter", func() bool {
			dead, _ := h.queue.Dead()
			return len(dead) == 1 && dead[0].TicketID == "43"
		})
		// A retry after failure is allowed and sends a new mail.
		if _, err := h.svc.Apply(context.Background(), bridge.Event{ID: "e2", Type: bridge.EventEscalationRequested,
			TicketID: "43", Actor: bridge.Person{ID: "u-ref"}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "second attempt successful", func() bool {
			return escalationOf(t, h.svc, "43").Status == bridge.EscalationSuccessful
		})
		if len(m.sent()) != 1 {
			t.Errorf("sent %d", len(m.sent()))
		}
	})
}

func TestLifetimeExceeded(t *testing.T) {
	m := &fakeMailer{}
	for range 1000 {
		m.failures = append(m.failures, errTemp)
	}
	rdb := redistest.Client(t, redistest.Miniredis(t).Addr())
	h := newHarness(t, rdb, m, 300*time.Millisecond)
	seed(t, h.svc, "44")
	waitFor(t, "escalation failed", func() bool {
		return escalationOf(t, h.svc, "44").Status == bridge.EscalationFailed
	})
	if esc := escalationOf(t, h.svc, "44"); esc.LastError == "" {
		t.Errorf("no reason: %+v", esc)
	}
}

// TestAcceptedNotResent: a job that runs again after its mail was accepted
// (a crash before the job was acknowledged) does not send it again.
func TestAcceptedNotResent(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		m := &fakeMailer{}
		store := redisstore.New(rdb, redisstore.Options{Prefix: "jq:"})
		svc := bridge.NewService(store)
		seed(t, svc, "45")
		w := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: store, Mailer: m, Lifetime: time.Hour})
		effs, _ := store.Outbox(context.Background(), "45")
		var esc *bridge.Effect
		for i := range effs {
			if effs[i].Kind == bridge.EffectEscalate {
				esc = &effs[i]
			}
		}
		if esc == nil {
			t.Fatalf("outbox %v", effs)
		}
		for range 3 {
			if err := w.Handle(context.Background(), *esc); err != nil {
				t.Fatal(err)
			}
		}
		if len(m.sent()) != 1 {
			t.Fatalf("sent %d times", len(m.sent()))
		}
	})
}

// TestScheduleEndsInDeadLetters: a callback that keeps failing is tried once
// and then at each delay of its schedule, waits in the retries meanwhile,
// lands in the dead letters (and is reported), and a replay runs it again;
// handing it over again does not.
func TestScheduleEndsInDeadLetters(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		var mu sync.Mutex
		var tries []time.Time
		var dead []jobqueue.Job
		failing := true
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-sched", PollInterval: 20 * time.Millisecond,
			Schedules: map[bridge.EffectKind][]time.Duration{bridge.EffectCallback: {300 * time.Millisecond, 600 * time.Millisecond}},
			OnDead: func(j jobqueue.Job, _ error) {
				mu.Lock()
				dead = append(dead, j)
				mu.Unlock()
			}})
		run(t, q, func(_ context.Context, e bridge.Effect) error {
			mu.Lock()
			defer mu.Unlock()
			tries = append(tries, time.Now())
			if failing {
				return errors.New("ENT answered 503")
			}
			return nil
		})
		cb := []bridge.Effect{{ID: "cb-1", Kind: bridge.EffectCallback, TicketID: "42"}}
		if err := q.Dispatch(context.Background(), cb); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a retry listed", func() bool {
			r, _ := q.Retrying()
			return len(r) == 1 && r[0].ID == "cb-1" && r[0].LastError == "ENT answered 503" && !r[0].NextRunAt.IsZero()
		})
		waitFor(t, "dead letter", func() bool {
			d, _ := q.Dead()
			return len(d) == 1
		})
		mu.Lock()
		if len(tries) != 3 {
			t.Fatalf("%d tries, want 1 + 2 retries", len(tries))
		}
		// Due times are kept in whole milliseconds: a retry waits its
		// delay (less a millisecond of rounding), plus the forwarder's
		// wake-up.
		if gap := tries[1].Sub(tries[0]); gap < 299*time.Millisecond || gap > 600*time.Millisecond {
			t.Errorf("first retry after %v, want about 300ms", gap)
		}
		if gap := tries[2].Sub(tries[1]); gap < 599*time.Millisecond || gap > 900*time.Millisecond {
			t.Errorf("second retry after %v, want about 600ms", gap)
		}
		if len(dead) != 1 || dead[0].TicketID != "42" || dead[0].Kind != "callback" || dead[0].Retried != 2 {
			t.Errorf("reported dead %+v", dead)
		}
		failing = false
		mu.Unlock()
		d, _ := q.Dead()
		if d[0].LastError != "ENT answered 503" || d[0].FailedAt.IsZero() || d[0].State != "archived" {
			t.Errorf("dead letter %+v", d[0])
		}
		if err := q.Replay("no-such-job"); !errors.Is(err, jobqueue.ErrNotFound) {
			t.Errorf("replay of an unknown job: %v", err)
		}
		if err := q.Replay(d[0].ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "replayed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(tries) == 4
		})
		waitFor(t, "dead letters empty", func() bool {
			d, _ := q.Dead()
			return len(d) == 0
		})
		if err := q.Dispatch(context.Background(), cb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(tries) != 4 {
			t.Errorf("%d tries after a second dispatch", len(tries))
		}
	})
}

// TestDispatchOncePerEffect: effects handed over several times, in one call
// or several, run once each.
func TestDispatchOncePerEffect(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-once", Block: 100 * time.Millisecond})
		var effs []bridge.Effect
		for i := range 20 {
			effs = append(effs, bridge.Effect{ID: fmt.Sprint("e", i), Kind: bridge.EffectNotify, TicketID: "1"})
		}
		ctx := context.Background()
		if err := q.Dispatch(ctx, append(effs, effs[:5]...)); err != nil {
			t.Fatal(err)
		}
		c := countRuns(t, q)
		if err := q.Dispatch(ctx, effs); err != nil {
			t.Fatal(err)
		}
		runs := c.settle(t, "all run", 20)
		if len(runs) != 20 {
			t.Errorf("%d effects ran, want 20", len(runs))
		}
		for id, n := range runs {
			if n != 1 {
				t.Errorf("%s ran %d times", id, n)
			}
		}
	})
}

// TestPickedUpWhenEnqueued: with a poll interval far longer than the test,
// an idle worker takes a job as soon as it is enqueued.
func TestPickedUpWhenEnqueued(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-pickup", PollInterval: time.Hour, Block: 5 * time.Second})
		started := make(chan time.Time, 10)
		run(t, q, func(context.Context, bridge.Effect) error {
			started <- time.Now()
			return nil
		})
		time.Sleep(200 * time.Millisecond) // the worker is blocked on the stream
		for i := range 5 {
			at := time.Now()
			if err := q.Dispatch(context.Background(), []bridge.Effect{{ID: fmt.Sprint("p", i), Kind: bridge.EffectNotify}}); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-started:
				if d := s.Sub(at); d > 100*time.Millisecond {
					t.Errorf("picked up after %v", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("not picked up")
			}
		}
	})
}

// TestHelperDyingConsumer is not a test: TestDeadConsumerJobReclaimed runs
// it in a second process, which takes a job and hangs until it is killed.
func TestHelperDyingConsumer(t *testing.T) {
	addr := os.Getenv("STREAMQ_DYING_CONSUMER")
	if addr == "" {
		t.Skip("only run by TestDeadConsumerJobReclaimed")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-kill", Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond,
		Schedules: map[bridge.EffectKind][]time.Duration{bridge.EffectNotify: {50 * time.Millisecond}}})
	_ = q.Run(context.Background(), func(_ context.Context, e bridge.Effect) error {
		fmt.Printf("running %s\n", e.ID)
		select {}
	})
}

// killHolding runs TestHelperDyingConsumer in a second process until it
// runs job id, and kills it (SIGKILL).
func killHolding(t *testing.T, addr, id string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDyingConsumer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAMQ_DYING_CONSUMER="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "running "+id {
		_ = cmd.Process.Kill()
		t.Fatalf("the dying consumer said %q, %v", line, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// TestDeadConsumerJobReclaimed: a consumer killed while it holds a job (a
// replica that dies mid-job) leaves it pending; another consumer reclaims
// it once the lease is over, counts the try as failed (a retry after the
// first delay), runs it once, and acknowledges it.
func TestDeadConsumerJobReclaimed(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, addr string) {
		ctx := context.Background()
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-kill", Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond,
			RetryInitial: 100 * time.Millisecond})
		if err := q.Dispatch(ctx, []bridge.Effect{{ID: "k1", Kind: bridge.EffectNotify, TicketID: "7"}}); err != nil {
			t.Fatal(err)
		}
		killHolding(t, addr, "k1")
		killed := time.Now()

		var mu sync.Mutex
		var runs []time.Time
		run(t, q, func(_ context.Context, e bridge.Effect) error {
			mu.Lock()
			defer mu.Unlock()
			if e.ID != "k1" {
				t.Errorf("ran %s", e.ID)
			}
			runs = append(runs, time.Now())
			return nil
		})
		waitFor(t, "the job reclaimed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(runs) > 0
		})
		time.Sleep(time.Second) // several lease periods
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 1 {
			t.Errorf("ran %d times", len(runs))
		}
		if d := runs[0].Sub(killed); d < 350*time.Millisecond {
			t.Errorf("run %v after the kill, before the lease and the retry delay were over", d)
		}
		waitFor(t, "acknowledged", func() bool {
			d, err := q.Depths()
			return err == nil && d == (jobqueue.Depths{})
		})
	})
}

// TestLongJobKeepsItsLease: a job that runs for several leases is not
// reclaimed by another consumer while its own is alive.
func TestLongJobKeepsItsLease(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		var mu sync.Mutex
		runs := 0
		handle := func(context.Context, bridge.Effect) error {
			mu.Lock()
			runs++
			mu.Unlock()
			time.Sleep(1200 * time.Millisecond)
			return nil
		}
		opts := jobqueue.Options{Queue: "jq-long", Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond}
		a, b := jobqueue.New(rdb, opts), jobqueue.New(rdb, opts)
		run(t, a, handle)
		run(t, b, handle)
		if err := a.Dispatch(context.Background(), []bridge.Effect{{ID: "long", Kind: bridge.EffectNotify}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "done", func() bool {
			d, err := a.Depths()
			mu.Lock()
			defer mu.Unlock()
			return err == nil && runs > 0 && d == (jobqueue.Depths{})
		})
		mu.Lock()
		defer mu.Unlock()
		if runs != 1 {
			t.Errorf("ran %d times", runs)
		}
	})
}

// TestShutdownLeavesUnfinishedJob: a job still running when a consumer's
// shutdown grace is over is not acknowledged, stays pending under its name,
// and is reclaimed and run by another consumer.
func TestShutdownLeavesUnfinishedJob(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		opts := jobqueue.Options{Queue: "jq-grace", Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond,
			ShutdownTimeout: 100 * time.Millisecond, RetryInitial: 50 * time.Millisecond}
		a := jobqueue.New(rdb, opts)
		running := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- a.Run(ctx, func(ctx context.Context, _ bridge.Effect) error {
				close(running)
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		if err := a.Dispatch(context.Background(), []bridge.Effect{{ID: "g1", Kind: bridge.EffectNotify}}); err != nil {
			t.Fatal(err)
		}
		<-running
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d, _ := a.Depths(); d.Active != 1 || d.Retry != 0 || d.Dead != 0 {
			t.Fatalf("after the shutdown: %+v, want the job still pending", d)
		}
		var runs atomic.Int32
		run(t, jobqueue.New(rdb, opts), func(context.Context, bridge.Effect) error {
			runs.Add(1)
			return nil
		})
		waitFor(t, "reclaimed and acknowledged", func() bool {
			d, err := a.Depths()
			return err == nil && runs.Load() == 1 && d == (jobqueue.Depths{})
		})
	})
}

// TestJobKillingItsConsumersEndsDead: a job whose consumers die each time
// they run it has its tries counted (one retry in its schedule here) and
// ends in the dead letters instead of being reclaimed for ever.
func TestJobKillingItsConsumersEndsDead(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, addr string) {
		var mu sync.Mutex
		var dead []jobqueue.Job
		opts := jobqueue.Options{Queue: "jq-kill", Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond,
			Schedules: map[bridge.EffectKind][]time.Duration{bridge.EffectNotify: {50 * time.Millisecond}},
			OnDead: func(j jobqueue.Job, _ error) {
				mu.Lock()
				dead = append(dead, j)
				mu.Unlock()
			}}
		q := jobqueue.New(rdb, opts)
		if err := q.Dispatch(context.Background(), []bridge.Effect{{ID: "k2", Kind: bridge.EffectNotify, TicketID: "8"}}); err != nil {
			t.Fatal(err)
		}
		killHolding(t, addr, "k2") // the first try
		killHolding(t, addr, "k2") // the retry, after the second process reclaimed the first
		var runs atomic.Int32
		run(t, q, func(context.Context, bridge.Effect) error {
			runs.Add(1)
			return nil
		})
		waitFor(t, "dead letter", func() bool {
			d, _ := q.Dead()
			return len(d) == 1
		})
		d, _ := q.Dead()
		if d[0].ID != "k2" || d[0].Retried != 1 || !strings.Contains(d[0].LastError, "lease expired") {
			t.Errorf("dead letter %+v", d[0])
		}
		mu.Lock()
		defer mu.Unlock()
		if len(dead) != 1 || runs.Load() != 0 {
			t.Errorf("reported dead %+v, ran %d times", dead, runs.Load())
		}
	})
}

// TestCluster: on a Redis Cluster, each queue's keys share one slot (the
// scripts touch several of them), for two queues in different slots: jobs
// run once each, a failure waits in the retries, a permanent one lands in
// the dead letters and is replayed.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	rdb := c.Client(t)
	a, _ := rdb.ClusterKeySlot(context.Background(), "{cl-a}").Result()
	b, _ := rdb.ClusterKeySlot(context.Background(), "{cl-b}").Result()
	if a == b {
		t.Fatalf("both queues in slot %d", a)
	}
	for _, name := range []string{"cl-a", "cl-b"} {
		var mu sync.Mutex
		runs := map[string]int{}
		fails := map[string]int{}
		q := jobqueue.New(rdb, jobqueue.Options{Queue: name, Block: 100 * time.Millisecond,
			RetryInitial: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond})
		run(t, q, func(_ context.Context, e bridge.Effect) error {
			mu.Lock()
			defer mu.Unlock()
			runs[e.ID]++
			switch {
			case e.ID == "bad" && runs[e.ID] == 1:
				return bridge.Permanent(errors.New("no"))
			case e.ID == "flaky" && fails[e.ID] < 2:
				fails[e.ID]++
				return errTemp
			}
			return nil
		})
		var effs []bridge.Effect
		for _, id := range []string{"e1", "e2", "e3", "flaky", "bad"} {
			effs = append(effs, bridge.Effect{ID: id, Kind: bridge.EffectNotify, TicketID: "1"})
		}
		if err := q.Dispatch(context.Background(), append(effs, effs...)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		waitFor(t, name+": dead letter", func() bool {
			d, err := q.Dead()
			return err == nil && len(d) == 1 && d[0].ID == "bad"
		})
		if err := q.Replay("bad"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		waitFor(t, name+": all done", func() bool {
			d, err := q.Depths()
			mu.Lock()
			defer mu.Unlock()
			return err == nil && d == (jobqueue.Depths{}) && runs["bad"] == 2 && runs["flaky"] == 3
		})
		mu.Lock()
		for _, id := range []string{"e1", "e2", "e3"} {
			if runs[id] != 1 {
				t.Errorf("%s: %s ran %d times", name, id, runs[id])
			}
		}
		mu.Unlock()
	}
}

// TestDeadLettersTrimmed: when a job dies, the dead letters beyond DeadMax
// (the oldest) and those older than DeadFor are dropped.
func TestDeadLettersTrimmed(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, _ string) {
		ctx := context.Background()
		fail := func(context.Context, bridge.Effect) error { return bridge.Permanent(errors.New("no")) }
		deadIDs := func(q *jobqueue.Queue) []string {
			d, err := q.Dead()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range d {
				ids = append(ids, j.ID)
			}
			return ids
		}
		kill := func(q *jobqueue.Queue, id string, want int) {
			if err := q.Dispatch(ctx, []bridge.Effect{{ID: id, Kind: bridge.EffectNotify}}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, id+" dead", func() bool {
				ids := deadIDs(q)
				return len(ids) == want && ids[len(ids)-1] == id
			})
		}
		most := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-trim", DeadMax: 2, Block: 100 * time.Millisecond})
		run(t, most, fail)
		kill(most, "m1", 1)
		kill(most, "m2", 2)
		kill(most, "m3", 2)
		if ids := deadIDs(most); fmt.Sprint(ids) != "[m2 m3]" {
			t.Errorf("dead letters %v, want [m2 m3]", ids)
		}
		if err := most.Replay("m1"); !errors.Is(err, jobqueue.ErrNotFound) {
			t.Errorf("replay of a dropped dead letter: %v", err)
		}
		aged := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-age", DeadFor: 300 * time.Millisecond, Block: 100 * time.Millisecond})
		run(t, aged, fail)
		kill(aged, "a1", 1)
		time.Sleep(400 * time.Millisecond)
		kill(aged, "a2", 1)
		if d, _ := aged.Depths(); d.Dead != 1 {
			t.Errorf("depths %+v", d)
		}
	})
}
