package bridge

import (
	"fmt"
	"strings"
	"time"
)

// transitions lists, for each status, the statuses the ENT may set next.
// Nothing goes back to new: a ticket is new only until someone acts on it.
var transitions = map[Status][]Status{
	StatusNew:      {StatusOpened, StatusWaiting, StatusResolved, StatusClosed},
	StatusOpened:   {StatusWaiting, StatusResolved, StatusClosed},
	StatusWaiting:  {StatusOpened, StatusResolved, StatusClosed},
	StatusResolved: {StatusOpened, StatusClosed},
	StatusClosed:   {StatusOpened},
}

// CanTransition reports whether a ticket may go from one status to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Escalated reports whether the desk has been (or is being) asked to help.
func (t *Ticket) Escalated() bool {
	return t.Escalation.Status == EscalationInProgress || t.Escalation.Status == EscalationSuccessful
}

// decide applies the support module's rules to one ENT event and returns
// the commit that records it. t is the current ticket (nil for
// ticket.created); st is the ticket's structure when known; role is the
// actor's role on t, or nil when the ENT checks rights itself
// (ent.trust_actor_roles). decide is pure: the service loads, decides and
// commits optimistically.
func decide(now time.Time, t *Ticket, st *Structure, ev Event, role *Role) (Commit, error) {
	if err := allowed(t, ev, role); err != nil {
		return Commit{}, err
	}
	switch ev.Type {
	case EventTicketCreated:
		return decideCreated(now, ev)
	case EventTicketUpdated:
		return decideUpdated(now, *t, ev)
	case EventTicketCommented:
		return decideCommented(now, *t, ev)
	case EventStatusChanged:
		return decideStatus(now, *t, ev)
	case EventEscalationRequested:
		return decideEscalation(now, *t, st, ev)
	}
	return Commit{}, Errorf(CodeInvalid, "event type %q does not apply to a ticket", ev.Type)
}

// allowed applies the role rules to an event on t (nil role: not checked).
func allowed(t *Ticket, ev Event, role *Role) error {
	if role == nil || t == nil {
		return nil
	}
	switch ev.Type {
	case EventTicketUpdated:
		return MayEdit(*role, *t)
	case EventTicketCommented:
		return MayComment(*role)
	case EventStatusChanged:
		return MayChangeStatus(*role, ev.Status)
	case EventEscalationRequested:
		return MayEscalate(*role)
	}
	return nil
}

// actorID is who acts in an event on a ticket.
func (ev Event) actorID() string {
	if ev.Type == EventTicketCommented && ev.Comment != nil {
		return ev.Comment.Author.ID
	}
	return ev.Actor.ID
}

func attachmentRefs(atts []AttachmentData) []Attachment {
	refs := make([]Attachment, 0, len(atts))
	for _, a := range atts {
		ref := a.Attachment
		ref.Size = int64(len(a.Content))
		refs = append(refs, ref)
	}
	return refs
}

func actorRef(p Person) *Person {
	if p.ID == "" {
		return nil
	}
	return &p
}

func decideCreated(now time.Time, ev Event) (Commit, error) {
	n := ev.NewTicket
	locale := n.Locale
	if locale == "" {
		locale = "fr"
	}
	created := n.CreatedAt
	if created.IsZero() {
		created = now
	}
	t := Ticket{
		ID:          n.ID,
		StructureID: n.StructureID,
		Owner:       n.Owner,
		Category:    n.Category,
		Subject:     n.Subject,
		Description: n.Description,
		Locale:      locale,
		CreatedAt:   created,
		UpdatedAt:   now,
		Attachments: attachmentRefs(n.Attachments),
		Status:      StatusNew,
		Escalation:  Escalation{Status: EscalationNotDone},
		Version:     1,
	}
	return Commit{
		EventID: ev.ID,
		Ticket:  t,
		Events:  []TimelineEvent{{Type: TimelineCreated, At: now, Actor: actorRef(n.Owner), Detail: n.Subject}},
		Effects: []Effect{notifyEffect(ev.ID, t.ID, NotifyTicketCreated, actorRef(n.Owner), now)},
	}, nil
}

func next(t Ticket, now time.Time) Ticket {
	t.Version++
	t.UpdatedAt = now
	return t
}

func decideUpdated(now time.Time, t Ticket, ev Event) (Commit, error) {
	c := ev.Changes
	nt := next(t, now)
	var changed []string
	if c.Description != nil && *c.Description != t.Description {
		if t.Escalated() {
			// Frozen once the desk has (or is being sent) it; a failed
			// escalation never reached the desk.
			return Commit{}, &Error{Code: CodeTransitionNotAllowed,
				Message: "the description can no longer change once the ticket is escalated",
				Fields:  []string{"data.changes.description"}}
		}
		nt.Description = *c.Description
		changed = append(changed, "description")
	}
	if c.Subject != nil && *c.Subject != t.Subject {
		nt.Subject = *c.Subject
		changed = append(changed, "subject")
	}
	if c.Category != nil && *c.Category != t.Category {
		nt.Category = *c.Category
		changed = append(changed, "category")
	}
	commit := Commit{EventID: ev.ID, Ticket: nt}
	if len(changed) == 0 {
		// Nothing changes, but the event is recorded so that it stays
		// idempotent and visible in the history.
		commit.Events = []TimelineEvent{{Type: TimelineUpdated, At: now, Actor: actorRef(ev.Actor), Detail: "no change"}}
		return commit, nil
	}
	detail := strings.Join(changed, ", ")
	commit.Events = []TimelineEvent{{Type: TimelineUpdated, At: now, Actor: actorRef(ev.Actor), Detail: detail}}
	commit.Effects = []Effect{notifyEffect(ev.ID, t.ID, NotifyTicketUpdated, actorRef(ev.Actor), now)}
	if t.Escalated() {
		commit.Effects = append(commit.Effects, Effect{ID: ev.ID + ":note", Kind: EffectForwardNote, TicketID: t.ID,
			EventID: ev.ID, Note: "updated: " + detail, At: now})
	}
	return commit, nil
}

