package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"supportbridge/bridge"
)

// FeedService is what the notification endpoints need.
type FeedService interface {
	Notifications(ctx context.Context, userID string, unreadOnly bool, limit int) (int, []bridge.Notification, error)
	MarkRead(ctx context.Context, userID string, ids []string, all bool) (int, error)
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var bad []string
	unreadOnly := false
	if v := q.Get("unread_only"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad = append(bad, "unread_only")
		}
		unreadOnly = b
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			bad = append(bad, "limit")
		}
		limit = n
	}
	if len(bad) > 0 {
		writeProblem(w, &Problem{Status: http.StatusBadRequest, Code: "invalid_payload",
			Message: "invalid query parameters", Fields: bad})
		return
	}
	unread, list, err := s.opts.Feed.Notifications(r.Context(), r.PathValue("id"), unreadOnly, limit)
	if err != nil {
		s.readError(w, r, err, "notifications")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"unread": unread, "notifications": list})
}

func (s *Server) handleMarkRead(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []string `json:"ids"`
		All bool     `json:"all"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (!req.All && len(req.IDs) == 0) || len(req.IDs) > 1000 {
		writeProblem(w, &Problem{Status: http.StatusBadRequest, Code: "invalid_payload",
			Message: `send {"ids": [...]} (at most 1000) or {"all": true}`, Fields: []string{"ids"}})
		return
	}
	unread, err := s.opts.Feed.MarkRead(r.Context(), r.PathValue("id"), req.IDs, req.All)
	if err != nil {
		s.readError(w, r, err, "notifications")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"unread": unread})
}
