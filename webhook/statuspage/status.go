// Package statuspage is the operators' read-only HTML status page: the job
// queue, the mailbox reader, recent tickets, dead letters, quarantined
// mails, and one ticket's timeline; and the sign-in that turns an API token
// into a cookie (login.go). Handler returns it as an http.Handler, which
// package httpapi mounts on its routes.
//
// It imports bridge only. What it needs of the daemon is declared here
// (Source); what it needs of the server, the API tokens and the request id
// for its logs, comes in Options.
package statuspage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"supportbridge/bridge"
	"supportbridge/webhook/bearer"
)

// Source is what the operators' status page shows. The daemon
// implements it from its store, job queue and mailbox reader.
type Source interface {
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
	Pending, Active, Retry, Dead int
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
	bridge.MailboxState
}

const (
	// ticketsPerPage is how many tickets a page lists.
	ticketsPerPage = 50
	// maxRows bounds the dead letters and quarantined mails shown,
	// so that a flood of them cannot make the page huge.
	maxRows               = 200
	contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
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
	src       Source
	log       *slog.Logger
	tokens    bearer.Tokens
	requestID func(context.Context) string
}

// Handler returns the read-only HTML status page: GET / and GET
// /tickets/{id} behind an API token, GET and POST /login to get the cookie.
// It routes these four patterns itself; the server must send them to it
// (httpapi's routes.go lists them).
func Handler(src Source, opts Options) http.Handler {
	s := &handler{src: src, log: opts.Logger, tokens: bearer.New(opts.Tokens), requestID: opts.RequestID}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.requestID == nil {
		s.requestID = func(context.Context) string { return "" }
	}
	mux := http.NewServeMux()
	// {$}: only "/" itself, not every path no other route takes.
	mux.Handle("GET /{$}", s.requireAuth(http.HandlerFunc(s.handleOverview)))
	mux.Handle("GET /tickets/{id}", s.requireAuth(http.HandlerFunc(s.handleTicket)))
	mux.HandleFunc("GET /login", s.handleLogin)
	mux.HandleFunc("POST /login", s.handleLogin)
	return mux
}

type overviewData struct {
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

type ticketData struct {
	Now time.Time
	V   bridge.TicketView
}

type messageData struct {
	Title string
	Text  string
}

// handleOverview renders the overview. Each section is read on its own: when
// one source fails (Redis down) the others, such as the mailbox state kept
// in memory, still show.
func (s *handler) handleOverview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := s.src
	p := overviewData{Now: time.Now().UTC(), IMAP: src.IMAPState()}
	var err error
	if p.Depths, err = src.Depths(ctx); err != nil {
		p.DepthsErr = true
		s.logFailure(r, "queue depths", err)
	}
	page, err := src.Tickets(ctx, bridge.ListQuery{Limit: ticketsPerPage, Cursor: r.URL.Query().Get("cursor")})
	var be *bridge.Error
	switch {
	case errors.As(err, &be) && be.Code == bridge.CodeInvalid:
		s.render(w, r, http.StatusBadRequest, "message", messageData{Title: "Bad request", Text: "The cursor is not valid."})
		return
	case err != nil:
		p.TicketsErr = true
		s.logFailure(r, "tickets", err)
	default:
		p.Tickets, p.NextCursor = page.Tickets, page.NextCursor
	}
	if dead, err := src.Dead(ctx); err != nil {
		p.DeadErr = true
		s.logFailure(r, "dead letters", err)
	} else {
		p.DeadTotal = len(dead)
		p.Dead = dead[:min(len(dead), maxRows)]
	}
	if q, err := src.Quarantined(ctx); err != nil {
		p.QuarantErr = true
		s.logFailure(r, "quarantine", err)
	} else {
		p.QuarantTotal = len(q)
		p.Quarantine = q[:min(len(q), maxRows)]
	}
	if p.NoReferent, p.NoRefTotal, err = src.NoReferent(ctx, maxRows); err != nil {
		p.NoRefErr = true
		s.logFailure(r, "demands without referent", err)
	}
	s.render(w, r, http.StatusOK, "status", p)
}

// handleTicket renders one ticket's fields and timeline.
func (s *handler) handleTicket(w http.ResponseWriter, r *http.Request) {
	v, err := s.src.Ticket(r.Context(), r.PathValue("id"))
	if err != nil {
		var be *bridge.Error
		if errors.Is(err, bridge.ErrNotFound) || errors.As(err, &be) && be.Code == bridge.CodeNotFound {
			s.render(w, r, http.StatusNotFound, "message", messageData{Title: "Not found", Text: "No such ticket."})
			return
		}
		s.logFailure(r, "ticket", err)
		w.Header().Set("Retry-After", "5")
		s.render(w, r, http.StatusServiceUnavailable, "message", messageData{Title: "Unavailable",
			Text: "The ticket cannot be read right now; retry later."})
		return
	}
	s.render(w, r, http.StatusOK, "ticket", ticketData{Now: time.Now().UTC(), V: v})
}

func (s *handler) logFailure(r *http.Request, what string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "status page: read failed", slog.String("what", what),
		slog.String("request_id", s.requestID(r.Context())), slog.String("error", err.Error()))
}

// render executes a template into a buffer first, so that a failure
// is a clean 500 rather than half a page.
func (s *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		s.logFailure(r, "render "+name, err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
