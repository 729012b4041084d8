package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// backends runs f against miniredis and against a real redis-server.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, redistest.Client(t, m.Addr()))
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, redistest.Client(t, srv.Addr))
	})
}

type recordingDispatcher struct {
	mu   sync.Mutex
	got  map[string]int
	fail bool
}

func (d *recordingDispatcher) Dispatch(_ context.Context, effs []bridge.Effect) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("queue down")
	}
	if d.got == nil {
		d.got = map[string]int{}
	}
	for _, e := range effs {
		d.got[e.ID]++
	}
	return nil
}

func newService(rdb redis.UniversalClient, d bridge.Dispatcher) (*bridge.Service, *redisstore.Store) {
	st := redisstore.New(rdb, redisstore.Options{Prefix: "sbtest:"})
	opts := []bridge.ServiceOption{}
	if d != nil {
		opts = append(opts, bridge.WithDispatcher(d))
	}
	return bridge.NewService(st, opts...), st
}

func structureEvent(id string, escalation bool) bridge.Event {
	return bridge.Event{ID: "wh-st-" + id, Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: id, Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: escalation,
		Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: bridge.DigestDaily}}}}
}

func createdEvent(ticketID, structureID string, at time.Time) bridge.Event {
	return bridge.Event{ID: "wh-created-" + ticketID, Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: ticketID, StructureID: structureID, Owner: bridge.Person{ID: "u-owner", DisplayName: "Léa Dupont"},
		Category: bridge.Category{App: "pronote", Label: "Pronote"}, Subject: "Écran blanc", Description: "Rien ne s'affiche",
		CreatedAt: at,
		Attachments: []bridge.AttachmentData{{Attachment: bridge.Attachment{ID: "att-" + ticketID, Filename: "capture.png",
			ContentType: "image/png"}, Content: []byte("\x89PNG\r\n\x1a\nfake")}}}}
}

func mustApply(t *testing.T, svc *bridge.Service, ev bridge.Event, want bridge.Outcome) {
	t.Helper()
	got, err := svc.Apply(context.Background(), ev)
	if err != nil {
		t.Fatalf("apply %s %s: %v", ev.Type, ev.ID, err)
	}
	if got != want {
		t.Fatalf("apply %s %s: %s, want %s", ev.Type, ev.ID, got, want)
	}
}

func TestLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		d := &recordingDispatcher{}
		svc, _ := newService(rdb, d)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, structureEvent("s1", true), bridge.Duplicate)
		mustApply(t, svc, createdEvent("42", "s1", time.Now()), bridge.Applied)
		mustApply(t, svc, createdEvent("42", "s1", time.Now()), bridge.Duplicate)
		// The same creation under another webhook id is still one ticket.
		again := createdEvent("42", "s1", time.Now())
		again.ID = "other-id"
		mustApply(t, svc, again, bridge.Duplicate)

		comment := bridge.Event{ID: "wh-c1", Type: bridge.EventTicketCommented, TicketID: "42", Comment: &bridge.Comment{
			ID: "c1", Author: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}, Body: "Je regarde."}}
		mustApply(t, svc, comment, bridge.Applied)
		mustApply(t, svc, comment, bridge.Duplicate)
		// The same comment id under another webhook id is not added twice.
		comment.ID = "wh-c1-bis"
		mustApply(t, svc, comment, bridge.Duplicate)

		esc := bridge.Event{ID: "wh-esc", Type: bridge.EventEscalationRequested, TicketID: "42",
			Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}}
		mustApply(t, svc, esc, bridge.Applied)
		mustApply(t, svc, esc, bridge.Duplicate)

		v, err := svc.Ticket(ctx, "42")
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != bridge.StatusOpened || v.Escalation.Status != bridge.EscalationInProgress {
			t.Errorf("status %s / %s", v.Status, v.Escalation.Status)
		}
		if len(v.Exchanges) != 1 || v.Exchanges[0].Body != "Je regarde." {
			t.Errorf("exchanges %+v", v.Exchanges)
		}
		if len(v.Events) < 4 {
			t.Errorf("events %+v", v.Events)
		}
		if d.got["wh-esc:escalate"] != 1 || d.got["wh-created-42:notify:ticket.created"] != 1 ||
			d.got["wh-c1:notify:ticket.updated"] != 1 || len(d.got) != 3 {
			t.Errorf("dispatched %v", d.got)
		}
		a, err := svc.Attachment(ctx, "att-42")
		if err != nil || string(a.Content) != "\x89PNG\r\n\x1a\nfake" || a.ContentType != "image/png" {
			t.Errorf("attachment %+v %v", a, err)
		}
		if _, err := svc.Attachment(ctx, "nope"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("missing attachment: %v", err)
		}

		unknown := bridge.Event{ID: "wh-x", Type: bridge.EventStatusChanged, TicketID: "404", Status: bridge.StatusOpened,
			Actor: bridge.Person{ID: "u-ref1"}}
		if _, err := svc.Apply(ctx, unknown); bridge.ErrorCode(err) != bridge.CodeUnknownTicket {
			t.Errorf("unknown ticket: %v", err)
		}
		back := bridge.Event{ID: "wh-back", Type: bridge.EventStatusChanged, TicketID: "42", Status: bridge.StatusNew,
			Actor: bridge.Person{ID: "u-ref1"}}
		if _, err := svc.Apply(ctx, back); bridge.ErrorCode(err) != bridge.CodeTransitionNotAllowed {
			t.Errorf("back to new: %v", err)
		}
		// A refused event is not remembered: the same id may succeed later.
		if _, seen, _ := redisstore.New(rdb, redisstore.Options{Prefix: "sbtest:"}).LoadTicket(ctx, "42", "wh-back"); seen {
			t.Errorf("refused event recorded as seen")
		}
	})
}

