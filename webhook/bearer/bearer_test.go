package bearer

import (
	"net/http/httptest"
	"testing"
)

func TestTokens(t *testing.T) {
	ts := New([]string{"", "alpha-token", "beta"})
	if ts.Empty() || len(ts.Digests()) != 2 {
		t.Fatalf("digests %d", len(ts.Digests()))
	}
	for tok, want := range map[string]bool{"alpha-token": true, "beta": true, "": false, "alpha": false, "beta ": false, "BETA": false} {
		if got := ts.Valid(tok); got != want {
			t.Errorf("Valid(%q) = %v", tok, got)
		}
	}
	if !New(nil).Empty() || New([]string{""}).Valid("") {
		t.Error("an empty set allows nothing")
	}
	for h, want := range map[string]bool{"Bearer beta": true, "Bearer  beta ": true, "bearer beta": false, "beta": false, "": false, "Basic beta": false} {
		r := httptest.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if got := ts.Allows(r); got != want {
			t.Errorf("Allows(%q) = %v", h, got)
		}
	}
}
