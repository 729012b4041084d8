package inbound

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// SenderAuth decides from the receiving mail server's own verdict whether
// a mail's From can be believed. The daemon checks no signature itself: the
// server that took the desk's mail in did (SPF, DKIM, DMARC) and wrote an
// Authentication-Results header (RFC 8601) naming itself by its authserv-id.
//
// Only that server's header counts. Anyone can write an
// Authentication-Results header into a mail; a server that follows RFC 8601
// removes or renames those carrying its own id before adding its own, on
// top. So the topmost header with the configured id is the trusted one,
// and every other is ignored.
type SenderAuth struct {
	// AuthServID is the authserv-id of the receiving server, e.g.
	// "mx.school.example". Empty turns the check off.
	AuthServID string
	// RequirePass also refuses a mail whose DMARC result is anything but
	// pass (none, temperror, no result, no trusted header). Without it only
	// a failing result is refused, so that a desk whose domain publishes
	// no DMARC policy still gets through.
	RequirePass bool
}

// Enabled reports whether the check is on.
func (a SenderAuth) Enabled() bool { return strings.TrimSpace(a.AuthServID) != "" }

// Check returns "" when the mail's From may be believed, else why not (one
// short line, fit for a quarantine reason; no mail content but the
// results' words and the From domain).
func (a SenderAuth) Check(in *Inbound) string {
	if !a.Enabled() || in == nil {
		return ""
	}
	fromDomain := ""
	if in.From != nil {
		if at := strings.LastIndexByte(in.From.Address, '@'); at >= 0 {
			fromDomain = strings.ToLower(in.From.Address[at+1:])
		}
	}
	dmarc, found := a.trustedDMARC(in.Header.Values("Authentication-Results"))
	switch {
	case !found:
		if a.RequirePass {
			return "sender not authenticated: no Authentication-Results from " + a.AuthServID
		}
		return ""
	case dmarc == nil:
		if a.RequirePass {
			return "sender not authenticated: no DMARC result from " + a.AuthServID
		}
		return ""
	}
	// The result is about the domain of the From header; one about another
	// domain says nothing of this From.
	if dmarc.From != "" && fromDomain != "" && !strings.EqualFold(strings.TrimSuffix(dmarc.From, "."), fromDomain) {
		return "sender not authenticated: DMARC result is for " + authresWord(dmarc.From) +
			", not the From domain " + authresWord(fromDomain)
	}
	switch dmarc.Value {
	case authres.ResultPass:
		return ""
	case authres.ResultFail:
		return "sender authentication failed: dmarc=fail for " + authresWord(fromDomain)
	}
	if a.RequirePass {
		return "sender not authenticated: dmarc=" + authresWord(string(dmarc.Value))
	}
	return ""
}

// trustedDMARC finds the topmost Authentication-Results header written by
// the configured server and returns its DMARC result (nil when it has
// none); found is false when no header of that server is there.
func (a SenderAuth) trustedDMARC(values []string) (dmarc *authres.DMARCResult, found bool) {
	id := strings.ToLower(strings.TrimSpace(a.AuthServID))
	for _, v := range values {
		// On an unreadable result Parse returns those read before it:
		// they still count, and a missing DMARC result is judged below
		// like an absent one.
		ident, results, _ := authres.Parse(authresClean(v))
		if !strings.EqualFold(ident, id) {
			continue
		}
		// The first header of our server decides, parsed or not: one
		// further down may be a forgery that the server did not catch.
		found = true
		for _, r := range results {
			if d, ok := r.(*authres.DMARCResult); ok {
				return d, true
			}
		}
		return nil, true
	}
	return nil, false
}

// authresClean prepares a header value for authres.Parse, which reads
// neither RFC 5322 comments nor mixed case: comments (nested parentheses)
// are removed outside quoted strings, and the value is lower-cased (methods,
// results and domains are case-insensitive).
func authresClean(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	depth, quoted, escaped := 0, false, false
	for _, r := range v {
		switch {
		case escaped:
			escaped = false
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case r == '\\':
			escaped = true
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case quoted:
			if r == '"' {
				quoted = false
			}
			b.WriteRune(r)
			continue
		case r == '"' && depth == 0:
			quoted = true
			b.WriteRune(r)
			continue
		case r == '(':
			depth++
			b.WriteByte(' ')
			continue
		case r == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteRune(r)
		}
	}
	return strings.ToLower(b.String())
}

// authresWord keeps a word from a header safe and short for a reason line.
func authresWord(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		return "?"
	}
	return s
}
