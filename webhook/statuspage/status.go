// Package statuspage is the operators' read-only HTML status page: the job
// queue, the mailbox reader, recent tickets, dead letters, quarantined
// mails, and one ticket's timeline; and the sign-in that turns an API token
// into a cookie. It is an http.Handler that package httpapi routes to.
//
// It imports bridge only. What it needs of the daemon is declared here
// (StatusSource) and what it needs of the server (the request id) is passed in
// Options.
package statuspage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"supportbridge/bridge"
)

// StatusSource is what the operators' status page shows. The daemon
// implements it from its store, job queue and mailbox reader.
type StatusSource interface {
	Depths(ctx context.Context) (QueueDepths, error)
	Dead(ctx context.Context) ([]DeadJob, error)
	Quarantined(ctx context.Context) ([]bridge.QuarantinedMail, error)
	IMAPState() MailboxState
	Tickets(ctx context.Context, q bridge.ListQuery) (bridge.TicketPage, error)
	Ticket(ctx context.Context, id string) (bridge.TicketView, error)
	// NoReferent lists the newest demands that no referent hears of (their
	// structure has none up its chain) and how many there are.
	NoReferent(ctx context.Context, limit int) (ids []string, total int64, err error)
}

// QueueDepths counts the job queue's jobs by state.
type QueueDepths struct {
	Pending, Active, Scheduled, Retry, Dead int
}

// DeadJob is a job that was given up.
type DeadJob struct {
	ID        string
	Kind      string
	TicketID  string
	LastError string
	FailedAt  time.Time
}

// MailboxState is what the IMAP reader of this replica is doing.
type MailboxState struct {
	// Configured is false when the daemon reads no mailbox.
	Configured bool
	Connected  bool
	Idle       bool
	LeaseHeld  bool
	// LastSuccess is when the mailbox was last read through.
	LastSuccess time.Time
	// LastError is the last failure, kept until a pass succeeds again.
	LastError                       string
	Processed, Quarantined, Retried uint64
}

const (
	// statusCookie carries the API token for browsers, which cannot send
	// a bearer header by themselves.
	statusCookie = "supportbridge_token"
	// statusCookieAge bounds how long a browser keeps the token.
	statusCookieAge = 12 * time.Hour
	// statusTickets is how many tickets a page lists.
	statusTickets = 50
	// statusRowsMax bounds the dead letters and quarantined mails shown,
	// so that a flood of them cannot make the page huge.
	statusRowsMax = 200
	statusCSP     = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)

// Options configure the status page.
type Options struct {
	// Tokens are the API tokens (ent.api_tokens): one of them, as a bearer
	// header or through the cookie /login sets, opens the page.
	Tokens []string
	Logger *slog.Logger
	// RequestID returns the id of the request being served, for the logs.
	RequestID func(context.Context) string
}

// handler serves the status page.
type handler struct {
	src       StatusSource
	log       *slog.Logger
	tokens    [][32]byte
	requestID func(context.Context) string
}

// Handler returns the read-only HTML status page: GET / and GET
// /tickets/{id} behind an API token, GET and POST /login to get the cookie.
func Handler(src StatusSource, opts Options) http.Handler {
	s := &handler{src: src, log: opts.Logger, tokens: tokenDigests(opts.Tokens), requestID: opts.RequestID}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.requestID == nil {
		s.requestID = func(context.Context) string { return "" }
	}
	mux := http.NewServeMux()
	// {$}: only "/" itself, not every path no other route takes.
	mux.Handle("GET /{$}", s.requireStatusAuth(http.HandlerFunc(s.handleStatus)))
	mux.Handle("GET /tickets/{id}", s.requireStatusAuth(http.HandlerFunc(s.handleStatusTicket)))
	mux.HandleFunc("GET /login", s.handleStatusLogin)
	mux.HandleFunc("POST /login", s.handleStatusLogin)
	return mux
}

