package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
)

// demoDesk is the external support desk of the demo: a mail server (SMTP)
// that takes the bridge's mails, an agent who answers them from "her mail
// client", and the bridge's own mailbox (IMAP) where her answers land.
type demoDesk struct {
	smtpAddr, imapAddr string
	imapUser, imapPass string

	mailbox *imapmemserver.User
	smtpSrv *smtp.Server
	imapSrv *imapserver.Server
	say     func(format string, args ...any)

	mu       sync.Mutex
	received []deskMail // mails the desk received
	others   []deskMail // mails to anyone else (digests, alerts)
	tickets  map[string]*deskTicket
	nextRef  int
	agentCh  chan deskMail
	answered chan string // ticket ids, each time the agent answered
}

type deskMail struct {
	From, Subject, MessageID string
	To                       []string
	References               []string
	Text                     string
	Raw                      []byte
}

// deskTicket is the desk's own view of a ticket: its number and thread.
type deskTicket struct {
	ref       int
	root      string
	lastMsgID string
	subject   string
	mails     int
}

const (
	demoDeskAddress = "support@desk.example"
	demoAgent       = "Julie Bernard (Support N2) <julie.bernard@desk.example>"
	demoMailbox     = "assistance@ent.example"
)

func startDemoDesk(say func(string, ...any)) (*demoDesk, error) {
	d := &demoDesk{imapUser: "assistance", imapPass: randomToken(12), say: say,
		tickets: map[string]*deskTicket{}, nextRef: 5678, agentCh: make(chan deskMail, 16),
		answered: make(chan string, 16)}

	mem := imapmemserver.New()
	d.mailbox = imapmemserver.NewUser(d.imapUser, d.imapPass)
	for _, mb := range []string{"INBOX", "Processed", "Quarantine"} {
		if err := d.mailbox.Create(mb, nil); err != nil {
			return nil, fmt.Errorf("demo mailbox: %w", err)
		}
	}
	mem.AddUser(d.mailbox)
	d.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.imapAddr = iln.Addr().String()
	go func() { _ = d.imapSrv.Serve(iln) }()

	d.smtpSrv = smtp.NewServer(d)
	d.smtpSrv.Domain = "mx.desk.example"
	d.smtpSrv.AllowInsecureAuth = true
	d.smtpSrv.MaxMessageBytes = 50 << 20
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		iln.Close()
		return nil, err
	}
	d.smtpAddr = sln.Addr().String()
	go func() { _ = d.smtpSrv.Serve(sln) }()
	return d, nil
}

func (d *demoDesk) close() {
	d.smtpSrv.Close()
	d.imapSrv.Close()
}

// NewSession implements smtp.Backend.
func (d *demoDesk) NewSession(*smtp.Conn) (smtp.Session, error) { return &deskSession{desk: d}, nil }

type deskSession struct {
	desk *demoDesk
	to   []string
}

func (s *deskSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *deskSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, strings.ToLower(to))
	return nil
}
func (s *deskSession) Reset()        { s.to = nil }
func (s *deskSession) Logout() error { return nil }
func (s *deskSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := readDeskMail(raw)
	m.To = s.to
	s.desk.mu.Lock()
	defer s.desk.mu.Unlock()
	for _, to := range s.to {
		if to == demoDeskAddress {
			s.desk.received = append(s.desk.received, m)
			s.desk.agentCh <- m
			return nil
		}
	}
	for _, to := range s.to {
		if demoForMailbox(to) {
			// A desk reply someone sends by hand: delivered into the
			// bridge's mailbox, which it reads as in production.
			if _, err := s.desk.mailbox.Append("INBOX", bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailbox: " + err.Error()}
			}
			s.desk.say("📬 A mail for the bridge's mailbox (%s): %q — delivered to its INBOX, the bridge reads it now.", to, m.Subject)
			return nil
		}
	}
	s.desk.others = append(s.desk.others, m)
	s.desk.say("📬 A mail left for %s: %q", strings.Join(s.to, ", "), m.Subject)
	return nil
}

// demoForMailbox reports whether an address is the bridge's mailbox, plus
// tokens included (assistance+…@ent.example).
func demoForMailbox(addr string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(strings.Trim(addr, "<> ")), "@")
	base, _, _ := strings.Cut(demoMailbox, "@")
	local, _, _ = strings.Cut(local, "+")
	return ok && local == base && domain == strings.SplitN(demoMailbox, "@", 2)[1]
}

