// Package bridge is the domain of supportbridge: tickets, their exchanges
// and history, the support module's rules, and the interfaces the domain
// needs from its adapters (store, dispatcher). It imports no adapter.
package bridge

import "time"

// Status is a ticket's status in the ENT's support module.
type Status string

// The statuses of a ticket.
const (
	StatusNew      Status = "new"
	StatusOpened   Status = "opened"
	StatusWaiting  Status = "waiting" // waiting for the user
	StatusResolved Status = "resolved"
	StatusClosed   Status = "closed"
)

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusNew, StatusOpened, StatusWaiting, StatusResolved, StatusClosed:
		return true
	}
	return false
}

// Finished reports whether the ticket is resolved or closed.
func (s Status) Finished() bool { return s == StatusResolved || s == StatusClosed }

// EscalationStatus is where a ticket stands with the external desk.
type EscalationStatus string

// The escalation statuses.
const (
	EscalationNotDone    EscalationStatus = "not_done"
	EscalationInProgress EscalationStatus = "in_progress"
	EscalationSuccessful EscalationStatus = "successful"
	EscalationFailed     EscalationStatus = "failed"
)

// Digest is a referent's digest preference.
type Digest string

// The digest preferences.
const (
	DigestDaily  Digest = "daily"
	DigestWeekly Digest = "weekly"
	DigestNever  Digest = "never"
)

// Valid reports whether d is a known preference.
func (d Digest) Valid() bool {
	return d == DigestDaily || d == DigestWeekly || d == DigestNever
}

// OrDefault is d, or daily (the module's default) when d is empty: a
// referent who said nothing gets the daily digest.
func (d Digest) OrDefault() Digest {
	if d == "" {
		return DigestDaily
	}
	return d
}

// Person is someone acting in the ENT (owner, referent, commenter) or at the desk.
type Person struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email,omitempty"`
	Profile     string `json:"profile,omitempty"`
}

// Referent is a local administrator of a structure.
type Referent struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
	Digest      Digest `json:"digest"`
	Locale      string `json:"locale,omitempty"`
}

// Structure is a school (or a group of schools: see ParentID).
type Structure struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	UAI               string     `json:"uai"`
	ParentID          string     `json:"parent_id"`
	EscalationEnabled bool       `json:"escalation_enabled"`
	Referents         []Referent `json:"referents"`
}

// Category is the app a demand is about.
type Category struct {
	App   string `json:"app"`
	Label string `json:"label"`
}

// Attachment is the metadata of a stored attachment; its bytes are fetched
// separately by ID.
type Attachment struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// AttachmentData is an attachment with its bytes, as received.
type AttachmentData struct {
	Attachment
	Content []byte `json:"-"`
}

// Escalation is a ticket's state with the external desk.
type Escalation struct {
	Status        EscalationStatus `json:"status"`
	DeskReference string           `json:"desk_reference"`
	// DeskTag is the desk's ticket tag as its subjects write it
	// ("[rt.desk.example #4512]", "[GLPI #0005678]"): our follow-ups
	// echo it so that the desk's product threads them.
	DeskTag     string     `json:"desk_tag,omitempty"`
	EscalatedAt *time.Time `json:"escalated_at"`
	EscalatedBy *Person    `json:"escalated_by,omitempty"`
	LastError   string     `json:"last_error"`
	// RootMessageID is the Message-ID of the first mail sent to the desk;
	// follow-ups thread on it.
	RootMessageID string `json:"root_message_id,omitempty"`
	// Attempt counts escalation requests; each gets its own mail job.
	Attempt int `json:"attempt,omitempty"`
	// DeskStatus is what the desk's product last said of its own ticket
	// (solved, closed), from its notices; nil until it says something.
	// The ENT owns the ticket's status: this never changes it.
	DeskStatus *DeskStatus `json:"desk_status,omitempty"`
}

// DeskStatusValue is the state of the desk's own ticket, as its notices
// tell it.
type DeskStatusValue string

// The states a desk's notice may report.
const (
	DeskSolved DeskStatusValue = "solved"
	DeskClosed DeskStatusValue = "closed"
)

// Valid reports whether v is solved or closed.
func (v DeskStatusValue) Valid() bool { return v == DeskSolved || v == DeskClosed }

// DeskStatus is a desk notice recorded on the escalation.
type DeskStatus struct {
	Status DeskStatusValue `json:"status"`
	At     time.Time       `json:"at"`
}

// Ticket is a support demand. Exchanges and events are kept apart (see
// TicketView) so that the ticket document stays small.
type Ticket struct {
	ID          string       `json:"id"`
	StructureID string       `json:"structure_id"`
	Owner       Person       `json:"owner"`
	Category    Category     `json:"category"`
	Subject     string       `json:"subject"`
	Description string       `json:"description"`
	Locale      string       `json:"locale"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	Attachments []Attachment `json:"attachments"`
	Status      Status       `json:"status"`
	Escalation  Escalation   `json:"escalation"`
	// Version increases by one at every committed change; the store uses it
	// to commit optimistically.
	Version int64 `json:"version"`
}

// Origin says on which side an exchange was written.
type Origin string

// The origins of an exchange.
const (
	OriginENT  Origin = "ent"
	OriginDesk Origin = "desk"
)

// Exchange is a message on a ticket: an ENT comment or a desk reply.
type Exchange struct {
	ID          string       `json:"id"`
	Origin      Origin       `json:"origin"`
	Author      Person       `json:"author"`
	Body        string       `json:"body"`
	CreatedAt   time.Time    `json:"created_at"`
	Attachments []Attachment `json:"attachments"`
}

// TimelineKind names a line of a ticket's history: the "type" of a
// timeline event in the read API and in the store.
type TimelineKind string

// The kinds of timeline events, and where they are written.
const (
	TimelineCreated             TimelineKind = "created"              // ticket.created (rules.go)
	TimelineUpdated             TimelineKind = "updated"              // ticket.updated (rules.go)
	TimelineCommented           TimelineKind = "commented"            // ticket.commented (rules.go)
	TimelineStatusChanged       TimelineKind = "status_changed"       // by the ENT or a desk's reply (rules.go, inbound.go)
	TimelineEscalationRequested TimelineKind = "escalation_requested" // ticket.escalation_requested (rules.go)
	TimelineEscalated           TimelineKind = "escalated"            // the desk accepted the mail (desk.go)
	TimelineEscalationFailed    TimelineKind = "escalation_failed"    // the escalation gave up or bounced (desk.go)
	TimelineEscalationRecorded  TimelineKind = "escalation_recorded"  // no desk address: recorded only (desk.go)
	TimelineDeskForwardFailed   TimelineKind = "desk_forward_failed"  // a comment could not reach the desk (desk.go)
	TimelineDeskReplied         TimelineKind = "desk_replied"         // a desk's reply became an exchange (inbound.go)
	TimelineDeskReference       TimelineKind = "desk_reference"       // the desk's own ticket number learnt (inbound.go)
	TimelineDeskStatus          TimelineKind = "desk_status"          // a status the desk announced (inbound.go)
	TimelineStatusIgnored       TimelineKind = "status_ignored"       // a desk's status not applied (inbound.go)
)

// TimelineEvent is one line of a ticket's history.
type TimelineEvent struct {
	Type   TimelineKind `json:"type"`
	At     time.Time    `json:"at"`
	Actor  *Person      `json:"actor"`
	Detail string       `json:"detail"`
}

// TicketView is a ticket with its exchanges and history, as the read API
// shows it.
type TicketView struct {
	Ticket
	Exchanges []Exchange      `json:"exchanges"`
	Events    []TimelineEvent `json:"events"`
}
