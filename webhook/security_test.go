package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// During a callback secret rotation every callback carries a signature by
// the old and by the new key, so that an ENT verifying with either one,
// before or after it switches, accepts it.
func TestCallbackSignedWithEveryKeyDuringRotation(t *testing.T) {
	oldKey := []byte("old-callback-key-0123456789abcdef")
	newKey := []byte("new-callback-key-0123456789abcdef")
	var hdr http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	c := NewCallbackClient(srv.URL, oldKey, 2*time.Second)
	c.ExtraKeys = [][]byte{newKey}
	if err := c.SendCallback(context.Background(), "cb-rot", "ticket.escalated", time.Now(), map[string]string{"ticket_id": "42"}); err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(hdr.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	for name, key := range map[string][]byte{"old": oldKey, "new": newKey} {
		v := &Verifier{Keys: [][]byte{key}}
		if id, _, err := v.Verify(hdr, body); err != nil || id != "cb-rot" {
			t.Errorf("an ENT holding only the %s key: %v", name, err)
		}
	}
	other := &Verifier{Keys: [][]byte{[]byte("some-other-key-0123456789abcdef")}}
	if _, _, err := other.Verify(hdr, body); err == nil {
		t.Error("a third key verified")
	}
}
