// Package bearer checks the bearer tokens that open the read API, /metrics
// and the status page: it keeps only their SHA-256 digests and compares in
// constant time against every one of them.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Tokens is a set of configured tokens, kept as digests.
type Tokens struct{ digests [][32]byte }

// New keeps the digests of the non-empty tokens.
func New(tokens []string) Tokens {
	out := make([][32]byte, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	return Tokens{digests: out}
}

// Empty reports whether no token is configured.
func (t Tokens) Empty() bool { return len(t.digests) == 0 }

// Digests are the tokens' digests (the status page derives its cookies from
// them).
func (t Tokens) Digests() [][32]byte { return t.digests }

// Valid reports whether tok is one of the tokens. Digests are compared so
// that neither the content nor the length of a configured token leaks
// through timing; every token is compared.
func (t Tokens) Valid(tok string) bool {
	if tok == "" {
		return false
	}
	d := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range t.digests {
		ok |= subtle.ConstantTimeCompare(d[:], t.digests[i][:])
	}
	return ok == 1
}

// FromRequest is the token of an "Authorization: Bearer …" header, and
// whether there was one.
func FromRequest(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok), ok
}

// Allows reports whether r carries one of the tokens as a bearer header.
func (t Tokens) Allows(r *http.Request) bool {
	tok, ok := FromRequest(r)
	return ok && t.Valid(tok)
}
