package bridge_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// effectRecorder is a dispatcher that keeps what it is handed.
type effectRecorder struct {
	mu      sync.Mutex
	effects []bridge.Effect
}

func (r *effectRecorder) Dispatch(_ context.Context, effs []bridge.Effect) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.effects = append(r.effects, effs...)
	return nil
}

func (r *effectRecorder) take() []bridge.Effect {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.effects
	r.effects = nil
	return out
}

// TestRecordDeskStatus: a desk's notice is recorded on the escalation with
// its time, learns the desk's number, tells the ENT and the referent who
// escalated, never changes the ticket's own status, and is applied once
// per mail and once per status.
func TestRecordDeskStatus(t *testing.T) {
	ctx := context.Background()
	m := redistest.Miniredis(t)
	store := redisstore.New(redistest.Client(t, m.Addr()), redisstore.Options{Prefix: "dstest:"})
	rec := &effectRecorder{}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	svc := bridge.NewService(store, bridge.WithDispatcher(rec), bridge.WithCallbacks(true),
		bridge.WithClock(func() time.Time { return now }))
	apply := func(ev bridge.Event) {
		t.Helper()
		if _, err := svc.Apply(ctx, ev); err != nil {
			t.Fatalf("apply %s: %v", ev.ID, err)
		}
	}
	apply(bridge.Event{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: "s1", Name: "Lycée Victor Hugo", EscalationEnabled: true,
		Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Digest: bridge.DigestNever, Locale: "en"},
			{ID: "u-ref2", DisplayName: "M. Petit", Digest: bridge.DigestNever}}}})
	apply(bridge.Event{ID: "c", Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: "t1", StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa Dupont"},
		Subject: "Écran blanc", Description: "Page blanche", Locale: "fr", CreatedAt: now}})
	apply(bridge.Event{ID: "e", Type: bridge.EventEscalationRequested, TicketID: "t1",
		Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}})
	rec.take()

	at := now.Add(-time.Hour)
	out, err := svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: "mail1", TicketID: "t1", Status: bridge.DeskSolved,
		At: at, DeskReference: "5678"})
	if err != nil || out != bridge.Applied {
		t.Fatalf("record: %v %v", out, err)
	}
	v, err := store.TicketView(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if ds := v.Escalation.DeskStatus; ds == nil || ds.Status != bridge.DeskSolved || !ds.At.Equal(at) {
		t.Fatalf("desk status %+v", v.Escalation.DeskStatus)
	}
	if v.Status != bridge.StatusOpened {
		t.Errorf("ticket status %s: a desk notice must not change it", v.Status)
	}
	if v.Escalation.DeskReference != "5678" || v.Escalation.Status != bridge.EscalationSuccessful {
		t.Errorf("escalation %+v", v.Escalation)
	}
	if len(v.Exchanges) != 0 {
		t.Errorf("a notice posted %d exchanges", len(v.Exchanges))
	}
	last := v.Events[len(v.Events)-1]
	if last.Type != "desk_status" || last.Detail != "solved (desk ticket 5678)" {
		t.Errorf("last event %+v", last)
	}
	effs := rec.take()
	var kinds []string
	for _, e := range effs {
		switch e.Kind {
		case bridge.EffectNotify:
			kinds = append(kinds, string(e.Notify))
		case bridge.EffectCallback:
			kinds = append(kinds, e.Callback)
		}
	}
	sort.Strings(kinds)
	if len(kinds) != 2 || kinds[0] != string(bridge.NotifyDeskSolved) || kinds[1] != bridge.CallbackDeskStatusChanged {
		t.Fatalf("effects %v", kinds)
	}

	// The same mail again, and another mail with the same status: nothing.
	for _, key := range []string{"mail1", "mail2"} {
		out, err := svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: key, TicketID: "t1", Status: bridge.DeskSolved})
		if err != nil || out != bridge.Duplicate {
			t.Fatalf("again %s: %v %v", key, out, err)
		}
	}
	if effs := rec.take(); len(effs) != 0 {
		t.Fatalf("a repeated notice dispatched %d effects", len(effs))
	}
	// Closed after solved is recorded.
	if out, err := svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: "mail3", TicketID: "t1", Status: bridge.DeskClosed}); err != nil || out != bridge.Applied {
		t.Fatalf("closed: %v %v", out, err)
	}
	v, _ = store.TicketView(ctx, "t1")
	if v.Escalation.DeskStatus.Status != bridge.DeskClosed || !v.Escalation.DeskStatus.At.Equal(now) {
		t.Errorf("desk status %+v", v.Escalation.DeskStatus)
	}
	if _, err := svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: "x", TicketID: "t1", Status: "reopened"}); bridge.ErrorCode(err) != bridge.CodeInvalid {
		t.Errorf("an unknown desk status: %v", err)
	}
	if _, err := svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: "y", TicketID: "nope", Status: bridge.DeskSolved}); bridge.ErrorCode(err) != bridge.CodeUnknownTicket {
		t.Errorf("an unknown ticket: %v", err)
	}
}

// TestRecipientsDeskNotice: a desk notice goes to the referent who
// escalated, in their locale; to the referents when that is not known.
func TestRecipientsDeskNotice(t *testing.T) {
	refs := []bridge.Referent{{ID: "r1", Locale: "en"}, {ID: "r2"}}
	tk := bridge.Ticket{Owner: bridge.Person{ID: "owner"}, Locale: "fr"}
	tk.Escalation.EscalatedBy = &bridge.Person{ID: "r1"}
	got := bridge.Recipients(bridge.NotifyDeskSolved, tk, refs, nil)
	if len(got) != 1 || got[0].ID != "r1" || got[0].Locale != "en" {
		t.Fatalf("escalated by r1: %+v", got)
	}
	tk.Escalation.EscalatedBy = nil
	got = bridge.Recipients(bridge.NotifyDeskClosed, tk, refs, nil)
	if len(got) != 2 || got[0].ID != "r1" || got[1].ID != "r2" {
		t.Fatalf("escalated by nobody known: %+v", got)
	}
}
