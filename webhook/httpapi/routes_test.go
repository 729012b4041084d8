package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The status page's routes exist only when Options.StatusPage is set, and then
// reach it; "/" matches only itself and takes only GET.
func TestStatusRoutes(t *testing.T) {
	const tok = "status-token-0123456789"
	serve := func(h http.Handler, method, target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Without a status page the routes do not exist.
	off := NewServer(nil, Options{APITokens: []string{tok}})
	for _, p := range []string{"/", "/tickets/T1", "/login?token=" + tok} {
		if rec := serve(off, "GET", p); rec.Code != 404 {
			t.Errorf("%s without a status page: %d", p, rec.Code)
		}
	}

	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Test-Page", r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	on := NewServer(nil, Options{APITokens: []string{tok}, StatusPage: page})
	for _, tc := range []struct{ method, target string }{
		{"GET", "/"}, {"GET", "/tickets/T1"}, {"GET", "/login"}, {"POST", "/login"},
	} {
		rec := serve(on, tc.method, tc.target)
		if rec.Code != http.StatusTeapot || rec.Header().Get("X-Test-Page") != tc.method+" "+tc.target {
			t.Errorf("%s %s: %d %q", tc.method, tc.target, rec.Code, rec.Header().Get("X-Test-Page"))
		}
	}
	if rec := serve(on, "GET", "/nope"); rec.Code != 404 || rec.Header().Get("X-Test-Page") != "" {
		t.Errorf("/nope: %d", rec.Code)
	}
	if rec := serve(on, "POST", "/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", rec.Code)
	}
}
