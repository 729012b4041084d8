package webhook

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge"
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

// TestCallbackFailureClasses pins how the callback client classifies its
// failures for the worker (bridge's taxonomy): whatever the ENT answers
// but a 2xx, or when it does not answer, the callback is retried (a
// temporary *CallbackError); one that cannot be made is given up.
func TestCallbackFailureClasses(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tt := range []struct {
		name      string
		url       string
		status    int
		data      any
		permanent bool
		wantText  string
	}{
		{name: "400", status: 400, wantText: "callback answered 400"},
		{name: "401", status: 401, wantText: "callback answered 401"},
		{name: "404", status: 404, wantText: "callback answered 404"},
		{name: "408", status: 408, wantText: "callback answered 408"},
		{name: "410", status: 410, wantText: "callback answered 410"},
		{name: "422", status: 422, wantText: "callback answered 422"},
		{name: "429", status: 429, wantText: "callback answered 429"},
		{name: "500", status: 500, wantText: "callback answered 500"},
		{name: "503", status: 503, wantText: "callback answered 503"},
		{name: "a redirect", status: 302, wantText: "callback answered 302"},
		{name: "no answer", url: gone.URL, wantText: "callback: Post: "},
		{name: "data that cannot be encoded", data: make(chan int), permanent: true,
			wantText: "callback data: json: unsupported type: chan int"},
		{name: "a URL that makes no request", url: "http://bad host/", permanent: true,
			wantText: "callback request: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status = tt.status
			c := NewCallbackClient(cmp.Or(tt.url, srv.URL), key, 2*time.Second)
			err := c.SendCallback(context.Background(), "cb-1", "ticket.escalated", time.Now(), cmp.Or[any](tt.data, map[string]any{}))
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantText) {
				t.Fatalf("err %v, want %q…", err, tt.wantText)
			}
			if bridge.IsPermanent(err) != tt.permanent {
				t.Errorf("%v: permanent %v, want %v", err, bridge.IsPermanent(err), tt.permanent)
			}
			var ce *CallbackError
			if got := errors.As(err, &ce); got == tt.permanent {
				t.Errorf("%v: a *CallbackError %v, want %v", err, got, !tt.permanent)
			}
		})
	}
}
