package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	// trustRoles leaves the actors' rights to the ENT (ent.trust_actor_roles).
	trustRoles bool
	// onNoReferent is told of a demand whose structure has no referent
	// anywhere up its chain: nobody would hear of it.
	onNoReferent func(ticketID, structureID string)
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

// WithTrustActorRoles turns the role checks off, for an ENT that checks its
// users' rights itself (ent.trust_actor_roles).
func WithTrustActorRoles(trust bool) ServiceOption { return func(s *Service) { s.trustRoles = trust } }

// WithNoReferentHook sets what is told of a demand created in a structure
// that has no referent anywhere up its chain (a metric).
func WithNoReferentHook(f func(ticketID, structureID string)) ServiceOption {
	return func(s *Service) { s.onNoReferent = f }
}

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
		referents, err := s.structureReferents(ctx, ev.NewTicket.StructureID)
		if err != nil {
			return "", err
		}
		if err := s.store.PutAttachments(ctx, ticketID, ev.NewTicket.Attachments); err != nil {
			return "", err
		}
		out, err := s.mutate(ctx, ticketID, ev.ID, true, func(*Ticket) (Commit, error) {
			return decide(s.now().UTC(), nil, nil, ev, nil)
		})
		if err == nil && out == Applied && len(referents) == 0 {
			s.noReferent(ctx, ticketID, ev.NewTicket.StructureID)
		}
		return out, err
	}
	if ev.Type == EventTicketCommented {
		if err := s.store.PutAttachments(ctx, ticketID, ev.Comment.Attachments); err != nil {
			return "", err
		}
	}
	return s.mutate(ctx, ticketID, ev.ID, false, func(current *Ticket) (Commit, error) {
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
		var role *Role
		if !s.trustRoles {
			referents, err := referentsOf(ctx, s.store, current.StructureID)
			if err != nil {
				return Commit{}, fmt.Errorf("referents of %s: %w", current.StructureID, err)
			}
			r := RoleOf(ev.actorID(), *current, referents)
			role = &r
		}
		return decide(s.now().UTC(), current, st, ev, role)
	})
}

// structureReferents checks that a demand's structure is known and returns
// the referents of it and of its parents: unknown_structure when it is not
// known (yet: the ENT may send structure.upserted first and retry).
func (s *Service) structureReferents(ctx context.Context, structureID string) ([]Referent, error) {
	referents, found, err := referentChain(ctx, s.store, structureID)
	if err != nil {
		return nil, fmt.Errorf("referents of %s: %w", structureID, err)
	}
	if !found {
		return nil, &Error{Code: CodeUnknownStructure, Fields: []string{"data.ticket.structure_id"},
			Message: fmt.Sprintf("structure %s is not known (yet): send structure.upserted, then retry", structureID)}
	}
	return referents, nil
}

// NoReferentIndex is kept by a store that lists the demands nobody would
// hear of, for the operators.
type NoReferentIndex interface {
	FlagNoReferent(ctx context.Context, ticketID string, at time.Time) error
}

// noReferent reports a demand created where no referent would hear of it:
// accepted (the requester still follows it), but logged, counted and listed.
func (s *Service) noReferent(ctx context.Context, ticketID, structureID string) {
	s.log.LogAttrs(ctx, slog.LevelWarn, "demand without any referent up its structure chain: nobody is notified",
		slog.String("ticket", ticketID), slog.String("structure", structureID))
	if s.onNoReferent != nil {
		s.onNoReferent(ticketID, structureID)
	}
	if idx, ok := s.store.(NoReferentIndex); ok {
		if err := idx.FlagNoReferent(ctx, ticketID, s.now().UTC()); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "demand without referent not listed",
				slog.String("ticket", ticketID), slog.String("error", err.Error()))
		}
	}
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
		switch res, err := s.commitAndDispatch(ctx, eventID, commit, create); {
		case err != nil:
			return "", err
		case res == commitConflict:
			continue
		case res == commitDuplicate:
			return Duplicate, nil
		}
		return Applied, nil
	}
	return "", fmt.Errorf("ticket %s: too much contention, %d attempts", ticketID, maxCommitAttempts)
}

// commitResult says how commitAndDispatch ended.
type commitResult int

const (
	commitDone      commitResult = iota // committed; the after-commit steps ran
	commitConflict                      // the ticket changed since it was loaded: nothing written
	commitDuplicate                     // the event was committed before: nothing written
)

// commitAndDispatch is the one path of a decided change: stamp it with its
// event id, drop the callbacks when they are off, commit it if the ticket's
// version is unchanged, then run the after-commit steps (the indexes for a
// creation, the outbox handed to the dispatcher). An error after the commit
// is returned with commitDone: the change is stored and the sender's retry
// heals the rest.
func (s *Service) commitAndDispatch(ctx context.Context, eventID string, commit Commit, create bool) (commitResult, error) {
	commit.EventID = eventID
	if !s.callbacks {
		commit.Effects = withoutCallbacks(commit.Effects)
	}
	ticketID := commit.Ticket.ID
	dup, outbox, err := s.store.Commit(ctx, commit)
	switch {
	case errors.Is(err, ErrVersionConflict):
		return commitConflict, nil
	case err != nil:
		return commitConflict, fmt.Errorf("commit %s on ticket %s: %w", eventID, ticketID, err)
	case dup:
		return commitDuplicate, nil
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "ticket changed", slog.String("event", eventID),
		slog.String("ticket", ticketID), slog.Int64("version", commit.Ticket.Version))
	return commitDone, s.afterCommit(ctx, commit.Ticket, create, outbox, true)
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
	q.StructureIDs = nil
	if q.IncludeChildren && q.StructureID != "" {
		all, err := s.store.Structures(ctx)
		if err != nil {
			return TicketPage{}, err
		}
		q.StructureIDs = Descendants(q.StructureID, all)
	}
	return s.store.ListTickets(ctx, q)
}

// Descendants returns id and the ids of every structure below it, id
// first; a cycle in the parents ends the walk.
func Descendants(id string, all []Structure) []string {
	children := map[string][]string{}
	for _, st := range all {
		if st.ParentID != "" && st.ParentID != st.ID {
			children[st.ParentID] = append(children[st.ParentID], st.ID)
		}
	}
	out := []string{id}
	seen := map[string]bool{id: true}
	for i := 0; i < len(out); i++ {
		kids := children[out[i]]
		slices.Sort(kids)
		for _, c := range kids {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
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
