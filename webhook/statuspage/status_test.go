package statuspage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"supportbridge/bridge"
)

const (
	statusTestToken = "status-token-0123456789"
	hostile         = `<script>alert(1)</script>`
	hostileEscaped  = `&lt;script&gt;alert(1)&lt;/script&gt;`
)

// fakeStatus is a Source with fixed answers; an error field set
// makes that call fail.
type fakeStatus struct {
	depths      QueueDepths
	depthsErr   error
	dead        []DeadJob
	deadErr     error
	quarantined []bridge.QuarantinedMail
	quarErr     error
	imap        MailboxState
	tickets     []bridge.Ticket
	next        string
	ticketsErr  error
	views       map[string]bridge.TicketView
	viewErr     error
	lastQuery   bridge.ListQuery
	noReferent  []string
}

func (f *fakeStatus) NoReferent(_ context.Context, limit int) ([]string, int64, error) {
	return f.noReferent[:min(limit, len(f.noReferent))], int64(len(f.noReferent)), nil
}

func (f *fakeStatus) Depths(context.Context) (QueueDepths, error) { return f.depths, f.depthsErr }
func (f *fakeStatus) Dead(context.Context) ([]DeadJob, error)     { return f.dead, f.deadErr }
func (f *fakeStatus) Quarantined(context.Context) ([]bridge.QuarantinedMail, error) {
	return f.quarantined, f.quarErr
}
func (f *fakeStatus) IMAPState() MailboxState { return f.imap }
func (f *fakeStatus) Tickets(_ context.Context, q bridge.ListQuery) (bridge.TicketPage, error) {
	f.lastQuery = q
	if q.Cursor == "bad" {
		return bridge.TicketPage{}, &bridge.Error{Code: bridge.CodeInvalid, Message: "invalid cursor"}
	}
	return bridge.TicketPage{Tickets: f.tickets, NextCursor: f.next}, f.ticketsErr
}
func (f *fakeStatus) Ticket(_ context.Context, id string) (bridge.TicketView, error) {
	if f.viewErr != nil {
		return bridge.TicketView{}, f.viewErr
	}
	v, ok := f.views[id]
	if !ok {
		return v, bridge.ErrNotFound
	}
	return v, nil
}

var statusNow = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

func sampleStatus() *fakeStatus {
	escalated := statusNow.Add(-time.Hour)
	ref := &bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example"}
	t1 := bridge.Ticket{ID: "T1", StructureID: "s1", Subject: hostile, Status: bridge.StatusOpened,
		Owner:       bridge.Person{ID: "u-owner", DisplayName: "Léa " + hostile, Email: "lea@school.example", Profile: "Student"},
		Category:    bridge.Category{App: "pronote", Label: "Pronote"},
		Description: "line one\n" + hostile, Locale: "fr", CreatedAt: statusNow.Add(-2 * time.Hour), UpdatedAt: statusNow,
		Attachments: []bridge.Attachment{{ID: "a1", Filename: "capture " + hostile + ".png", ContentType: "image/png", Size: 2048}},
		Escalation: bridge.Escalation{Status: bridge.EscalationSuccessful, DeskReference: "Desk #4711",
			EscalatedAt: &escalated, EscalatedBy: ref}}
	t2 := bridge.Ticket{ID: "T2", StructureID: "s2", Subject: "Mot de passe oublié", Status: bridge.StatusNew,
		Escalation: bridge.Escalation{Status: bridge.EscalationFailed, LastError: "550 " + hostile}, UpdatedAt: statusNow.Add(-time.Minute)}
	odd := bridge.Ticket{ID: "a/b?c", StructureID: "s1", Subject: "odd id", Status: bridge.StatusNew,
		Escalation: bridge.Escalation{Status: bridge.EscalationNotDone}}
	return &fakeStatus{
		noReferent: []string{"T9", "a/b?c"},
		depths:     QueueDepths{Pending: 3, Active: 1, Retry: 2, Dead: 1},
		dead: []DeadJob{{ID: "job-escalate-T2", Kind: "escalate", TicketID: "T2", LastError: "smtp: 550 " + hostile,
			FailedAt: statusNow.Add(-30 * time.Minute)}},
		quarantined: []bridge.QuarantinedMail{{Key: "k1", From: "stranger@evil.example", Subject: "Re: " + hostile,
			Reason: "unknown_sender", At: statusNow.Add(-10 * time.Minute)}},
		imap: MailboxState{Configured: true, MailboxState: bridge.MailboxState{Connected: true, Idle: true, LeaseHeld: true,
			LastSuccess: statusNow.Add(-5 * time.Second), LastError: "", Processed: 42, Quarantined: 1, Retried: 3}},
		tickets: []bridge.Ticket{t2, t1, odd},
		next:    "cur&sor=1",
		views: map[string]bridge.TicketView{"T1": {Ticket: t1,
			Exchanges: []bridge.Exchange{
				{ID: "c1", Origin: bridge.OriginENT, Author: *ref, Body: "Une précision.", CreatedAt: statusNow.Add(-50 * time.Minute)},
				{ID: "d1", Origin: bridge.OriginDesk, Author: bridge.Person{DisplayName: "Agent Smith", Email: "agent@desk.example"},
					Body: "Bonjour,\n" + hostile + "\nCordialement", CreatedAt: statusNow.Add(-20 * time.Minute),
					Attachments: []bridge.Attachment{{ID: "a2", Filename: "log.txt", ContentType: "text/plain", Size: 3 << 20}}},
			},
			Events: []bridge.TimelineEvent{
				{Type: "ticket.created", At: statusNow.Add(-2 * time.Hour), Actor: &t1.Owner},
				{Type: "ticket.escalated", At: escalated, Actor: ref, Detail: "desk " + hostile},
				{Type: "ticket.desk_replied", At: statusNow.Add(-20 * time.Minute), Detail: "from agent@desk.example"},
			}}},
	}
}

