package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbridge/api/apitest"
	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/webhook"
)

// recordedCallback is one callback as the ENT received it.
type recordedCallback struct {
	Type   string
	Body   []byte
	Header http.Header
}

// callbackSink is an ENT that takes every callback.
type callbackSink struct {
	mu  sync.Mutex
	got []recordedCallback
}

func (s *callbackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env struct{ Type string }
	_ = json.Unmarshal(body, &env)
	s.mu.Lock()
	s.got = append(s.got, recordedCallback{Type: env.Type, Body: body, Header: r.Header.Clone()})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *callbackSink) all() []recordedCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// effectQueue is the dispatcher: it keeps the effects for the test to run.
type effectQueue struct {
	mu      sync.Mutex
	effects []bridge.Effect
}

func (q *effectQueue) Dispatch(_ context.Context, effs []bridge.Effect) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.effects = append(q.effects, effs...)
	return nil
}

func (q *effectQueue) take() []bridge.Effect {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.effects
	q.effects = nil
	return out
}

// bridgeCallbacks drives the domain through every change that calls the
// ENT back — an escalation accepted, the desk's number learned, a desk
// reply with an attachment that resolves the ticket, the desk's solved
// notice, an escalation that fails — and returns the callbacks as the
// daemon's real callback client posted them (envelope, signature).
func bridgeCallbacks(t *testing.T) []recordedCallback {
	t.Helper()
	ctx := context.Background()
	sink := &callbackSink{}
	ent := httptest.NewServer(sink)
	t.Cleanup(ent.Close)

	m := redistest.Miniredis(t)
	store := redisstore.New(redistest.Client(t, m.Addr()), redisstore.Options{Prefix: "apitest:"})
	queue := &effectQueue{}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	svc := bridge.NewService(store, bridge.WithDispatcher(queue), bridge.WithCallbacks(true),
		bridge.WithClock(func() time.Time { return now }))
	worker := bridge.NewWorker(svc, store, bridge.WorkerOptions{Ledger: store, Feed: store, Dispatcher: queue,
		Callbacks: webhook.NewCallbackClient(ent.URL+"/cb", testKey, 5*time.Second)})
	// run carries out the notifications and callbacks queued, and those
	// they cause (a notification's callback); mails are not this test's.
	run := func() {
		t.Helper()
		for effs := queue.take(); len(effs) > 0; effs = queue.take() {
			for _, eff := range effs {
				if eff.Kind != bridge.EffectNotify && eff.Kind != bridge.EffectCallback {
					continue
				}
				if err := worker.Handle(ctx, eff); err != nil {
					t.Fatalf("effect %s: %v", eff.ID, err)
				}
			}
		}
	}
	apply := func(ev bridge.Event) {
		t.Helper()
		if _, err := svc.Apply(ctx, ev); err != nil {
			t.Fatalf("apply %s: %v", ev.ID, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example"}
	apply(bridge.Event{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: "s1", Name: "Lycée Victor Hugo", EscalationEnabled: true,
		Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example",
			Digest: bridge.DigestNever}}}})
	for _, id := range []string{"t1", "t2"} {
		apply(bridge.Event{ID: "c-" + id, Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
			ID: id, StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa Dupont", Profile: "Student"},
			Category: bridge.Category{App: "pronote"}, Subject: "Écran blanc", Description: "Page blanche",
			Locale: "fr", CreatedAt: now}})
		apply(bridge.Event{ID: "e-" + id, Type: bridge.EventEscalationRequested, TicketID: id, Actor: ref})
	}
	must(svc.EscalationAccepted(ctx, "t1", 1, "<root@ent.example>"))
	must(svc.LearnDeskReference(ctx, "t1", "5678", "[Desk #5678]"))
	_, err := svc.ApplyDeskReply(ctx, bridge.DeskReply{Key: "mail-1", TicketID: "t1",
		Author: bridge.Person{ID: "desk:agent@desk.example", DisplayName: "Agent", Email: "agent@desk.example"},
		Body:   "C'est corrigé.", ReceivedAt: now, Status: bridge.StatusResolved,
		Attachments: []bridge.AttachmentData{{Attachment: bridge.Attachment{ID: "desk-mail-1-1", Filename: "log.txt",
			ContentType: "text/plain", Size: 5}, Content: []byte("hello")}}})
	must(err)
	_, err = svc.RecordDeskStatus(ctx, bridge.DeskNotice{Key: "mail-2", TicketID: "t1", Status: bridge.DeskSolved, At: now})
	must(err)
	must(svc.EscalationFailed(ctx, "t2", 1, "550 5.1.1 no such user here"))
	run()
	return sink.all()
}

