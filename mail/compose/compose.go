package compose

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"mime"
	"net/http"
	netmail "net/mail"
	"sort"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
	// The default zone of the dates, Europe/Paris, must load on minimal
	// machines too.
	_ "time/tzdata"

	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
	"supportbridge/mail"
)

// Composer builds the mails sent to the external desk. Its zero value is not
// usable: From and DeskAddress are required.
type Composer struct {
	From, ReplyTo, DeskAddress *netmail.Address
	// SubjectTag is the word of the subject tag: "ENT" gives "[ENT-<id>]".
	// Empty means "ENT".
	SubjectTag string
	// Identity is the X-Loop value, e.g. "supportbridge@ent.example"; the
	// inbound side drops mail that carries it.
	Identity string
	Signer   mail.Signer
	// PlusToken makes Reply-To carry the signed token of the ticket
	// (assistance+<token>@…), a threading fallback for replies that lose
	// their In-Reply-To.
	PlusToken bool
	// MaxAttachmentBytes is the largest attachment put in a mail; larger
	// ones are only listed. Zero or less means 10 MiB.
	MaxAttachmentBytes int64
	// MaxTotalAttachmentBytes caps the attachments of one mail together,
	// so that the message stays under the server's SIZE; the attachments
	// that would pass it are listed like the oversize ones. Zero or less
	// means no cap.
	MaxTotalAttachmentBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Location is the time zone of the dates in the body; nil means
	// Europe/Paris (UTC if the zone database cannot be loaded).
	Location *time.Location
}

// EscalationInput is what an escalation mail says.
type EscalationInput struct {
	// MessageID, when set, is the Message-ID to use (chosen once per job
	// and kept across retries); else a new signed one is made.
	MessageID   string
	Ticket      bridge.TicketView
	Structure   bridge.Structure
	EscalatedBy bridge.Person
	// Attachments holds the bytes of the ticket's and exchanges'
	// attachments.
	Attachments []bridge.AttachmentData
}

// FollowUpInput is what a follow-up mail says: a new ENT comment, or a short
// note (an edit, a status change) when Exchange is nil.
type FollowUpInput struct {
	// MessageID, when set, is the Message-ID to use (see EscalationInput).
	MessageID   string
	Ticket      bridge.Ticket
	Structure   bridge.Structure
	Exchange    *bridge.Exchange
	Note        string
	Attachments []bridge.AttachmentData
	// References are the Message-IDs of the thread, root first, with or
	// without angle brackets.
	References []string
}

const (
	defaultMaxAttachment = 10 << 20
	maxSubjectRunes      = 200
	maxNameRunes         = 100
	maxLineRunes         = 500
	maxReferences        = 20
	kindEscalation       = "esc"
	kindFollowUp         = "fu"
)

// Escalation composes the first mail of a ticket to the desk: every field of
// the ticket, its history and its attachments.
func (c *Composer) Escalation(in EscalationInput) (mail.Outgoing, error) {
	t := in.Ticket.Ticket
	if err := c.checkID(t.ID); err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose escalation: %w", err)
	}
	l := catalog(t.Locale)
	loc := c.location()

	by := in.EscalatedBy
	if by == (bridge.Person{}) && t.Escalation.EscalatedBy != nil {
		by = *t.Escalation.EscalatedBy
	}
	attached, leftOut, files, err := c.attachments(in.Attachments, l)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose escalation %s: %w", t.ID, err)
	}

	exchanges := append([]bridge.Exchange(nil), in.Ticket.Exchanges...)
	sort.SliceStable(exchanges, func(i, j int) bool { return exchanges[i].CreatedAt.Before(exchanges[j].CreatedAt) })
	views := make([]exchangeView, 0, len(exchanges))
	for _, e := range exchanges {
		views = append(views, exchange(e, l, loc))
	}

	data := escalationView{
		L:           l,
		H:           c.head(t, in.Structure, l),
		App:         category(t.Category),
		Requester:   person(t.Owner, l),
		EscalatedBy: person(by, l),
		Created:     l.date(t.CreatedAt, loc),
		Description: cleanBody(t.Description),
		Attached:    attached,
		LeftOut:     leftOut,
		Exchanges:   views,
	}
	return c.finish(t, kindEscalation, in.MessageID, nil, escalationText, escalationHTML, data, files)
}

