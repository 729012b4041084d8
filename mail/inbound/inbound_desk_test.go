package inbound

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"supportbridge/bridge"
	"supportbridge/mail"
	"supportbridge/mail/imapreader"
)

// withProducts makes the fixture's processor recognise help-desk products
// (desk.product auto) and take mail from the senders allowed.
func (f *inboundFixture) withProducts(allowed ...string) {
	f.withProductsApplier(f.svc, allowed...)
}

// refusingReplies is the service, refusing every desk reply for good.
type refusingReplies struct{ *bridge.Service }

func (refusingReplies) ApplyDeskReply(context.Context, bridge.DeskReply) (bridge.Outcome, error) {
	return "", bridge.Errorf(bridge.CodeInvalid, "refused")
}

func (f *inboundFixture) withProductsApplier(apply ReplyApplier, allowed ...string) {
	products, product := DeskProductFor("auto")
	signer := mail.Signer{Key: []byte("0123456789abcdef-signing"), Domain: "ent.example"}
	f.proc = NewInboundProcessor(apply, f.store, Options{
		Signer: signer, ReplyTo: "assistance@ent.example", SubjectTag: "ENT",
		OwnAddresses: []string{"assistance@ent.example"},
		SenderAllowed: func(a string) bool {
			for _, s := range allowed {
				if strings.HasSuffix(strings.ToLower(a), s) {
					return true
				}
			}
			return false
		},
		Classify: ClassifyOptions{Identity: "supportbridge@ent.example", OwnDomains: []string{"ent.example"},
			RefPattern: regexp.MustCompile(`\[Desk #(\d+)\]`), Products: products, Product: product},
		StatusMarkers: DefaultStatusMarkers(),
		Mailbox:       "INBOX",
		OnOutcome:     func(o string) { f.seen[o]++ },
	})
}

func deskMail(t *testing.T, product, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "desks", product, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deskWant(t *testing.T, product, file string) string {
	t.Helper()
	return strings.TrimRight(deskMail(t, product, file), "\n")
}

// TestInboundDeskProduct: a help-desk product's mails through the inbound
// processor: its acknowledgement teaches its number and tag and posts
// nothing although RT marks every mail Precedence: bulk; an agent's reply
// is posted as the agent's text; its solved notice sets desk_status and
// leaves the ENT's status alone; a notice carrying the solution posts it
// once, not again when the closed notice repeats it.
func TestInboundDeskProduct(t *testing.T) {
	f := newInboundFixture(t)
	f.withProducts("@cahier-textes.example", "@notesplus.example")
	status := f.ticket(t).Status

	if v := f.handle(t, deskMail(t, "rt", "01-ack-en-text.eml")); v.Disposition != imapreader.DispositionProcessed {
		t.Fatalf("ack: %+v", v)
	}
	tk := f.ticket(t)
	if tk.Escalation.DeskReference != "4512" || tk.Escalation.DeskTag != "[cahier-textes.example #4512]" || len(tk.Exchanges) != 0 {
		t.Fatalf("after RT's ack: escalation %+v, %d exchanges", tk.Escalation, len(tk.Exchanges))
	}
	if f.seen["auto_reply"] != 1 {
		t.Errorf("outcomes %v", f.seen)
	}

	f.handle(t, deskMail(t, "rt", "02-reply-fr-html.eml"))
	tk = f.ticket(t)
	if len(tk.Exchanges) != 1 || tk.Exchanges[0].Body != deskWant(t, "rt", "02-reply-fr-html.want") {
		t.Fatalf("after the agent's reply: %+v", tk.Exchanges)
	}

	if v := f.handle(t, deskMail(t, "rt", "04-solved-en-text.eml")); v.Reason != "desk notice: solved" {
		t.Fatalf("solved notice: %+v", v)
	}
	tk = f.ticket(t)
	if ds := tk.Escalation.DeskStatus; ds == nil || ds.Status != "solved" || ds.At.IsZero() {
		t.Fatalf("desk status %+v", tk.Escalation.DeskStatus)
	}
	if tk.Status != status || len(tk.Exchanges) != 1 {
		t.Errorf("a notice changed the status (%s → %s) or posted (%d exchanges)", status, tk.Status, len(tk.Exchanges))
	}

	// GLPI's solved notice carries the solution; its closed notice repeats
	// it: one exchange.
	f.handle(t, deskMail(t, "glpi", "04-solved-fr-text.eml"))
	f.handle(t, deskMail(t, "glpi", "04-closed-en-text.eml"))
	tk = f.ticket(t)
	if tk.Escalation.DeskStatus.Status != "closed" {
		t.Errorf("desk status %+v", tk.Escalation.DeskStatus)
	}
	var bodies []string
	for _, x := range tk.Exchanges {
		bodies = append(bodies, x.Body)
	}
	if len(bodies) != 2 || bodies[1] != deskWant(t, "glpi", "04-solved-fr-text.want") {
		t.Errorf("exchanges %q", bodies)
	}
	if tk.Status != status {
		t.Errorf("status %s → %s", status, tk.Status)
	}
}

// TestInboundForgedProductHeader: a stranger's mail dressed as RT's, with
// the ticket's subject tag: the allowed-senders check comes first, so it is
// quarantined and teaches nothing.
func TestInboundForgedProductHeader(t *testing.T) {
	f := newInboundFixture(t)
	f.withProducts("@desk.example")
	forged := strings.NewReplacer("support@cahier-textes.example", "rt@evil.example").Replace(
		deskMail(t, "rt", "04-solved-en-text.eml"))
	if v := f.handle(t, forged); v.Disposition != imapreader.DispositionQuarantine || v.Reason != "sender not allowed" {
		t.Fatalf("forged notice: %+v", v)
	}
	ack := strings.NewReplacer("support@cahier-textes.example", "rt@evil.example").Replace(
		deskMail(t, "rt", "01-ack-en-text.eml"))
	f.handle(t, ack)
	tk := f.ticket(t)
	if tk.Escalation.DeskStatus != nil || tk.Escalation.DeskReference != "" {
		t.Errorf("a stranger's mail changed the escalation: %+v", tk.Escalation)
	}
}

// TestInboundNoticeTextNotLost: when the text a notice carries cannot be
// applied, the desk status is still recorded and the mail is quarantined,
// so that an operator can assign its text: it is not dropped.
func TestInboundNoticeTextNotLost(t *testing.T) {
	f := newInboundFixture(t)
	f.withProductsApplier(refusingReplies{f.svc}, "@notesplus.example")
	v := f.handle(t, deskMail(t, "glpi", "04-solved-fr-text.eml"))
	if v.Disposition != imapreader.DispositionQuarantine || !strings.Contains(v.Reason, "its text not applied") {
		t.Fatalf("verdict %+v", v)
	}
	if ds := f.ticket(t).Escalation.DeskStatus; ds == nil || ds.Status != bridge.DeskSolved {
		t.Errorf("desk status %+v", ds)
	}
}
