package bridge

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

func baseTicket() Ticket {
	return Ticket{ID: "42", StructureID: "s1", Owner: Person{ID: "u-owner", DisplayName: "Léa"},
		Subject: "Écran blanc", Description: "Pronote ne s'affiche plus", Locale: "fr",
		Status: StatusNew, Escalation: Escalation{Status: EscalationNotDone}, Version: 3}
}

func strptr(s string) *string { return &s }

func TestDecide(t *testing.T) {
	enabled := &Structure{ID: "s1", EscalationEnabled: true}
	disabled := &Structure{ID: "s1"}
	ref := Person{ID: "u-ref", DisplayName: "Mme Martin"}
	owner := Person{ID: "u-owner", DisplayName: "Léa"}
	with := func(mod func(*Ticket)) Ticket { t := baseTicket(); mod(&t); return t }

	tests := []struct {
		name       string
		ticket     Ticket
		st         *Structure
		ev         Event
		wantCode   Code
		wantStatus Status
		wantEsc    EscalationStatus
		wantEffect EffectKind
	}{
		{name: "comment by owner keeps new", ticket: baseTicket(),
			ev:         Event{ID: "e1", Type: EventTicketCommented, TicketID: "42", Comment: &Comment{ID: "c1", Author: owner, Body: "toujours"}},
			wantStatus: StatusNew, wantEsc: EscalationNotDone},
		{name: "comment by referent opens a new ticket", ticket: baseTicket(),
			ev:         Event{ID: "e1", Type: EventTicketCommented, TicketID: "42", Comment: &Comment{ID: "c1", Author: ref, Body: "je regarde"}},
			wantStatus: StatusOpened, wantEsc: EscalationNotDone},
		{name: "comment reopens a resolved ticket", ticket: with(func(t *Ticket) { t.Status = StatusResolved }),
			ev:         Event{ID: "e1", Type: EventTicketCommented, TicketID: "42", Comment: &Comment{ID: "c1", Author: owner, Body: "encore"}},
			wantStatus: StatusOpened, wantEsc: EscalationNotDone},
		{name: "comment reopens a closed ticket", ticket: with(func(t *Ticket) { t.Status = StatusClosed }),
			ev:         Event{ID: "e1", Type: EventTicketCommented, TicketID: "42", Comment: &Comment{ID: "c1", Author: ref, Body: "encore"}},
			wantStatus: StatusOpened, wantEsc: EscalationNotDone},
		{name: "comment on escalated ticket is forwarded", ticket: with(func(t *Ticket) { t.Status = StatusOpened; t.Escalation.Status = EscalationSuccessful }),
			ev:         Event{ID: "e1", Type: EventTicketCommented, TicketID: "42", Comment: &Comment{ID: "c1", Author: owner, Body: "précision"}},
			wantStatus: StatusOpened, wantEsc: EscalationSuccessful, wantEffect: EffectForwardComment},
		{name: "escalation allowed", ticket: baseTicket(), st: enabled,
			ev:         Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref},
			wantStatus: StatusOpened, wantEsc: EscalationInProgress, wantEffect: EffectEscalate},
		{name: "escalation retry after failure", ticket: with(func(t *Ticket) { t.Status = StatusOpened; t.Escalation.Status = EscalationFailed }), st: enabled,
			ev:         Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref},
			wantStatus: StatusOpened, wantEsc: EscalationInProgress, wantEffect: EffectEscalate},
		{name: "escalation disabled", ticket: baseTicket(), st: disabled,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationDisabled},
		{name: "escalation unknown structure", ticket: baseTicket(), st: nil,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationDisabled},
		{name: "escalation twice", ticket: with(func(t *Ticket) { t.Escalation.Status = EscalationInProgress }), st: enabled,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationConflict},
		{name: "escalation after success", ticket: with(func(t *Ticket) { t.Escalation.Status = EscalationSuccessful }), st: enabled,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationConflict},
		{name: "escalation of resolved ticket", ticket: with(func(t *Ticket) { t.Status = StatusResolved }), st: enabled,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationConflict},
		{name: "escalation of closed ticket", ticket: with(func(t *Ticket) { t.Status = StatusClosed }), st: enabled,
			ev: Event{ID: "e1", Type: EventEscalationRequested, TicketID: "42", Actor: ref}, wantCode: CodeEscalationConflict},
		{name: "description frozen after escalation", ticket: with(func(t *Ticket) { t.Escalation.Status = EscalationInProgress }),
			ev:       Event{ID: "e1", Type: EventTicketUpdated, TicketID: "42", Actor: owner, Changes: &TicketChanges{Description: strptr("autre")}},
			wantCode: CodeTransitionNotAllowed},
		{name: "subject may change after escalation, forwarded", ticket: with(func(t *Ticket) { t.Escalation.Status = EscalationSuccessful }),
			ev:         Event{ID: "e1", Type: EventTicketUpdated, TicketID: "42", Actor: owner, Changes: &TicketChanges{Subject: strptr("Écran noir")}},
			wantStatus: StatusNew, wantEsc: EscalationSuccessful, wantEffect: EffectForwardNote},
		{name: "description edit before escalation", ticket: baseTicket(),
			ev:         Event{ID: "e1", Type: EventTicketUpdated, TicketID: "42", Actor: owner, Changes: &TicketChanges{Description: strptr("autre")}},
			wantStatus: StatusNew, wantEsc: EscalationNotDone},
		{name: "status new to resolved", ticket: baseTicket(),
			ev:         Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusResolved},
			wantStatus: StatusResolved, wantEsc: EscalationNotDone},
		{name: "status back to new refused", ticket: with(func(t *Ticket) { t.Status = StatusOpened }),
			ev: Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusNew}, wantCode: CodeTransitionNotAllowed},
		{name: "closed to resolved refused", ticket: with(func(t *Ticket) { t.Status = StatusClosed }),
			ev: Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusResolved}, wantCode: CodeTransitionNotAllowed},
		{name: "closed reopened", ticket: with(func(t *Ticket) { t.Status = StatusClosed }),
			ev:         Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusOpened},
			wantStatus: StatusOpened, wantEsc: EscalationNotDone},
		{name: "same status is a no-op", ticket: with(func(t *Ticket) { t.Status = StatusWaiting }),
			ev:         Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusWaiting},
			wantStatus: StatusWaiting, wantEsc: EscalationNotDone},
		{name: "status change on escalated ticket is forwarded", ticket: with(func(t *Ticket) { t.Status = StatusOpened; t.Escalation.Status = EscalationInProgress }),
			ev:         Event{ID: "e1", Type: EventStatusChanged, TicketID: "42", Actor: ref, Status: StatusWaiting},
			wantStatus: StatusWaiting, wantEsc: EscalationInProgress, wantEffect: EffectForwardNote},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.ticket
			c, err := decide(t0, &cur, tc.st, tc.ev, nil)
			if tc.wantCode != "" {
				var be *Error
				if !errors.As(err, &be) || be.Code != tc.wantCode {
					t.Fatalf("err = %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			if c.Ticket.Status != tc.wantStatus || c.Ticket.Escalation.Status != tc.wantEsc {
				t.Errorf("status %s/%s, want %s/%s", c.Ticket.Status, c.Ticket.Escalation.Status, tc.wantStatus, tc.wantEsc)
			}
			if c.Ticket.Version != tc.ticket.Version+1 {
				t.Errorf("version %d, want %d", c.Ticket.Version, tc.ticket.Version+1)
			}
			if c.EventID != tc.ev.ID || len(c.Events) == 0 {
				t.Errorf("commit lacks its event id or history: %+v", c)
			}
			var kinds []EffectKind
			for _, e := range c.Effects {
				if e.Kind != EffectNotify {
					kinds = append(kinds, e.Kind)
				}
			}
			if tc.wantEffect == "" && len(kinds) != 0 || tc.wantEffect != "" && (len(kinds) != 1 || kinds[0] != tc.wantEffect) {
				t.Errorf("effects %v, want %q", kinds, tc.wantEffect)
			}
			if cur.Version != tc.ticket.Version || cur.Status != tc.ticket.Status || cur.Escalation.Status != tc.ticket.Escalation.Status {
				t.Errorf("decide changed its input")
			}
		})
	}
}

func TestDecideCreated(t *testing.T) {
	ev := Event{ID: "e0", Type: EventTicketCreated, NewTicket: &NewTicket{ID: "42", StructureID: "s1",
		Owner: Person{ID: "u1"}, Subject: "Écran", Attachments: []AttachmentData{{Attachment: Attachment{ID: "a1", Filename: "x.png"}, Content: []byte("png")}}}}
	c, err := decide(t0, nil, nil, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ticket.Version != 1 || c.Ticket.Status != StatusNew || c.Ticket.Escalation.Status != EscalationNotDone || c.Ticket.Locale != "fr" {
		t.Errorf("ticket %+v", c.Ticket)
	}
	if len(c.Ticket.Attachments) != 1 || c.Ticket.Attachments[0].Size != 3 {
		t.Errorf("attachments %+v", c.Ticket.Attachments)
	}
}

func TestCanTransitionNeverToNew(t *testing.T) {
	for _, from := range []Status{StatusNew, StatusOpened, StatusWaiting, StatusResolved, StatusClosed} {
		if CanTransition(from, StatusNew) {
			t.Errorf("%s → new allowed", from)
		}
	}
}
