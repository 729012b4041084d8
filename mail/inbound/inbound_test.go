package inbound

import (
	"context"
	"fmt"
	netmail "net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail"
	"supportbridge/mail/compose"
	"supportbridge/mail/imapreader"
)

type inboundFixture struct {
	svc   *bridge.Service
	store *redisstore.Store
	proc  *Processor
	comp  *compose.Composer
	seen  map[string]int
}

func newInboundFixture(t *testing.T) *inboundFixture {
	t.Helper()
	rdb := redistest.Client(t, redistest.Miniredis(t).Addr())
	store := redisstore.New(rdb, redisstore.Options{Prefix: "in:"})
	svc := bridge.NewService(store)
	signer := mail.Signer{Key: []byte("0123456789abcdef-signing"), Domain: "ent.example"}
	f := &inboundFixture{svc: svc, store: store, seen: map[string]int{}}
	f.comp = &compose.Composer{
		From:        &netmail.Address{Name: "Assistance ENT", Address: "assistance@ent.example"},
		ReplyTo:     &netmail.Address{Address: "assistance@ent.example"},
		DeskAddress: &netmail.Address{Address: "support@desk.example"},
		Identity:    "supportbridge@ent.example", Signer: signer, PlusToken: true,
	}
	f.proc = NewInboundProcessor(svc, store, Options{
		Signer: signer, ReplyTo: "assistance@ent.example", SubjectTag: "ENT",
		SenderAllowed: func(a string) bool { return strings.HasSuffix(strings.ToLower(a), "@desk.example") },
		Classify: ClassifyOptions{Identity: "supportbridge@ent.example", OwnDomains: []string{"ent.example"},
			RefPattern: regexp.MustCompile(`\[Desk #(\d+)\]`)},
		StatusMarkers: DefaultStatusMarkers(),
		Mailbox:       "INBOX",
		OnOutcome:     func(o string) { f.seen[o]++ },
	})
	ctx := context.Background()
	mustOK := func(_ bridge.Outcome, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustOK(svc.Apply(ctx, bridge.Event{ID: "st", Type: bridge.EventStructureUpserted,
		Structure: &bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo", EscalationEnabled: true,
			Referents: []bridge.Referent{{ID: "u-ref"}}}}))
	mustOK(svc.Apply(ctx, bridge.Event{ID: "c42", Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: "42", StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa"}, Subject: "Écran blanc",
		CreatedAt: time.Now()}}))
	mustOK(svc.Apply(ctx, bridge.Event{ID: "e42", Type: bridge.EventEscalationRequested, TicketID: "42",
		Actor: bridge.Person{ID: "u-ref"}}))
	return f
}

