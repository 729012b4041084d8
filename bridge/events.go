package bridge

import "time"

// EventType names an inbound ENT event.
type EventType string

// The event types the ENT sends.
const (
	EventStructureUpserted   EventType = "structure.upserted"
	EventTicketCreated       EventType = "ticket.created"
	EventTicketUpdated       EventType = "ticket.updated"
	EventTicketCommented     EventType = "ticket.commented"
	EventStatusChanged       EventType = "ticket.status_changed"
	EventEscalationRequested EventType = "ticket.escalation_requested"
)

// Known reports whether t is one of the six event types.
func (t EventType) Known() bool {
	switch t {
	case EventStructureUpserted, EventTicketCreated, EventTicketUpdated,
		EventTicketCommented, EventStatusChanged, EventEscalationRequested:
		return true
	}
	return false
}

// Event is a decoded and validated ENT webhook. Exactly the fields of its
// Type are set.
type Event struct {
	// ID is the webhook-id: the idempotency key of the event.
	ID         string
	Type       EventType
	OccurredAt time.Time

	Structure *Structure // structure.upserted
	NewTicket *NewTicket // ticket.created

	TicketID string // every ticket.* event but ticket.created
	Actor    Person // updated, status_changed, escalation_requested

	Changes *TicketChanges // ticket.updated
	Comment *Comment       // ticket.commented
	Status  Status         // ticket.status_changed
}

// NewTicket is the data of ticket.created.
type NewTicket struct {
	ID          string
	StructureID string
	Owner       Person
	Category    Category
	Subject     string
	Description string
	Locale      string
	CreatedAt   time.Time
	Attachments []AttachmentData
}

// TicketChanges is the data of ticket.updated; nil fields do not change.
type TicketChanges struct {
	Subject     *string
	Description *string
	Category    *Category
}

// Comment is the data of ticket.commented.
type Comment struct {
	ID          string
	Author      Person
	Body        string
	CreatedAt   time.Time
	Attachments []AttachmentData
}