func newStatusServer(src Source) http.Handler {
	return Handler(src, Options{Tokens: []string{"another-token-000000", statusTestToken}})
}

func getStatus(t *testing.T, h http.Handler, target string, setup func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	if setup != nil {
		setup(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func withBearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// loginCookie logs in and returns the cookie the server set.
func loginCookie(t *testing.T, h http.Handler, tok string) *http.Cookie {
	t.Helper()
	rec := getStatus(t, h, "/login?token="+url.QueryEscape(tok), nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("login: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("login set %d cookies", len(cs))
	}
	return cs[0]
}

func TestStatusAuth(t *testing.T) {
	h := newStatusServer(sampleStatus())
	withCookie := func(name, v string) func(*http.Request) {
		return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: v}) }
	}
	good := loginCookie(t, h, statusTestToken)
	for _, tc := range []struct {
		name  string
		path  string
		setup func(*http.Request)
		want  int
	}{
		{"nothing", "/", nil, 401},
		{"nothing, ticket page", "/tickets/T1", nil, 401},
		{"wrong bearer", "/", withBearer("wrong-token-0000000000"), 401},
		{"empty bearer", "/", withBearer(""), 401},
		{"bearer", "/", withBearer(statusTestToken), 200},
		{"bearer, ticket page", "/tickets/T1", withBearer(statusTestToken), 200},
		{"the raw token as cookie", "/", withCookie(good.Name, statusTestToken), 401},
		{"wrong cookie", "/", withCookie(good.Name, strings.Repeat("0", len(good.Value))), 401},
		{"cookie of another name", "/", withCookie("session", good.Value), 401},
		{"cookie", "/", withCookie(good.Name, good.Value), 200},
		{"cookie, ticket page", "/tickets/T1", withCookie(good.Name, good.Value), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := getStatus(t, h, tc.path, tc.setup)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); csp != "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'" {
				t.Errorf("CSP %q", csp)
			}
			if rec.Code == 401 && strings.Contains(rec.Body.String(), "Recent tickets") {
				t.Errorf("401 shows the page: %s", rec.Body)
			}
		})
	}

	t.Run("login with a wrong token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong-token-0000000000", statusTestToken + "x"} {
			rec := getStatus(t, h, "/login?token="+url.QueryEscape(tok), nil)
			if rec.Code != 401 || len(rec.Result().Cookies()) != 0 {
				t.Errorf("token %q: %d, cookies %v", tok, rec.Code, rec.Result().Cookies())
			}
		}
	})

	t.Run("cookie attributes", func(t *testing.T) {
		if !good.HttpOnly || good.SameSite != http.SameSiteStrictMode || good.Path != "/" || good.Secure || good.MaxAge <= 0 {
			t.Errorf("cookie %+v", good)
		}
		if strings.Contains(good.Value, statusTestToken) {
			t.Errorf("the cookie holds the token")
		}
		other := loginCookie(t, h, "another-token-000000")
		if other.Value == good.Value {
			t.Errorf("two tokens, one cookie")
		}
		// Another replica with the same tokens takes the same cookie.
		h2 := newStatusServer(sampleStatus())
		if rec := getStatus(t, h2, "/", withCookie(good.Name, good.Value)); rec.Code != 200 {
			t.Errorf("other replica: %d", rec.Code)
		}
		// Once the token is removed from the configuration its cookie fails.
		h3 := Handler(sampleStatus(), Options{Tokens: []string{"another-token-000000"}})
		if rec := getStatus(t, h3, "/", withCookie(good.Name, good.Value)); rec.Code != 401 {
			t.Errorf("revoked token's cookie: %d", rec.Code)
		}
	})

	t.Run("secure behind a TLS proxy", func(t *testing.T) {
		rec := getStatus(t, h, "/login?token="+url.QueryEscape(statusTestToken),
			func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https") })
		if cs := rec.Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
			t.Errorf("cookie behind a TLS proxy %+v", cs)
		}
	})

	t.Run("secure over TLS, then the browser follows the redirect", func(t *testing.T) {
		srv := httptest.NewTLSServer(h)
		defer srv.Close()
		jar, _ := cookiejar.New(nil)
		c := srv.Client()
		c.Jar = jar
		resp, err := c.Get(srv.URL + "/login?token=" + url.QueryEscape(statusTestToken))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `id="queue"`) {
			t.Fatalf("after login: %d %s", resp.StatusCode, body)
		}
		if resp.Request.URL.Path != "/" {
			t.Errorf("landed on %s", resp.Request.URL)
		}
		// The cookie as the server set it, before the redirect.
		req, _ := http.NewRequest("GET", srv.URL+"/login?token="+url.QueryEscape(statusTestToken), nil)
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer tr.CloseIdleConnections()
		raw, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		raw.Body.Close()
		if cs := raw.Cookies(); len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly {
			t.Errorf("TLS cookie %+v", cs)
		}
	})
}

