package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// cbRecorder is an ENT that takes every callback and remembers, per
// webhook-id, its type and the raw data.
type cbRecorder struct {
	mu   sync.Mutex
	byID map[string]string // webhook-id → type
	data map[string][]byte
	// broken lists the callbacks that do not match the OpenAPI document.
	broken []string
}

// checkContract fails the test for each callback that did not match the
// OpenAPI document's webhooks.
func (c *cbRecorder) checkContract(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.broken {
		t.Errorf("callback against the OpenAPI document: %s", b)
	}
}

func (c *cbRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var cb struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &cb)
	v, err := contract()
	if err == nil {
		err = v.CheckCallback(cb.Type, body, r.Header)
	}
	c.mu.Lock()
	if err != nil {
		c.broken = append(c.broken, fmt.Sprintf("%s: %v", cb.Type, err))
	}
	c.byID[r.Header.Get("webhook-id")] = cb.Type
	c.data[r.Header.Get("webhook-id")] = cb.Data
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *cbRecorder) ofType(typ string) (ids []string, data [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, t := range c.byID {
		if t == typ {
			ids = append(ids, id)
			data = append(data, c.data[id])
		}
	}
	return ids, data
}

// TestEveryEscalationIsCalledBack: each escalated ticket gets its own
// ticket.escalated callback, with its own webhook-id (the chaos test found
// them sharing one job id, so that only the first ticket's was sent).
func TestEveryEscalationIsCalledBack(t *testing.T) {
	m := redistest.Miniredis(t)
	desk := startFakeDesk(t, &fakeDesk{})
	ent := &cbRecorder{byID: map[string]string{}, data: map[string][]byte{}}
	hs := httptest.NewServer(ent)
	t.Cleanup(hs.Close)
	cfg := opsConfig(t, m.Addr(), fmt.Sprintf("  callback_url: %q\n  callback_secret: %q", hs.URL+"/cb", testSecret),
		deskConfig(desk.addr))
	d := startDaemon(t, cfg)
	defer d.stop(t)
	tickets := []string{"CB1", "CB2", "CB3"}
	for _, id := range tickets {
		if a := d.post(t, nextID(), ticketCreated(id, "s1")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalation(id)); a.Status != 202 {
			t.Fatalf("escalate: %d %s", a.Status, a.Raw)
		}
	}
	waitOps(t, "a ticket.escalated callback per ticket", 20*time.Second, func() bool {
		ids, _ := ent.ofType("ticket.escalated")
		return len(ids) >= len(tickets)
	})
	time.Sleep(300 * time.Millisecond)
	ids, data := ent.ofType("ticket.escalated")
	if len(ids) != len(tickets) {
		t.Fatalf("%d ticket.escalated callbacks, want %d: %v", len(ids), len(tickets), ids)
	}
	seen := map[string]bool{}
	for _, d := range data {
		for _, id := range tickets {
			if containsJSONString(d, id) {
				seen[id] = true
			}
		}
	}
	if len(seen) != len(tickets) {
		t.Errorf("callbacks name tickets %v, want %v", seen, tickets)
	}
	ent.checkContract(t)
}

func containsJSONString(doc []byte, s string) bool {
	q, _ := json.Marshal(s)
	return bytes.Contains(doc, q)
}
