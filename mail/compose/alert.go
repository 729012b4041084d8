package compose

import (
	"bytes"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
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

// DeadJob is what an operator alert says of a job given up. Its fields
// never carry a secret, a URL or a mail body (Reason is the job's last
// error, already scrubbed).
type DeadJob struct {
	Kind, JobID, TicketID, Reason, Instance string
	At                                      time.Time
	// Window is how long no other alert goes out for jobs of this kind.
	Window time.Duration
}

// deadJobWords are a dead-job alert's words in one language.
type deadJobWords struct {
	Subject, Intro                   string // %s: the job's kind
	Job, Ticket, Reason, Replica, At string // line labels
	Quiet                            string // %s, %s: the kind, the window
	ListHint                         string // between the two commands
	File                             string // the config file's placeholder
}

// DeadJobAlert is the operators' alert for a job given up, in locale's
// language (bridge.LangOf): what was given up and why, and how to see and
// replay the dead letters.
func DeadJobAlert(locale string, to []*netmail.Address, j DeadJob) AlertInput {
	w := deadJobCatalogs[bridge.LangOf(locale)]
	return AlertInput{To: to,
		Subject: fmt.Sprintf(w.Subject, j.Kind),
		Lines: []string{
			fmt.Sprintf(w.Intro, j.Kind),
			"",
			w.Job + j.JobID,
			w.Ticket + j.TicketID,
			w.Reason + j.Reason,
			w.Replica + j.Instance,
			w.At + j.At.UTC().Format(time.RFC3339),
			"",
			fmt.Sprintf(w.Quiet, j.Kind, j.Window),
			"  supportbridge jobs list --dead --config " + w.File,
			w.ListHint,
			"  supportbridge jobs replay --config " + w.File + " --all",
		}}
}
