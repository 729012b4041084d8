package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

func imapConfig(d *mailtest.Dovecot) string {
	return fmt.Sprintf(`imap: {addr: %q, tls: none, username: %q, password: %q, idle: true, poll_interval: 2s, lease_ttl: 3s}
`, d.IMAPAddr, d.User, d.Password)
}

// escalateAndGetRoot escalates a ticket and returns the Message-ID of the
// mail the desk received.
func escalateAndGetRoot(t *testing.T, d *daemonUnderTest, desk *fakeDesk, id string) string {
	t.Helper()
	if a := d.post(t, nextID(), ticketCreated(id, "s1")); a.Status != 202 {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := d.post(t, nextID(), escalation(id)); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	waitTicket(t, d, id, func(a answer) bool { return escalationStatus(a) == "successful" })
	for _, raw := range desk.mails() {
		h := parseMail(t, raw).header
		if s, _ := h.Subject(); strings.Contains(s, "[ENT-"+id+"]") {
			mid, _ := h.MessageID()
			return mid
		}
	}
	t.Fatalf("no escalation mail for %s", id)
	return ""
}

func deskReply(from, subject, inReplyTo, body string) []byte {
	irt := ""
	if inReplyTo != "" {
		irt = "In-Reply-To: <" + inReplyTo + ">\r\nReferences: <" + inReplyTo + ">\r\n"
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: assistance@ent.example\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@desk.example>\r\n%sMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n\r\nLe lun. 3 nov. 2026 à 09:00, Assistance ENT <assistance@ent.example> a écrit :\r\n> la demande\r\n",
		from, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), randomToken(4), irt, body))
}

