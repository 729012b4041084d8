package compose

import (
	"bytes"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/mail"
)

// AlertComposer composes the plain-text mails that tell the operators of
// a deployment that something needs them (jobs given up).
type AlertComposer struct {
	// From is the sender (desk.from); required.
	From *netmail.Address
	// Identity is the X-Loop value, as in Composer, so that an alert that
	// comes back to the desk mailbox is recognised as ours.
	Identity string
	// Domain is the right-hand side of the Message-IDs.
	Domain string
	// Now is the clock of the Date header; nil means time.Now.
	Now func() time.Time
}

// AlertInput is one alert: a subject and lines of plain text. Neither
// may carry a secret or a mail body: they reach mailboxes outside the
// daemon.
type AlertInput struct {
	To      []*netmail.Address
	Subject string
	Lines   []string
}

const alertMaxLines = 200

// Alert composes an alert mail.
func (c *AlertComposer) Alert(in AlertInput) (mail.Outgoing, error) {
	if c.From == nil || !addrSpecOK(c.From.Address) {
		return mail.Outgoing{}, errors.New("mail: compose alert: a valid from address is required")
	}
	if len(in.To) == 0 {
		return mail.Outgoing{}, errors.New("mail: compose alert: no recipient")
	}
	var to []*gomail.Address
	var rcpts []string
	for _, a := range in.To {
		if a == nil || !addrSpecOK(a.Address) {
			return mail.Outgoing{}, errors.New("mail: compose alert: invalid recipient")
		}
		to = append(to, address(a))
		rcpts = append(rcpts, a.Address)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	msgID := (&DigestComposer{Domain: c.Domain}).messageID()
	msgID = "alert." + strings.TrimPrefix(msgID, "dig.")

	var h gomail.Header
	h.SetDate(now())
	h.SetAddressList("From", []*gomail.Address{address(c.From)})
	h.SetAddressList("To", to)
	// headerText folds CR/LF away: a job's error text cannot make a
	// header.
	h.SetSubject(headerText(in.Subject, maxLineRunes))
	h.SetMessageID(msgID)
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("X-Auto-Response-Suppress", "All")
	if id := headerText(c.Identity, maxLineRunes); id != "" {
		h.SetText("X-Loop", id)
	}
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})

	var body strings.Builder
	for i, l := range in.Lines {
		if i == alertMaxLines {
			fmt.Fprintf(&body, "… (%d more lines)\n", len(in.Lines)-i)
			break
		}
		body.WriteString(strings.TrimRight(l, "\r\n"))
		body.WriteByte('\n')
	}
	var buf bytes.Buffer
	w, err := gomail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose alert: %w", err)
	}
	if err := writeClose(w, []byte(body.String())); err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose alert: %w", err)
	}
	return mail.Outgoing{MessageID: msgID, From: c.From.Address, To: rcpts, Raw: buf.Bytes()}, nil
}
