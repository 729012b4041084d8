package compose

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
	"supportbridge/mail"
	"supportbridge/mail/smtpclient"
)

// DigestComposer builds the digest mails sent to referents: one mail a
// referent and period summing up their structures' demands, in the
// referent's language, text and HTML.
type DigestComposer struct {
	// From is the sender (desk.from); required.
	From *netmail.Address
	// Identity is the X-Loop value, as in Composer: our own mail coming
	// back is recognised by it.
	Identity string
	// Domain is the right-hand side of the Message-IDs (as Signer.Domain),
	// so that a digest coming back is recognised as ours.
	Domain string
	// LinkBase is prefixed to a ticket id to link to the demand in the ENT;
	// empty means no links.
	LinkBase string
	// DefaultLocale is the language of referents without one; empty or
	// anything but English means French.
	DefaultLocale string
	// Location is the time zone of the dates; nil means Europe/Paris.
	Location *time.Location
	// Now is the clock of the Date header; nil means time.Now.
	Now func() time.Time
}

// DigestInput is one referent's digest to compose.
type DigestInput struct {
	// MessageID, when set, is the Message-ID to use; else a new one.
	MessageID string
	Digest    bridge.ReferentDigest
}

// ErrEmptyDigest is returned for a digest with nothing to say: none is
// ever sent.
var ErrEmptyDigest = errors.New("mail: empty digest")

const (
	digestMaxItems       = 50 // per section; the rest is counted
	digestMaxReasonRunes = 200
	digestRandomBytes    = 12
)

// Digest composes a referent's digest mail.
func (c *DigestComposer) Digest(in DigestInput) (mail.Outgoing, error) {
	d := in.Digest
	if d.Empty() {
		return mail.Outgoing{}, ErrEmptyDigest
	}
	if c.From == nil || !addrSpecOK(c.From.Address) {
		return mail.Outgoing{}, errors.New("mail: compose digest: a valid from address is required")
	}
	to := strings.TrimSpace(d.Referent.Email)
	if _, err := netmail.ParseAddress(to); err != nil || !addrSpecOK(to) {
		return mail.Outgoing{}, fmt.Errorf("mail: compose digest for %s: invalid address", oneLine(d.Referent.ID))
	}
	locale := d.Referent.Locale
	if strings.TrimSpace(locale) == "" {
		locale = c.DefaultLocale
	}
	l := digestCatalog(locale)
	view := c.digestView(d, l)
	text, html, err := render(digestTextTemplate, digestHTMLTemplate, view)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose digest for %s: %w", oneLine(d.Referent.ID), err)
	}

	msgID := strings.Trim(in.MessageID, "<>")
	if msgID == "" {
		msgID = c.messageID()
	}
	var h gomail.Header
	h.SetDate(c.now())
	h.SetAddressList("From", []*gomail.Address{address(c.From)})
	h.SetAddressList("To", []*gomail.Address{{Name: headerText(d.Referent.DisplayName, maxNameRunes), Address: to}})
	h.SetSubject(view.Subject)
	h.SetMessageID(msgID)
	// A digest is bulk, machine-made mail (RFC 3834): auto-responders and
	// Exchange out-of-office replies must stay quiet, and our own inbound
	// side drops it should it come back (X-Loop, Message-ID domain).
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("Precedence", "bulk")
	h.Set("X-Auto-Response-Suppress", "All")
	if id := headerText(c.Identity, maxLineRunes); id != "" {
		h.SetText("X-Loop", id)
	}
	h.SetText("X-SupportBridge-Digest", headerText(string(d.Period), maxNameRunes))

	raw, err := digestWrite(h, text, html)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose digest for %s: %w", oneLine(d.Referent.ID), err)
	}
	return mail.Outgoing{MessageID: msgID, From: c.From.Address, To: []string{to}, Raw: raw}, nil
}

func (c *DigestComposer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *DigestComposer) location() *time.Location {
	if c.Location != nil {
		return c.Location
	}
	return (&Composer{}).location()
}

// messageID is random and unsigned: a digest threads nothing, and its
// layout is not the signed one, so that it never leads to a ticket.
func (c *DigestComposer) messageID() string {
	random := make([]byte, digestRandomBytes)
	_, _ = rand.Read(random) // never fails on supported platforms
	return "dig." + mail.Base32().EncodeToString(random) + "@" + mail.Signer{Domain: c.Domain}.MessageIDDomain()
}