func readDeskMail(raw []byte) deskMail {
	m := deskMail{Raw: raw}
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil && mr == nil {
		return m
	}
	m.Subject, _ = mr.Header.Subject()
	m.MessageID, _ = mr.Header.MessageID()
	m.References, _ = mr.Header.MsgIDList("References")
	if from, err := mr.Header.AddressList("From"); err == nil && len(from) > 0 {
		m.From = from[0].String()
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" && m.Text == "" {
				b, _ := io.ReadAll(p.Body)
				m.Text = string(b)
			}
		}
	}
	return m
}

// agent answers each mail like a person at the desk would: an
// acknowledgement with the desk's own number, a first answer quoting the
// request, and, when the school follows up, a resolution.
func (d *demoDesk) agent(stop <-chan struct{}, delay time.Duration) {
	for {
		var m deskMail
		select {
		case <-stop:
			return
		case m = <-d.agentCh:
		}
		tag := entTag(m.Subject)
		if tag == "" {
			continue
		}
		d.mu.Lock()
		t := d.tickets[tag]
		first := t == nil
		if first {
			t = &deskTicket{ref: d.nextRef, root: m.MessageID, subject: stripTags(m.Subject)}
			d.nextRef++
			d.tickets[tag] = t
		}
		t.mails++
		t.lastMsgID = m.MessageID
		d.mu.Unlock()

		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
		var subject, body string
		if first {
			d.say("🧑‍💼 At the desk, %s reads the escalation %s and answers from her mail client.", "Julie", tag)
			subject = fmt.Sprintf("RE: %s [Desk #%d] %s", tag, t.ref, t.subject)
			body = "Bonjour,\r\n\r\nNous avons bien reçu votre demande, enregistrée sous le numéro " +
				fmt.Sprint(t.ref) + ".\r\nPouvez-vous nous dire si le problème survient aussi sur un autre navigateur ?\r\n\r\n" +
				"Cordialement,\r\nJulie Bernard\r\nSupport niveau 2\r\n\r\n" +
				"Le " + time.Now().Format("02/01/2006 15:04") + ", Assistance ENT <" + demoMailbox + "> a écrit :\r\n" + quote(m.Text)
		} else {
			d.say("🧑‍💼 At the desk, Julie reads the follow-up on %s, fixes the problem and closes her case.", tag)
			subject = fmt.Sprintf("RE: %s [Desk #%d] %s [RESOLU]", tag, t.ref, t.subject)
			body = "Bonjour,\r\n\r\nMerci pour ces précisions. Un correctif a été déployé ce matin : " +
				"l'affichage fonctionne de nouveau.\r\nNous clôturons la demande.\r\n\r\n" +
				"Statut : résolu\r\n\r\n-- \r\nJulie Bernard\r\nSupport niveau 2\r\n\r\n" +
				"-----Message d'origine-----\r\nDe : Assistance ENT <" + demoMailbox + ">\r\n" + quote(m.Text)
		}
		raw := buildAgentReply(subject, body, m.MessageID, append(m.References, m.MessageID))
		if _, err := d.mailbox.Append("INBOX", bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
			d.say("desk: could not deliver the answer: %v", err)
			continue
		}
		select {
		case d.answered <- tag:
		default:
		}
	}
}

func buildAgentReply(subject, body, inReplyTo string, refs []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <julie.bernard@desk.example>\r\n")
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", demoAgent, demoMailbox)
	fmt.Fprintf(&b, "Subject: %s\r\n", mimeWord(subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@desk.example>\r\n", randomToken(10))
	fmt.Fprintf(&b, "In-Reply-To: <%s>\r\n", inReplyTo)
	var rs []string
	for _, r := range refs {
		rs = append(rs, "<"+r+">")
	}
	fmt.Fprintf(&b, "References: %s\r\n", strings.Join(rs, " "))
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(body)
	return b.Bytes()
}

func mimeWord(s string) string {
	for _, r := range s {
		if r > 127 {
			return "=?utf-8?q?" + qEncode(s) + "?="
		}
	}
	return s
}

func qEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!*+-/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

func quote(text string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() && n < 12 {
		b.WriteString("> " + strings.TrimRight(sc.Text(), "\r") + "\r\n")
		n++
	}
	return b.String()
}

func entTag(subject string) string {
	i := strings.Index(subject, "[ENT-")
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(subject[i:], ']')
	if j < 0 {
		return ""
	}
	return subject[i : i+j+1]
}

func stripTags(subject string) string {
	s := subject
	for _, p := range []string{"Re: ", "RE: "} {
		s = strings.TrimPrefix(s, p)
	}
	for strings.HasPrefix(s, "[") {
		j := strings.IndexByte(s, ']')
		if j < 0 {
			break
		}
		s = strings.TrimSpace(s[j+1:])
	}
	return s
}
