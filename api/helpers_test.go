package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/webhook"
	"supportbridge/webhook/httpapi"
)

const (
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testToken  = "tok-0123456789abcdef"
)

var testKey = func() []byte {
	k, err := webhook.ParseSecret(testSecret)
	if err != nil {
		panic(err)
	}
	return k
}()

// fixtureService is a Service answering a fixed ticket: the read API's
// real handlers and JSON shapes, without a store.
type fixtureService struct{ view bridge.TicketView }

func (f fixtureService) Apply(context.Context, bridge.Event) (bridge.Outcome, error) {
	return bridge.Applied, nil
}

func (f fixtureService) Ticket(_ context.Context, id string) (bridge.TicketView, error) {
	if id == "" || id != f.view.ID {
		return bridge.TicketView{}, bridge.ErrNotFound
	}
	return f.view, nil
}

func (f fixtureService) Tickets(context.Context, bridge.ListQuery) (bridge.TicketPage, error) {
	return bridge.TicketPage{Tickets: []bridge.Ticket{f.view.Ticket}, NextCursor: "1700000000:t1"}, nil
}

func (f fixtureService) Attachment(context.Context, string) (bridge.AttachmentData, error) {
	return bridge.AttachmentData{}, bridge.ErrNotFound
}

// escalatedTicket is a ticket in every state the read API can show: an
// attachment, an ENT comment and a desk reply, an escalation with the
// desk's number and its notice, history with and without an actor.
func escalatedTicket() bridge.TicketView {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	later := at.Add(2 * time.Hour)
	png := bridge.Attachment{ID: "att-1", Filename: "capture.png", ContentType: "image/png", Size: 2048}
	owner := bridge.Person{ID: "u-owner", DisplayName: "Léa Dupont", Email: "lea@school.example", Profile: "Student"}
	ref := bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}
	agent := bridge.Person{ID: "desk:agent@desk.example", DisplayName: "Agent", Email: "agent@desk.example"}
	return bridge.TicketView{
		Ticket: bridge.Ticket{
			ID: "t1", StructureID: "s1", Owner: owner,
			Category: bridge.Category{App: "pronote", Label: "Pronote"},
			Subject:  "Écran blanc", Description: "La page reste blanche.", Locale: "fr",
			CreatedAt: at, UpdatedAt: later, Attachments: []bridge.Attachment{png},
			Status: bridge.StatusOpened,
			Escalation: bridge.Escalation{Status: bridge.EscalationSuccessful, DeskReference: "5678",
				DeskTag: "[Desk #5678]", EscalatedAt: &at, EscalatedBy: &ref, RootMessageID: "<x@ent.example>",
				Attempt: 1, DeskStatus: &bridge.DeskStatus{Status: bridge.DeskSolved, At: later}},
			Version: 7,
		},
		Exchanges: []bridge.Exchange{
			{ID: "c1", Origin: bridge.OriginENT, Author: ref, Body: "Une précision.", CreatedAt: at},
			{ID: "desk-m1", Origin: bridge.OriginDesk, Author: agent, Body: "Corrigé.", CreatedAt: later,
				Attachments: []bridge.Attachment{{ID: "att-2", Filename: "log.txt", ContentType: "text/plain", Size: 12}}},
		},
		Events: []bridge.TimelineEvent{
			{Type: "created", At: at, Actor: &owner},
			{Type: "escalated", At: at, Detail: "the desk's mail server accepted the mail"},
			{Type: "desk_status", At: later, Detail: "solved (desk ticket 5678)"},
		},
	}
}

// readAPI serves the daemon's HTTP API over the fixture ticket.
func readAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.NewServer(fixtureService{view: escalatedTicket()}, httpapi.Options{
		Verifier: &webhook.Verifier{Keys: [][]byte{testKey}}, APITokens: []string{testToken}}))
	t.Cleanup(srv.Close)
	return srv
}

// exchange is one request and its answer, kept for validation.
type exchange struct {
	req     *http.Request
	reqBody []byte
	status  int
	header  http.Header
	body    []byte
}

func do(t *testing.T, req *http.Request, body []byte) exchange {
	t.Helper()
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return exchange{req: req, reqBody: body, status: resp.StatusCode, header: resp.Header, body: b}
}

func getWithToken(t *testing.T, url string) exchange {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return do(t, req, nil)
}

// signedWebhook is a webhook request as the ENT sends it.
func signedWebhook(base string, body []byte) *http.Request {
	req, _ := http.NewRequest("POST", base+"/v1/webhooks/ent", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	webhook.SignHeaders(req.Header, testKey, "msg_test", time.Now(), body)
	return req
}

// webhookHeaders signs a callback body as the daemon does.
func webhookHeaders(h http.Header, body []byte) {
	webhook.SignHeaders(h, testKey, "cb_test", time.Now(), body)
}
