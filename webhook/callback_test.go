package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// verifyIndependently checks a Standard Webhooks signature the way the spec
// describes it, without this package's verifier.
func verifyIndependently(t *testing.T, secret string, r *http.Request, body []byte) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func TestCallbackSignedPerSpec(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := ParseSecret(secret)
	var got struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	var ids []string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !verifyIndependently(t, secret, r, body) {
			t.Errorf("signature does not verify")
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		ids = append(ids, r.Header.Get("webhook-id"))
		_ = json.Unmarshal(body, &got)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	c := NewCallbackClient(srv.URL, key, 2*time.Second)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	if err := c.SendCallback(context.Background(), "cb-1", "ticket.escalated", at,
		map[string]any{"ticket_id": "42", "desk_reference": "5678"}); err != nil {
		t.Fatal(err)
	}
	if got.Type != "ticket.escalated" || got.Timestamp != "2026-11-28T09:00:00Z" || !strings.Contains(string(got.Data), `"desk_reference":"5678"`) {
		t.Errorf("body %+v %s", got, got.Data)
	}
	// A retry keeps the same webhook-id, so the ENT can drop a repeat.
	status = http.StatusServiceUnavailable
	err := c.SendCallback(context.Background(), "cb-1", "ticket.escalated", at, json.RawMessage(`{"ticket_id":"42"}`))
	var ce *CallbackError
	if err == nil || !asCallbackError(err, &ce) || ce.Status != 503 {
		t.Fatalf("non-2xx: %v", err)
	}
	if len(ids) != 2 || ids[0] != "cb-1" || ids[1] != "cb-1" {
		t.Errorf("ids %v", ids)
	}
}

func asCallbackError(err error, target **CallbackError) bool {
	ce, ok := err.(*CallbackError)
	if ok {
		*target = ce
	}
	return ok
}

func TestCallbackNoRedirectNoHang(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed to %s", r.URL)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	if err := NewCallbackClient(redirect.URL, key, time.Second).SendCallback(context.Background(), "x", "t", time.Now(), nil); err == nil {
		t.Error("a redirect counted as delivered")
	}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) }))
	defer hang.Close()
	start := time.Now()
	if err := NewCallbackClient(hang.URL, key, 200*time.Millisecond).SendCallback(context.Background(), "x", "t", time.Now(), nil); err == nil {
		t.Error("a hung endpoint counted as delivered")
	}
	if time.Since(start) > time.Second {
		t.Errorf("timeout not applied: %v", time.Since(start))
	}
}