// parseHTML parses a page and fails the test on a script element anywhere.
func parseHTML(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "img" || n.Data == "iframe") {
			t.Errorf("a <%s> element in the page", n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("event handler attribute %s", a.Key)
			}
		}
	})
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		for _, a := range n.Attr {
			if found == nil && a.Key == "id" && a.Val == id {
				found = n
			}
		}
	})
	return found
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns a table's rows as the text of their cells.
func rows(t *testing.T, doc *html.Node, id string) [][]string {
	t.Helper()
	table := byID(doc, id)
	if table == nil {
		t.Fatalf("no #%s", id)
	}
	var out [][]string
	walk(table, func(n *html.Node) {
		if n.Type != html.ElementNode || n.Data != "tr" {
			return
		}
		var cells []string
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
				cells = append(cells, text(c))
			}
		}
		out = append(out, cells)
	})
	return out
}

func links(doc *html.Node) map[string]string {
	out := map[string]string{}
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					out[text(n)] = a.Val
				}
			}
		}
	})
	return out
}

func TestStatusPageRendersData(t *testing.T) {
	src := sampleStatus()
	h := newStatusServer(src)
	rec := getStatus(t, h, "/", withBearer(statusTestToken))
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if strings.Contains(body, "<script") || !strings.Contains(body, hostileEscaped) {
		t.Errorf("hostile content not escaped:\n%s", body)
	}
	if src.lastQuery.Limit != 50 || src.lastQuery.Cursor != "" {
		t.Errorf("query %+v", src.lastQuery)
	}
	doc := parseHTML(t, body)

	if got := rows(t, doc, "queue"); fmt.Sprint(got) != "[[pending active retry dead] [3 1 2 1]]" {
		t.Errorf("queue %v", got)
	}
	imap := map[string]string{}
	for _, r := range rows(t, doc, "imap") {
		imap[r[0]] = r[1]
	}
	for k, want := range map[string]string{"connected": "yes", "idle": "yes", "lease held by this replica": "yes",
		"last success": "2026-11-28 09:29:55 UTC", "last error": "—", "processed / quarantined / retried": "42 / 1 / 3"} {
		if imap[k] != want {
			t.Errorf("imap %s = %q, want %q", k, imap[k], want)
		}
	}
	tickets := rows(t, doc, "tickets")
	want := [][]string{
		{"id", "structure", "subject", "status", "escalation", "updated"},
		{"T2", "s2", "Mot de passe oublié", "new", "failed", "2026-11-28 09:29:00 UTC"},
		{"T1", "s1", hostile, "opened", "successful", "2026-11-28 09:30:00 UTC"},
		{"a/b?c", "s1", "odd id", "new", "not_done", "—"},
	}
	if fmt.Sprint(tickets) != fmt.Sprint(want) {
		t.Errorf("tickets\n got %q\nwant %q", tickets, want)
	}
	l := links(doc)
	if l["T1"] != "/tickets/T1" || l["a/b?c"] != "/tickets/a%2Fb%3Fc" {
		t.Errorf("links %v", l)
	}
	if next := l["Older tickets"]; next != "/?cursor=cur%26sor%3d1" && next != "/?cursor=cur%26sor%3D1" {
		t.Errorf("next page link %q", next)
	}
	if got := rows(t, doc, "dead"); len(got) != 2 || fmt.Sprint(got[1]) != fmt.Sprint([]string{"job-escalate-T2", "escalate", "T2", "2026-11-28 09:00:00 UTC", "smtp: 550 " + hostile}) {
		t.Errorf("dead %q", got)
	}
	if got := rows(t, doc, "quarantine"); len(got) != 2 || fmt.Sprint(got[1]) != fmt.Sprint([]string{"2026-11-28 09:20:00 UTC", "stranger@evil.example", "Re: " + hostile, "unknown_sender"}) {
		t.Errorf("quarantine %q", got)
	}
	if !strings.Contains(body, `<ul id="noreferent"><li><a href="/tickets/T9">T9</a></li><li><a href="/tickets/a%2Fb%3Fc">a/b?c</a></li></ul>`) ||
		!strings.Contains(body, "2 demand(s) created in a structure with no referent") {
		t.Errorf("demands without referent not listed")
	}

	// The next page passes its cursor through; a forged cursor is a 400.
	getStatus(t, h, "/?cursor="+url.QueryEscape("cur&sor=1"), withBearer(statusTestToken))
	if src.lastQuery.Cursor != "cur&sor=1" {
		t.Errorf("cursor %q", src.lastQuery.Cursor)
	}
	if rec := getStatus(t, h, "/?cursor=bad", withBearer(statusTestToken)); rec.Code != 400 {
		t.Errorf("bad cursor: %d", rec.Code)
	}
}

