package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DeskReply is an answer of the desk, matched to a ticket and stripped of
// its quotes by the mail adapter.
type DeskReply struct {
	// Key makes the reply idempotent: the mail's Message-ID, or a hash of
	// the raw mail when it has none.
	Key         string
	TicketID    string
	Author      Person
	Body        string
	ReceivedAt  time.Time
	Attachments []AttachmentData // ids chosen by the caller, deterministic from Key
	// Status is the status the desk asked for (resolved, closed, waiting),
	// or empty.
	Status Status
	// DeskReference is the desk's own ticket number when the mail taught
	// it, or empty; DeskTag its subject tag as written, when known.
	DeskReference string
	DeskTag       string
	// SkipRepeated posts nothing when the ticket's latest desk exchange
	// already says the same (a product's closed notice repeating the
	// solution its solved notice carried).
	SkipRepeated bool
}

// ApplyDeskReply adds a desk reply to its ticket, once per Key, with the
// status it asks for.
func (s *Service) ApplyDeskReply(ctx context.Context, r DeskReply) (Outcome, error) {
	if r.Key == "" || r.TicketID == "" {
		return "", Errorf(CodeInvalid, "a desk reply needs a key and a ticket")
	}
	if err := s.store.PutAttachments(ctx, r.TicketID, r.Attachments); err != nil {
		return "", err
	}
	exID := "desk-" + r.Key
	return s.mutate(ctx, r.TicketID, "reply:"+r.Key, false, func(t *Ticket) (Commit, error) {
		if r.SkipRepeated {
			v, err := s.store.TicketView(ctx, t.ID)
			if err != nil {
				return Commit{}, err
			}
			for i := len(v.Exchanges) - 1; i >= 0; i-- {
				if v.Exchanges[i].Origin == OriginDesk {
					if strings.TrimSpace(v.Exchanges[i].Body) == strings.TrimSpace(r.Body) {
						return Commit{}, errNoChange
					}
					break
				}
			}
		}
		now := s.now().UTC()
		at := r.ReceivedAt
		if at.IsZero() {
			at = now
		}
		nt := next(*t, now)
		author := r.Author
		ex := Exchange{ID: exID, Origin: OriginDesk, Author: author, Body: r.Body, CreatedAt: at,
			Attachments: attachmentRefs(r.Attachments)}
		events := []TimelineEvent{{Type: TimelineDeskReplied, At: now, Actor: actorRef(author)}}
		if r.DeskReference != "" && nt.Escalation.DeskReference == "" {
			nt.Escalation.DeskReference = r.DeskReference
			events = append(events, TimelineEvent{Type: TimelineDeskReference, At: now, Detail: r.DeskReference})
		}
		learnDeskTag(&nt.Escalation, r.DeskReference, r.DeskTag)
		// A reply proves the desk has the mail, whatever the queue has
		// recorded so far.
		if nt.Escalation.Status == EscalationInProgress {
			nt.Escalation.Status = EscalationSuccessful
		}
		if r.Status != "" && r.Status != t.Status {
			if CanTransition(t.Status, r.Status) {
				nt.Status = r.Status
				events = append(events, TimelineEvent{Type: TimelineStatusChanged, At: now, Actor: actorRef(author),
					Detail: fmt.Sprintf("%s → %s (by the desk)", t.Status, r.Status)})
			} else {
				events = append(events, TimelineEvent{Type: TimelineStatusIgnored, At: now, Actor: actorRef(author),
					Detail: fmt.Sprintf("the desk asked for %s, not allowed from %s", r.Status, t.Status)})
			}
		}
		eventID := "reply:" + r.Key
		effects := []Effect{notifyEffect(eventID, t.ID, NotifyDeskReplied, actorRef(author), now)}
		switch {
		case nt.Status == t.Status:
		case nt.Status == StatusResolved:
			effects = append(effects, notifyEffect(eventID, t.ID, NotifyTicketResolved, actorRef(author), now))
		case nt.Status == StatusClosed:
			effects = append(effects, notifyEffect(eventID, t.ID, NotifyTicketClosed, actorRef(author), now))
		}
		cb := callbackEffect(eventID, t.ID, CallbackDeskReplied, nil, now)
		cb.ExchangeID = ex.ID
		if nt.Status != t.Status {
			cb.Note = string(nt.Status)
		}
		effects = append(effects, cb)
		return Commit{Ticket: nt, Exchanges: []Exchange{ex}, Events: events, Effects: effects}, nil
	})
}

// learnDeskTag records the desk's subject tag along with its number: when
// the number is the one the escalation holds and no tag is known yet.
func learnDeskTag(e *Escalation, ref, tag string) {
	tag = strings.TrimSpace(tag)
	if tag != "" && e.DeskTag == "" && ref != "" && ref == e.DeskReference && len(tag) <= 200 {
		e.DeskTag = tag
	}
}

