package bridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// scriptedMailer is a desk mailer whose Send runs a hook (to change the
// ticket while the mail is on its way) and returns a scripted error.
type scriptedMailer struct {
	mu     sync.Mutex
	sent   []bridge.OutgoingMail
	onSend func()
	err    error
	// composeErr fails the composing of every mail.
	composeErr error
}

func (m *scriptedMailer) NewMessageID(ticketID, kind string) string {
	return kind + "." + ticketID + "." + time.Now().Format("150405.000000000") + "@ent.example"
}

func (m *scriptedMailer) ComposeEscalation(in bridge.EscalationMail) (bridge.OutgoingMail, error) {
	if m.composeErr != nil {
		return bridge.OutgoingMail{}, m.composeErr
	}
	raw := "Subject: " + in.Ticket.Subject + "\r\nSchool: " + in.Structure.Name + "\r\n"
	for _, a := range in.Attachments {
		raw += "Attachment: " + a.Filename + " " + string(a.Content) + "\r\n"
	}
	return bridge.OutgoingMail{MessageID: in.MessageID, From: "a@ent.example", To: []string{"d@desk.example"},
		Raw: []byte(raw)}, nil
}

func (m *scriptedMailer) ComposeFollowUp(in bridge.FollowUpMail) (bridge.OutgoingMail, error) {
	if m.composeErr != nil {
		return bridge.OutgoingMail{}, m.composeErr
	}
	return bridge.OutgoingMail{MessageID: in.MessageID, From: "a@ent.example", To: []string{"d@desk.example"},
		Raw: []byte("follow-up")}, nil
}

func (m *scriptedMailer) Send(_ context.Context, msg bridge.OutgoingMail) error {
	if m.onSend != nil {
		m.onSend()
	}
	if m.err != nil {
		return m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

// plainLedger hides the store's EscalationPreparer: the worker then loads
// and prepares one step after the other.
type plainLedger struct{ bridge.Ledger }

// TestEscalateOutcome runs the escalation effect through the worker over a
// Redis store: the mail carries the structure and the attachment loaded in
// one round trip, and the ticket ends successful even when it changed
// between the worker's load and the server's acceptance (the copy the
// worker holds is then stale and the commit goes the long way); a 5xx
// fails it with the reason.
func TestEscalateOutcome(t *testing.T) {
	tests := []struct {
		name          string
		plainLedger   bool // a ledger without the one-round-trip preparation
		commentMidway bool
		err           error
		want          bridge.EscalationStatus
		wantSent      int
	}{
		{"accepted", false, false, nil, bridge.EscalationSuccessful, 1},
		{"accepted, plain ledger", true, false, nil, bridge.EscalationSuccessful, 1},
		{"accepted while the ticket changed", false, true, nil, bridge.EscalationSuccessful, 1},
		{"refused for good", false, false, bridge.Permanent(errors.New("550 no such user")), bridge.EscalationFailed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m := redistest.Miniredis(t)
			store := redisstore.New(redistest.Client(t, m.Addr()), redisstore.Options{Prefix: "desktest:"})
			svc := bridge.NewService(store)
			mailer := &scriptedMailer{err: tc.err}
			var ledger bridge.Ledger = store
			if tc.plainLedger {
				ledger = plainLedger{store}
			}
			w := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: ledger, Mailer: mailer, Feed: store})
			apply := func(ev bridge.Event) {
				t.Helper()
				if _, err := svc.Apply(ctx, ev); err != nil {
					t.Fatalf("apply %s: %v", ev.ID, err)
				}
			}
			apply(bridge.Event{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
				ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: true,
				Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin"}}}})
			apply(bridge.Event{ID: "c", Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
				ID: "t1", StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa Dupont"},
				Subject: "Écran blanc", Description: "Page blanche", Locale: "fr", CreatedAt: time.Now(),
				Attachments: []bridge.AttachmentData{{Attachment: bridge.Attachment{ID: "a1", Filename: "capture.png",
					ContentType: "image/png"}, Content: []byte("PNGBYTES")}}}})
			apply(bridge.Event{ID: "e", Type: bridge.EventEscalationRequested, TicketID: "t1",
				Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}})
			if tc.commentMidway {
				mailer.onSend = func() {
					apply(bridge.Event{ID: "k", Type: bridge.EventTicketCommented, TicketID: "t1", Comment: &bridge.Comment{
						ID: "x1", Author: bridge.Person{ID: "u1", DisplayName: "Léa Dupont"}, Body: "Toujours blanc",
						CreatedAt: time.Now()}})
				}
			}
			before, err := store.TicketView(ctx, "t1")
			if err != nil {
				t.Fatal(err)
			}
			eff := bridge.Effect{ID: "esc:t1:1", Kind: bridge.EffectEscalate, TicketID: "t1",
				Attempt: before.Escalation.Attempt, At: time.Now()}
			err = w.Handle(ctx, eff)
			if (err == nil) != (tc.err == nil) {
				t.Fatalf("handle: %v", err)
			}
			after, err := store.TicketView(ctx, "t1")
			if err != nil {
				t.Fatal(err)
			}
			if after.Escalation.Status != tc.want {
				t.Fatalf("escalation %s (%s), want %s", after.Escalation.Status, after.Escalation.LastError, tc.want)
			}
			if len(mailer.sent) != tc.wantSent {
				t.Fatalf("%d mails sent, want %d", len(mailer.sent), tc.wantSent)
			}
			if tc.wantSent > 0 {
				raw := string(mailer.sent[0].Raw)
				if raw != "Subject: Écran blanc\r\nSchool: Lycée Victor Hugo\r\nAttachment: capture.png PNGBYTES\r\n" {
					t.Errorf("mail made of %q", raw)
				}
				if after.Escalation.RootMessageID != mailer.sent[0].MessageID {
					t.Errorf("root Message-ID %q, sent %q", after.Escalation.RootMessageID, mailer.sent[0].MessageID)
				}
			}
			if tc.commentMidway && len(after.Exchanges) != 1 {
				t.Errorf("the comment made meanwhile is lost: %d exchanges", len(after.Exchanges))
			}
			// The job run again (a redelivery) sends nothing more.
			if err := w.Handle(ctx, eff); err != nil && tc.err == nil {
				t.Fatalf("handle again: %v", err)
			}
			if len(mailer.sent) != tc.wantSent {
				t.Fatalf("after a redelivery %d mails sent, want %d", len(mailer.sent), tc.wantSent)
			}
		})
	}
}
