package statuspage

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The status page's sign-in form posts the token in the body, so that it
// stays out of URLs (proxy logs, history); the form only posts to us.
func TestStatusLoginByForm(t *testing.T) {
	h := newStatusServer(sampleStatus())
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := post("token=" + url.QueryEscape(statusTestToken))
	cs := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("form login: %d %+v", rec.Code, cs)
	}
	if strings.Contains(cs[0].Value, statusTestToken) {
		t.Error("the cookie holds the token itself")
	}
	if rec := getStatus(t, h, "/", func(r *http.Request) { r.AddCookie(cs[0]) }); rec.Code != 200 {
		t.Errorf("status page with the form's cookie: %d", rec.Code)
	}
	if rec := post("token=wrong-token-0123456789"); rec.Code != 401 || len(rec.Result().Cookies()) != 0 {
		t.Errorf("wrong token: %d", rec.Code)
	}
	if rec := post("token=" + strings.Repeat("a", loginMaxBody)); rec.Code != 400 {
		t.Errorf("oversized form: %d", rec.Code)
	}
	// The sign-in page offers the form, posting to /login only.
	page := getStatus(t, h, "/", nil)
	if page.Code != 401 || !strings.Contains(page.Body.String(), `<form method="post" action="/login">`) ||
		!strings.Contains(page.Header().Get("Content-Security-Policy"), "form-action 'self'") {
		t.Errorf("sign-in page: %d %q %s", page.Code, page.Header().Get("Content-Security-Policy"), page.Body)
	}
}
