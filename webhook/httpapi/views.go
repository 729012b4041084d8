package httpapi

import (
	"time"

	"supportbridge/bridge"
)

// The read API's JSON shapes. They are spelled out here, apart from the
// stored documents, so that internal fields (versions, Message-IDs) never
// leak into the contract and the contract does not move when storage does.

type personJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email,omitempty"`
	Profile     string `json:"profile,omitempty"`
}

type escalationJSON struct {
	Status        bridge.EscalationStatus `json:"status"`
	DeskReference string                  `json:"desk_reference"`
	EscalatedAt   *time.Time              `json:"escalated_at"`
	LastError     string                  `json:"last_error"`
	// DeskStatus is what the desk's product said of its own ticket
	// (solved, closed) and when; absent until it said something.
	DeskStatus *bridge.DeskStatus `json:"desk_status,omitempty"`
}

type ticketJSON struct {
	ID          string              `json:"id"`
	StructureID string              `json:"structure_id"`
	Owner       personJSON          `json:"owner"`
	Category    bridge.Category     `json:"category"`
	Subject     string              `json:"subject"`
	Description string              `json:"description"`
	Locale      string              `json:"locale"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	Attachments []bridge.Attachment `json:"attachments"`
	Status      bridge.Status       `json:"status"`
	Escalation  escalationJSON      `json:"escalation"`
}

type exchangeJSON struct {
	ID          string              `json:"id"`
	Origin      bridge.Origin       `json:"origin"`
	Author      personJSON          `json:"author"`
	Body        string              `json:"body"`
	CreatedAt   time.Time           `json:"created_at"`
	Attachments []bridge.Attachment `json:"attachments"`
}

type eventJSON struct {
	Type   bridge.TimelineKind `json:"type"`
	At     time.Time           `json:"at"`
	Actor  *personJSON         `json:"actor"`
	Detail string              `json:"detail"`
}

type ticketDetailJSON struct {
	ticketJSON
	Exchanges []exchangeJSON `json:"exchanges"`
	Events    []eventJSON    `json:"events"`
}

func toPerson(p bridge.Person) personJSON {
	return personJSON{ID: p.ID, DisplayName: p.DisplayName, Email: p.Email, Profile: p.Profile}
}

func nonNil(a []bridge.Attachment) []bridge.Attachment {
	if a == nil {
		return []bridge.Attachment{}
	}
	return a
}

func toTicketJSON(t bridge.Ticket) ticketJSON {
	return ticketJSON{
		ID: t.ID, StructureID: t.StructureID, Owner: toPerson(t.Owner), Category: t.Category,
		Subject: t.Subject, Description: t.Description, Locale: t.Locale,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Attachments: nonNil(t.Attachments),
		Status: t.Status,
		Escalation: escalationJSON{Status: t.Escalation.Status, DeskReference: t.Escalation.DeskReference,
			EscalatedAt: t.Escalation.EscalatedAt, LastError: t.Escalation.LastError,
			DeskStatus: t.Escalation.DeskStatus},
	}
}

func ticketViewJSON(v bridge.TicketView) ticketDetailJSON {
	out := ticketDetailJSON{ticketJSON: toTicketJSON(v.Ticket),
		Exchanges: make([]exchangeJSON, 0, len(v.Exchanges)), Events: make([]eventJSON, 0, len(v.Events))}
	for _, e := range v.Exchanges {
		out.Exchanges = append(out.Exchanges, exchangeJSON{ID: e.ID, Origin: e.Origin, Author: toPerson(e.Author),
			Body: e.Body, CreatedAt: e.CreatedAt, Attachments: nonNil(e.Attachments)})
	}
	for _, e := range v.Events {
		ej := eventJSON{Type: e.Type, At: e.At, Detail: e.Detail}
		if e.Actor != nil {
			p := toPerson(*e.Actor)
			ej.Actor = &p
		}
		out.Events = append(out.Events, ej)
	}
	return out
}
