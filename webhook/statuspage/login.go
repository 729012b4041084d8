package statuspage

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

const (
	// cookieName carries the API token for browsers, which cannot send
	// a bearer header by themselves.
	cookieName = "supportbridge_token"
	// cookieAge bounds how long a browser keeps the token.
	cookieAge = 12 * time.Hour
)

// requireAuth accepts the API token as a bearer header or as the
// cookie set by /login, and answers an HTML page otherwise.
func (s *handler) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tokens.Allows(r) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(cookieName); err == nil && s.cookieValid(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="supportbridge"`)
		s.render(w, r, http.StatusUnauthorized, "login", messageData{Title: "Sign in",
			Text: "This page needs one of ent.api_tokens: enter it below, or send it as a bearer token."})
	})
}

// loginMaxBody bounds the sign-in form: a token and its field name.
const loginMaxBody = 4 << 10

// handleLogin turns a token into an HTTP-only cookie and sends the
// browser to the status page. The form posts the token in the body, which
// proxies and browsers do not keep; a token in the URL (GET, kept for
// links from older runbooks) lands in access logs and history.
func (s *handler) handleLogin(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if r.Method == http.MethodGet && !r.URL.Query().Has("token") {
		// Nothing to check yet: the sign-in form itself.
		s.render(w, r, http.StatusOK, "login", messageData{Title: "Sign in",
			Text: "Enter one of ent.api_tokens to open the status page."})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, loginMaxBody)
		if err := r.ParseForm(); err != nil {
			s.render(w, r, http.StatusBadRequest, "login", messageData{Title: "Sign in",
				Text: "The sign-in form could not be read."})
			return
		}
		tok = r.PostForm.Get("token")
	}
	if !s.tokens.Valid(tok) {
		s.render(w, r, http.StatusUnauthorized, "login", messageData{Title: "Sign in",
			Text: "That token is not one of ent.api_tokens."})
		return
	}
	d := sha256.Sum256([]byte(tok))
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    cookieValue(d),
		Path:     "/",
		MaxAge:   int(cookieAge / time.Second),
		HttpOnly: true,
		Secure:   overTLS(r),
		SameSite: http.SameSiteStrictMode,
	})
	// The token was in the URL: keep the redirect itself out of caches.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// overTLS reports whether the browser reached us over TLS, directly
// or through a proxy that says so. Trusting the header is safe here: it can
// only make the cookie stricter.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// cookieValue derives the cookie from a token's digest rather than
// holding the token itself: a stolen cookie opens this page, not the API,
// and every token's cookie stays valid on every replica.
func cookieValue(tokenDigest [32]byte) string {
	h := sha256.New()
	h.Write([]byte("supportbridge status cookie\x00"))
	h.Write(tokenDigest[:])
	return hex.EncodeToString(h.Sum(nil))
}

// cookieValid compares in constant time against the cookie of every
// configured token, like bearer.Tokens.Valid.
func (s *handler) cookieValid(v string) bool {
	if len(v) != 2*sha256.Size {
		return false
	}
	ok := 0
	for _, d := range s.tokens.Digests() {
		ok |= subtle.ConstantTimeCompare([]byte(v), []byte(cookieValue(d)))
	}
	return ok == 1
}