func (f *inboundFixture) escalationMail(t *testing.T) mail.Outgoing {
	t.Helper()
	v, err := f.svc.Ticket(context.Background(), "42")
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.comp.Escalation(compose.EscalationInput{Ticket: v, Structure: bridge.Structure{ID: "s1", Name: "Lycée"}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var uidSeq uint32

func (f *inboundFixture) handle(t *testing.T, raw string) imapreader.Verdict {
	t.Helper()
	uidSeq++
	if !strings.Contains(raw, "\r\n") {
		raw = strings.ReplaceAll(raw, "\n", "\r\n")
	}
	v, err := f.proc.Handle(context.Background(), imapreader.FetchedMessage{UID: uidSeq, UIDValidity: 1, Size: int64(len(raw)), Raw: []byte(raw)})
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	return v
}

func (f *inboundFixture) ticket(t *testing.T) bridge.TicketView {
	v, err := f.svc.Ticket(context.Background(), "42")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func reply(from, to, subject, extraHeaders, body string) string {
	return fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\nDate: Mon, 3 Nov 2026 10:02:00 +0100\nMessage-ID: <%d.r@desk.example>\n%sMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n%s\n",
		from, to, subject, time.Now().UnixNano(), extraHeaders, body)
}

func TestInboundThreading(t *testing.T) {
	f := newInboundFixture(t)
	esc := f.escalationMail(t)
	quote := "\n\nLe lun. 3 nov. 2026 à 09:00, Assistance ENT <assistance@ent.example> a écrit :\n> Écran blanc\n> Depuis ce matin"

	// By References, from an allowed sender, with no tag in the subject.
	v := f.handle(t, reply("Agent <agent@desk.example>", "assistance@ent.example", "Re: votre demande",
		"In-Reply-To: <"+esc.MessageID+">\nReferences: <"+esc.MessageID+">\n", "Bonjour, nous regardons."+quote))
	if v.Disposition != imapreader.DispositionProcessed {
		t.Fatalf("by references: %+v", v)
	}
	// By the plus-address token.
	tok := f.comp.Signer.ReplyToken("42")
	f.handle(t, reply("agent@desk.example", "assistance+"+tok+"@ent.example", "Re: sans tag", "", "Par le jeton."))
	// By the subject tag from an allowed sender.
	f.handle(t, reply("agent@desk.example", "assistance@ent.example", "RE: [ENT-42] Écran blanc", "", "Par le sujet."))
	// The same tag from a stranger never lands on the ticket.
	if v := f.handle(t, reply("spoof@evil.example", "assistance@ent.example", "RE: [ENT-42] Écran blanc", "", "Intrus.")); v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("stranger: %+v", v)
	}
	// Nothing to match: quarantined.
	if v := f.handle(t, reply("agent@desk.example", "assistance@ent.example", "Bonjour", "", "Rien.")); v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("unmatched: %+v", v)
	}
	tv := f.ticket(t)
	if len(tv.Exchanges) != 3 {
		t.Fatalf("%d exchanges: %+v", len(tv.Exchanges), tv.Exchanges)
	}
	want := []string{"Bonjour, nous regardons.", "Par le jeton.", "Par le sujet."}
	for i, ex := range tv.Exchanges {
		if ex.Origin != bridge.OriginDesk || ex.Body != want[i] {
			t.Errorf("exchange %d: %q from %s", i, ex.Body, ex.Origin)
		}
	}
	if tv.Escalation.Status != bridge.EscalationSuccessful {
		t.Errorf("escalation %s after a desk reply", tv.Escalation.Status)
	}
	qs, _ := f.store.Quarantined(context.Background())
	if len(qs) != 2 {
		t.Fatalf("quarantine %+v", qs)
	}
}

func TestInboundDuplicateAndStatus(t *testing.T) {
	f := newInboundFixture(t)
	raw := reply("agent@desk.example", "assistance@ent.example", "[RESOLU] RE: [ENT-42] Écran blanc", "", "C'est réparé.")
	f.handle(t, raw)
	f.handle(t, raw)
	tv := f.ticket(t)
	if len(tv.Exchanges) != 1 {
		t.Fatalf("%d exchanges after the same mail twice", len(tv.Exchanges))
	}
	if tv.Status != bridge.StatusResolved {
		t.Errorf("status %s, want resolved", tv.Status)
	}
	if f.seen["applied"] != 1 || f.seen["duplicate"] != 1 {
		t.Errorf("outcomes %v", f.seen)
	}
}

func TestInboundAutoReplyTeachesReference(t *testing.T) {
	f := newInboundFixture(t)
	esc := f.escalationMail(t)
	ack := reply("helpdesk@desk.example", "assistance@ent.example", "[Desk #5678] Accusé de réception : [ENT-42] Écran blanc",
		"Auto-Submitted: auto-replied\nIn-Reply-To: <"+esc.MessageID+">\n", "Votre demande a été enregistrée sous le numéro 5678.")
	f.handle(t, ack)
	tv := f.ticket(t)
	if tv.Escalation.DeskReference != "5678" || len(tv.Exchanges) != 0 {
		t.Fatalf("reference %q, %d exchanges", tv.Escalation.DeskReference, len(tv.Exchanges))
	}
	// Later mails thread by the desk's own number alone.
	f.handle(t, reply("agent@desk.example", "assistance@ent.example", "[Desk #5678] Mise à jour", "", "Par la référence du support."))
	if tv := f.ticket(t); len(tv.Exchanges) != 1 || tv.Exchanges[0].Body != "Par la référence du support." {
		t.Fatalf("exchanges %+v", tv.Exchanges)
	}
}

func TestInboundBounceFailsEscalation(t *testing.T) {
	f := newInboundFixture(t)
	esc := f.escalationMail(t)
	dsn := fmt.Sprintf(`From: MAILER-DAEMON@ent.example (Mail Delivery System)
To: assistance@ent.example
Subject: Undelivered Mail Returned to Sender
Date: Mon, 3 Nov 2026 10:02:00 +0100
Message-ID: <bounce.%d@ent.example.relay>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

The mail could not be delivered.
--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.ent.example

Final-Recipient: rfc822; support@desk.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <support@desk.example>: Recipient address rejected

--b1
Content-Type: text/rfc822-headers

From: Assistance ENT <assistance@ent.example>
To: support@desk.example
Subject: [ENT-42] Écran blanc
Message-ID: <%s>

--b1--
`, time.Now().UnixNano(), esc.MessageID)
	if v := f.handle(t, dsn); v.Disposition != imapreader.DispositionProcessed {
		t.Fatalf("bounce: %+v", v)
	}
	tv := f.ticket(t)
	if tv.Escalation.Status != bridge.EscalationFailed || !strings.Contains(tv.Escalation.LastError, "550") {
		t.Fatalf("escalation %+v", tv.Escalation)
	}
}

func TestInboundLoopAndBrokenMail(t *testing.T) {
	f := newInboundFixture(t)
	esc := f.escalationMail(t)
	if v := f.handle(t, string(esc.Raw)); v.Disposition != imapreader.DispositionProcessed || f.seen["loop"] != 1 {
		t.Fatalf("own mail: %+v %v", v, f.seen)
	}
	if v := f.handle(t, "this is not a mail at all\x00\x01"); v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("garbage: %+v", v)
	}
	// The next mail is applied all the same.
	f.handle(t, reply("agent@desk.example", "assistance@ent.example", "RE: [ENT-42] x", "", "Suite."))
	if tv := f.ticket(t); len(tv.Exchanges) != 1 {
		t.Fatalf("exchanges %+v", tv.Exchanges)
	}
	v, err := f.proc.Handle(context.Background(), imapreader.FetchedMessage{UID: 999, Size: 40 << 20, TooLarge: true})
	if err != nil || v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("too large: %+v %v", v, err)
	}
}