// TestCallbacksFromBridge validates a callback of every type, made by the
// domain and posted by the daemon's callback client, against the
// document's webhooks; then shows that the 3.1 keywords they rely on are
// enforced: a field the envelope does not have (unevaluatedProperties), a
// type another entry's (const), escalated_at null or not (a type array).
func TestCallbacksFromBridge(t *testing.T) {
	v := apitest.New(t)
	got := bridgeCallbacks(t)
	seen := map[string]int{}
	for _, cb := range got {
		seen[cb.Type]++
		v.Callback(t, cb.Type, cb.Body, cb.Header)
	}
	for typ := range v.Doc().Webhooks {
		if seen[typ] == 0 {
			t.Errorf("no %s callback was made", typ)
		}
	}
	t.Logf("callbacks validated: %v", seen)

	var escalated recordedCallback
	for _, cb := range got {
		if cb.Type == bridge.CallbackEscalated {
			escalated = cb
		}
	}
	if escalated.Body == nil {
		t.Fatal("no ticket.escalated callback")
	}
	change := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(escalated.Body, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	probes := []struct {
		name  string
		typ   string
		body  []byte
		valid bool
	}{
		{"as sent", "ticket.escalated", escalated.Body, true},
		{"escalated_at null", "ticket.escalated", change(func(m map[string]any) { m["data"].(map[string]any)["escalated_at"] = nil }), true},
		{"escalated_at a number", "ticket.escalated", change(func(m map[string]any) { m["data"].(map[string]any)["escalated_at"] = 1 }), false},
		{"a field beside the envelope's", "ticket.escalated", change(func(m map[string]any) { m["id"] = "x" }), false},
		{"a field in data", "ticket.escalated", change(func(m map[string]any) { m["data"].(map[string]any)["x"] = 1 }), false},
		{"under another type's entry", "ticket.escalation_failed", escalated.Body, false},
		{"timestamp not RFC 3339", "ticket.escalated", change(func(m map[string]any) { m["timestamp"] = "4 Dec 2026" }), false},
	}
	for _, p := range probes {
		err := v.CheckCallback(p.typ, p.body, escalated.Header)
		if (err == nil) != p.valid {
			t.Errorf("%s: valid %v, got %v", p.name, p.valid, err)
		}
	}
	// Signature headers: each is required.
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		hdr := escalated.Header.Clone()
		hdr.Del(h)
		if err := v.CheckCallback("ticket.escalated", escalated.Body, hdr); err == nil || !strings.Contains(err.Error(), h) {
			t.Errorf("without %s: %v", h, err)
		}
	}
	if err := v.CheckCallback("ticket.escalated", escalated.Body, http.Header{"Content-Type": {"text/plain"},
		"Webhook-Id": {"x"}, "Webhook-Timestamp": {"1"}, "Webhook-Signature": {"v1,AAAA"}}); err == nil {
		t.Error("a text/plain callback with a malformed signature passed")
	}

	// The read API's compositions: TicketDetail is TicketFields plus its
	// exchanges and events, closed by unevaluatedProperties.
	srv := readAPI(t)
	ticket := getWithToken(t, srv.URL+"/v1/tickets/t1")
	v.Exchange(t, ticket.req, nil, ticket.status, ticket.header, ticket.body)
	if err := v.CheckSchema("TicketDetail", ticket.body); err != nil {
		t.Errorf("TicketDetail: %v", err)
	}
	extra := bytes.Replace(ticket.body, []byte(`{"id":"t1",`), []byte(`{"id":"t1","version":7,`), 1)
	if err := v.CheckSchema("TicketDetail", extra); err == nil {
		t.Error("TicketDetail took a field it does not list (unevaluatedProperties)")
	}
	if err := v.CheckSchema("Ticket", ticket.body); err == nil {
		t.Error("Ticket took exchanges and events (unevaluatedProperties)")
	}
}