func exchangesOf(a answer) []map[string]any {
	var out []map[string]any
	xs, _ := a.Body["exchanges"].([]any)
	for _, x := range xs {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}

func deskBodies(a answer) []string {
	var out []string
	for _, x := range exchangesOf(a) {
		if x["origin"] == "desk" {
			out = append(out, x["body"].(string))
		}
	}
	return out
}

// TestDeskRepliesThroughDovecot: replies delivered into a real Dovecot are
// read over IMAP (IDLE), threaded, stripped of their quotes and applied
// once; what cannot be matched is quarantined without blocking the rest.
func TestDeskRepliesThroughDovecot(t *testing.T) {
	dc := mailtest.StartDovecot(t)
	srv := redistest.Start(t)
	desk := startFakeDesk(t, &fakeDesk{})
	d := startDaemon(t, writeConfig(t, srv.Addr, deskConfig(desk.addr)+imapConfig(dc)))
	root := escalateAndGetRoot(t, d, desk, "D1")

	// Threaded by In-Reply-To, quote removed, within seconds (IDLE).
	start := time.Now()
	reply := deskReply("Julie <julie@desk.example>", "RE: votre demande", root, "Bonjour, nous regardons.")
	dc.Deliver(t, reply)
	a := waitTicket(t, d, "D1", func(a answer) bool { return len(deskBodies(a)) == 1 })
	t.Logf("reply visible through the API %v after delivery", time.Since(start))
	if got := deskBodies(a)[0]; got != "Bonjour, nous regardons." {
		t.Errorf("body %q", got)
	}
	// The same mail delivered twice: one exchange.
	dc.Deliver(t, reply)
	// A stranger using the tag: quarantined. Broken MIME: quarantined.
	dc.Deliver(t, deskReply("spoof@evil.example", "RE: [ENT-D1] x", "", "Intrus."))
	dc.Deliver(t, []byte("From: agent@desk.example\r\nSubject: [ENT-D1] broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%not base64\r\n"))
	// The next good mail is applied all the same; an acknowledgement
	// teaches the desk's number.
	ack := deskReply("helpdesk@desk.example", "[Desk #5678] Accusé de réception [ENT-D1]", root, "Enregistré.")
	dc.Deliver(t, bytes.Replace(ack, []byte("MIME-Version"), []byte("Auto-Submitted: auto-replied\r\nMIME-Version"), 1))
	dc.Deliver(t, deskReply("julie@desk.example", "RE: [ENT-D1] Écran blanc [RESOLU]", "", "C'est corrigé."))
	a = waitTicket(t, d, "D1", func(a answer) bool { return a.Body["status"] == "resolved" })
	bodies := deskBodies(a)
	if len(bodies) != 2 || bodies[1] != "C'est corrigé." {
		t.Errorf("desk exchanges %q", bodies)
	}
	time.Sleep(500 * time.Millisecond)
	store := redisstore.New(redistest.Client(t, srv.Addr), redisstore.Options{Prefix: "e2e:"})
	qs, err := store.Quarantined(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, q := range qs {
		reason, _, _ := strings.Cut(q.Reason, ":")
		reasons[reason] = true
	}
	if len(qs) != 2 || !reasons["sender not allowed"] || !reasons["damaged MIME"] {
		t.Errorf("quarantine %+v", qs)
	}
	if esc := a.Body["escalation"].(map[string]any); esc["desk_reference"] != "5678" {
		t.Errorf("desk reference %v", esc["desk_reference"])
	}
}

// TestLargeMailThroughDovecot: a 30 MB reply is read and applied with its
// text; its oversized attachment is left out, and nothing blocks.
func TestLargeMailThroughDovecot(t *testing.T) {
	dc := mailtest.StartDovecot(t)
	srv := redistest.Start(t)
	desk := startFakeDesk(t, &fakeDesk{})
	d := startDaemon(t, writeConfig(t, srv.Addr, deskConfig(desk.addr)+imapConfig(dc)))
	root := escalateAndGetRoot(t, d, desk, "L1")

	raw := bigDeskReply(t, "RE: [ENT-L1] journaux", root)
	if len(raw) < 29<<20 {
		t.Fatalf("the mail is only %d bytes", len(raw))
	}
	dc.Deliver(t, raw)
	dc.Deliver(t, deskReply("julie@desk.example", "RE: [ENT-L1] suite", "", "Et la suite."))
	a := waitTicket(t, d, "L1", func(a answer) bool { return len(deskBodies(a)) == 2 })
	if b := deskBodies(a); b[0] != "Voici les journaux demandés." || b[1] != "Et la suite." {
		t.Errorf("bodies %q", b)
	}
}

// TestKillBetweenApplyAndMove: the daemon is SIGKILLed after a reply was
// applied but before its mail was moved out of INBOX; after the restart the
// mail is read again and still gives one exchange.
func TestKillBetweenApplyAndMove(t *testing.T) {
	dc := mailtest.StartDovecot(t)
	srv := redistest.Start(t, redistest.WithAOF())
	desk := startFakeDesk(t, &fakeDesk{})
	cfg := writeConfig(t, srv.Addr, deskConfig(desk.addr)+imapConfig(dc))
	first := startChild(t, cfg, failpointEnv+"="+failpointAfterApply)
	root := escalateAndGetRoot(t, first.daemon(), desk, "K2")
	dc.Deliver(t, deskReply("julie@desk.example", "RE: x", root, "Une seule fois."))
	select {
	case <-first.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the failpoint did not fire")
	}
	second := startChild(t, cfg)
	d := second.daemon()
	// The restarted reader waits for the dead holder's lease to expire,
	// reads the mail again and finds it applied already.
	time.Sleep(6 * time.Second)
	a := waitTicket(t, d, "K2", func(a answer) bool { return len(deskBodies(a)) >= 1 })
	if b := deskBodies(a); len(b) != 1 || b[0] != "Une seule fois." {
		t.Fatalf("desk exchanges %q", b)
	}
	dc.Deliver(t, deskReply("julie@desk.example", "RE: [ENT-K2] encore", "", "Et une autre."))
	a = waitTicket(t, d, "K2", func(a answer) bool { return len(deskBodies(a)) == 2 })
	if b := deskBodies(a); b[0] != "Une seule fois." {
		t.Fatalf("desk exchanges %q", b)
	}
}

// bigDeskReply is a desk reply of about 30 MB: a line of text and a
// 22 MiB attachment (base64), threaded by inReplyTo when set.
func bigDeskReply(t testing.TB, subject, inReplyTo string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var h gomail.Header
	h.SetAddressList("From", []*gomail.Address{{Name: "Julie", Address: "julie@desk.example"}})
	h.SetAddressList("To", []*gomail.Address{{Address: "assistance@ent.example"}})
	h.SetSubject(subject)
	if inReplyTo != "" {
		h.SetMsgIDList("In-Reply-To", []string{inReplyTo})
	}
	h.SetMessageID(fmt.Sprintf("%d.big@desk.example", time.Now().UnixNano()))
	h.SetDate(time.Now())
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	var th gomail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	tw, _ := mw.CreateSingleInline(th)
	_, _ = tw.Write([]byte("Voici les journaux demandés."))
	tw.Close()
	var ah gomail.AttachmentHeader
	ah.SetFilename("journaux.bin")
	aw, _ := mw.CreateAttachment(ah)
	chunk := bytes.Repeat([]byte{0x42}, 1<<20)
	for range 22 { // 22 MiB of bytes, ~30 MB once base64-encoded
		_, _ = aw.Write(chunk)
	}
	aw.Close()
	mw.Close()
	return buf.Bytes()
}