// Only content lost quarantines a mail: an oddity whose text happens to
// say "damaged" (a charset's name) does not.
func TestInboundDamagedByKind(t *testing.T) {
	f := newInboundFixture(t)
	odd := strings.Replace(reply("agent@desk.example", "assistance@ent.example", "RE: [ENT-42] x", "", "Lisible."),
		"charset=utf-8", "charset=x-damaged-truncated", 1)
	if v := f.handle(t, odd); v.Disposition != imapreader.DispositionProcessed {
		t.Fatalf("an oddity: %+v", v)
	}
	cut := "From: agent@desk.example\nTo: assistance@ent.example\nSubject: RE: [ENT-42] y\nMessage-ID: <cut.r@desk.example>\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nw4ls!!w6h2\nZQ=*=\n"
	v := f.handle(t, cut)
	if v.Disposition != imapreader.DispositionQuarantine || !strings.HasPrefix(v.Reason, "damaged MIME: ") || !strings.Contains(v.Reason, "damaged base64") {
		t.Fatalf("damaged: %+v", v)
	}
	if tv := f.ticket(t); len(tv.Exchanges) != 1 {
		t.Fatalf("exchanges %+v", tv.Exchanges)
	}
}

func TestInboundForgedSenderQuarantined(t *testing.T) {
	f := newInboundFixture(t)
	f.proc.opt.SenderAuth = SenderAuth{AuthServID: "mx.ent.example"}
	esc := f.escalationMail(t)
	const fail = "Authentication-Results: mx.ent.example; spf=fail smtp.mailfrom=evil.example; dmarc=fail (p=none) header.from=desk.example\n"
	const pass = "Authentication-Results: mx.ent.example; dkim=pass header.d=desk.example; dmarc=pass header.from=desk.example\n"
	// An allowed From that the receiving server found forged: quarantined,
	// even with a subject tag and a forged pass of our server below it.
	v := f.handle(t, reply("agent@desk.example", "assistance@ent.example", "RE: [ENT-42] Écran blanc",
		fail+strings.Replace(pass, "\n", "", 1)+"\n", "Intrus déguisé."))
	if v.Disposition != imapreader.DispositionQuarantine {
		t.Fatalf("forged sender: %+v", v)
	}
	// A forged acknowledgement teaches no desk number.
	f.handle(t, reply("helpdesk@desk.example", "assistance@ent.example", "[Desk #666] Accusé de réception : [ENT-42]",
		fail+"Auto-Submitted: auto-replied\nIn-Reply-To: <"+esc.MessageID+">\n", "Enregistrée sous le numéro 666."))
	// The real desk, authenticated, lands.
	if v := f.handle(t, reply("agent@desk.example", "assistance@ent.example", "RE: [ENT-42] Écran blanc", pass,
		"Nous regardons.")); v.Disposition != imapreader.DispositionProcessed {
		t.Fatalf("authenticated sender: %+v", v)
	}
	tv := f.ticket(t)
	if len(tv.Exchanges) != 1 || tv.Exchanges[0].Body != "Nous regardons." || tv.Escalation.DeskReference != "" {
		t.Fatalf("exchanges %+v, desk reference %q", tv.Exchanges, tv.Escalation.DeskReference)
	}
	qs, err := f.store.Quarantined(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || !strings.Contains(qs[0].Reason, "dmarc=fail") {
		t.Fatalf("quarantine %+v", qs)
	}
}
