package mailtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"
)

func rtMail(messageID, subject, body string) []byte {
	return []byte("From: \"Assistance ENT\" <assistance@ent.example>\n" +
		"To: support@desk.example\n" +
		"Subject: " + subject + "\n" +
		"Message-ID: <" + messageID + ">\n" +
		"Date: Thu, 04 Dec 2025 10:00:00 +0000\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"\n" +
		body)
}

// parseRTMail parses one mail of the spool and shows it whole in the log.
func parseRTMail(t *testing.T, what string, raw []byte) *mail.Message {
	t.Helper()
	t.Logf("--- %s, as RT sent it (%d bytes) ---\n%s\n--- end of %s ---", what, len(raw), raw, what)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return msg
}

func wantHeader(t *testing.T, what string, msg *mail.Message, name, want string) {
	t.Helper()
	if got := msg.Header.Get(name); got != want {
		t.Errorf("%s: %s = %q, want %q", what, name, got, want)
	}
}

func wantHeaderContains(t *testing.T, what string, msg *mail.Message, name, want string) {
	t.Helper()
	if got := msg.Header.Get(name); !strings.Contains(got, want) {
		t.Errorf("%s: %s = %q, want it to contain %q", what, name, got, want)
	}
}

func TestRTHarness(t *testing.T) {
	start := time.Now()
	rt := StartRT(t, RTOptions{})
	t.Logf("StartRT: %s (%s, dir %s)", time.Since(start).Round(time.Millisecond), rt.URL, rt.Dir)
	if rt.Name != "rt.desk.example" || rt.CorrespondAddress != "support@desk.example" {
		t.Fatalf("defaults: Name %q CorrespondAddress %q", rt.Name, rt.CorrespondAddress)
	}
	if ids := rt.TicketIDs(t); len(ids) != 0 {
		t.Fatalf("fresh RT has tickets %v", ids)
	}
	if out := rt.TakeOutgoing(); len(out) != 0 {
		t.Fatalf("fresh RT sent %d mails", len(out))
	}
	tag := "[rt.desk.example #1]"

	// A new request: one ticket, and RT's autoreply to the requestor.
	step := time.Now()
	if err := rt.Submit(rtMail("ent-42-1@ent.example", "[ENT-42] Export des notes",
		"Bonjour,\nl'export des notes ne fonctionne plus.\n")); err != nil {
		t.Fatalf("submit: %v", err)
	}
	t.Logf("Submit (new ticket): %s", time.Since(step).Round(time.Millisecond))
	if ids := rt.TicketIDs(t); !slices.Equal(ids, []int{1}) {
		t.Fatalf("tickets after the first mail: %v, want [1]", ids)
	}
	tk := rt.Ticket(t, 1)
	if tk["Subject"] != "[ENT-42] Export des notes" || tk["Status"] != "new" {
		t.Errorf("ticket 1: Subject %v Status %v", tk["Subject"], tk["Status"])
	}
	out := rt.WaitOutgoing(t, 1, 10*time.Second)
	if len(out) != 1 {
		t.Fatalf("RT sent %d mails on create, want 1 (the autoreply)", len(out))
	}
	auto := parseRTMail(t, "autoreply", out[0])
	wantHeader(t, "autoreply", auto, "To", "assistance@ent.example")
	wantHeader(t, "autoreply", auto, "Subject", tag+" AutoReply: [ENT-42] Export des notes")
	wantHeader(t, "autoreply", auto, "X-RT-Ticket", "rt.desk.example #1")
	wantHeader(t, "autoreply", auto, "X-RT-Loop-Prevention", "rt.desk.example")
	wantHeader(t, "autoreply", auto, "Auto-Submitted", "auto-replied")
	wantHeader(t, "autoreply", auto, "Precedence", "bulk")
	wantHeader(t, "autoreply", auto, "In-Reply-To", "<ent-42-1@ent.example>")
	wantHeaderContains(t, "autoreply", auto, "References", "<RT-Ticket-1@desk.example>")
	wantHeaderContains(t, "autoreply", auto, "From", "<support@desk.example>")

	// An agent's reply through REST 2 goes to the requestor.
	step = time.Now()
	rt.Correspond(t, 1, "Bonjour,\nnous regardons l'export.\nL'équipe support")
	out = rt.WaitOutgoing(t, 1, 10*time.Second)
	t.Logf("Correspond and its mail: %s", time.Since(step).Round(time.Millisecond))
	if len(out) != 1 {
		t.Fatalf("RT sent %d mails on correspond, want 1", len(out))
	}
	corr := parseRTMail(t, "correspondence", out[0])
	wantHeader(t, "correspondence", corr, "To", "assistance@ent.example")
	wantHeader(t, "correspondence", corr, "Subject", tag+" [ENT-42] Export des notes")
	wantHeader(t, "correspondence", corr, "X-RT-Ticket", "rt.desk.example #1")
	if text := decodedText(t, out[0]); !strings.Contains(text, "L'équipe support") {
		t.Errorf("correspondence: text/plain part %q lacks the agent's text", text)
	}
	if got := rt.Ticket(t, 1)["Status"]; got != "open" {
		t.Errorf("status after correspondence: %v, want open", got)
	}

	// Resolving mails the requestor too (scrip "On Resolve Notify
	// Requestors", template Resolved).
	step = time.Now()
	rt.SetStatus(t, 1, "resolved")
	out = rt.WaitOutgoing(t, 1, 10*time.Second)
	t.Logf("SetStatus resolved and its mail: %s", time.Since(step).Round(time.Millisecond))
	if len(out) != 1 {
		t.Fatalf("RT sent %d mails on resolve, want 1", len(out))
	}
	res := parseRTMail(t, "resolved notice", out[0])
	wantHeader(t, "resolved notice", res, "Subject", tag+" Resolved: [ENT-42] Export des notes")
	wantHeader(t, "resolved notice", res, "X-RT-Ticket", "rt.desk.example #1")

	// A follow-up whose subject carries RT's tag joins ticket 1.
	step = time.Now()
	before := len(rt.history(t, 1))
	if err := rt.Submit(rtMail("ent-42-2@ent.example", "Re: "+tag+" [ENT-42] Export des notes",
		"Merci, encore un détail.\n")); err != nil {
		t.Fatalf("submit follow-up: %v", err)
	}
	t.Logf("Submit (follow-up): %s", time.Since(step).Round(time.Millisecond))
	if ids := rt.TicketIDs(t); !slices.Equal(ids, []int{1}) {
		t.Fatalf("tickets after the follow-up: %v, want [1]", ids)
	}
	if after := len(rt.history(t, 1)); after <= before {
		t.Errorf("ticket 1 history: %d transactions after the follow-up, %d before", after, before)
	}
	t.Logf("ticket 1 after the follow-up: Status %v", rt.Ticket(t, 1)["Status"])
	// The requestor is not sent their own mail; nobody else watches.
	time.Sleep(500 * time.Millisecond)
	after := rt.TakeOutgoing()
	t.Logf("RT sent %d mail(s) on the follow-up", len(after))
	for i, m := range after {
		parseRTMail(t, fmt.Sprintf("mail %d after the follow-up", i+1), m)
	}
	t.Logf("total: %s", time.Since(start).Round(time.Millisecond))
}

// decodedText is the first text/plain part of raw, decoded.
func decodedText(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no text/plain part: %v", err)
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "text/plain" {
			b, err := io.ReadAll(p) // NextPart undoes quoted-printable
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// history is the transactions of a ticket (REST 2), oldest first.
func (r *RT) history(t *testing.T, id int) []map[string]any {
	t.Helper()
	body := r.restT(t, http.MethodGet, fmt.Sprintf("/REST/2.0/ticket/%d/history?per_page=100", id), "", nil, http.StatusOK)
	var res struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("history: %v", err)
	}
	return res.Items
}