func TestAttachmentIDOfAnotherTicket(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		svc, _ := newService(rdb, nil)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("1", "s1", time.Now()), bridge.Applied)
		ev := createdEvent("2", "s1", time.Now())
		ev.NewTicket.Attachments[0].ID = "att-1"
		if _, err := svc.Apply(context.Background(), ev); bridge.ErrorCode(err) != bridge.CodeInvalid {
			t.Fatalf("want invalid_payload, got %v", err)
		}
		if _, err := svc.Ticket(context.Background(), "2"); !errors.Is(err, bridge.ErrNotFound) {
			t.Fatalf("ticket 2 stored: %v", err)
		}
	})
}

// TestConcurrentEscalations: many escalation requests for one ticket at once
// give exactly one success; the others are conflicts.
func TestConcurrentEscalations(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		d := &recordingDispatcher{}
		svc, _ := newService(rdb, d)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("7", "s1", time.Now()), bridge.Applied)
		const n = 16
		var wg sync.WaitGroup
		results := make([]error, n)
		outcomes := make([]bridge.Outcome, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				outcomes[i], results[i] = svc.Apply(context.Background(), bridge.Event{ID: fmt.Sprintf("esc-%d", i),
					Type: bridge.EventEscalationRequested, TicketID: "7", Actor: bridge.Person{ID: "u-ref1"}})
			}()
		}
		close(start)
		wg.Wait()
		ok, conflicts := 0, 0
		for i, err := range results {
			switch {
			case err == nil && outcomes[i] == bridge.Applied:
				ok++
			case bridge.ErrorCode(err) == bridge.CodeEscalationConflict:
				conflicts++
			default:
				t.Errorf("request %d: %v %v", i, outcomes[i], err)
			}
		}
		if ok != 1 || conflicts != n-1 {
			t.Fatalf("%d successes and %d conflicts, want 1 and %d", ok, conflicts, n-1)
		}
		v, _ := svc.Ticket(context.Background(), "7")
		if v.Escalation.Attempt != 1 || len(d.got) != 2 {
			t.Fatalf("attempt %d, dispatched %v", v.Escalation.Attempt, d.got)
		}
	})
}

// TestConcurrentComments: comments racing on one ticket are all kept.
func TestConcurrentComments(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		svc, _ := newService(rdb, nil)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("9", "s1", time.Now()), bridge.Applied)
		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := svc.Apply(context.Background(), bridge.Event{ID: fmt.Sprintf("c-%d", i), Type: bridge.EventTicketCommented,
					TicketID: "9", Comment: &bridge.Comment{ID: fmt.Sprintf("cm-%d", i), Author: bridge.Person{ID: "u-owner"}, Body: "x"}})
				if err != nil {
					t.Errorf("comment %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		v, _ := svc.Ticket(context.Background(), "9")
		if len(v.Exchanges) != n || v.Version != n+1 {
			t.Fatalf("%d exchanges, version %d", len(v.Exchanges), v.Version)
		}
	})
}

// TestOutboxHealsOnRetry: when the dispatcher fails after the commit, the
// sender's retry of the same event hands the effect over.
func TestOutboxHealsOnRetry(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		d := &recordingDispatcher{}
		svc, st := newService(rdb, d)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("5", "s1", time.Now()), bridge.Applied)
		esc := bridge.Event{ID: "esc", Type: bridge.EventEscalationRequested, TicketID: "5", Actor: bridge.Person{ID: "u-ref1"}}
		d.fail = true
		if _, err := svc.Apply(context.Background(), esc); err == nil || bridge.ErrorCode(err) != bridge.CodeUnavailable {
			t.Fatalf("want unavailable, got %v", err)
		}
		pending, _ := st.Outbox(context.Background(), "5")
		if len(pending) != 1 {
			t.Fatalf("outbox %v", pending)
		}
		d.fail = false
		mustApply(t, svc, esc, bridge.Duplicate)
		mustApply(t, svc, esc, bridge.Duplicate)
		pending, _ = st.Outbox(context.Background(), "5")
		if len(pending) != 0 || d.got["esc:escalate"] != 1 {
			t.Fatalf("outbox %v, dispatched %v", pending, d.got)
		}
	})
}

