package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Outcome says what applying an event did.
type Outcome string

// The outcomes of Apply.
const (
	Applied   Outcome = "applied"
	Duplicate Outcome = "duplicate"
)

// maxCommitAttempts bounds the optimistic retry loop: each attempt loses
// only to a change that did commit, so running out means heavy contention
// on one ticket and the caller may retry later.
const maxCommitAttempts = 32

// Service applies ENT events to tickets under the support module's rules.
type Service struct {
	store      Store
	dispatcher Dispatcher
	now        func() time.Time
	log        *slog.Logger
	callbacks  bool
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) ServiceOption { return func(s *Service) { s.now = now } }

// WithDispatcher sets where committed effects go. Without one, effects stay
// in their ticket's outbox until a dispatcher flushes them.
func WithDispatcher(d Dispatcher) ServiceOption { return func(s *Service) { s.dispatcher = d } }

// WithCallbacks says whether the ENT takes callbacks: without, no callback
// effect is recorded at all.
func WithCallbacks(enabled bool) ServiceOption { return func(s *Service) { s.callbacks = enabled } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ServiceOption { return func(s *Service) { s.log = l } }

// NewService returns a Service over store.
func NewService(store Store, opts ...ServiceOption) *Service {
	s := &Service{store: store, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Ping reports whether the store answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Apply applies one validated ENT event. It returns only once the change
// (and the effects it causes) is durable, or with an error: a *Error for
// the caller's mistakes, anything else when the store is unavailable.
func (s *Service) Apply(ctx context.Context, ev Event) (Outcome, error) {
	if ev.ID == "" {
		return "", Errorf(CodeInvalid, "event without id")
	}
	switch ev.Type {
	case EventStructureUpserted:
		return s.upsertStructure(ctx, ev)
	case EventTicketCreated:
		return s.applyTicket(ctx, ev.NewTicket.ID, ev)
	case EventTicketUpdated, EventTicketCommented, EventStatusChanged, EventEscalationRequested:
		return s.applyTicket(ctx, ev.TicketID, ev)
	}
	return "", Errorf(CodeInvalid, "unknown event type %q", ev.Type)
}

func (s *Service) upsertStructure(ctx context.Context, ev Event) (Outcome, error) {
	st := *ev.Structure
	if st.ParentID == st.ID {
		return "", &Error{Code: CodeInvalid, Message: "a structure cannot be its own parent",
			Fields: []string{"data.structure.parent_id"}}
	}
	dup, err := s.store.UpsertStructure(ctx, ev.ID, st)
	if err != nil {
		return "", fmt.Errorf("upsert structure %s: %w", st.ID, err)
	}
	if dup {
		return Duplicate, nil
	}
	return Applied, nil
}

func (s *Service) applyTicket(ctx context.Context, ticketID string, ev Event) (Outcome, error) {
	if ev.Type == EventTicketCreated {
		if err := s.store.PutAttachments(ctx, ticketID, ev.NewTicket.Attachments); err != nil {
			return "", err
		}
	}
	if ev.Type == EventTicketCommented {
		if err := s.store.PutAttachments(ctx, ticketID, ev.Comment.Attachments); err != nil {
			return "", err
		}
	}
	return s.mutate(ctx, ticketID, ev.ID, ev.Type == EventTicketCreated, func(current *Ticket) (Commit, error) {
		var st *Structure
		if ev.Type == EventEscalationRequested {
			got, err := s.store.Structure(ctx, current.StructureID)
			switch {
			case err == nil:
				st = &got
			case !errors.Is(err, ErrNotFound):
				return Commit{}, fmt.Errorf("load structure %s: %w", current.StructureID, err)
			}
		}
		return decide(s.now().UTC(), current, st, ev)
	})
}

// errNoChange, returned by a mutation, ends it without a commit.
var errNoChange = errors.New("no change")

// mutate is the optimistic loop every ticket change goes through: load the
// ticket, decide the commit from its current state, commit if the version
// is unchanged, else start again. create says the ticket must not exist
// yet (its creation is idempotent by ticket id); otherwise a missing ticket
// is unknown_ticket.
func (s *Service) mutate(ctx context.Context, ticketID, eventID string, create bool,
	change func(current *Ticket) (Commit, error)) (Outcome, error) {
	for attempt := 0; attempt < maxCommitAttempts; attempt++ {
		t, seen, err := s.store.LoadTicket(ctx, ticketID, eventID)
		found := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("load ticket %s: %w", ticketID, err)
		}
		if seen || (create && found) {
			// Applied before (or created under another event id):
			// finish what may have been left undone after that commit
			// (indexes, outbox), then say so.
			if found {
				if err := s.afterCommit(ctx, t, true, nil, false); err != nil {
					return "", err
				}
			}
			return Duplicate, nil
		}
		var current *Ticket
		if !create {
			if !found {
				return "", Errorf(CodeUnknownTicket, "ticket %s is not known (yet)", ticketID)
			}
			current = &t
		}
		commit, err := change(current)
		if errors.Is(err, errNoChange) {
			return Duplicate, nil
		}
		if err != nil {
			return "", err
		}
		commit.EventID = eventID
		if !s.callbacks {
			commit.Effects = withoutCallbacks(commit.Effects)
		}
		dup, outbox, err := s.store.Commit(ctx, commit)
		if errors.Is(err, ErrVersionConflict) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("commit %s on ticket %s: %w", eventID, ticketID, err)
		}
		if dup {
			return Duplicate, nil
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "ticket changed", slog.String("event", eventID),
			slog.String("ticket", ticketID), slog.Int64("version", commit.Ticket.Version))
		if err := s.afterCommit(ctx, commit.Ticket, create, outbox, true); err != nil {
			return "", err
		}
		return Applied, nil
	}
	return "", fmt.Errorf("ticket %s: too much contention, %d attempts", ticketID, maxCommitAttempts)
}

func withoutCallbacks(effects []Effect) []Effect {
	out := effects[:0:0]
	for _, e := range effects {
		if e.Kind != EffectCallback {
			out = append(out, e)
		}
	}
	return out
}

// afterCommit runs the idempotent steps that follow a commit: listing
// indexes and handing the outbox to the dispatcher. They run again when the
// same event is delivered again, so a crash between the commit and these
// steps heals on the sender's retry.
//
// Only a creation changes the indexes (they hold creation times and
// structures, which never change). outbox is the outbox as the commit
// returned it when known is true; otherwise it is read.
func (s *Service) afterCommit(ctx context.Context, t Ticket, index bool, outbox []Effect, known bool) error {
	if index {
		if err := s.store.IndexTicket(ctx, t); err != nil {
			return fmt.Errorf("index ticket %s: %w", t.ID, err)
		}
	}
	if !known {
		return s.FlushOutbox(ctx, t.ID)
	}
	return s.dispatchOutbox(ctx, t.ID, outbox)
}

// FlushOutbox hands a ticket's pending effects to the dispatcher.
func (s *Service) FlushOutbox(ctx context.Context, ticketID string) error {
	if s.dispatcher == nil {
		return nil
	}
	effects, err := s.store.Outbox(ctx, ticketID)
	if err != nil {
		return fmt.Errorf("outbox of %s: %w", ticketID, err)
	}
	return s.dispatchOutbox(ctx, ticketID, effects)
}

// dispatchOutbox hands effects of a ticket's outbox to the dispatcher, then
// removes them from the outbox.
func (s *Service) dispatchOutbox(ctx context.Context, ticketID string, effects []Effect) error {
	if s.dispatcher == nil || len(effects) == 0 {
		return nil
	}
	if err := s.dispatcher.Dispatch(ctx, effects); err != nil {
		return fmt.Errorf("dispatch effects of %s: %w", ticketID, err)
	}
	ids := make([]string, len(effects))
	for i, e := range effects {
		ids[i] = e.ID
	}
	if err := s.store.AckEffects(ctx, ticketID, ids); err != nil {
		return fmt.Errorf("ack effects of %s: %w", ticketID, err)
	}
	return nil
}

// Ticket returns a ticket with its exchanges and history.
func (s *Service) Ticket(ctx context.Context, id string) (TicketView, error) {
	return s.store.TicketView(ctx, id)
}

// Tickets lists tickets, newest first.
func (s *Service) Tickets(ctx context.Context, q ListQuery) (TicketPage, error) {
	if q.Limit <= 0 || q.Limit > 200 {
		q.Limit = 50
	}
	return s.store.ListTickets(ctx, q)
}

// Attachment returns an attachment's bytes.
func (s *Service) Attachment(ctx context.Context, id string) (AttachmentData, error) {
	return s.store.Attachment(ctx, id)
}

// SeedStructures stores structures from the configuration file, without an
// event id: the configuration wins at every start.
func (s *Service) SeedStructures(ctx context.Context, sts []Structure) error {
	for _, st := range sts {
		if _, err := s.store.UpsertStructure(ctx, "", st); err != nil {
			return fmt.Errorf("seed structure %s: %w", st.ID, err)
		}
	}
	return nil
}