// digestWrite writes a multipart/alternative mail: text, then HTML.
func digestWrite(h gomail.Header, text, html string) ([]byte, error) {
	var buf bytes.Buffer
	iw, err := gomail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var ih gomail.InlineHeader
		ih.SetContentType(p.typ, map[string]string{"charset": "utf-8"})
		w, err := iw.CreatePart(ih)
		if err != nil {
			return nil, fmt.Errorf("create %s part: %w", p.typ, err)
		}
		if err := writeClose(w, []byte(p.body)); err != nil {
			return nil, fmt.Errorf("write %s part: %w", p.typ, err)
		}
	}
	if err := iw.Close(); err != nil {
		return nil, fmt.Errorf("close message: %w", err)
	}
	return buf.Bytes(), nil
}

type digestView struct {
	Lang, Subject, Hello, Intro, Summary, Footer1, Footer2 string
	Structures                                             []digestStructureView
}

type digestStructureView struct {
	Title    string
	Sections []digestSectionView
}

type digestSectionView struct {
	Title string
	Items []digestItemView
	More  string
}

type digestItemView struct{ Label, Detail, Link string }

func (c *DigestComposer) digestView(d bridge.ReferentDigest, l digestLabels) digestView {
	loc := c.location()
	v := digestView{Lang: l.comp.Lang, Footer1: l.Footer1, Footer2: l.Footer2}
	if d.Period == bridge.DigestWeekly {
		v.Subject = fmt.Sprintf(l.SubjectWeekly, l.day(d.Window.From, loc))
		v.Intro = fmt.Sprintf(l.IntroWeekly, l.comp.date(d.Window.From, loc), l.comp.date(d.Window.To, loc))
	} else {
		v.Subject = fmt.Sprintf(l.SubjectDaily, l.day(d.Window.To, loc))
		v.Intro = fmt.Sprintf(l.IntroDaily, l.comp.date(d.Window.From, loc), l.comp.date(d.Window.To, loc))
	}
	if name := capRunes(oneLine(d.Referent.DisplayName), maxNameRunes); name != "" {
		v.Hello = fmt.Sprintf(l.Hello, name)
	} else {
		v.Hello = l.HelloNoName
	}
	total := d.Counts()
	var parts []string
	for _, p := range []struct {
		n    int
		one  string
		many string
	}{
		{total.New, l.NewOne, l.NewMany},
		{total.Waiting, l.WaitingOne, l.WaitingMany},
		{total.DeskReplies, l.RepliesOne, l.RepliesMany},
		{total.FailedEscalations, l.FailedOne, l.FailedMany},
	} {
		if p.n > 0 {
			parts = append(parts, l.plural(p.n, p.one, p.many))
		}
	}
	v.Summary = l.Summary + strings.Join(parts, ", ") + "."

	for _, sd := range d.Structures {
		sv := digestStructureView{Title: digestStructureTitle(sd.Structure, l)}
		add := func(title string, items []bridge.DigestItem, count int, detail func(bridge.DigestItem) string) {
			if len(items) == 0 {
				return
			}
			sec := digestSectionView{Title: fmt.Sprintf("%s (%d)", title, count)}
			for i, it := range items {
				if i == digestMaxItems {
					sec.More = l.plural(len(items)-digestMaxItems, l.MoreOne, l.MoreMany)
					break
				}
				sec.Items = append(sec.Items, digestItemView{Label: digestLabel(it, l), Detail: detail(it), Link: c.link(it.TicketID)})
			}
			sv.Sections = append(sv.Sections, sec)
		}
		counts := sd.Counts()
		add(l.NewTitle, sd.New, counts.New, func(it bridge.DigestItem) string {
			return digestJoin(capRunes(oneLine(it.Owner.DisplayName), maxNameRunes), category(it.Category),
				fmt.Sprintf(l.CreatedOn, l.comp.date(it.At, loc)))
		})
		add(l.WaitingTitle, sd.Waiting, counts.Waiting, func(it bridge.DigestItem) string {
			return digestJoin(l.comp.status(it.Status), fmt.Sprintf(l.WaitingSince, l.comp.date(it.At, loc)))
		})
		add(l.RepliesTitle, sd.DeskReplies, counts.DeskReplies, func(it bridge.DigestItem) string {
			if it.Replies > 1 {
				return fmt.Sprintf(l.RepliesLast, it.Replies, l.comp.date(it.At, loc))
			}
			return fmt.Sprintf(l.ReplyOn, l.comp.date(it.At, loc))
		})
		add(l.FailedTitle, sd.FailedEscalations, counts.FailedEscalations, func(it bridge.DigestItem) string {
			s := fmt.Sprintf(l.FailedOn, l.comp.date(it.At, loc))
			if r := capRunes(oneLine(it.Reason), digestMaxReasonRunes); r != "" {
				s += l.comp.Colon + r
			}
			return s
		})
		v.Structures = append(v.Structures, sv)
	}
	return v
}

// link is the ENT address of a demand, or "" without a link base.
func (c *DigestComposer) link(ticketID string) string {
	base := strings.TrimSpace(c.LinkBase)
	if base == "" {
		return ""
	}
	return base + url.PathEscape(ticketID)
}

