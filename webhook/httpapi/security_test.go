package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"supportbridge/bridge"
)

// /metrics is open without metrics tokens (a listener only the monitoring
// network reaches) and needs one of them, never an API token, with some;
// two tokens at once let a scraper's token be rotated.
func TestMetricsToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up 1\n")) })
	const api, newTok, oldTok = "api-token-0123456789", "metrics-new-0123456789", "metrics-old-0123456789"
	open := NewServer(nil, Options{APITokens: []string{api}, Metrics: metrics})
	guarded := NewServer(nil, Options{APITokens: []string{api}, Metrics: metrics, MetricsTokens: []string{newTok, oldTok}})
	tests := []struct {
		name string
		h    http.Handler
		auth string
		want int
	}{
		{"open without tokens", open, "", 200},
		{"guarded, no header", guarded, "", 401},
		{"guarded, API token", guarded, "Bearer " + api, 401},
		{"guarded, wrong token", guarded, "Bearer metrics-xxx-0123456789", 401},
		{"guarded, prefix of a token", guarded, "Bearer " + newTok[:10], 401},
		{"guarded, basic scheme", guarded, "Basic " + newTok, 401},
		{"guarded, new token", guarded, "Bearer " + newTok, 200},
		{"guarded, old token during rotation", guarded, "Bearer " + oldTok, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate on 401")
			}
		})
	}
	// A metrics token opens nothing else.
	req := httptest.NewRequest("GET", "/v1/tickets/T1", nil)
	req.Header.Set("Authorization", "Bearer "+newTok)
	rec := httptest.NewRecorder()
	guarded.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("metrics token on the read API: %d", rec.Code)
	}
}

// The read API accepts every configured token, so a new one can be added
// before the ENT switches, and refuses a token once it is removed.
func TestAPITokenRotation(t *testing.T) {
	const oldTok, newTok = "api-old-token-0123456789", "api-new-token-0123456789"
	svc := ticketOnly{}
	both := NewServer(svc, Options{APITokens: []string{newTok, oldTok}})
	after := NewServer(svc, Options{APITokens: []string{newTok}})
	get := func(h http.Handler, tok string) int {
		req := httptest.NewRequest("GET", "/v1/tickets/T1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := get(both, oldTok); c != 404 {
		t.Errorf("old token during rotation: %d", c)
	}
	if c := get(both, newTok); c != 404 {
		t.Errorf("new token during rotation: %d", c)
	}
	if c := get(after, oldTok); c != 401 {
		t.Errorf("old token after rotation: %d", c)
	}
	// No token configured: nothing opens, the empty token least of all.
	none := NewServer(svc, Options{APITokens: []string{""}})
	if c := get(none, ""); c != 401 {
		t.Errorf("empty token: %d", c)
	}
}

// ticketOnly answers every ticket as not found: enough to tell a request
// that got through authentication (404) from one that did not (401).
type ticketOnly struct{ Service }

func (ticketOnly) Ticket(context.Context, string) (bridge.TicketView, error) {
	return bridge.TicketView{}, bridge.ErrNotFound
}

// Attachment names from the ENT reach the desk in a MIME parameter and come
// back through the API as a download name: only a bare name survives.
func TestAttachmentFilenameMadeSafe(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "capture écran.png", "capture écran.png"},
		{"unix path", "../../etc/passwd", "passwd"},
		{"windows path", `C:\Users\eleve\devoir.pdf`, "devoir.pdf"},
		{"line break", "a\r\nX-Evil: 1.png", "a X-Evil_ 1.png"},
		{"tab", "a\tb.png", "a b.png"},
		{"right-to-left override", "facture\u202Efdp.exe", "facturefdp.exe"},
		{"zero-width joiner", "a\u200db.png", "ab.png"},
		{"leading dots", "..htaccess", "htaccess"},
		{"trailing dot and space", "note.txt. ", "note.txt"},
		{"double extension kept visible", "devoir.pdf.exe", "devoir.pdf.exe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := edit(t, "ticket_created.json", func(m map[string]any) {
				at(m, "data", "ticket", "attachments", 0)["filename"] = tc.in
			})
			ev, err := DecodeEvent(testMsgID, []byte(body), DecodeLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.NewTicket.Attachments[0].Filename; got != tc.want {
				t.Errorf("filename %q, want %q", got, tc.want)
			}
		})
	}
	// A name that is only a path or only dots is refused with its field.
	for _, in := range []string{"dir/", "..", "\u202E"} {
		body := edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket", "attachments", 0)["filename"] = in
		})
		_, err := DecodeEvent(testMsgID, []byte(body), DecodeLimits{})
		p := problemFor(err)
		if err == nil || p.Status != 400 || len(p.Fields) != 1 || p.Fields[0] != "data.ticket.attachments[0].filename" {
			t.Errorf("%q: %v %+v", in, err, p)
		}
	}
}

// attachmentStore serves one attachment as the store would give it back.
type attachmentStore struct {
	Service
	a bridge.AttachmentData
}

func (s attachmentStore) Attachment(context.Context, string) (bridge.AttachmentData, error) {
	return s.a, nil
}

// Attachment bytes come from users and the desk: a browser must save them,
// never render them in our origin, whatever type they claim.
func TestAttachmentServedAsDownload(t *testing.T) {
	const tok = "api-token-0123456789"
	tests := []struct {
		name, filename, ctype, wantType, wantDisp string
	}{
		{"html stays a download", "page.html", "text/html; charset=utf-8", "text/html; charset=utf-8", `attachment; filename=page.html`},
		{"svg", "x.svg", "image/svg+xml", "image/svg+xml", `attachment; filename=x.svg`},
		{"bad type becomes octet-stream", "a.bin", "text/html\r\nX-Evil: 1", "application/octet-stream", `attachment; filename=a.bin`},
		{"empty type", "a.bin", "", "application/octet-stream", `attachment; filename=a.bin`},
		{"name needing encoding", "rapport été \"final\".pdf", "application/pdf", "application/pdf",
			`attachment; filename*=utf-8''rapport%20%C3%A9t%C3%A9%20%22final%22.pdf`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewServer(attachmentStore{a: bridge.AttachmentData{Attachment: bridge.Attachment{ID: "a1", Filename: tc.filename,
				ContentType: tc.ctype}, Content: []byte("<script>alert(1)</script>")}}, Options{APITokens: []string{tok}})
			req := httptest.NewRequest("GET", "/v1/attachments/a1", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			hd := rec.Header()
			if rec.Code != 200 || hd.Get("Content-Type") != tc.wantType || hd.Get("Content-Disposition") != tc.wantDisp ||
				hd.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(hd.Get("Content-Security-Policy"), "sandbox") ||
				hd.Get("X-Evil") != "" {
				t.Errorf("%d %v", rec.Code, hd)
			}
		})
	}
}
