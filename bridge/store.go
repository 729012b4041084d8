package bridge

import (
	"context"
	"encoding/json"
	"time"
)

// Store keeps tickets, structures and attachments. The Redis implementation
// lives in bridge/redisstore; every method that changes state is atomic and
// idempotent by the key it is given.
type Store interface {
	Ping(ctx context.Context) error

	Structure(ctx context.Context, id string) (Structure, error) // ErrNotFound
	// UpsertStructure stores st unless eventID was already applied
	// (dup = true). An empty eventID always applies.
	UpsertStructure(ctx context.Context, eventID string, st Structure) (dup bool, err error)
	Structures(ctx context.Context) ([]Structure, error)

	// LoadTicket returns the ticket and whether eventID was already applied
	// to it. A missing ticket is ErrNotFound (seen is still reported).
	LoadTicket(ctx context.Context, id, eventID string) (t Ticket, seen bool, err error)
	TicketView(ctx context.Context, id string) (TicketView, error)
	// TicketWithExchanges is TicketView without the events (Events nil):
	// what the workers' mails and callbacks show.
	TicketWithExchanges(ctx context.Context, id string) (TicketView, error)
	// Commit applies c atomically: dup = true when c.EventID or one of the
	// exchange ids was already applied (nothing is written then);
	// ErrVersionConflict when the ticket's version is no longer
	// c.Ticket.Version-1. On success outbox is the ticket's outbox as the
	// commit left it (its effects and any not yet dispatched before), read
	// in the same atomic step: the caller dispatches it without reading it
	// again.
	Commit(ctx context.Context, c Commit) (dup bool, outbox []Effect, err error)
	// IndexTicket makes t visible in listings; idempotent.
	IndexTicket(ctx context.Context, t Ticket) error
	ListTickets(ctx context.Context, q ListQuery) (TicketPage, error)

	// PutAttachments stores attachment bytes for a ticket before the commit
	// that references them; an id already used by another ticket is an
	// invalid_payload error.
	PutAttachments(ctx context.Context, ticketID string, atts []AttachmentData) error
	Attachment(ctx context.Context, id string) (AttachmentData, error) // ErrNotFound

	// Outbox lists the effects committed for a ticket and not yet handed to
	// the dispatcher; AckEffects removes them once they are.
	Outbox(ctx context.Context, ticketID string) ([]Effect, error)
	AckEffects(ctx context.Context, ticketID string, ids []string) error
}

// Commit is one atomic change to a ticket.
type Commit struct {
	EventID   string // idempotency key; empty for none
	Ticket    Ticket // the new state; Version is the previous version + 1 (1 creates)
	Exchanges []Exchange
	Events    []TimelineEvent
	Effects   []Effect
}

// ListQuery selects tickets, newest first.
type ListQuery struct {
	StructureID string
	// IncludeChildren lists, with StructureID, the demands of every
	// structure below it too (an academy and its schools).
	IncludeChildren bool
	// StructureIDs, set by the service from IncludeChildren, are the
	// structures listed together (StructureID among them).
	StructureIDs []string
	Status       Status
	Limit        int
	Cursor       string // from a previous page's NextCursor
}

// TicketPage is one page of a listing.
type TicketPage struct {
	Tickets    []Ticket `json:"tickets"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// EffectKind names a side effect that must follow a committed change.
type EffectKind string

// The kinds of effects.
const (
	// EffectEscalate sends the escalation mail to the desk.
	EffectEscalate EffectKind = "escalate"
	// EffectForwardComment forwards an ENT comment to the desk, threaded.
	EffectForwardComment EffectKind = "forward_comment"
	// EffectForwardNote forwards a short note (edit, status change) to the desk.
	EffectForwardNote EffectKind = "forward_note"
	// EffectNotify writes feed notifications for the people concerned.
	EffectNotify EffectKind = "notify"
	// EffectCallback tells the ENT, by a signed callback.
	EffectCallback EffectKind = "callback"
)

// Effect is a side effect recorded in the same atomic step as the change
// that causes it (an outbox), then handed to a durable dispatcher. Its ID is
// deterministic so that handing it over twice does nothing twice.
type Effect struct {
	ID         string     `json:"id"`
	Kind       EffectKind `json:"kind"`
	TicketID   string     `json:"ticket_id"`
	EventID    string     `json:"event_id,omitempty"`
	ExchangeID string     `json:"exchange_id,omitempty"`
	Attempt    int        `json:"attempt,omitempty"`
	Note       string     `json:"note,omitempty"`
	At         time.Time  `json:"at"`

	// Notify is the notification type of an EffectNotify; Actor who
	// caused it (never notified of their own action).
	Notify NotificationType `json:"notify,omitempty"`
	Actor  *Person          `json:"actor,omitempty"`
	// Callback is the callback type of an EffectCallback; Payload its data
	// when known at commit time (else built when it is sent).
	Callback string          `json:"callback,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
}

// Dispatcher hands effects to durable workers (a job queue). Dispatch must
// be idempotent by Effect.ID and return only once the effects are durable.
type Dispatcher interface {
	Dispatch(ctx context.Context, effects []Effect) error
}