func TestStatusTicketPage(t *testing.T) {
	h := newStatusServer(sampleStatus())
	rec := getStatus(t, h, "/tickets/T1", withBearer(statusTestToken))
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if strings.Contains(body, "<script") || !strings.Contains(body, hostileEscaped) {
		t.Errorf("hostile content not escaped:\n%s", body)
	}
	doc := parseHTML(t, body)
	fields := map[string]string{}
	for _, r := range rows(t, doc, "fields") {
		fields[r[0]] = r[1]
	}
	for k, want := range map[string]string{
		"structure": "s1", "owner": "Léa " + hostile + " <lea@school.example> (Student)", "category": "Pronote (pronote)",
		"status": "opened", "created": "2026-11-28 07:30:00 UTC", "description": "line one " + hostile,
		"attachments": "capture " + hostile + ".png (image/png, 2.0 KiB)",
	} {
		if fields[k] != want {
			t.Errorf("field %s = %q, want %q", k, fields[k], want)
		}
	}
	esc := map[string]string{}
	for _, r := range rows(t, doc, "escalation") {
		esc[r[0]] = r[1]
	}
	if esc["status"] != "successful" || esc["desk reference"] != "Desk #4711" ||
		esc["escalated"] != "2026-11-28 08:30:00 UTC by Mme Martin <martin@school.example>" || esc["last error"] != "—" {
		t.Errorf("escalation %q", esc)
	}
	var exchanges []string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "div" {
			exchanges = append(exchanges, text(n))
		}
	})
	wantEx := []string{
		"ent · Mme Martin <martin@school.example> · 2026-11-28 08:40:00 UTC Une précision.",
		"desk · Agent Smith <agent@desk.example> · 2026-11-28 09:10:00 UTC Bonjour, " + hostile + " Cordialement attachment: log.txt (text/plain, 3.0 MiB)",
	}
	if fmt.Sprint(exchanges) != fmt.Sprint(wantEx) {
		t.Errorf("exchanges\n got %q\nwant %q", exchanges, wantEx)
	}
	evs := rows(t, doc, "events")
	if len(evs) != 4 || evs[2][1] != "ticket.escalated" || evs[2][3] != "desk "+hostile || evs[3][2] != "—" {
		t.Errorf("events %q", evs)
	}
	// The description and bodies keep their line breaks.
	if !strings.Contains(body, "<pre>line one\n"+hostileEscaped+"</pre>") {
		t.Errorf("description lost its line break")
	}
}

