// Package httpapi is the daemon's HTTP server: the intake of the ENT's
// webhooks (verified with package webhook, decoded strictly here), the read
// API, the notification feed, /healthz, /readyz, /metrics and
// /openapi.yaml. routes.go lists every route, the status page's included;
// the status page itself comes from outside (package statuspage), as an
// http.Handler.
//
// It may import bridge, webhook and api; none of them imports it.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"supportbridge/bridge"
	"supportbridge/webhook"
	"supportbridge/webhook/bearer"
)

// Service is what the HTTP layer needs from the domain.
type Service interface {
	Apply(ctx context.Context, ev bridge.Event) (bridge.Outcome, error)
	Ticket(ctx context.Context, id string) (bridge.TicketView, error)
	Tickets(ctx context.Context, q bridge.ListQuery) (bridge.TicketPage, error)
	Attachment(ctx context.Context, id string) (bridge.AttachmentData, error)
}

// Options configure the HTTP server.
type Options struct {
	Verifier  *webhook.Verifier
	Limits    DecodeLimits
	MaxBody   int64 // bytes of a webhook body
	APITokens []string
	Logger    *slog.Logger
	// Ready reports whether the daemon can serve (Redis reachable, mail
	// loops not wedged); nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics when set.
	Metrics http.Handler
	// MetricsTokens, when any, guard /metrics with a bearer token of their
	// own (a scraper needs no read access to tickets). None leaves /metrics
	// open, for a listener only the monitoring network reaches.
	MetricsTokens []string
	// Observe, when set, is told of every webhook's type, outcome code and
	// latency (metrics).
	Observe func(eventType, outcome string, d time.Duration)
	// Feed serves the notification endpoints when set.
	Feed FeedService
	// Mount adds further routes behind the API token (notifications, ops).
	Mount func(mux *http.ServeMux, auth func(http.Handler) http.Handler)
	// StatusPage serves the operators' read-only HTML status page (/,
	// /tickets/{id}, /login) when set: statuspage.Handler.
	StatusPage http.Handler
}

// Server is the daemon's HTTP API.
type Server struct {
	svc    Service
	opts   Options
	log    *slog.Logger
	tokens bearer.Tokens
	// metricsTokens are the digests of Options.MetricsTokens.
	metricsTokens bearer.Tokens
}

// NewServer returns the HTTP handler of the daemon.
func NewServer(svc Service, opts Options) http.Handler {
	s := &Server{svc: svc, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.MaxBody <= 0 {
		s.opts.MaxBody = 20 << 20
	}
	s.tokens = bearer.New(opts.APITokens)
	s.metricsTokens = bearer.New(opts.MetricsTokens)
	mux := http.NewServeMux()
	s.routes(mux)
	return s.withRequestLog(mux)
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the id of the request being served.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) withRequestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r.WithContext(ctx))
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug
		}
		s.log.LogAttrs(ctx, level, "http request", slog.String("request_id", id),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, p.Status, map[string]any{"error": p})
}