func digestStructureTitle(st bridge.Structure, l digestLabels) string {
	name := capRunes(oneLine(st.Name), maxLineRunes)
	if name == "" {
		name = capRunes(oneLine(st.ID), maxNameRunes)
	}
	if uai := capRunes(oneLine(st.UAI), maxNameRunes); uai != "" {
		name += " (" + l.comp.UAI + " " + uai + ")"
	}
	return name
}

func digestLabel(it bridge.DigestItem, l digestLabels) string {
	subject := capRunes(oneLine(it.Subject), maxLineRunes)
	if subject == "" {
		subject = l.NoSubject
	}
	return fmt.Sprintf(l.Number, capRunes(oneLine(it.TicketID), maxNameRunes)) + " – " + subject
}

func digestJoin(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " · ")
}

// digestLabels is one locale's words for the digest; dates, statuses and the
// colon come from the desk mail's catalog.
type digestLabels struct {
	comp                                                    labels
	SubjectDaily, SubjectWeekly                             string // %s: a day
	IntroDaily, IntroWeekly                                 string // %s, %s: the window
	Hello, HelloNoName                                      string
	Summary                                                 string
	NewOne, NewMany, WaitingOne, WaitingMany                string // %d
	RepliesOne, RepliesMany, FailedOne, FailedMany          string // %d
	NewTitle, WaitingTitle, RepliesTitle, FailedTitle       string
	Number, NoSubject                                       string
	CreatedOn, WaitingSince, ReplyOn, RepliesLast, FailedOn string
	MoreOne, MoreMany                                       string // %d
	Footer1, Footer2                                        string
}

// plural picks the singular for 0 and 1 (French usage; English has no 0
// here: empty sections and counts are left out) and the plural above.
func (l digestLabels) plural(n int, one, many string) string {
	if n > 1 {
		return fmt.Sprintf(many, n)
	}
	return fmt.Sprintf(one, n)
}

// day formats the date of t without the time: "mardi 4 mars 2025".
func (l digestLabels) day(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return fmt.Sprintf("%s %d %s %d", l.comp.Days[t.Weekday()], t.Day(), l.comp.Months[t.Month()-1], t.Year())
}

// digestCatalog returns the digest's words in locale's language.
func digestCatalog(locale string) digestLabels { return digestCatalogs[bridge.LangOf(locale)] }

// The text template is rendered as is: every value in it went through
// oneLine first. "-- " opens the signature, so that mail clients fold it.
const digestTextTemplate = `{{.Hello}}

{{.Intro}}

{{.Summary}}
{{- range .Structures}}


{{.Title}}
{{rule .Title}}
{{- range .Sections}}

{{.Title}}
{{- range .Items}}
- {{.Label}}
  {{.Detail}}
{{- if .Link}}
  {{.Link}}
{{- end}}
{{- end}}
{{- if .More}}
{{.More}}
{{- end}}
{{- end}}
{{- end}}

{{"-- "}}
{{.Footer1}}
{{.Footer2}}
`

const digestHTMLTemplate = `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">
<p>{{.Hello}}</p>
<p>{{.Intro}}</p>
<p><b>{{.Summary}}</b></p>
{{- range .Structures}}
<h2 style="font-size:18px;border-bottom:1px solid #ccc;margin-top:24px">{{.Title}}</h2>
{{- range .Sections}}
<h3 style="font-size:16px">{{.Title}}</h3>
<ul>
{{- range .Items}}
<li style="margin-bottom:6px">{{if .Link}}<a href="{{.Link}}">{{.Label}}</a>{{else}}{{.Label}}{{end}}<br><span style="color:#666">{{.Detail}}</span></li>
{{- end}}
{{- if .More}}
<li>{{.More}}</li>
{{- end}}
</ul>
{{- end}}
{{- end}}
<p style="color:#666;font-size:12px;margin-top:24px">{{.Footer1}}<br>{{.Footer2}}</p>
</body>
</html>
`

// DigestMailer is the bridge's digest mailer: it composes with a
// DigestComposer and sends with a Sender, and tells permanent failures
// (5xx) apart.
type DigestMailer struct {
	Composer *DigestComposer
	Sender   *smtpclient.Sender
}

var _ bridge.DigestMailer = (*DigestMailer)(nil)

// ComposeDigest composes a referent's digest mail.
func (d *DigestMailer) ComposeDigest(dg bridge.ReferentDigest) (bridge.OutgoingMail, error) {
	o, err := d.Composer.Digest(DigestInput{Digest: dg})
	return fromOutgoing(o), err
}

// Send sends a composed digest.
func (d *DigestMailer) Send(ctx context.Context, m bridge.OutgoingMail) error {
	return send(ctx, d.Sender, m)
}
