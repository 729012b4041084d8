package api_test

import (
	"net/http"
	"strings"
	"testing"

	"supportbridge/api"
	"supportbridge/api/apitest"
)

// TestValidatorCatchesDrift: a document that drifted from the daemon by
// one field is still a valid document, yet the validation of the daemon's
// real answers (and callbacks) against it fails; against the true document
// they pass. Each failure is logged: it is what a test hooked to the
// validator reports when the code and the contract part.
func TestValidatorCatchesDrift(t *testing.T) {
	srv := readAPI(t)
	ticket := getWithToken(t, srv.URL+"/v1/tickets/t1")
	list := getWithToken(t, srv.URL+"/v1/tickets?structure_id=s1&limit=10")
	created := []byte(`{"type":"ticket.created","timestamp":"2026-12-04T09:00:00Z","data":{"ticket":{"id":"t9",` +
		`"structure_id":"s1","owner":{"id":"u-owner","display_name":"Léa Dupont"},"category":{"app":"pronote"},` +
		`"subject":"Écran blanc","description":"La page reste blanche.","created_at":"2026-12-04T09:00:00Z"}}}`)
	webhookAnswer := do(t, signedWebhook(srv.URL, created), created)
	if ticket.status != 200 || list.status != 200 || webhookAnswer.status != 202 {
		t.Fatalf("fixtures: %d %d %d %s", ticket.status, list.status, webhookAnswer.status, webhookAnswer.body)
	}
	failed := []byte(`{"type":"ticket.escalation_failed","timestamp":"2026-12-04T09:00:00Z",` +
		`"data":{"ticket_id":"t1","reason":"550 5.1.1 no such user here"}}`)
	cbHeader := http.Header{"Content-Type": {"application/json"}}
	webhookHeaders(cbHeader, failed)

	tests := []struct {
		name     string
		old, new string // the one change made to the document
		check    func(v *apitest.Validator) error
	}{
		{
			name: "desk_reference renamed desk_ref in the ticket's escalation",
			old: `      required: [status, desk_reference, escalated_at, last_error]
      additionalProperties: false
      properties:
        status: {$ref: '#/components/schemas/EscalationStatus'}
        desk_reference:`,
			new: `      required: [status, desk_ref, escalated_at, last_error]
      additionalProperties: false
      properties:
        status: {$ref: '#/components/schemas/EscalationStatus'}
        desk_ref:`,
			check: func(v *apitest.Validator) error {
				return v.CheckExchange(ticket.req, nil, ticket.status, ticket.header, ticket.body)
			},
		},
		{
			name: "the ticket's status an integer",
			old: `    TicketStatus:
      type: string`,
			new: `    TicketStatus:
      type: integer`,
			check: func(v *apitest.Validator) error {
				return v.CheckExchange(list.req, nil, list.status, list.header, list.body)
			},
		},
		{
			name: "an event's description limited to 0 characters",
			old: `    EntDescription:
      type: string
      maxLength: 100000`,
			new: `    EntDescription:
      type: string
      maxLength: 0`,
			check: func(v *apitest.Validator) error {
				// The daemon took it (202): the document must too.
				return v.CheckExchange(webhookAnswer.req, created, webhookAnswer.status, webhookAnswer.header, webhookAnswer.body)
			},
		},
		{
			name: "reason renamed why in the ticket.escalation_failed callback",
			old: `          required: [ticket_id, reason]
          additionalProperties: false
          properties:
            ticket_id: {type: string}
            reason: {type: string}`,
			new: `          required: [ticket_id, why]
          additionalProperties: false
          properties:
            ticket_id: {type: string}
            why: {type: string}`,
			check: func(v *apitest.Validator) error {
				return v.CheckCallback("ticket.escalation_failed", failed, cbHeader)
			},
		},
	}
	truth := apitest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(truth); err != nil {
				t.Fatalf("against the true document: %v", err)
			}
			doc := string(api.Document())
			if n := strings.Count(doc, tt.old); n != 1 {
				t.Fatalf("the text to change is in the document %d times, want once:\n%s", n, tt.old)
			}
			drifted, err := apitest.Load([]byte(strings.Replace(doc, tt.old, tt.new, 1)))
			if err != nil {
				t.Fatalf("the drifted document does not load: %v", err)
			}
			err = tt.check(drifted)
			if err == nil {
				t.Fatal("the drifted document passed the daemon's real exchange")
			}
			t.Logf("drift caught:\n%v", err)
		})
	}
}