// LearnDeskReference records the desk's own ticket number, taught by an
// acknowledgement, with its subject tag when known (tag may be empty); no
// exchange is added.
func (s *Service) LearnDeskReference(ctx context.Context, ticketID, ref, tag string) error {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil
	}
	_, err := s.mutate(ctx, ticketID, "desk_reference:"+ref, false, func(t *Ticket) (Commit, error) {
		if t.Escalation.DeskReference != "" {
			if t.Escalation.DeskReference != ref || t.Escalation.DeskTag != "" || strings.TrimSpace(tag) == "" {
				return Commit{}, errNoChange
			}
			// The number was known without its tag: learn the tag.
			nt := next(*t, s.now().UTC())
			learnDeskTag(&nt.Escalation, ref, tag)
			return Commit{Ticket: nt}, nil
		}
		now := s.now().UTC()
		nt := next(*t, now)
		nt.Escalation.DeskReference = ref
		learnDeskTag(&nt.Escalation, ref, tag)
		if nt.Escalation.Status == EscalationInProgress {
			nt.Escalation.Status = EscalationSuccessful
		}
		return Commit{Ticket: nt, Events: []TimelineEvent{{Type: TimelineDeskReference, At: now, Detail: ref}},
			Effects: []Effect{callbackEffect("desk_reference:"+ref, t.ID, CallbackEscalated, escalatedPayload(nt), now)}}, nil
	})
	return err
}

// DeskNotice is an automatic notice of the desk's help-desk product that
// its own ticket was solved or closed.
type DeskNotice struct {
	// Key makes the notice idempotent (the mail's key, as DeskReply.Key).
	Key      string
	TicketID string
	Status   DeskStatusValue
	// At is when the desk said it (the mail's date), else now.
	At time.Time
	// DeskReference is the product's ticket number when the notice shows
	// it, or empty; DeskTag its subject tag as written.
	DeskReference string
	DeskTag       string
}

// RecordDeskStatus records a desk notice on the ticket's escalation and
// tells the ENT (a ticket.desk_status_changed callback) and the referent
// who escalated. The ticket's own status is the ENT's: it does not change.
// A notice repeating the status already recorded changes nothing.
func (s *Service) RecordDeskStatus(ctx context.Context, n DeskNotice) (Outcome, error) {
	if n.Key == "" || n.TicketID == "" || !n.Status.Valid() {
		return "", Errorf(CodeInvalid, "a desk notice needs a key, a ticket and a status (solved or closed)")
	}
	eventID := "desk_status:" + n.Key
	return s.mutate(ctx, n.TicketID, eventID, false, func(t *Ticket) (Commit, error) {
		if ds := t.Escalation.DeskStatus; ds != nil && ds.Status == n.Status {
			return Commit{}, errNoChange
		}
		now := s.now().UTC()
		at := n.At.UTC()
		if at.IsZero() || at.After(now.Add(24*time.Hour)) {
			at = now
		}
		nt := next(*t, now)
		nt.Escalation.DeskStatus = &DeskStatus{Status: n.Status, At: at}
		var events []TimelineEvent
		ref := strings.TrimSpace(n.DeskReference)
		if ref != "" && nt.Escalation.DeskReference == "" {
			nt.Escalation.DeskReference = ref
			events = append(events, TimelineEvent{Type: TimelineDeskReference, At: now, Detail: ref})
		}
		learnDeskTag(&nt.Escalation, ref, n.DeskTag)
		// A notice proves the desk has the mail, as a reply does.
		if nt.Escalation.Status == EscalationInProgress {
			nt.Escalation.Status = EscalationSuccessful
		}
		detail := string(n.Status)
		if nt.Escalation.DeskReference != "" {
			detail += " (desk ticket " + nt.Escalation.DeskReference + ")"
		}
		events = append(events, TimelineEvent{Type: TimelineDeskStatus, At: now, Detail: detail})
		typ := NotifyDeskSolved
		if n.Status == DeskClosed {
			typ = NotifyDeskClosed
		}
		payload := map[string]any{"ticket_id": t.ID, "desk_status": nt.Escalation.DeskStatus,
			"desk_reference": nt.Escalation.DeskReference, "status": nt.Status}
		return Commit{Ticket: nt, Events: events, Effects: []Effect{
			notifyEffect(eventID, t.ID, typ, nil, now),
			callbackEffect(eventID, t.ID, CallbackDeskStatusChanged, payload, now),
		}}, nil
	})
}

// EscalationBounced fails the ticket's current escalation: a mail to the
// desk came back undelivered.
func (s *Service) EscalationBounced(ctx context.Context, ticketID, reason string) error {
	t, _, err := s.store.LoadTicket(ctx, ticketID, "")
	if err != nil {
		return err
	}
	return s.EscalationFailed(ctx, ticketID, t.Escalation.Attempt, "bounced: "+reason)
}

// QuarantinedMail is an inbound mail that could not be applied, kept for
// an operator to assign to a ticket or discard.
type QuarantinedMail struct {
	Key       string    `json:"key"`     // the mail's idempotency key (see DeskReply.Key)
	RawKey    string    `json:"raw_key"` // where the raw mail is kept
	Mailbox   string    `json:"mailbox"`
	UID       uint32    `json:"uid"`
	From      string    `json:"from"`
	Subject   string    `json:"subject"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	Size      int64     `json:"size"`
	MessageID string    `json:"message_id,omitempty"`
}

// MailboxState is what a replica's mailbox reader is doing: the reader
// keeps it, /readyz, the metrics and the status page show it.
type MailboxState struct {
	Connected bool
	Idle      bool
	LeaseHeld bool
	// LastSuccess is the end of the last pass that went through the whole
	// mailbox.
	LastSuccess time.Time
	// LastError is the last failure, kept until a pass succeeds again.
	LastError                       string
	Processed, Quarantined, Retried uint64
}