func decideCommented(now time.Time, t Ticket, ev Event) (Commit, error) {
	cm := ev.Comment
	nt := next(t, now)
	created := cm.CreatedAt
	if created.IsZero() {
		created = now
	}
	ex := Exchange{
		ID:          cm.ID,
		Origin:      OriginENT,
		Author:      cm.Author,
		Body:        cm.Body,
		CreatedAt:   created,
		Attachments: attachmentRefs(cm.Attachments),
	}
	events := []TimelineEvent{{Type: TimelineCommented, At: now, Actor: actorRef(cm.Author)}}
	switch {
	case t.Status.Finished():
		nt.Status = StatusOpened
		events = append(events, TimelineEvent{Type: TimelineStatusChanged, At: now, Actor: actorRef(cm.Author),
			Detail: fmt.Sprintf("%s → %s (reopened by a comment)", t.Status, StatusOpened)})
	case t.Status == StatusNew && cm.Author.ID != t.Owner.ID:
		nt.Status = StatusOpened
		events = append(events, TimelineEvent{Type: TimelineStatusChanged, At: now, Actor: actorRef(cm.Author),
			Detail: fmt.Sprintf("%s → %s (answered)", t.Status, StatusOpened)})
	}
	commit := Commit{EventID: ev.ID, Ticket: nt, Exchanges: []Exchange{ex}, Events: events,
		Effects: []Effect{notifyEffect(ev.ID, t.ID, NotifyTicketUpdated, actorRef(cm.Author), now)}}
	if t.Escalated() {
		commit.Effects = append(commit.Effects, Effect{ID: ev.ID + ":comment", Kind: EffectForwardComment, TicketID: t.ID,
			EventID: ev.ID, ExchangeID: ex.ID, At: now})
	}
	return commit, nil
}

func decideStatus(now time.Time, t Ticket, ev Event) (Commit, error) {
	nt := next(t, now)
	if ev.Status == t.Status {
		// Setting the status it already has changes nothing; recorded so
		// that the event stays idempotent.
		return Commit{EventID: ev.ID, Ticket: nt, Events: []TimelineEvent{{Type: TimelineStatusChanged, At: now,
			Actor: actorRef(ev.Actor), Detail: fmt.Sprintf("%s (unchanged)", t.Status)}}}, nil
	}
	if !CanTransition(t.Status, ev.Status) {
		return Commit{}, &Error{Code: CodeTransitionNotAllowed,
			Message: fmt.Sprintf("status cannot go from %s to %s", t.Status, ev.Status),
			Fields:  []string{"data.status"}}
	}
	nt.Status = ev.Status
	detail := fmt.Sprintf("%s → %s", t.Status, ev.Status)
	commit := Commit{EventID: ev.ID, Ticket: nt,
		Events:  []TimelineEvent{{Type: TimelineStatusChanged, At: now, Actor: actorRef(ev.Actor), Detail: detail}},
		Effects: []Effect{notifyEffect(ev.ID, t.ID, NotifyTicketUpdated, actorRef(ev.Actor), now)}}
	if t.Escalated() {
		commit.Effects = append(commit.Effects, Effect{ID: ev.ID + ":note", Kind: EffectForwardNote, TicketID: t.ID,
			EventID: ev.ID, Note: "status: " + detail, At: now})
	}
	return commit, nil
}

func decideEscalation(now time.Time, t Ticket, st *Structure, ev Event) (Commit, error) {
	if st == nil || !st.EscalationEnabled {
		return Commit{}, Errorf(CodeEscalationDisabled, "the structure of this ticket may not escalate to the desk")
	}
	switch {
	case t.Escalation.Status != EscalationNotDone && t.Escalation.Status != EscalationFailed:
		return Commit{}, Errorf(CodeEscalationConflict, "the ticket is already escalated (%s)", t.Escalation.Status)
	case t.Status.Finished():
		return Commit{}, Errorf(CodeEscalationConflict, "a %s ticket cannot be escalated", t.Status)
	}
	nt := next(t, now)
	at := now
	actor := ev.Actor
	nt.Escalation.Status = EscalationInProgress
	nt.Escalation.EscalatedAt = &at
	nt.Escalation.EscalatedBy = &actor
	nt.Escalation.LastError = ""
	nt.Escalation.Attempt++
	events := []TimelineEvent{{Type: TimelineEscalationRequested, At: now, Actor: actorRef(ev.Actor)}}
	if t.Status != StatusOpened {
		nt.Status = StatusOpened
		events = append(events, TimelineEvent{Type: TimelineStatusChanged, At: now, Actor: actorRef(ev.Actor),
			Detail: fmt.Sprintf("%s → %s (escalated)", t.Status, StatusOpened)})
	}
	return Commit{EventID: ev.ID, Ticket: nt, Events: events,
		Effects: []Effect{{ID: ev.ID + ":escalate", Kind: EffectEscalate, TicketID: t.ID, EventID: ev.ID,
			Attempt: nt.Escalation.Attempt, At: now}}}, nil
}