// A commit hands back the outbox as it left it: its own effects and those
// an earlier commit could not dispatch, which the next change of the
// ticket then dispatches too, without reading the outbox again.
func TestCommitReturnsOutbox(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		d := &recordingDispatcher{}
		svc, st := newService(rdb, d)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("6", "s1", time.Now()), bridge.Applied)
		d.fail = true
		esc := bridge.Event{ID: "esc6", Type: bridge.EventEscalationRequested, TicketID: "6", Actor: bridge.Person{ID: "u-ref1"}}
		if _, err := svc.Apply(ctx, esc); err == nil {
			t.Fatal("dispatch failure not reported")
		}
		tk, _, err := st.LoadTicket(ctx, "6", "")
		if err != nil {
			t.Fatal(err)
		}
		tk.Version++
		note := bridge.Effect{ID: "note6", Kind: bridge.EffectNotify, TicketID: "6"}
		dup, outbox, err := st.Commit(ctx, bridge.Commit{EventID: "direct6", Ticket: tk, Effects: []bridge.Effect{note}})
		if err != nil || dup {
			t.Fatalf("commit: dup %v, %v", dup, err)
		}
		ids := map[string]bool{}
		for _, e := range outbox {
			ids[e.ID] = true
		}
		if len(outbox) != 2 || !ids["note6"] || !ids["esc6:escalate"] {
			t.Fatalf("outbox after the commit: %+v", outbox)
		}
		// The same event again writes nothing and hands nothing back.
		if dup, outbox, err := st.Commit(ctx, bridge.Commit{EventID: "direct6", Ticket: tk}); err != nil || !dup || outbox != nil {
			t.Fatalf("same commit again: dup %v, outbox %v, %v", dup, outbox, err)
		}
		// A stale version is refused.
		if _, _, err := st.Commit(ctx, bridge.Commit{EventID: "stale6", Ticket: tk}); !errors.Is(err, bridge.ErrVersionConflict) {
			t.Fatalf("stale commit: %v", err)
		}
		// The next change through the service dispatches what waited.
		d.fail = false
		mustApply(t, svc, bridge.Event{ID: "cm6", Type: bridge.EventTicketCommented, TicketID: "6",
			Comment: &bridge.Comment{ID: "c6", Author: bridge.Person{ID: "u-owner"}, Body: "Toujours blanc."}}, bridge.Applied)
		if d.got["esc6:escalate"] != 1 || d.got["note6"] != 1 {
			t.Fatalf("dispatched %v", d.got)
		}
		if pending, _ := st.Outbox(ctx, "6"); len(pending) != 0 {
			t.Fatalf("outbox left %+v", pending)
		}
	})
}

func TestListTickets(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		svc, _ := newService(rdb, nil)
		base := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, structureEvent("s2", true), bridge.Applied)
		for i := range 25 {
			sid := "s1"
			if i%5 == 0 {
				sid = "s2"
			}
			// Pairs share a creation time: ties must not be lost or repeated.
			mustApply(t, svc, createdEvent(fmt.Sprintf("t%02d", i), sid, base.Add(time.Duration(i/2)*time.Minute)), bridge.Applied)
		}
		mustApply(t, svc, bridge.Event{ID: "r", Type: bridge.EventStatusChanged, TicketID: "t03", Status: bridge.StatusResolved,
			Actor: bridge.Person{ID: "u-ref1"}}, bridge.Applied)

		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			p, err := svc.Tickets(ctx, bridge.ListQuery{Limit: 4, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range p.Tickets {
				all = append(all, tk.ID)
			}
			if p.NextCursor == "" || pages > 20 {
				break
			}
			cursor = p.NextCursor
		}
		if len(all) != 25 {
			t.Fatalf("listed %d tickets: %v", len(all), all)
		}
		seen := map[string]bool{}
		for i, id := range all {
			if seen[id] {
				t.Fatalf("%s listed twice", id)
			}
			seen[id] = true
			if i > 0 {
				a, _ := svc.Ticket(ctx, all[i-1])
				b, _ := svc.Ticket(ctx, id)
				if b.CreatedAt.After(a.CreatedAt) {
					t.Fatalf("not newest first at %d", i)
				}
			}
		}
		p, err := svc.Tickets(ctx, bridge.ListQuery{StructureID: "s2", Limit: 50})
		if err != nil || len(p.Tickets) != 5 {
			t.Fatalf("s2: %d %v", len(p.Tickets), err)
		}
		p, err = svc.Tickets(ctx, bridge.ListQuery{Status: bridge.StatusResolved, Limit: 50})
		if err != nil || len(p.Tickets) != 1 || p.Tickets[0].ID != "t03" {
			t.Fatalf("resolved: %+v %v", p.Tickets, err)
		}
		if _, err := svc.Tickets(ctx, bridge.ListQuery{Cursor: "!!"}); bridge.ErrorCode(err) != bridge.CodeInvalid {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}
