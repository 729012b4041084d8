package compose

import (
	"context"

	"supportbridge/bridge"
	"supportbridge/mail"
	"supportbridge/mail/smtpclient"
)

// DeskMailer is the bridge's desk mailer: it composes with a Composer and
// sends with a Sender, and marks permanent failures (5xx) so that the
// worker fails the escalation at once instead of retrying.
type DeskMailer struct {
	Composer *Composer
	Sender   *smtpclient.Sender
}

var _ bridge.DeskMailer = (*DeskMailer)(nil)

// NewMessageID returns a new signed Message-ID for a ticket's mail.
func (d *DeskMailer) NewMessageID(ticketID, kind string) string {
	return d.Composer.Signer.NewMessageID(ticketID, kind)
}

func fromOutgoing(o mail.Outgoing) bridge.OutgoingMail {
	return bridge.OutgoingMail{MessageID: o.MessageID, From: o.From, To: o.To, Raw: o.Raw}
}

// ComposeEscalation composes the escalation mail.
func (d *DeskMailer) ComposeEscalation(in bridge.EscalationMail) (bridge.OutgoingMail, error) {
	o, err := d.Composer.Escalation(EscalationInput{MessageID: in.MessageID, Ticket: in.Ticket,
		Structure: in.Structure, EscalatedBy: in.EscalatedBy, Attachments: in.Attachments})
	return fromOutgoing(o), err
}

// ComposeFollowUp composes a follow-up mail.
func (d *DeskMailer) ComposeFollowUp(in bridge.FollowUpMail) (bridge.OutgoingMail, error) {
	o, err := d.Composer.FollowUp(FollowUpInput{MessageID: in.MessageID, Ticket: in.Ticket, Structure: in.Structure,
		Exchange: in.Exchange, Note: in.Note, Attachments: in.Attachments, References: in.References})
	return fromOutgoing(o), err
}

// Send sends a composed mail.
func (d *DeskMailer) Send(ctx context.Context, m bridge.OutgoingMail) error {
	return send(ctx, d.Sender, m)
}

// send sends m with s and classifies its failure in bridge's terms, at
// this edge of the SMTP client: what the client calls permanent (a 5xx
// reply, a recipient or a mail it cannot send) is marked bridge.Permanent;
// anything else (a 4xx, the network, a timeout, a context that ended)
// stays temporary.
func send(ctx context.Context, s *smtpclient.Sender, m bridge.OutgoingMail) error {
	err := s.Send(ctx, mail.Outgoing{MessageID: m.MessageID, From: m.From, To: m.To, Raw: m.Raw})
	if err != nil && !smtpclient.IsTemporary(err) {
		return bridge.Permanent(err)
	}
	return err
}
