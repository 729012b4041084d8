package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// scriptedCallbacks is a callback sender that fails with a scripted error.
type scriptedCallbacks struct{ err error }

func (c scriptedCallbacks) SendCallback(context.Context, string, string, time.Time, any) error {
	return c.err
}

// givenUp reports whether the queue dead-letters a job that failed with err.
func givenUp(err error) bool { return bridge.IsPermanent(err) }

// TestWorkerGivesUp pins, for each kind of effect, which failures the
// worker gives up (the queue then dead-letters the job instead of retrying
// it), the error it returns, and what it records on the ticket: a failed
// escalation with its reason, a follow-up that could not reach the desk.
// A mail's temporary failure is given up once the effect is older than the
// lifetime; a callback's is not (its retry schedule bounds it).
func TestWorkerGivesUp(t *testing.T) {
	const lifetime = time.Hour
	temporary := errors.New("421 try later")
	permanent := bridge.Permanent(errors.New("550 no such user"))
	composeErr := errors.New("template: boom")
	tests := []struct {
		name string
		// escalated: the escalation mail was accepted before eff runs
		escalated  bool
		sendErr    error
		composeErr error
		callback   error
		expired    bool
		eff        bridge.Effect
		wantErr    string
		wantGiveUp bool
		wantStatus bridge.EscalationStatus
		wantReason string // the escalation's last error, or the forward failure's detail
	}{
		{name: "escalation refused for good", sendErr: permanent,
			eff:     bridge.Effect{Kind: bridge.EffectEscalate},
			wantErr: "given up: 550 no such user", wantGiveUp: true,
			wantStatus: bridge.EscalationFailed, wantReason: "550 no such user"},
		{name: "escalation refused for now", sendErr: temporary,
			eff:     bridge.Effect{Kind: bridge.EffectEscalate},
			wantErr: "421 try later", wantStatus: bridge.EscalationInProgress},
		{name: "escalation refused past the lifetime", sendErr: temporary, expired: true,
			eff:     bridge.Effect{Kind: bridge.EffectEscalate},
			wantErr: "given up: 421 try later", wantGiveUp: true,
			wantStatus: bridge.EscalationFailed, wantReason: "gave up after 1h0m0s: 421 try later"},
		{name: "escalation not composed", composeErr: composeErr,
			eff:     bridge.Effect{Kind: bridge.EffectEscalate},
			wantErr: "given up: compose: template: boom", wantGiveUp: true,
			wantStatus: bridge.EscalationFailed, wantReason: "compose: template: boom"},
		{name: "follow-up refused for good", escalated: true, sendErr: permanent,
			eff:     bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "given up: 550 no such user", wantGiveUp: true,
			wantStatus: bridge.EscalationSuccessful, wantReason: "550 no such user"},
		{name: "follow-up refused for now", escalated: true, sendErr: temporary,
			eff:     bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "421 try later", wantStatus: bridge.EscalationSuccessful},
		{name: "follow-up refused past the lifetime", escalated: true, sendErr: temporary, expired: true,
			eff:     bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "given up: 421 try later", wantGiveUp: true,
			wantStatus: bridge.EscalationSuccessful, wantReason: "421 try later"},
		{name: "follow-up not composed", escalated: true, composeErr: composeErr,
			eff:     bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "given up: compose: template: boom", wantGiveUp: true,
			wantStatus: bridge.EscalationSuccessful, wantReason: "compose: template: boom"},
		{name: "comment gone", escalated: true,
			eff:     bridge.Effect{Kind: bridge.EffectForwardComment, ExchangeID: "nope"},
			wantErr: "given up: exchange nope not found", wantGiveUp: true, wantStatus: bridge.EscalationSuccessful},
		{name: "follow-up before the escalation mail", eff: bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "the escalation mail is not accepted yet", wantStatus: bridge.EscalationInProgress},
		{name: "follow-up never after the escalation mail", expired: true,
			eff:     bridge.Effect{Kind: bridge.EffectForwardNote, Note: "relance"},
			wantErr: "given up: the escalation mail is not accepted yet", wantGiveUp: true,
			wantStatus: bridge.EscalationInProgress},
		{name: "callback refused, however old", callback: errors.New("callback answered 400"), expired: true,
			eff:     bridge.Effect{Kind: bridge.EffectCallback, Callback: bridge.CallbackEscalated},
			wantErr: "callback answered 400", wantStatus: bridge.EscalationInProgress},
		{name: "callback that cannot be made", callback: bridge.Permanent(errors.New("callback data: bad")),
			eff:     bridge.Effect{Kind: bridge.EffectCallback, Callback: bridge.CallbackEscalated},
			wantErr: "given up: callback data: bad", wantGiveUp: true, wantStatus: bridge.EscalationInProgress},
		{name: "desk reply gone", eff: bridge.Effect{Kind: bridge.EffectCallback, Callback: bridge.CallbackDeskReplied,
			ExchangeID: "nope"},
			wantErr: "given up: exchange nope not found", wantGiveUp: true, wantStatus: bridge.EscalationInProgress},
		{name: "unknown kind", eff: bridge.Effect{Kind: "zzz"},
			wantErr: `given up: unknown effect kind "zzz"`, wantGiveUp: true, wantStatus: bridge.EscalationInProgress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m := redistest.Miniredis(t)
			store := redisstore.New(redistest.Client(t, m.Addr()), redisstore.Options{Prefix: "giveup:"})
			svc := bridge.NewService(store)
			mailer := &scriptedMailer{}
			w := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: store, Mailer: mailer, Feed: store,
				Callbacks: scriptedCallbacks{tc.callback}, Lifetime: lifetime})
			for _, ev := range []bridge.Event{
				{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{ID: "s1", Name: "Lycée",
					EscalationEnabled: true, Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin"}}}},
				{ID: "c", Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{ID: "t1", StructureID: "s1",
					Owner: bridge.Person{ID: "u1", DisplayName: "Léa"}, Subject: "Écran blanc", Description: "Page blanche",
					Locale: "fr", CreatedAt: time.Now()}},
				{ID: "e", Type: bridge.EventEscalationRequested, TicketID: "t1",
					Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}},
			} {
				if _, err := svc.Apply(ctx, ev); err != nil {
					t.Fatalf("apply %s: %v", ev.ID, err)
				}
			}
			if tc.escalated {
				if err := w.Handle(ctx, bridge.Effect{ID: "esc:t1:1", Kind: bridge.EffectEscalate, TicketID: "t1",
					Attempt: 1, At: time.Now()}); err != nil {
					t.Fatalf("escalate: %v", err)
				}
			}
			mailer.err, mailer.composeErr = tc.sendErr, tc.composeErr
			eff := tc.eff
			eff.ID, eff.TicketID, eff.Attempt, eff.At = "eff:t1", "t1", 1, time.Now()
			if eff.Kind == bridge.EffectEscalate {
				eff.ID = "esc:t1:1"
			}
			if tc.expired {
				eff.At = time.Now().Add(-2 * lifetime)
			}
			err := w.Handle(ctx, eff)
			if err == nil || err.Error() != tc.wantErr || givenUp(err) != tc.wantGiveUp {
				t.Fatalf("handle: %v (given up %v); want %q (given up %v)", err, givenUp(err), tc.wantErr, tc.wantGiveUp)
			}
			view, err := store.TicketView(ctx, "t1")
			if err != nil {
				t.Fatal(err)
			}
			if view.Escalation.Status != tc.wantStatus {
				t.Errorf("escalation %s, want %s", view.Escalation.Status, tc.wantStatus)
			}
			reason := view.Escalation.LastError
			for _, e := range view.Events {
				if e.Type == bridge.TimelineDeskForwardFailed {
					reason = e.Detail
				}
			}
			if reason != tc.wantReason {
				t.Errorf("reason recorded %q, want %q", reason, tc.wantReason)
			}
		})
	}
}
