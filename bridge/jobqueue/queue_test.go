package jobqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

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
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, rdb redis.UniversalClient, mailer *fakeMailer, lifetime time.Duration) *harness {
	store := redisstore.New(rdb, redisstore.Options{Prefix: "jq:"})
	q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-test", RetryInitial: 50 * time.Millisecond,
		RetryMax: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	svc := bridge.NewService(store, bridge.WithDispatcher(q))
	w := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: store, Mailer: mailer, Lifetime: lifetime})
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{svc: svc, store: store, queue: q, mailer: mailer, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- q.Run(ctx, w.Handle) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
		q.Close()
	})
	return h
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

func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, redistest.Client(t, m.Addr()))
	})
	t.Run("redis-server", func(t *testing.T) {
		f(t, redistest.Client(t, redistest.Start(t).Addr))
	})
}

var errTemp = errors.New("451 4.3.0 try again later")

func TestTemporaryFailuresEndInOneDelivery(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
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
	})
}

func TestPermanentFailureFailsEscalation(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
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
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
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

func TestRetryDelay(t *testing.T) {
	want := []time.Duration{5, 10, 20, 40, 66, 66}
	for n, w := range want {
		if got := jobqueue.RetryDelay(n, 5*time.Minute, 66*time.Minute); got != w*time.Minute {
			t.Errorf("retry %d: %v, want %v", n, got, w*time.Minute)
		}
	}
}

// TestScheduleEndsInDeadLetters: a callback that keeps failing is tried once
// and then at each delay of its schedule, lands in the dead letters (and is
// reported), and a replay runs it again.
func TestScheduleEndsInDeadLetters(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		var mu sync.Mutex
		var tries []time.Time
		var dead []jobqueue.Job
		failing := true
		q := jobqueue.New(rdb, jobqueue.Options{Queue: "jq-sched", PollInterval: 20 * time.Millisecond,
			Schedules: map[bridge.EffectKind][]time.Duration{bridge.EffectCallback: {time.Second, 2 * time.Second}},
			OnDead: func(j jobqueue.Job, _ error) {
				mu.Lock()
				dead = append(dead, j)
				mu.Unlock()
			}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- q.Run(ctx, func(_ context.Context, e bridge.Effect) error {
				mu.Lock()
				defer mu.Unlock()
				tries = append(tries, time.Now())
				if failing {
					return errors.New("ENT answered 503")
				}
				return nil
			})
		}()
		defer func() { cancel(); <-done; q.Close() }()
		if err := q.Dispatch(context.Background(), []bridge.Effect{{ID: "cb-1", Kind: bridge.EffectCallback, TicketID: "42"}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "dead letter", func() bool {
			d, _ := q.Dead()
			return len(d) == 1
		})
		mu.Lock()
		if len(tries) != 3 {
			t.Fatalf("%d tries, want 1 + 2 retries", len(tries))
		}
		// asynq keeps due times in whole seconds: a delay d waits between
		// d-1s and d+1s.
		if gap := tries[1].Sub(tries[0]); gap < 10*time.Millisecond || gap > 2500*time.Millisecond {
			t.Errorf("first retry after %v, want about 1s", gap)
		}
		if gap := tries[2].Sub(tries[1]); gap < time.Second || gap > 3500*time.Millisecond {
			t.Errorf("second retry after %v, want about 2s", gap)
		}
		if len(dead) != 1 || dead[0].TicketID != "42" || dead[0].Kind != "callback" {
			t.Errorf("reported dead %+v", dead)
		}
		failing = false
		mu.Unlock()
		d, _ := q.Dead()
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
		// Handing the same effect over again does not run it again.
		if err := q.Dispatch(context.Background(), []bridge.Effect{{ID: "cb-1", Kind: bridge.EffectCallback, TicketID: "42"}}); err != nil {
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