// FollowUp composes a mail threaded under the escalation: a new comment or a
// short note, and its attachments.
func (c *Composer) FollowUp(in FollowUpInput) (mail.Outgoing, error) {
	t := in.Ticket
	if err := c.checkID(t.ID); err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose follow-up: %w", err)
	}
	note := cleanBody(in.Note)
	if in.Exchange == nil && note == "" {
		return mail.Outgoing{}, fmt.Errorf("mail: compose follow-up %s: neither an exchange nor a note", t.ID)
	}
	l := catalog(t.Locale)
	loc := c.location()
	attached, leftOut, files, err := c.attachments(in.Attachments, l)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose follow-up %s: %w", t.ID, err)
	}

	data := followUpView{
		L:        l,
		H:        c.head(t, in.Structure, l),
		Note:     note,
		Attached: attached,
		LeftOut:  leftOut,
	}
	if in.Exchange != nil {
		v := exchange(*in.Exchange, l, loc)
		data.Comment = &v
	}
	refs := references(t.Escalation.RootMessageID, in.References)
	return c.finish(t, kindFollowUp, in.MessageID, refs, followUpText, followUpHTML, data, files)
}

// finish renders a mail to the desk from its view and writes it: the
// Message-ID given (the ledger's, on a retry) or a new one of its kind, the
// headers, In-Reply-To and References when it follows others.
func (c *Composer) finish(t bridge.Ticket, kind, givenID string, refs []string,
	textSrc, htmlSrc string, data any, files []attachedFile) (mail.Outgoing, error) {
	what := "escalation"
	if kind == kindFollowUp {
		what = "follow-up"
	}
	text, html, err := render(textSrc, htmlSrc, data)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose %s %s: %w", what, t.ID, err)
	}
	msgID := strings.Trim(givenID, "<>")
	if msgID == "" {
		msgID = c.Signer.NewMessageID(t.ID, kind)
	}
	h := c.header(t, msgID, c.subject(t, kind == kindFollowUp))
	if len(refs) > 0 {
		h.SetMsgIDList("In-Reply-To", refs[len(refs)-1:])
		h.SetMsgIDList("References", refs)
	}
	out, err := c.write(h, msgID, text, html, files)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("mail: compose %s %s: %w", what, t.ID, err)
	}
	return out, nil
}

// checkID rejects a Composer or a ticket that cannot give a valid mail.
func (c *Composer) checkID(ticketID string) error {
	if strings.TrimSpace(ticketID) == "" {
		return errors.New("ticket without id")
	}
	if c.From == nil || c.DeskAddress == nil {
		return errors.New("from and desk address are required")
	}
	for _, a := range []*netmail.Address{c.From, c.ReplyTo, c.DeskAddress} {
		if a != nil && !addrSpecOK(a.Address) {
			return fmt.Errorf("invalid address %q", a.Address)
		}
	}
	return nil
}

// addrSpecOK is a sanity check on a configured addr-spec: something@domain,
// no space or control character that could break the header or the SMTP
// envelope. The config loader does the full validation.
func addrSpecOK(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || !utf8.ValidString(a) {
		return false
	}
	for _, r := range a {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' || r == ',' {
			return false
		}
	}
	return true
}

func (c *Composer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Composer) location() *time.Location {
	if c.Location != nil {
		return c.Location
	}
	return bridge.ParisLocation()
}