func TestStatusPageFailures(t *testing.T) {
	down := errors.New("redis: connection refused")
	src := sampleStatus()
	src.depthsErr, src.deadErr, src.quarErr, src.ticketsErr = down, down, down, down
	src.imap.LastError = "imap: dial: " + hostile
	h := newStatusServer(src)
	rec := getStatus(t, h, "/", withBearer(statusTestToken))
	if rec.Code != 200 {
		t.Fatalf("%d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{"The queue cannot be read", "The tickets cannot be read",
		"The dead letters cannot be read", "The quarantine cannot be read", "imap: dial: " + hostileEscaped} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "connection refused") {
		t.Errorf("internal error shown: %s", body)
	}
	parseHTML(t, body)

	if rec := getStatus(t, h, "/tickets/nope", withBearer(statusTestToken)); rec.Code != 404 {
		t.Errorf("missing ticket: %d", rec.Code)
	}
	src.viewErr = down
	if rec := getStatus(t, h, "/tickets/T1", withBearer(statusTestToken)); rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("unreadable ticket: %d", rec.Code)
	}

	// No mailbox configured, nothing stored.
	empty := &fakeStatus{}
	rec = getStatus(t, newStatusServer(empty), "/", withBearer(statusTestToken))
	body = rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "No mailbox is read") || !strings.Contains(body, "No tickets.") {
		t.Errorf("empty: %d %s", rec.Code, body)
	}
	if got := rows(t, parseHTML(t, body), "queue"); fmt.Sprint(got[1]) != "[0 0 0 0]" {
		t.Errorf("empty queue %v", got)
	}
}

func TestStatusPageBounded(t *testing.T) {
	src := &fakeStatus{}
	for i := range 250 {
		src.dead = append(src.dead, DeadJob{ID: fmt.Sprintf("job-%d", i), Kind: "callback"})
		src.quarantined = append(src.quarantined, bridge.QuarantinedMail{Key: fmt.Sprint(i), From: "x@y.example"})
	}
	rec := getStatus(t, newStatusServer(src), "/", withBearer(statusTestToken))
	doc := parseHTML(t, rec.Body.String())
	if n := len(rows(t, doc, "dead")); n != 201 {
		t.Errorf("dead rows %d", n)
	}
	if n := len(rows(t, doc, "quarantine")); n != 201 {
		t.Errorf("quarantine rows %d", n)
	}
	if !strings.Contains(rec.Body.String(), "The first 200 of 250.") {
		t.Errorf("no note of the rows left out")
	}
}

func TestStatusRoutes(t *testing.T) {
	h := newStatusServer(sampleStatus())
	// "/" matches only itself: other paths stay 404, even with a token.
	if rec := getStatus(t, h, "/nope", withBearer(statusTestToken)); rec.Code != 404 || strings.Contains(rec.Body.String(), "Recent tickets") {
		t.Errorf("/nope: %d", rec.Code)
	}
	// Read-only: no other method.
	req := httptest.NewRequest("POST", "/", nil)
	withBearer(statusTestToken)(req)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", rec.Code)
	}
}

// TestStatusLoginForm: GET /login with nothing to check shows the sign-in
// form, 200, without an error; a wrong token still says so.
func TestStatusLoginForm(t *testing.T) {
	h := newStatusServer(sampleStatus())
	rec := getStatus(t, h, "/login", nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `<form method="post" action="/login">`) || strings.Contains(body, "is not one of") {
		t.Errorf("GET /login: %d %s", rec.Code, body)
	}
	if len(rec.Result().Cookies()) != 0 {
		t.Errorf("GET /login set a cookie")
	}
	rec = getStatus(t, h, "/login?token=wrong-token-0123456789", nil)
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "is not one of") {
		t.Errorf("a wrong token: %d", rec.Code)
	}
}
