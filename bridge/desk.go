package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// OutgoingMail is a composed mail: its envelope and its bytes.
type OutgoingMail struct {
	MessageID string
	From      string
	To        []string
	Raw       []byte
}

// EscalationMail is what the escalation mail is made of.
type EscalationMail struct {
	MessageID   string
	Ticket      TicketView
	Structure   Structure
	EscalatedBy Person
	Attachments []AttachmentData
}

// FollowUpMail is what a follow-up (a forwarded comment or a short note) is
// made of.
type FollowUpMail struct {
	MessageID   string
	Ticket      Ticket
	Structure   Structure
	Exchange    *Exchange // a forwarded ENT comment, or nil for a note
	Note        string
	Attachments []AttachmentData
	References  []string // Message-IDs of the thread, root first
}

// DeskMailer composes and sends mail to the desk.
type DeskMailer interface {
	NewMessageID(ticketID, kind string) string
	ComposeEscalation(EscalationMail) (OutgoingMail, error)
	ComposeFollowUp(FollowUpMail) (OutgoingMail, error)
	// Send returns nil once the server accepted the mail; an error
	// wrapped with Permanent when retrying cannot help.
	Send(ctx context.Context, m OutgoingMail) error
}

// MailRecord is the ledger's entry for one mail sent (or to send) for an
// effect: its Message-ID is chosen once, so every retry sends the same
// mail, and once the server accepted it, it is never sent again.
type MailRecord struct {
	EffectID   string     `json:"effect_id"`
	Kind       string     `json:"kind"`
	MessageID  string     `json:"message_id"`
	PreparedAt time.Time  `json:"prepared_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// Ledger records the mails sent to the desk.
type Ledger interface {
	// PrepareMail records rec unless the effect has a record already, and
	// returns the record that holds.
	PrepareMail(ctx context.Context, ticketID string, rec MailRecord) (MailRecord, error)
	// MarkAccepted records that the server accepted the effect's mail and
	// appends its Message-ID to the ticket's thread (once).
	MarkAccepted(ctx context.Context, ticketID, effectID string, at time.Time) error
	// Thread returns the accepted Message-IDs of a ticket, oldest first.
	Thread(ctx context.Context, ticketID string) ([]string, error)
	// TicketByMessageID finds the ticket a sent Message-ID belongs to.
	TicketByMessageID(ctx context.Context, messageID string) (string, error) // ErrNotFound
}

// EscalationPreparer is what a ledger may also do: load what an escalation
// mail is made of besides the ticket (its structure, its attachments) and
// prepare the mail's ledger record, all in one round trip to the store.
// The worker uses it when the ledger has it.
type EscalationPreparer interface {
	// PrepareEscalation does PrepareMail and returns with the record the
	// structure (Structure{ID: structureID} when unknown) and the bytes
	// of the attachments still kept, each with its ref's metadata.
	PrepareEscalation(ctx context.Context, ticketID string, rec MailRecord, structureID string,
		attachments []Attachment) (MailRecord, Structure, []AttachmentData, error)
}

// EscalationAccepted records that the desk's server accepted the escalation
// mail of the given attempt.
func (s *Service) EscalationAccepted(ctx context.Context, ticketID string, attempt int, messageID string) error {
	return s.escalationAccepted(ctx, nil, ticketID, attempt, messageID)
}

// escalationAccepted is EscalationAccepted; with known, the ticket as the
// worker loaded it, the change is first committed on that copy, which
// saves loading it again: the commit's version check refuses a stale copy,
// and then the usual load-and-commit runs.
func (s *Service) escalationAccepted(ctx context.Context, known *Ticket, ticketID string, attempt int, messageID string) error {
	// The event id names its effects (the callback's job id and
	// webhook-id): it must be unique across tickets, not only per ticket.
	eventID := "escalated:" + ticketID + ":" + strconv.Itoa(attempt)
	change := func(t *Ticket) (Commit, error) {
		if t.Escalation.Attempt != attempt || t.Escalation.Status != EscalationInProgress {
			return Commit{}, errNoChange
		}
		now := s.now().UTC()
		nt := next(*t, now)
		nt.Escalation.Status = EscalationSuccessful
		nt.Escalation.LastError = ""
		if nt.Escalation.RootMessageID == "" {
			nt.Escalation.RootMessageID = messageID
		}
		return Commit{Ticket: nt, Events: []TimelineEvent{{Type: TimelineEscalated, At: now,
			Detail: "the desk's mail server accepted the mail"}},
			Effects: []Effect{callbackEffect(eventID, t.ID, CallbackEscalated, escalatedPayload(nt), now)}}, nil
	}
	if known != nil && known.ID == ticketID {
		done, err := s.commitOnCopy(ctx, *known, eventID, change)
		if done || err != nil {
			return err
		}
	}
	_, err := s.mutate(ctx, ticketID, eventID, false, change)
	return err
}

// commitOnCopy applies change to a copy of a ticket loaded earlier. done
// is false when the copy was stale, the event seen before or the change
// empty on the copy: the caller then goes the usual way (mutate), which
// handles each of those on fresh data.
func (s *Service) commitOnCopy(ctx context.Context, t Ticket, eventID string,
	change func(*Ticket) (Commit, error)) (done bool, err error) {
	commit, err := change(&t)
	if errors.Is(err, errNoChange) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	res, err := s.commitAndDispatch(ctx, eventID, commit, false)
	return res == commitDone, err
}

// EscalationFailed records that the escalation of the given attempt could
// not be delivered, and why.
func (s *Service) EscalationFailed(ctx context.Context, ticketID string, attempt int, reason string) error {
	eventID := "escalation_failed:" + ticketID + ":" + strconv.Itoa(attempt)
	_, err := s.mutate(ctx, ticketID, eventID, false, func(t *Ticket) (Commit, error) {
		if t.Escalation.Attempt != attempt || t.Escalation.Status == EscalationFailed ||
			t.Escalation.Status == EscalationNotDone {
			return Commit{}, errNoChange
		}
		now := s.now().UTC()
		nt := next(*t, now)
		nt.Escalation.Status = EscalationFailed
		nt.Escalation.LastError = reason
		return Commit{Ticket: nt, Events: []TimelineEvent{{Type: TimelineEscalationFailed, At: now, Detail: reason}},
			Effects: []Effect{
				notifyEffect(eventID, t.ID, NotifyEscalationFailed, nil, now),
				callbackEffect(eventID, t.ID, CallbackEscalationFailed,
					map[string]any{"ticket_id": t.ID, "reason": reason}, now),
			}}, nil
	})
	return err
}

// EscalationRecorded notes, on an escalation that no desk will get (no
// desk address is configured: escalations are only recorded), that nothing
// was mailed. The escalation stays in_progress: the ENT's escalation is
// recorded, and an operator who configures a desk may ask again after a
// failure; it is not called failed, since nothing failed.
func (s *Service) EscalationRecorded(ctx context.Context, ticketID string, attempt int) error {
	eventID := "escalation_recorded:" + ticketID + ":" + strconv.Itoa(attempt)
	_, err := s.mutate(ctx, ticketID, eventID, false, func(t *Ticket) (Commit, error) {
		if t.Escalation.Attempt != attempt || t.Escalation.Status != EscalationInProgress {
			return Commit{}, errNoChange
		}
		now := s.now().UTC()
		return Commit{Ticket: next(*t, now), Events: []TimelineEvent{{Type: TimelineEscalationRecorded, At: now,
			Detail: "no desk is configured (desk.address is empty): recorded, nothing was mailed"}}}, nil
	})
	return err
}

func escalatedPayload(t Ticket) map[string]any {
	return map[string]any{"ticket_id": t.ID, "desk_reference": t.Escalation.DeskReference,
		"escalated_at": t.Escalation.EscalatedAt}
}

// recordForwardFailure notes in the history that a follow-up could not
// reach the desk.
func (s *Service) recordForwardFailure(ctx context.Context, eff Effect, reason string) error {
	_, err := s.mutate(ctx, eff.TicketID, "forward_failed:"+eff.ID, false, func(t *Ticket) (Commit, error) {
		now := s.now().UTC()
		return Commit{Ticket: next(*t, now), Events: []TimelineEvent{{Type: TimelineDeskForwardFailed, At: now,
			Detail: reason}}}, nil
	})
	return err
}

// Worker carries out effects: it is what the job queue runs.
type Worker struct {
	svc           *Service
	store         Store
	ledger        Ledger
	mailer        DeskMailer
	feed          Feed
	callbacks     CallbackSender
	dispatcher    Dispatcher
	lifetime      time.Duration
	defaultLocale string
	onAccepted    func(Effect, MailRecord)
	log           *slog.Logger
}

// WorkerOptions give a worker its adapters; a nil one turns its effects
// off (no desk mailer: escalations fail with a reason; no callback sender:
// no callbacks).
type WorkerOptions struct {
	Ledger     Ledger
	Mailer     DeskMailer
	Feed       Feed
	Callbacks  CallbackSender
	Dispatcher Dispatcher // for the effects the worker itself causes
	// Lifetime is how long a mail may keep failing temporarily before it
	// is given up (Postfix: 5 days).
	Lifetime      time.Duration
	DefaultLocale string
	// OnAccepted is told of every mail the desk's server accepted, once it
	// is in the ledger (metrics; crash tests).
	OnAccepted func(eff Effect, rec MailRecord)
}

// NewWorker returns a worker.
func NewWorker(svc *Service, store Store, o WorkerOptions) *Worker {
	if o.Lifetime <= 0 {
		o.Lifetime = 5 * 24 * time.Hour
	}
	if o.DefaultLocale == "" {
		o.DefaultLocale = "fr"
	}
	return &Worker{svc: svc, store: store, ledger: o.Ledger, mailer: o.Mailer, feed: o.Feed, callbacks: o.Callbacks,
		dispatcher: o.Dispatcher, lifetime: o.Lifetime, defaultLocale: o.DefaultLocale, onAccepted: o.OnAccepted,
		log: svc.log}
}

// Handle carries out one effect. It is idempotent: the ledger makes sure a
// mail the server accepted is never sent again. A nil error means done; a
// permanent error (IsPermanent) means the effect is given up (giveUp) and
// must not be retried; any other error is retried.
func (w *Worker) Handle(ctx context.Context, eff Effect) error {
	err := w.carryOut(ctx, eff)
	if err != nil && w.givingUp(eff, err) {
		return w.giveUp(ctx, eff, err)
	}
	return err
}

func (w *Worker) carryOut(ctx context.Context, eff Effect) error {
	switch eff.Kind {
	case EffectEscalate:
		return w.escalate(ctx, eff)
	case EffectForwardComment, EffectForwardNote:
		return w.forward(ctx, eff)
	case EffectNotify:
		return w.notify(ctx, eff)
	case EffectCallback:
		return w.callback(ctx, eff)
	}
	return Permanent(fmt.Errorf("unknown effect kind %q", eff.Kind))
}

func (w *Worker) structureOf(ctx context.Context, t Ticket) (Structure, error) {
	st, err := w.store.Structure(ctx, t.StructureID)
	if errors.Is(err, ErrNotFound) {
		return Structure{ID: t.StructureID}, nil
	}
	return st, err
}

// attachmentBytes loads the bytes of attachments; those past their
// retention are left out (the mail says so by their absence).
func (w *Worker) attachmentBytes(ctx context.Context, refs []Attachment) ([]AttachmentData, error) {
	out := make([]AttachmentData, 0, len(refs))
	for _, r := range refs {
		a, err := w.store.Attachment(ctx, r.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a.Attachment = r
		out = append(out, a)
	}
	return out, nil
}

// send sends a prepared mail once: it returns the ledger record, with
// AcceptedAt set when the server accepted it now or before.
func (w *Worker) send(ctx context.Context, eff Effect, kind string, compose func(msgID string) (OutgoingMail, error)) (MailRecord, error) {
	rec, err := w.ledger.PrepareMail(ctx, eff.TicketID, w.newRecord(eff, kind))
	if err != nil {
		return rec, fmt.Errorf("ledger: %w", err)
	}
	return w.sendPrepared(ctx, eff, rec, compose)
}

func (w *Worker) newRecord(eff Effect, kind string) MailRecord {
	return MailRecord{EffectID: eff.ID, Kind: kind, MessageID: w.mailer.NewMessageID(eff.TicketID, kind),
		PreparedAt: w.svc.now().UTC()}
}

// sendPrepared is send once the ledger holds rec.
func (w *Worker) sendPrepared(ctx context.Context, eff Effect, rec MailRecord, compose func(msgID string) (OutgoingMail, error)) (MailRecord, error) {
	if rec.AcceptedAt != nil {
		return rec, nil
	}
	msg, err := compose(rec.MessageID)
	if err != nil {
		return rec, Permanent(fmt.Errorf("compose: %v", err))
	}
	if err := w.mailer.Send(ctx, msg); err != nil {
		return rec, err
	}
	// Recorded before the job is acknowledged: a crash from here on
	// finds the mail accepted and does not send it again.
	now := w.svc.now().UTC()
	if err := w.ledger.MarkAccepted(ctx, eff.TicketID, eff.ID, now); err != nil {
		return rec, fmt.Errorf("ledger: %w", err)
	}
	rec.AcceptedAt = &now
	if w.onAccepted != nil {
		w.onAccepted(eff, rec)
	}
	w.log.LogAttrs(ctx, slog.LevelInfo, "mail accepted by the desk's server", slog.String("ticket", eff.TicketID),
		slog.String("effect", eff.ID), slog.String("message_id", rec.MessageID))
	return rec, nil
}

func (w *Worker) escalate(ctx context.Context, eff Effect) error {
	view, err := w.store.TicketWithExchanges(ctx, eff.TicketID)
	if err != nil {
		return fmt.Errorf("load ticket %s: %w", eff.TicketID, err)
	}
	if view.Escalation.Attempt != eff.Attempt {
		return nil // a later attempt supersedes this one
	}
	if view.Escalation.Status != EscalationInProgress {
		return nil // already accepted or failed
	}
	if w.mailer == nil || w.ledger == nil {
		// desk.address is empty: escalations are only recorded.
		return w.svc.EscalationRecorded(ctx, eff.TicketID, eff.Attempt)
	}
	refs := append([]Attachment{}, view.Attachments...)
	for _, ex := range view.Exchanges {
		refs = append(refs, ex.Attachments...)
	}
	rec, st, atts, err := w.prepareEscalation(ctx, eff, view.Ticket, refs)
	by := Person{}
	if view.Escalation.EscalatedBy != nil {
		by = *view.Escalation.EscalatedBy
	}
	if err == nil {
		rec, err = w.sendPrepared(ctx, eff, rec, func(msgID string) (OutgoingMail, error) {
			return w.mailer.ComposeEscalation(EscalationMail{MessageID: msgID, Ticket: view, Structure: st,
				EscalatedBy: by, Attachments: atts})
		})
	}
	if err != nil {
		return &mailFailure{err}
	}
	return w.svc.escalationAccepted(ctx, &view.Ticket, eff.TicketID, eff.Attempt, rec.MessageID)
}

// prepareEscalation loads the structure and attachments of an escalation
// and prepares its ledger record: in one round trip when the ledger can
// (EscalationPreparer), else one step after the other.
func (w *Worker) prepareEscalation(ctx context.Context, eff Effect, t Ticket, refs []Attachment) (MailRecord, Structure, []AttachmentData, error) {
	if p, ok := w.ledger.(EscalationPreparer); ok {
		rec, st, atts, err := p.PrepareEscalation(ctx, eff.TicketID, w.newRecord(eff, "esc"), t.StructureID, refs)
		if err != nil {
			return rec, st, nil, fmt.Errorf("prepare escalation: %w", err)
		}
		return rec, st, atts, nil
	}
	st, err := w.structureOf(ctx, t)
	if err != nil {
		return MailRecord{}, st, nil, err
	}
	atts, err := w.attachmentBytes(ctx, refs)
	if err != nil {
		return MailRecord{}, st, nil, err
	}
	rec, err := w.ledger.PrepareMail(ctx, eff.TicketID, w.newRecord(eff, "esc"))
	if err != nil {
		return rec, st, nil, fmt.Errorf("ledger: %w", err)
	}
	return rec, st, atts, nil
}

// errNotYetEscalated delays a follow-up until the escalation mail it
// threads on has been accepted.
var errNotYetEscalated = errors.New("the escalation mail is not accepted yet")

func (w *Worker) forward(ctx context.Context, eff Effect) error {
	if w.mailer == nil || w.ledger == nil {
		return nil
	}
	view, err := w.store.TicketWithExchanges(ctx, eff.TicketID)
	if err != nil {
		return fmt.Errorf("load ticket %s: %w", eff.TicketID, err)
	}
	switch view.Escalation.Status {
	case EscalationNotDone, EscalationFailed:
		// The desk does not know the ticket: a later escalation carries
		// the whole history anyway.
		return nil
	case EscalationInProgress:
		if view.Escalation.RootMessageID == "" {
			return &mailFailure{errNotYetEscalated}
		}
	}
	st, err := w.structureOf(ctx, view.Ticket)
	if err != nil {
		return err
	}
	in := FollowUpMail{Ticket: view.Ticket, Structure: st, Note: eff.Note}
	if eff.Kind == EffectForwardComment {
		for i := range view.Exchanges {
			if view.Exchanges[i].ID == eff.ExchangeID {
				ex := view.Exchanges[i]
				in.Exchange = &ex
			}
		}
		if in.Exchange == nil {
			return Permanent(fmt.Errorf("exchange %s not found", eff.ExchangeID))
		}
		if in.Attachments, err = w.attachmentBytes(ctx, in.Exchange.Attachments); err != nil {
			return err
		}
	}
	if in.References, err = w.ledger.Thread(ctx, eff.TicketID); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if len(in.References) == 0 && view.Escalation.RootMessageID != "" {
		in.References = []string{view.Escalation.RootMessageID}
	}
	_, err = w.send(ctx, eff, "fu", func(msgID string) (OutgoingMail, error) {
		in.MessageID = msgID
		return w.mailer.ComposeFollowUp(in)
	})
	if err != nil {
		return &mailFailure{err}
	}
	return nil
}