// problemFor maps domain errors to the contract's answers, in one place.
func problemFor(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var be *bridge.Error
	if !errors.As(err, &be) {
		return &Problem{Status: http.StatusServiceUnavailable, Code: string(bridge.CodeUnavailable),
			Message: "the service is unavailable, retry later"}
	}
	status := http.StatusServiceUnavailable
	switch be.Code {
	case bridge.CodeInvalid:
		status = http.StatusBadRequest
	case bridge.CodeUnknownTicket, bridge.CodeUnknownStructure, bridge.CodeTransitionNotAllowed, bridge.CodeEscalationConflict:
		status = http.StatusConflict
	case bridge.CodeEscalationDisabled, bridge.CodeForbiddenActor:
		status = http.StatusForbidden
	case bridge.CodeNotFound:
		status = http.StatusNotFound
	}
	msg := be.Message
	if status == http.StatusServiceUnavailable {
		msg = "the service is unavailable, retry later"
	}
	return &Problem{Status: status, Code: string(be.Code), Message: msg, Fields: be.Fields}
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	eventType, outcome := "unknown", ""
	defer func() {
		if s.opts.Observe != nil {
			s.opts.Observe(eventType, outcome, time.Since(start))
		}
	}()
	fail := func(p *Problem) {
		outcome = p.Code
		writeProblem(w, p)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		fail(&Problem{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "the body must be application/json"})
		return
	}
	if r.ContentLength > s.opts.MaxBody {
		fail(&Problem{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: "the body exceeds " + strconv.FormatInt(s.opts.MaxBody, 10) + " bytes"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(&Problem{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
				Message: "the body exceeds " + strconv.FormatInt(s.opts.MaxBody, 10) + " bytes"})
			return
		}
		fail(&Problem{Status: http.StatusBadRequest, Code: "invalid_payload", Message: "the body could not be read"})
		return
	}
	msgID, _, err := s.opts.Verifier.Verify(r.Header, body)
	if err != nil {
		code, msg := "invalid_signature", "the signature does not verify"
		switch {
		case errors.Is(err, webhook.ErrStaleTimestamp):
			code, msg = "stale_timestamp", "the webhook-timestamp is outside the tolerance"
		case errors.Is(err, webhook.ErrMissingHeaders):
			msg = "the webhook-id, webhook-timestamp and webhook-signature headers are required"
		}
		fail(&Problem{Status: http.StatusUnauthorized, Code: code, Message: msg})
		return
	}
	ev, err := DecodeEvent(msgID, body, s.opts.Limits)
	if err != nil {
		fail(problemFor(err))
		return
	}
	eventType = string(ev.Type)
	res, err := s.svc.Apply(r.Context(), ev)
	if err != nil {
		p := problemFor(err)
		if p.Status >= 500 {
			s.log.LogAttrs(r.Context(), slog.LevelError, "webhook not applied",
				slog.String("request_id", RequestID(r.Context())), slog.String("event", msgID),
				slog.String("type", eventType), slog.String("error", err.Error()))
		}
		fail(p)
		return
	}
	if res == bridge.Duplicate {
		outcome = "duplicate"
		writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate"})
		return
	}
	outcome = "accepted"
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// requireToken guards the read API with the configured bearer tokens.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return requireBearer(s.tokens, "supportbridge", "a valid bearer token is required", next)
}

// requireMetricsToken guards /metrics when metrics tokens are configured.
func (s *Server) requireMetricsToken(next http.Handler) http.Handler {
	if s.metricsTokens.Empty() {
		return next
	}
	return requireBearer(s.metricsTokens, "supportbridge-metrics", "a valid metrics bearer token is required", next)
}

// requireBearer answers 401 unauthorized, with the realm to authenticate
// in, unless the request carries one of tokens.
func requireBearer(tokens bearer.Tokens, realm, message string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tokens.Allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			writeProblem(w, &Problem{Status: http.StatusUnauthorized, Code: "unauthorized", Message: message})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.Ticket(r.Context(), r.PathValue("id"))
	if err != nil {
		s.readError(w, r, err, "ticket")
		return
	}
	writeJSON(w, http.StatusOK, ticketViewJSON(v))
}

func (s *Server) handleTickets(w http.ResponseWriter, r *http.Request) {
	q := bridge.ListQuery{StructureID: r.URL.Query().Get("structure_id"),
		Status: bridge.Status(r.URL.Query().Get("status")), Cursor: r.URL.Query().Get("cursor")}
	var bad []string
	if q.Status != "" && !q.Status.Valid() {
		bad = append(bad, "status")
	}
	switch r.URL.Query().Get("include_children") {
	case "", "false":
	case "true":
		q.IncludeChildren = true
		if q.StructureID == "" {
			bad = append(bad, "include_children")
		}
	default:
		bad = append(bad, "include_children")
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 200 {
			bad = append(bad, "limit")
		}
		q.Limit = n
	}
	if len(bad) > 0 {
		writeProblem(w, &Problem{Status: http.StatusBadRequest, Code: "invalid_payload",
			Message: "invalid query parameters", Fields: bad})
		return
	}
	page, err := s.svc.Tickets(r.Context(), q)
	if err != nil {
		s.readError(w, r, err, "tickets")
		return
	}
	out := struct {
		Tickets    []ticketJSON `json:"tickets"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Tickets: make([]ticketJSON, 0, len(page.Tickets)), NextCursor: page.NextCursor}
	for _, t := range page.Tickets {
		out.Tickets = append(out.Tickets, toTicketJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAttachment(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.Attachment(r.Context(), r.PathValue("id"))
	if err != nil {
		s.readError(w, r, err, "attachment")
		return
	}
	ct := a.ContentType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Content)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Never rendered inline by a browser: the bytes come from users.
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	_, _ = w.Write(a.Content)
}

func (s *Server) readError(w http.ResponseWriter, r *http.Request, err error, what string) {
	p := problemFor(err)
	if p.Status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "read failed", slog.String("what", what),
			slog.String("request_id", RequestID(r.Context())), slog.String("error", err.Error()))
	}
	if p.Code == string(bridge.CodeNotFound) {
		p.Message = what + " not found"
	}
	writeProblem(w, p)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