func tokenDigests(tokens []string) [][32]byte {
	out := make([][32]byte, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	return out
}

// tokenValid reports whether tok is one of the API tokens. Digests are
// compared so that neither the content nor the length of a configured
// token leaks through timing; every token is compared.
func (s *handler) tokenValid(tok string) bool {
	if tok == "" {
		return false
	}
	d := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range s.tokens {
		ok |= subtle.ConstantTimeCompare(d[:], s.tokens[i][:])
	}
	return ok == 1
}

// requireStatusAuth accepts the API token as a bearer header or as the
// cookie set by /login, and answers an HTML page otherwise.
func (s *handler) requireStatusAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenValid(strings.TrimSpace(tok)) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(statusCookie); err == nil && s.statusCookieValid(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="supportbridge"`)
		s.renderStatus(w, r, http.StatusUnauthorized, "login", messagePage{Title: "Sign in",
			Text: "This page needs one of ent.api_tokens: enter it below, or send it as a bearer token."})
	})
}

// statusLoginMaxBody bounds the sign-in form: a token and its field name.
const statusLoginMaxBody = 4 << 10

// handleStatusLogin turns a token into an HTTP-only cookie and sends the
// browser to the status page. The form posts the token in the body, which
// proxies and browsers do not keep; a token in the URL (GET, kept for
// links from older runbooks) lands in access logs and history.
func (s *handler) handleStatusLogin(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if r.Method == http.MethodGet && !r.URL.Query().Has("token") {
		// Nothing to check yet: the sign-in form itself.
		s.renderStatus(w, r, http.StatusOK, "login", messagePage{Title: "Sign in",
			Text: "Enter one of ent.api_tokens to open the status page."})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, statusLoginMaxBody)
		if err := r.ParseForm(); err != nil {
			s.renderStatus(w, r, http.StatusBadRequest, "login", messagePage{Title: "Sign in",
				Text: "The sign-in form could not be read."})
			return
		}
		tok = r.PostForm.Get("token")
	}
	if !s.tokenValid(tok) {
		s.renderStatus(w, r, http.StatusUnauthorized, "login", messagePage{Title: "Sign in",
			Text: "That token is not one of ent.api_tokens."})
		return
	}
	d := sha256.Sum256([]byte(tok))
	http.SetCookie(w, &http.Cookie{
		Name:     statusCookie,
		Value:    statusCookieValue(d),
		Path:     "/",
		MaxAge:   int(statusCookieAge / time.Second),
		HttpOnly: true,
		Secure:   statusOverTLS(r),
		SameSite: http.SameSiteStrictMode,
	})
	// The token was in the URL: keep the redirect itself out of caches.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// statusOverTLS reports whether the browser reached us over TLS, directly
// or through a proxy that says so. Trusting the header is safe here: it can
// only make the cookie stricter.
func statusOverTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// statusCookieValue derives the cookie from a token's digest rather than
// holding the token itself: a stolen cookie opens this page, not the API,
// and every token's cookie stays valid on every replica.
func statusCookieValue(tokenDigest [32]byte) string {
	h := sha256.New()
	h.Write([]byte("supportbridge status cookie\x00"))
	h.Write(tokenDigest[:])
	return hex.EncodeToString(h.Sum(nil))
}

// statusCookieValid compares in constant time against the cookie of every
// configured token, like tokenValid.
func (s *handler) statusCookieValid(v string) bool {
	if len(v) != 2*sha256.Size {
		return false
	}
	ok := 0
	for i := range s.tokens {
		ok |= subtle.ConstantTimeCompare([]byte(v), []byte(statusCookieValue(s.tokens[i])))
	}
	return ok == 1
}

type statusPage struct {
	Now          time.Time
	Depths       QueueDepths
	DepthsErr    bool
	IMAP         MailboxState
	Tickets      []bridge.Ticket
	TicketsErr   bool
	NextCursor   string
	Dead         []DeadJob
	DeadTotal    int
	DeadErr      bool
	Quarantine   []bridge.QuarantinedMail
	QuarantTotal int
	QuarantErr   bool
	NoReferent   []string
	NoRefTotal   int64
	NoRefErr     bool
}

type ticketPage struct {
	Now time.Time
	V   bridge.TicketView
}

type messagePage struct {
	Title string
	Text  string
}

// handleStatus renders the overview. Each section is read on its own: when
// one source fails (Redis down) the others, such as the mailbox state kept
// in memory, still show.
func (s *handler) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := s.src
	p := statusPage{Now: time.Now().UTC(), IMAP: src.IMAPState()}
	var err error
	if p.Depths, err = src.Depths(ctx); err != nil {
		p.DepthsErr = true
		s.statusError(r, "queue depths", err)
	}
	page, err := src.Tickets(ctx, bridge.ListQuery{Limit: statusTickets, Cursor: r.URL.Query().Get("cursor")})
	var be *bridge.Error
	switch {
	case errors.As(err, &be) && be.Code == bridge.CodeInvalid:
		s.renderStatus(w, r, http.StatusBadRequest, "message", messagePage{Title: "Bad request", Text: "The cursor is not valid."})
		return
	case err != nil:
		p.TicketsErr = true
		s.statusError(r, "tickets", err)
	default:
		p.Tickets, p.NextCursor = page.Tickets, page.NextCursor
	}
	if dead, err := src.Dead(ctx); err != nil {
		p.DeadErr = true
		s.statusError(r, "dead letters", err)
	} else {
		p.DeadTotal = len(dead)
		p.Dead = dead[:min(len(dead), statusRowsMax)]
	}
	if q, err := src.Quarantined(ctx); err != nil {
		p.QuarantErr = true
		s.statusError(r, "quarantine", err)
	} else {
		p.QuarantTotal = len(q)
		p.Quarantine = q[:min(len(q), statusRowsMax)]
	}
	if p.NoReferent, p.NoRefTotal, err = src.NoReferent(ctx, statusRowsMax); err != nil {
		p.NoRefErr = true
		s.statusError(r, "demands without referent", err)
	}
	s.renderStatus(w, r, http.StatusOK, "status", p)
}

// handleStatusTicket renders one ticket's fields and timeline.
func (s *handler) handleStatusTicket(w http.ResponseWriter, r *http.Request) {
	v, err := s.src.Ticket(r.Context(), r.PathValue("id"))
	if err != nil {
		var be *bridge.Error
		if errors.Is(err, bridge.ErrNotFound) || errors.As(err, &be) && be.Code == bridge.CodeNotFound {
			s.renderStatus(w, r, http.StatusNotFound, "message", messagePage{Title: "Not found", Text: "No such ticket."})
			return
		}
		s.statusError(r, "ticket", err)
		w.Header().Set("Retry-After", "5")
		s.renderStatus(w, r, http.StatusServiceUnavailable, "message", messagePage{Title: "Unavailable",
			Text: "The ticket cannot be read right now; retry later."})
		return
	}
	s.renderStatus(w, r, http.StatusOK, "ticket", ticketPage{Now: time.Now().UTC(), V: v})
}

func (s *handler) statusError(r *http.Request, what string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "status page: read failed", slog.String("what", what),
		slog.String("request_id", s.requestID(r.Context())), slog.String("error", err.Error()))
}

// renderStatus executes a template into a buffer first, so that a failure
// is a clean 500 rather than half a page.
func (s *handler) renderStatus(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		s.statusError(r, "render "+name, err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	h := w.Header()
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func statusTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func statusTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return statusTime(*t)
}

func statusPerson(p *bridge.Person) string {
	if p == nil {
		return "—"
	}
	switch {
	case p.DisplayName != "" && p.Email != "":
		return p.DisplayName + " <" + p.Email + ">"
	case p.DisplayName != "":
		return p.DisplayName
	case p.Email != "":
		return p.Email
	}
	return p.ID
}

// statusTicketLink is the path of a ticket's page; the id is escaped as a
// path segment, so that no id can point the link elsewhere.
func statusTicketLink(id string) string { return "/tickets/" + url.PathEscape(id) }

func statusSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

func statusYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// statusTemplates are the pages. html/template escapes every value by
// context; nothing is marked safe, and there is no script at all.
var statusTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":    statusTime,
	"whenPtr": statusTimePtr,
	"person":  statusPerson,
	"link":    statusTicketLink,
	"size":    statusSize,
	"yesno":   statusYesNo,
	"deref":   func(p bridge.Person) *bridge.Person { return &p },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.}} — supportbridge</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:1px solid #d5d9e0}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#6b7280}.bad{color:#b42318;font-weight:600}.ok{color:#067647;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:13px/1.4 ui-monospace,monospace}
.exchange{background:#fff;border:1px solid #d5d9e0;padding:.5em .8em;margin:.5em 0}
.exchange.desk{border-left:4px solid #2e90fa}.exchange.ent{border-left:4px solid #12b76a}
a{color:#175cd3}
</style></head><body>{{end}}

{{define "foot"}}</body></html>{{end}}

{{define "message"}}{{template "head" .Title}}
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{template "foot"}}{{end}}

{{define "login"}}{{template "head" .Title}}
<h1>{{.Title}}</h1><p>{{.Text}}</p>
<form method="post" action="/login"><label>API token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form>
{{template "foot"}}{{end}}

{{define "status"}}{{template "head" "Status"}}
<h1>supportbridge</h1>
<p class="muted">Read-only status of this replica, {{when .Now}}.</p>

<h2>Job queue</h2>
{{if .DepthsErr}}<p class="bad">The queue cannot be read right now.</p>{{else}}
<table id="queue"><tr><th>pending</th><th>active</th><th>scheduled</th><th>retry</th><th>dead</th></tr>
<tr><td class="n">{{.Depths.Pending}}</td><td class="n">{{.Depths.Active}}</td><td class="n">{{.Depths.Scheduled}}</td>
<td class="n">{{.Depths.Retry}}</td><td class="n{{if .Depths.Dead}} bad{{end}}">{{.Depths.Dead}}</td></tr></table>{{end}}

<h2>Mailbox (IMAP)</h2>
{{with .IMAP}}{{if not .Configured}}<p class="muted">No mailbox is read (imap.addr is empty).</p>{{else}}
<table id="imap">
<tr><th>connected</th><td>{{if .Connected}}<span class="ok">yes</span>{{else}}no{{end}}</td></tr>
<tr><th>idle</th><td>{{yesno .Idle}}</td></tr>
<tr><th>lease held by this replica</th><td>{{yesno .LeaseHeld}}</td></tr>
<tr><th>last success</th><td>{{when .LastSuccess}}</td></tr>
<tr><th>last error</th><td>{{if .LastError}}<span class="bad">{{.LastError}}</span>{{else}}—{{end}}</td></tr>
<tr><th>processed / quarantined / retried</th><td>{{.Processed}} / {{.Quarantined}} / {{.Retried}}</td></tr>
</table>{{end}}{{end}}

<h2>Recent tickets</h2>
{{if .TicketsErr}}<p class="bad">The tickets cannot be read right now.</p>
{{else if not .Tickets}}<p class="muted">No tickets.</p>{{else}}
<table id="tickets"><tr><th>id</th><th>structure</th><th>subject</th><th>status</th><th>escalation</th><th>updated</th></tr>
{{range .Tickets}}<tr><td><a href="{{link .ID}}">{{.ID}}</a></td><td>{{.StructureID}}</td><td>{{.Subject}}</td>
<td>{{.Status}}</td><td{{if eq .Escalation.Status "failed"}} class="bad"{{end}}>{{.Escalation.Status}}</td><td>{{when .UpdatedAt}}</td></tr>
{{end}}</table>
{{if .NextCursor}}<p><a href="/?cursor={{.NextCursor}}">Older tickets</a></p>{{end}}{{end}}

<h2>Dead letters</h2>
{{if .DeadErr}}<p class="bad">The dead letters cannot be read right now.</p>
{{else if not .Dead}}<p class="muted">None.</p>{{else}}
{{if gt .DeadTotal (len .Dead)}}<p>The first {{len .Dead}} of {{.DeadTotal}}.</p>{{end}}
<table id="dead"><tr><th>job</th><th>kind</th><th>ticket</th><th>failed</th><th>last error</th></tr>
{{range .Dead}}<tr><td>{{.ID}}</td><td>{{.Kind}}</td><td>{{if .TicketID}}<a href="{{link .TicketID}}">{{.TicketID}}</a>{{else}}—{{end}}</td>
<td>{{when .FailedAt}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>{{end}}

<h2>Quarantined mails</h2>
{{if .QuarantErr}}<p class="bad">The quarantine cannot be read right now.</p>
{{else if not .Quarantine}}<p class="muted">None.</p>{{else}}
{{if gt .QuarantTotal (len .Quarantine)}}<p>The first {{len .Quarantine}} of {{.QuarantTotal}}.</p>{{end}}
<table id="quarantine"><tr><th>received</th><th>from</th><th>subject</th><th>reason</th></tr>
{{range .Quarantine}}<tr><td>{{when .At}}</td><td>{{.From}}</td><td>{{.Subject}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{end}}

<h2>Demands no referent hears of</h2>
{{if .NoRefErr}}<p class="bad">This list cannot be read right now.</p>
{{else if not .NoReferent}}<p class="muted">None.</p>{{else}}
<p>{{.NoRefTotal}} demand(s) created in a structure with no referent up its chain: give the structure a referent (structure.upserted).{{if gt .NoRefTotal (len .NoReferent)}} The newest {{len .NoReferent}}:{{end}}</p>
<ul id="noreferent">{{range .NoReferent}}<li><a href="{{link .}}">{{.}}</a></li>{{end}}</ul>{{end}}
{{template "foot"}}{{end}}

{{define "ticket"}}{{template "head" (printf "Ticket %s" .V.ID)}}
<p><a href="/">← status</a></p>
{{with .V}}
<h1>Ticket {{.ID}}: {{.Subject}}</h1>
<table id="fields">
<tr><th>structure</th><td>{{.StructureID}}</td></tr>
<tr><th>owner</th><td>{{person (deref .Owner)}}{{if .Owner.Profile}} ({{.Owner.Profile}}){{end}}</td></tr>
<tr><th>category</th><td>{{.Category.Label}}{{if .Category.App}} ({{.Category.App}}){{end}}</td></tr>
<tr><th>status</th><td>{{.Status}}</td></tr>
<tr><th>locale</th><td>{{.Locale}}</td></tr>
<tr><th>created</th><td>{{when .CreatedAt}}</td></tr>
<tr><th>updated</th><td>{{when .UpdatedAt}}</td></tr>
<tr><th>description</th><td><pre>{{.Description}}</pre></td></tr>
<tr><th>attachments</th><td>{{range .Attachments}}{{.Filename}} ({{.ContentType}}, {{size .Size}})<br>{{else}}—{{end}}</td></tr>
</table>

<h2>Escalation</h2>
<table id="escalation">
<tr><th>status</th><td{{if eq .Escalation.Status "failed"}} class="bad"{{end}}>{{.Escalation.Status}}</td></tr>
<tr><th>desk reference</th><td>{{or .Escalation.DeskReference "—"}}</td></tr>
<tr><th>desk status</th><td>{{with .Escalation.DeskStatus}}{{.Status}} ({{when .At}}){{else}}—{{end}}</td></tr>
<tr><th>escalated</th><td>{{whenPtr .Escalation.EscalatedAt}}{{with .Escalation.EscalatedBy}} by {{person .}}{{end}}</td></tr>
<tr><th>last error</th><td>{{or .Escalation.LastError "—"}}</td></tr>
</table>

<h2>Exchanges</h2>
{{range .Exchanges}}<div class="exchange {{.Origin}}">
<p><strong>{{.Origin}}</strong> · {{person (deref .Author)}} · {{when .CreatedAt}}</p>
<pre>{{.Body}}</pre>
{{range .Attachments}}<p class="muted">attachment: {{.Filename}} ({{.ContentType}}, {{size .Size}})</p>{{end}}
</div>
{{else}}<p class="muted">None.</p>{{end}}

<h2>Events</h2>
{{if .Events}}<table id="events"><tr><th>at</th><th>type</th><th>actor</th><th>detail</th></tr>
{{range .Events}}<tr><td>{{when .At}}</td><td>{{.Type}}</td><td>{{person .Actor}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}
{{end}}
{{template "foot"}}{{end}}
`))