// tag is the subject tag of a ticket, "[ENT-42]".
func (c *Composer) tag(ticketID string) string {
	tag := strings.Map(func(r rune) rune {
		if r == '[' || r == ']' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, c.SubjectTag)
	if tag == "" {
		tag = "ENT"
	}
	return "[" + tag + "-" + headerText(ticketID, maxNameRunes) + "]"
}

// subject is "[ENT-42] [Desk #5678] Écran blanc", "Re: " before it on
// follow-ups, neutralised and capped.
func (c *Composer) subject(t bridge.Ticket, reply bool) string {
	subject := headerText(t.Subject, maxLineRunes)
	var prefix []string
	if reply {
		prefix = append(prefix, "Re:")
	}
	tag := c.tag(t.ID)
	if !strings.Contains(subject, tag) {
		prefix = append(prefix, tag)
	}
	ref := t.Escalation.DeskTag
	if ref == "" {
		ref = t.Escalation.DeskReference
	}
	if ref = headerText(ref, maxNameRunes); ref != "" {
		// The desk's reference is echoed as it was learned; bare
		// references get brackets so that they read as a tag.
		if !strings.HasPrefix(ref, "[") || !strings.HasSuffix(ref, "]") {
			ref = "[" + ref + "]"
		}
		if !strings.Contains(subject, ref) {
			prefix = append(prefix, ref)
		}
	}
	if subject != "" {
		prefix = append(prefix, subject)
	}
	return capRunes(strings.Join(prefix, " "), maxSubjectRunes)
}

func references(root string, refs []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		id = strings.TrimSpace(id)
		id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
		if msgIDOK(id) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	add(root)
	for _, r := range refs {
		add(r)
	}
	// Long threads: keep the root and the most recent ones, as RFC 5322
	// allows, so the header stays reasonable.
	if len(out) > maxReferences {
		out = append(out[:1:1], out[len(out)-maxReferences+1:]...)
	}
	return out
}

// msgIDOK accepts an id-left "@" id-right without brackets, spaces or
// control characters.
func msgIDOK(id string) bool {
	if id == "" || len(id) > 250 || strings.Count(id, "@") != 1 || id[0] == '@' || id[len(id)-1] == '@' {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if b <= ' ' || b >= 0x7f || b == '<' || b == '>' || b == '"' || b == '(' || b == ')' || b == ',' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// header sets every header but the body's.
func (c *Composer) header(t bridge.Ticket, msgID, subject string) gomail.Header {
	var h gomail.Header
	h.SetDate(c.now())
	h.SetAddressList("From", []*gomail.Address{address(c.From)})
	h.SetAddressList("To", []*gomail.Address{address(c.DeskAddress)})
	if rt := c.replyTo(t.ID); rt != nil {
		h.SetAddressList("Reply-To", []*gomail.Address{rt})
	}
	h.SetSubject(subject)
	h.SetMessageID(msgID)
	if id := headerText(c.Identity, maxLineRunes); id != "" {
		h.SetText("X-Loop", id)
	}
	// Stops Exchange/Outlook out-of-office replies. No Auto-Submitted: the
	// escalation is a person's demand, and desks drop auto-submitted mail.
	h.Set("X-Auto-Response-Suppress", "All")
	h.SetText("X-SupportBridge-Ticket", headerText(t.ID, maxNameRunes))
	return h
}

func (c *Composer) replyTo(ticketID string) *gomail.Address {
	base := c.ReplyTo
	if base == nil {
		if !c.PlusToken {
			return nil
		}
		base = c.From
	}
	a := address(base)
	if c.PlusToken {
		a.Address = mail.PlusAddress(a.Address, c.Signer.ReplyToken(ticketID))
	}
	return a
}

// address copies a with its display name neutralised; go-message
// encodes non-ASCII names and quotes the others.
func address(a *netmail.Address) *gomail.Address {
	return &gomail.Address{Name: headerText(a.Name, maxNameRunes), Address: a.Address}
}

func (c *Composer) envelopeFrom() string {
	if c.ReplyTo != nil {
		return mail.PlusAddress(c.ReplyTo.Address, "")
	}
	return c.From.Address
}

// write writes the mail: multipart/mixed holding a multipart/alternative
// (text, then HTML) and the attachments.
func (c *Composer) write(h gomail.Header, msgID, text, html string, files []attachedFile) (mail.Outgoing, error) {
	var buf bytes.Buffer
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("write header: %w", err)
	}
	iw, err := mw.CreateInline()
	if err != nil {
		return mail.Outgoing{}, fmt.Errorf("create alternative: %w", err)
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var ih gomail.InlineHeader
		ih.SetContentType(p.typ, map[string]string{"charset": "utf-8"})
		w, err := iw.CreatePart(ih)
		if err != nil {
			return mail.Outgoing{}, fmt.Errorf("create %s part: %w", p.typ, err)
		}
		if err := writeClose(w, []byte(p.body)); err != nil {
			return mail.Outgoing{}, fmt.Errorf("write %s part: %w", p.typ, err)
		}
	}
	if err := iw.Close(); err != nil {
		return mail.Outgoing{}, fmt.Errorf("close alternative: %w", err)
	}
	for _, f := range files {
		var ah gomail.AttachmentHeader
		// The name parameter too: some clients read only that one.
		ah.SetContentType(f.contentType, map[string]string{"name": f.name})
		ah.SetFilename(f.name)
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return mail.Outgoing{}, fmt.Errorf("create attachment: %w", err)
		}
		if err := writeClose(w, f.content); err != nil {
			return mail.Outgoing{}, fmt.Errorf("write attachment: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return mail.Outgoing{}, fmt.Errorf("close message: %w", err)
	}
	return mail.Outgoing{
		MessageID: msgID,
		From:      c.envelopeFrom(),
		To:        []string{c.DeskAddress.Address},
		Raw:       buf.Bytes(),
	}, nil
}

func writeClose(w io.WriteCloser, b []byte) error {
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// render executes the text and HTML templates on the same data. The HTML
// one is html/template: every value is escaped.
// templates are parsed once per process: parsing costs more than
// rendering.
type templates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var parsed sync.Map // text source → *templates

func parse(textSrc, htmlSrc string) (*templates, error) {
	if v, ok := parsed.Load(textSrc); ok {
		return v.(*templates), nil
	}
	funcs := map[string]any{
		"join": strings.Join,
		"rule": func(s string) string { return strings.Repeat("-", utf8.RuneCountInString(s)) },
	}
	tt, err := texttemplate.New("text").Funcs(funcs).Parse(textSrc + textParts)
	if err != nil {
		return nil, fmt.Errorf("parse text template: %w", err)
	}
	ht, err := htmltemplate.New("html").Funcs(funcs).Parse(htmlSrc + htmlParts)
	if err != nil {
		return nil, fmt.Errorf("parse html template: %w", err)
	}
	v, _ := parsed.LoadOrStore(textSrc, &templates{text: tt, html: ht})
	return v.(*templates), nil
}

func render(textSrc, htmlSrc string, data any) (text, html string, err error) {
	ts, err := parse(textSrc, htmlSrc)
	if err != nil {
		return "", "", err
	}
	var tb, hb strings.Builder
	if err := ts.text.Execute(&tb, data); err != nil {
		return "", "", fmt.Errorf("render text: %w", err)
	}
	if err := ts.html.Execute(&hb, data); err != nil {
		return "", "", fmt.Errorf("render html: %w", err)
	}
	return strings.TrimRight(tb.String(), "\n") + "\n", hb.String(), nil
}

type personView struct{ Name, Email, Profile string }

type fileView struct{ Name, Size string }

type exchangeView struct {
	Origin, Author, Email, Date, Body string
	Files                             []string
}

// headView holds what the escalation and the follow-up both show of the
// ticket: its tag and id, its subject, its school and its status.
type headView struct {
	Tag, TicketID, Subject, School, UAI, Status string
}

// head builds the headView of ticket t, filed by structure s, in l's
// language.
func (c *Composer) head(t bridge.Ticket, s bridge.Structure, l labels) headView {
	return headView{
		Tag:      c.tag(t.ID),
		TicketID: oneLine(t.ID),
		Subject:  capRunes(oneLine(t.Subject), maxLineRunes),
		School:   capRunes(oneLine(s.Name), maxLineRunes),
		UAI:      capRunes(oneLine(s.UAI), maxNameRunes),
		Status:   l.status(t.Status),
	}
}

// The views hold their headView in a named field, H, and the templates
// read .H.Tag and so on. Not embedded: text/template finds a field of an
// embedded struct through reflect's slow path, which cost 365 allocations
// more per escalation mail when the views embedded a shared ticket view.
type escalationView struct {
	L                         labels
	H                         headView
	App, Created, Description string
	Requester, EscalatedBy    personView
	Attached, LeftOut         []fileView
	Exchanges                 []exchangeView
}

type followUpView struct {
	L                 labels
	H                 headView
	Comment           *exchangeView
	Note              string
	Attached, LeftOut []fileView
}

// attachedFile is an attachment ready to be written.
type attachedFile struct {
	name, contentType string
	content           []byte
}

func person(p bridge.Person, l labels) personView {
	return personView{
		Name:    capRunes(oneLine(p.DisplayName), maxNameRunes),
		Email:   capRunes(oneLine(p.Email), maxNameRunes),
		Profile: capRunes(l.profile(p.Profile), maxNameRunes),
	}
}

func exchange(e bridge.Exchange, l labels, loc *time.Location) exchangeView {
	origin := l.OriginENT
	if e.Origin == bridge.OriginDesk {
		origin = l.OriginDesk
	}
	v := exchangeView{
		Origin: origin,
		Author: capRunes(oneLine(e.Author.DisplayName), maxNameRunes),
		Email:  capRunes(oneLine(e.Author.Email), maxNameRunes),
		Date:   l.date(e.CreatedAt, loc),
		Body:   cleanBody(e.Body),
	}
	for i, a := range e.Attachments {
		v.Files = append(v.Files, filename(a.Filename, i+1, l))
	}
	return v
}

func category(c bridge.Category) string {
	label, app := capRunes(oneLine(c.Label), maxNameRunes), capRunes(oneLine(c.App), maxNameRunes)
	switch {
	case label != "" && app != "" && !strings.EqualFold(label, app):
		return label + " (" + app + ")"
	case label != "":
		return label
	default:
		return app
	}
}

// attachments splits the attachments into those that go in the mail and
// those too large, alone or with the ones before, which are only listed.
func (c *Composer) attachments(in []bridge.AttachmentData, l labels) (attached, leftOut []fileView, files []attachedFile, err error) {
	limit := c.MaxAttachmentBytes
	if limit <= 0 {
		limit = defaultMaxAttachment
	}
	var total int64
	for i, a := range in {
		name := filename(a.Filename, i+1, l)
		size := int64(len(a.Content))
		if size == 0 && a.Size > limit {
			// Bytes not loaded because too large: list it all the same.
			size = a.Size
		}
		view := fileView{Name: name, Size: l.size(size)}
		if size > limit || (c.MaxTotalAttachmentBytes > 0 && total+size > c.MaxTotalAttachmentBytes) {
			leftOut = append(leftOut, view)
			continue
		}
		if size == 0 && a.Size > 0 {
			// Sending an empty file in its place would lose it silently.
			return nil, nil, nil, fmt.Errorf("attachment %d (%s): %d bytes declared, none given", i+1, name, a.Size)
		}
		total += size
		attached = append(attached, view)
		files = append(files, attachedFile{name: name, contentType: contentType(a.ContentType, a.Content), content: a.Content})
	}
	return attached, leftOut, files, nil
}

// contentType keeps the declared media type when it parses, else sniffs
// the bytes. multipart/* and message/* are refused: go-message would write
// such a part's bytes unencoded, as MIME structure.
func contentType(declared string, content []byte) string {
	for _, ct := range []string{declared, http.DetectContentType(content)} {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !strings.Contains(mt, "/") {
			continue
		}
		if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			continue
		}
		return mt
	}
	return "application/octet-stream"
}

// filename is bridge.SafeFilename; "piece-jointe-N" (in the mail's
// language) when nothing is left.
func filename(name string, n int, l labels) string {
	if name = bridge.SafeFilename(name); name == "" {
		name = fmt.Sprintf("%s-%d", l.FileFallback, n)
	}
	return name
}

// invisible reports the bidi and zero-width formatting characters that
// can make a name or subject read differently from what it is.
func invisible(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069,
		r == 0x200E, r == 0x200F, r == 0x061C, r == 0xFEFF:
		return true
	}
	return false
}

// oneLine neutralises a one-line value from a user: control and invisible
// characters become spaces, runs of white space fold into one, invalid UTF-8
// becomes U+FFFD.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if invisible(r) || unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// headerText is oneLine capped to max runes: what a user-supplied
// header value becomes before go-message encodes it. Text that looks like an
// RFC 2047 encoded word gets a space ("=?" → "= ?"): go-message leaves plain
// ASCII as is, and the receiver would decode it, CR/LF included.
func headerText(s string, max int) string {
	return capRunes(noEncodedWord(oneLine(s)), max)
}

func noEncodedWord(s string) string {
	return strings.ReplaceAll(s, "=?", "= ?")
}

// capRunes cuts s to max runes, the last one being "…".
func capRunes(s string, max int) string {
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:max-1]), " ") + "…"
}

// cleanBody neutralises a multi-line value from a user: line endings become
// LF, other control characters (but tabs) go, trailing spaces and blank lines
// at both ends are trimmed.
func cleanBody(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\u2028' || r == '\u2029' || r == '\u0085':
			return '\n'
		case invisible(r) || unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRightFunc(line, unicode.IsSpace)
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}
