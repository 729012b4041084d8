package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// fakeDesk is the desk's mail server (mailtest.StartSMTP), answering
// failures as told.
type fakeDesk struct {
	srv      *mailtest.SMTPServer
	addr     string
	mu       sync.Mutex
	failData int  // answer 451 to that many DATA commands first
	rejectTo bool // answer 550 to RCPT
}

func startFakeDesk(t *testing.T, f *fakeDesk) *fakeDesk {
	f.srv = mailtest.StartSMTP(t, mailtest.WithDomain("desk.example"),
		mailtest.OnRcpt(func(string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.rejectTo {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
			}
			return nil
		}),
		mailtest.OnData(func(int, *mailtest.SMTPMessage) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.failData > 0 {
				f.failData--
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
			}
			return nil
		}))
	f.addr = f.srv.Addr
	return f
}

// mails returns the data of the mails the desk accepted.
func (f *fakeDesk) mails() [][]byte { return mailData(f.srv.Messages()) }

// mailData returns the data of each message.
func mailData(msgs []mailtest.SMTPMessage) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data
	}
	return out
}

func deskConfig(smtpAddr string) string {
	return deskConfigWith(smtpAddr, "5s")
}

// deskConfigWith is deskConfig with another SMTP timeout.
func deskConfigWith(smtpAddr, timeout string) string {
	return fmt.Sprintf(`desk:
  address: support@desk.example
  from: "Assistance ENT <assistance@ent.example>"
  reply_to: assistance@ent.example
  allowed_senders: ["*@desk.example"]
  signing_key: "0123456789abcdef-signing"
smtp: {addr: %q, tls: none, timeout: %s, retry_initial: 100ms, retry_max: 400ms, lifetime: 1h}
`, smtpAddr, timeout)
}

func waitTicket(t *testing.T, d *daemonUnderTest, id string, cond func(answer) bool) answer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var a answer
	for time.Now().Before(deadline) {
		a = d.get(t, "/v1/tickets/"+id)
		if a.Status == 200 && cond(a) {
			return a
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ticket %s never reached the expected state: %s", id, a.Raw)
	return a
}

func escalationStatus(a answer) string {
	esc, _ := a.Body["escalation"].(map[string]any)
	s, _ := esc["status"].(string)
	return s
}

// parsedMail is a mail read back with go-message.
type parsedMail struct {
	header      gomail.Header
	text        string
	attachments map[string][]byte
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	p := parsedMail{header: mr.Header, attachments: map[string][]byte{}}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse part: %v", err)
		}
		b, _ := io.ReadAll(part.Body)
		switch h := part.Header.(type) {
		case *gomail.InlineHeader:
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				p.text += string(b)
			}
		case *gomail.AttachmentHeader:
			name, _ := h.Filename()
			p.attachments[name] = b
		}
	}
	return p
}

func TestEscalationByMail(t *testing.T) {
	m := redistest.Miniredis(t)
	desk := startFakeDesk(t, &fakeDesk{failData: 3})
	d := startDaemon(t, writeConfig(t, m.Addr(), deskConfig(desk.addr)))

	if a := d.post(t, nextID(), ticketCreated("E1", "s1")); a.Status != 202 {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := d.post(t, nextID(), escalation("E1")); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	// Three 451s, then accepted: exactly one copy at the desk.
	waitTicket(t, d, "E1", func(a answer) bool { return escalationStatus(a) == "successful" })
	time.Sleep(300 * time.Millisecond)
	mails := desk.mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails at the desk, want 1", len(mails))
	}
	first := parseMail(t, mails[0])
	subject, _ := first.header.Subject()
	if !strings.Contains(subject, "[ENT-E1]") || !strings.Contains(subject, "Écran blanc dans Pronote") {
		t.Errorf("subject %q", subject)
	}
	for _, want := range []string{"Lycée Victor Hugo", "0750001A", "Léa Dupont", "Mme Martin", "Depuis ce matin, la page reste blanche."} {
		if !strings.Contains(first.text, want) {
			t.Errorf("text part lacks %q", want)
		}
	}
	if got := first.attachments["capture écran.png"]; string(got) != "\x89PNG\r\n\x1a\n-capture-E1" {
		t.Errorf("attachment %q (have %v)", got, len(first.attachments))
	}
	rootID, _ := first.header.MessageID()
	if !strings.HasPrefix(rootID, "sb.esc.") || first.header.Get("X-Loop") == "" {
		t.Errorf("message-id %q, x-loop %q", rootID, first.header.Get("X-Loop"))
	}

	// A comment made in the ENT follows, threaded on the escalation mail.
	if a := d.post(t, nextID(), comment("E1", "c-after", "u-owner")); a.Status != 202 {
		t.Fatalf("comment: %d %s", a.Status, a.Raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(desk.mails()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	mails = desk.mails()
	if len(mails) != 2 {
		t.Fatalf("%d mails after the comment", len(mails))
	}
	follow := parseMail(t, mails[1])
	irt, _ := follow.header.MsgIDList("In-Reply-To")
	refs, _ := follow.header.MsgIDList("References")
	if len(irt) != 1 || irt[0] != rootID || len(refs) == 0 || refs[0] != rootID {
		t.Errorf("in-reply-to %v references %v, root %s", irt, refs, rootID)
	}
	if !strings.Contains(follow.text, "Une précision.") {
		t.Errorf("follow-up text lacks the comment:\n%s", follow.text)
	}
}

func TestEscalationRejected(t *testing.T) {
	m := redistest.Miniredis(t)
	desk := startFakeDesk(t, &fakeDesk{rejectTo: true})
	d := startDaemon(t, writeConfig(t, m.Addr(), deskConfig(desk.addr)))
	d.post(t, nextID(), ticketCreated("E2", "s1"))
	if a := d.post(t, nextID(), escalation("E2")); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	a := waitTicket(t, d, "E2", func(a answer) bool { return escalationStatus(a) == "failed" })
	esc := a.Body["escalation"].(map[string]any)
	if reason, _ := esc["last_error"].(string); !strings.Contains(reason, "550") {
		t.Errorf("last_error %q", reason)
	}
	// A retry after failure is allowed.
	desk.mu.Lock()
	desk.rejectTo = false
	desk.mu.Unlock()
	if a := d.post(t, nextID(), escalation("E2")); a.Status != 202 {
		t.Fatalf("retry: %d %s", a.Status, a.Raw)
	}
	waitTicket(t, d, "E2", func(a answer) bool { return escalationStatus(a) == "successful" })
}

// TestEscalationToPostfixSink sends through a real MTA process.
func TestEscalationToPostfixSink(t *testing.T) {
	sink := mailtest.StartSMTPSink(t, mailtest.WithDump())
	srv := redistest.Start(t)
	d := startDaemon(t, writeConfig(t, srv.Addr, deskConfig(sink.Addr)))
	d.post(t, nextID(), ticketCreated("P1", "s1"))
	if a := d.post(t, nextID(), escalation("P1")); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	waitTicket(t, d, "P1", func(a answer) bool { return escalationStatus(a) == "successful" })
	deadline := time.Now().Add(5 * time.Second)
	var msgs [][]byte
	for time.Now().Before(deadline) {
		if msgs = sink.Messages(t); len(msgs) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages at the sink", len(msgs))
	}
	p := parseMail(t, msgs[0])
	if s, _ := p.header.Subject(); !strings.Contains(s, "[ENT-P1] Écran blanc") {
		t.Errorf("subject %q", s)
	}
	if got := p.attachments["capture écran.png"]; string(got) != "\x89PNG\r\n\x1a\n-capture-P1" {
		t.Errorf("attachment %q", got)
	}
}
