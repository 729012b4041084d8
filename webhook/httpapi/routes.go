package httpapi

import "net/http"

// routes lists every route of the daemon's HTTP API.
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/webhooks/ent", s.handleWebhook)

	mux.Handle("GET /v1/tickets/{id}", s.requireToken(http.HandlerFunc(s.handleTicket)))
	mux.Handle("GET /v1/tickets", s.requireToken(http.HandlerFunc(s.handleTickets)))
	mux.Handle("GET /v1/attachments/{id}", s.requireToken(http.HandlerFunc(s.handleAttachment)))

	if s.opts.Feed != nil {
		mux.Handle("GET /v1/users/{id}/notifications", s.requireToken(http.HandlerFunc(s.handleNotifications)))
		mux.Handle("POST /v1/users/{id}/notifications/read", s.requireToken(http.HandlerFunc(s.handleMarkRead)))
	}

	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /openapi.yaml", s.handleOpenAPI)
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.requireMetricsToken(s.opts.Metrics))
	}
	if s.opts.StatusPage != nil {
		// The page routes these four patterns again within itself; they
		// are listed here too so that this file holds every route.
		// {$}: only "/" itself, not every path no other route takes.
		mux.Handle("GET /{$}", s.opts.StatusPage)
		mux.Handle("GET /tickets/{id}", s.opts.StatusPage)
		mux.Handle("GET /login", s.opts.StatusPage)
		mux.Handle("POST /login", s.opts.StatusPage)
	}
	if s.opts.Mount != nil {
		s.opts.Mount(mux, s.requireToken)
	}
}
