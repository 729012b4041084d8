package bridge

import (
	"testing"
	"time"
)

func TestRoleOf(t *testing.T) {
	tk := Ticket{Owner: Person{ID: "u-owner"}}
	refs := []Referent{{ID: "u-ref"}, {ID: "u-academy"}}
	tests := []struct {
		actor string
		want  Role
	}{
		{"u-owner", Role{Owner: true}},
		{"u-ref", Role{Referent: true}},
		{"u-academy", Role{Referent: true}},
		{"u-other", Role{}},
		{"", Role{}},
	}
	for _, tc := range tests {
		if got := RoleOf(tc.actor, tk, refs); got != tc.want {
			t.Errorf("RoleOf(%q) = %+v, want %+v", tc.actor, got, tc.want)
		}
	}
	both := Ticket{Owner: Person{ID: "u-ref"}}
	if got := RoleOf("u-ref", both, refs); got != (Role{Owner: true, Referent: true}) {
		t.Errorf("a referent's own demand: %+v", got)
	}
}

var (
	owner    = Role{Owner: true}
	referent = Role{Referent: true}
	nobody   = Role{}
)

func TestMayEscalate(t *testing.T) {
	for _, tc := range []struct {
		r  Role
		ok bool
	}{{referent, true}, {Role{Owner: true, Referent: true}, true}, {owner, false}, {nobody, false}} {
		if err := MayEscalate(tc.r); (err == nil) != tc.ok || err != nil && ErrorCode(err) != CodeForbiddenActor {
			t.Errorf("MayEscalate(%s) = %v", tc.r, err)
		}
	}
}

func TestMayChangeStatus(t *testing.T) {
	for _, tc := range []struct {
		r  Role
		to Status
		ok bool
	}{
		{referent, StatusOpened, true}, {referent, StatusWaiting, true}, {referent, StatusResolved, true},
		{referent, StatusClosed, true},
		{owner, StatusClosed, true},
		{owner, StatusResolved, false}, {owner, StatusOpened, false}, {owner, StatusWaiting, false},
		{nobody, StatusClosed, false}, {nobody, StatusOpened, false},
	} {
		if err := MayChangeStatus(tc.r, tc.to); (err == nil) != tc.ok || err != nil && ErrorCode(err) != CodeForbiddenActor {
			t.Errorf("MayChangeStatus(%s, %s) = %v", tc.r, tc.to, err)
		}
	}
}

func TestMayEdit(t *testing.T) {
	fresh := Ticket{Status: StatusNew, Escalation: Escalation{Status: EscalationNotDone}}
	opened := Ticket{Status: StatusOpened, Escalation: Escalation{Status: EscalationNotDone}}
	escalated := Ticket{Status: StatusNew, Escalation: Escalation{Status: EscalationInProgress}}
	failed := Ticket{Status: StatusNew, Escalation: Escalation{Status: EscalationFailed}}
	for _, tc := range []struct {
		name string
		r    Role
		t    Ticket
		ok   bool
	}{
		{"owner, new", owner, fresh, true},
		{"owner, opened", owner, opened, false},
		{"owner, escalated", owner, escalated, false},
		{"owner, new after a failed escalation", owner, failed, true},
		{"referent, new", referent, fresh, true},
		{"referent, opened", referent, opened, true},
		{"referent, escalated", referent, escalated, true},
		{"nobody, new", nobody, fresh, false},
	} {
		if err := MayEdit(tc.r, tc.t); (err == nil) != tc.ok || err != nil && ErrorCode(err) != CodeForbiddenActor {
			t.Errorf("%s: MayEdit = %v", tc.name, err)
		}
	}
}

func TestMayComment(t *testing.T) {
	for _, tc := range []struct {
		r  Role
		ok bool
	}{{owner, true}, {referent, true}, {nobody, false}} {
		if err := MayComment(tc.r); (err == nil) != tc.ok || err != nil && ErrorCode(err) != CodeForbiddenActor {
			t.Errorf("MayComment(%s) = %v", tc.r, err)
		}
	}
}

// TestDecideRoles: decide refuses a forbidden actor before any other rule,
// and checks nothing when the ENT checks rights itself (nil role).
func TestDecideRoles(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	cur := baseTicket()
	st := &Structure{ID: "s1", EscalationEnabled: true}
	esc := Event{ID: "e", Type: EventEscalationRequested, TicketID: cur.ID, Actor: Person{ID: "u-someone"}}
	if _, err := decide(t0, &cur, st, esc, &nobody); ErrorCode(err) != CodeForbiddenActor {
		t.Errorf("escalation by nobody: %v", err)
	}
	if _, err := decide(t0, &cur, st, esc, &owner); ErrorCode(err) != CodeForbiddenActor {
		t.Errorf("escalation by the owner: %v", err)
	}
	if _, err := decide(t0, &cur, st, esc, &referent); err != nil {
		t.Errorf("escalation by a referent: %v", err)
	}
	if _, err := decide(t0, &cur, st, esc, nil); err != nil {
		t.Errorf("escalation with roles trusted: %v", err)
	}
	resolve := Event{ID: "r", Type: EventStatusChanged, TicketID: cur.ID, Status: StatusResolved}
	if _, err := decide(t0, &cur, nil, resolve, &owner); ErrorCode(err) != CodeForbiddenActor {
		t.Errorf("the owner resolving: %v", err)
	}
	closing := Event{ID: "c", Type: EventStatusChanged, TicketID: cur.ID, Status: StatusClosed}
	if _, err := decide(t0, &cur, nil, closing, &owner); err != nil {
		t.Errorf("the owner closing: %v", err)
	}
	desc := "autre"
	edit := Event{ID: "u", Type: EventTicketUpdated, TicketID: cur.ID, Changes: &TicketChanges{Description: &desc}}
	if _, err := decide(t0, &cur, nil, edit, &nobody); ErrorCode(err) != CodeForbiddenActor {
		t.Errorf("an edit by nobody: %v", err)
	}
	comment := Event{ID: "k", Type: EventTicketCommented, TicketID: cur.ID, Comment: &Comment{ID: "x", Author: Person{ID: "u-someone"}, Body: "?"}}
	if _, err := decide(t0, &cur, nil, comment, &nobody); ErrorCode(err) != CodeForbiddenActor {
		t.Errorf("a comment by nobody: %v", err)
	}
	if got := comment.actorID(); got != "u-someone" {
		t.Errorf("a comment's actor is its author, got %q", got)
	}
}

// TestDescriptionFreeze: the description freezes once an escalation
// reached the desk (in progress or successful), not after a failed one.
func TestDescriptionFreeze(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	desc := "nouvelle description"
	edit := Event{ID: "u", Type: EventTicketUpdated, Changes: &TicketChanges{Description: &desc}}
	for _, tc := range []struct {
		esc EscalationStatus
		ok  bool
	}{{EscalationNotDone, true}, {EscalationFailed, true}, {EscalationInProgress, false}, {EscalationSuccessful, false}} {
		cur := baseTicket()
		cur.Escalation.Status = tc.esc
		_, err := decide(t0, &cur, nil, edit, &referent)
		if (err == nil) != tc.ok || err != nil && ErrorCode(err) != CodeTransitionNotAllowed {
			t.Errorf("escalation %s: %v", tc.esc, err)
		}
	}
}
