package compose

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"supportbridge/bridge"
	"supportbridge/mail/mailtest"
	"supportbridge/mail/smtpclient"
)

// TestSendFailureClasses pins how the desk and digest mailers classify a
// failed send for bridge (its taxonomy: temporary unless marked
// permanent): an SMTP 5xx reply, or a mail the client cannot send, is
// permanent; a 4xx, a server that cannot be reached and a context that
// ended are temporary.
func TestSendFailureClasses(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	msg := bridge.OutgoingMail{MessageID: "<m1@ent.example>", From: "ent@ent.example",
		To: []string{"desk@desk.example"}, Raw: []byte("Subject: x\r\n\r\nx\r\n")}
	for _, tt := range []struct {
		name      string
		server    []mailtest.SMTPOption // nil: the server refuses connections
		ctx       context.Context
		to        string
		permanent bool
	}{
		{name: "451 on DATA", server: []mailtest.SMTPOption{mailtest.FailData(&smtp.SMTPError{Code: 451, Message: "try later"})}},
		{name: "421 on RCPT", server: []mailtest.SMTPOption{mailtest.FailRcpt(&smtp.SMTPError{Code: 421, Message: "busy"})}},
		{name: "550 on RCPT", server: []mailtest.SMTPOption{mailtest.FailRcpt(&smtp.SMTPError{Code: 550, Message: "no such user"})},
			permanent: true},
		{name: "552 on DATA", server: []mailtest.SMTPOption{mailtest.FailData(&smtp.SMTPError{Code: 552, Message: "too big"})},
			permanent: true},
		{name: "no server"},
		{name: "a context that ended", server: []mailtest.SMTPOption{}, ctx: ended},
		{name: "a recipient the client refuses", server: []mailtest.SMTPOption{}, to: "desk@desk.example\r\nBcc: x@y",
			permanent: true},
	} {
		for _, mailer := range []struct {
			name string
			send func(context.Context, *smtpclient.Sender, bridge.OutgoingMail) error
		}{
			{"desk", func(ctx context.Context, s *smtpclient.Sender, m bridge.OutgoingMail) error {
				return (&DeskMailer{Composer: testComposer(), Sender: s}).Send(ctx, m)
			}},
			{"digest", func(ctx context.Context, s *smtpclient.Sender, m bridge.OutgoingMail) error {
				return (&DigestMailer{Composer: digestComposer(), Sender: s}).Send(ctx, m)
			}},
		} {
			t.Run(mailer.name+"/"+tt.name, func(t *testing.T) {
				addr := refused
				if tt.server != nil {
					addr = mailtest.StartSMTP(t, tt.server...).Addr
				}
				s := &smtpclient.Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second}
				defer s.Close()
				ctx := tt.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				m := msg
				if tt.to != "" {
					m.To = []string{tt.to}
				}
				err := mailer.send(ctx, s, m)
				if err == nil || bridge.IsPermanent(err) != tt.permanent {
					t.Errorf("err %v: permanent %v, want %v", err, bridge.IsPermanent(err), tt.permanent)
				}
			})
		}
	}
}
