package inbound

import (
	"bufio"
	"bytes"
	"mime"
	"regexp"
	"strings"

	mtextproto "github.com/emersion/go-message/textproto"

	"supportbridge/bridge"
)

// Kind is what an inbound mail is, for the bridge.
type Kind int

// The kinds of inbound mail. The zero Kind is none of them, so that a
// Classification left unset is never taken for a reply.
const (
	KindReply      Kind = iota + 1 // a person's answer: may become an exchange
	KindLoop                       // our own mail come back: drop
	KindAutoReply                  // out of office, acknowledgement, delay notice: post nothing
	KindBounce                     // a delivery failure of one of our mails
	KindDeskNotice                 // a help-desk product's solved/closed notice
)

func (k Kind) String() string {
	switch k {
	case KindReply:
		return "reply"
	case KindLoop:
		return "loop"
	case KindAutoReply:
		return "auto-reply"
	case KindBounce:
		return "bounce"
	case KindDeskNotice:
		return "desk-notice"
	}
	return "unknown"
}

// Classification is the verdict on an inbound mail.
type Classification struct {
	Kind   Kind
	Reason string // short, for logs and the quarantine list
	// OriginalMessageID is, for a bounce, the Message-ID (without <>) of
	// the mail that failed, when it could be found.
	OriginalMessageID string
	// DeskReference is the desk's own ticket number, from RefPattern,
	// whatever the kind (an acknowledgement is where it is learned).
	DeskReference string
	// DeskTag is the desk's ticket tag as the subject writes it
	// ("[rt.desk.example #4512]"), when the subject shows one.
	DeskTag string
	// Product is the help-desk product that wrote the mail, when known.
	Product *DeskProduct
	// DeskStatus is, for a KindDeskNotice, what the product says of its
	// ticket: solved or closed.
	DeskStatus string
	// byHeader says an auto-reply was told by a header that some products
	// put on every mail (Auto-Submitted, Precedence, X-Auto-Response-
	// Suppress, a null Return-Path), not by its subject or a report.
	byHeader bool
}

// ClassifyOptions says who we are.
type ClassifyOptions struct {
	// Identity is the value of the X-Loop header our mail carries.
	Identity string
	// OwnDomains are the domains of our Message-IDs.
	OwnDomains []string
	// RefPattern finds the desk's ticket number, e.g. `\[Desk #(\d+)\]`;
	// its first capture group is the reference (the whole match without
	// one). Nil: no reference is looked for.
	RefPattern *regexp.Regexp
	// Products recognises the help-desk product that wrote a mail
	// (desk.product: auto); Product is the one product configured
	// instead. Neither: every mail is read as a person's (generic).
	Products *DeskProducts
	Product  *DeskProduct
}

// Classify tells a reply from our own mail looping back, an automatic
// answer and a bounce, in that order of precedence: loop, bounce,
// auto-reply, reply.
func Classify(in *Inbound, opt ClassifyOptions) Classification {
	if in == nil {
		return Classification{Reason: "no message"}
	}
	c := classifyKind(in, opt)
	c.DeskReference, c.DeskTag = deskReference(in, opt.RefPattern)
	if c.Kind != KindReply && c.Kind != KindAutoReply {
		return c
	}
	prod := opt.Product
	if prod == nil {
		prod = opt.Products.Detect(in)
	}
	if prod == nil {
		return c
	}
	// A product's own conventions come before the generic signals: its
	// number, its acknowledgements and notices, and the headers it puts
	// on every mail.
	c.Product = prod
	if ref := prod.Reference(in); ref != "" {
		c.DeskReference, c.DeskTag = ref, prod.Tag(in)
	}
	switch prod.Kind(in) {
	case DeskMailAck:
		c.Kind, c.Reason = KindAutoReply, prod.Name+" acknowledgement"
	case DeskMailSolved:
		c.Kind, c.Reason, c.DeskStatus = KindDeskNotice, prod.Name+" solved notice", "solved"
	case DeskMailClosed:
		c.Kind, c.Reason, c.DeskStatus = KindDeskNotice, prod.Name+" closed notice", "closed"
	default:
		if c.Kind == KindAutoReply && c.byHeader && prod.MarksAllAutomatic {
			c.Kind, c.Reason = KindReply, prod.Name+" notification"
		}
	}
	return c
}

func classifyKind(in *Inbound, opt ClassifyOptions) Classification {
	h := in.Header

	// Loop: our own mail, whatever path brought it back.
	if id := strings.TrimSpace(opt.Identity); id != "" {
		for _, v := range h.Values("X-Loop") {
			if strings.EqualFold(strings.TrimSpace(v), id) {
				return Classification{Kind: KindLoop, Reason: "X-Loop is ours"}
			}
		}
	}
	if in.MessageID != "" && ownDomain(in.MessageID, opt.OwnDomains) {
		return Classification{Kind: KindLoop, Reason: "Message-ID in our domain"}
	}
	if h.Has("X-SupportBridge-Ticket") {
		return Classification{Kind: KindLoop, Reason: "X-SupportBridge-Ticket present"}
	}

	// Bounce: a delivery status notification, or a daemon's message that
	// names one of ours.
	nullSender := false
	for _, v := range h.Values("Return-Path") {
		if strings.TrimSpace(strings.ReplaceAll(v, " ", "")) == "<>" {
			nullSender = true
		}
	}
	if rep := in.Report; rep != nil {
		orig := rep.OriginalMessageID
		if orig == "" {
			orig = originalIDFromBody(in, opt.OwnDomains)
		}
		switch rep.Action {
		case "delayed":
			return Classification{Kind: KindAutoReply, Reason: "delivery delayed", OriginalMessageID: orig}
		case "delivered", "relayed", "expanded":
			return Classification{Kind: KindAutoReply, Reason: "delivery notification: " + rep.Action, OriginalMessageID: orig}
		}
		reason := "delivery status notification"
		if rep.Status != "" {
			reason += ": " + clip(rep.Status, 20)
		}
		return Classification{Kind: KindBounce, Reason: reason, OriginalMessageID: orig}
	}
	if isDaemon(in) {
		if orig := originalIDFromBody(in, opt.OwnDomains); orig != "" {
			return Classification{Kind: KindBounce, Reason: "mailer-daemon message", OriginalMessageID: orig}
		}
		return Classification{Kind: KindAutoReply, Reason: "mailer-daemon message without original Message-ID"}
	}

	// Automatic answers (RFC 3834 and what the big clients do instead).
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" {
		if kw, _, _ := strings.Cut(v, ";"); strings.TrimSpace(kw) != "no" {
			return Classification{Kind: KindAutoReply, Reason: "Auto-Submitted: " + clip(strings.TrimSpace(kw), 30), byHeader: true}
		}
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond", "X-Autogenerated"} {
		if h.Has(k) {
			return Classification{Kind: KindAutoReply, Reason: k + " present"}
		}
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "junk", "list", "auto_reply":
		return Classification{Kind: KindAutoReply, Reason: "Precedence: " + p, byHeader: true}
	}
	if h.Has("X-Auto-Response-Suppress") {
		return Classification{Kind: KindAutoReply, Reason: "X-Auto-Response-Suppress present", byHeader: true}
	}
	if nullSender {
		return Classification{Kind: KindAutoReply, Reason: "null Return-Path", byHeader: true}
	}
	if ct := h.Get("Content-Type"); ct != "" {
		if mt, params, err := mime.ParseMediaType(ct); err == nil && mt == "multipart/report" &&
			strings.EqualFold(params["report-type"], "disposition-notification") {
			return Classification{Kind: KindAutoReply, Reason: "read receipt"}
		}
	}
	// The weakest signal last: an out-of-office subject.
	if outOfOfficeSubject(in.Subject) {
		return Classification{Kind: KindAutoReply, Reason: "out-of-office subject"}
	}
	return Classification{Kind: KindReply, Reason: "reply"}
}

// ownDomain reports whether a Message-ID's domain is one of ours.
func ownDomain(msgID string, own []string) bool {
	at := strings.LastIndexByte(msgID, '@')
	if at < 0 {
		return false
	}
	d := strings.TrimSpace(msgID[at+1:])
	for _, o := range own {
		o = strings.TrimSpace(o)
		if o != "" && strings.EqualFold(d, o) {
			return true
		}
	}
	return false
}

func isDaemon(in *Inbound) bool {
	if in.From == nil {
		return false
	}
	local, _, _ := strings.Cut(in.From.Address, "@")
	local = strings.ToLower(local)
	return local == "mailer-daemon" || local == "postmaster" || local == "mail-daemon"
}

// originalIDFromBody finds the Message-ID of the returned mail: in an
// attached message or its headers, else in a "Message-ID: <…>" line of
// the text. With several, one in our domains wins.
func originalIDFromBody(in *Inbound, own []string) string {
	var ids []string
	for _, a := range in.Attachments {
		if a.ContentType == "message/rfc822" || a.ContentType == "text/rfc822-headers" || a.ContentType == "message/global" {
			br := bufio.NewReader(bytes.NewReader(a.Content))
			h, _ := mtextproto.ReadHeader(br)
			if id := firstOf(msgIDs(h.Get("Message-Id"))); id != "" {
				ids = append(ids, id)
			}
		}
	}
	re := regexp.MustCompile(`(?im)^[ \t>]*Message-ID:[ \t]*<([^<>\s]{1,500})>`)
	text := in.Text
	if len(text) > 1<<20 {
		text = text[:1<<20]
	}
	for _, m := range re.FindAllStringSubmatch(text, 20) {
		ids = append(ids, m[1])
	}
	for _, id := range ids {
		if id != in.MessageID && ownDomain(id, own) {
			return id
		}
	}
	for _, id := range ids {
		if id != in.MessageID {
			return id
		}
	}
	return ""
}

// outOfOfficeSubject reports whether a subject opens the way
// out-of-office answers do. Only the opening counts: "Re: [ENT-42]
// Absence de notes" is a real ticket about pupils' absences.
func outOfOfficeSubject(subject string) bool {
	s := strings.ToLower(strings.TrimSpace(subject))
	for _, p := range []string{
		"réponse automatique", "reponse automatique", "réponse automatique d'absence",
		"automatic reply", "auto reply", "auto-reply", "autoreply", "auto response", "auto-response",
		"out of office", "out of the office", "absent du bureau", "absente du bureau",
		"absent(e) du bureau", "absence du bureau", "message d'absence",
		"abwesenheitsnotiz", "automatische antwort", "respuesta automática", "risposta automatica",
	} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	// "Absence", alone or followed by a colon or a dash.
	if rest, ok := strings.CutPrefix(s, "absence"); ok {
		rest = strings.TrimSpace(rest)
		return rest == "" || strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "–")
	}
	return false
}

// deskReference applies the desk's pattern to the subject, then to the
// body.
func deskReference(in *Inbound, re *regexp.Regexp) (ref, tag string) {
	if re == nil {
		return "", ""
	}
	for n, s := range []string{in.Subject, in.Text} {
		if len(s) > 1<<20 {
			s = s[:1<<20]
		}
		m := re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		if n == 0 && strings.HasPrefix(m[0], "[") && strings.HasSuffix(m[0], "]") {
			// A bracketed tag in the subject is echoed as written.
			tag = m[0]
		}
		for _, g := range m[1:] {
			if g != "" {
				return g, tag
			}
		}
		return m[0], tag
	}
	return "", ""
}

// SubjectTicketID finds "[<tag>-<id>]" anywhere in a (decoded) subject,
// whatever reply or forward prefixes come before it ("Re:", "RE :",
// "TR:", "Fwd:", "AW:"…). The tag is matched case-insensitively, spaces
// just inside the brackets and around the dash are tolerated; the id is
// an id of the contract's grammar (bridge.ValidID: 1 to 128 characters of
// [A-Za-z0-9._:@-]). The first such tag wins.
func SubjectTicketID(subject, tag string) (string, bool) {
	tag = strings.TrimSpace(tag)
	if tag == "" {
		return "", false
	}
	s := subject
	for {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
		if id, ok := tagAt(s, tag); ok {
			return id, true
		}
	}
}

// tagAt reads "<tag>-<id>]" at the start of s.
func tagAt(s, tag string) (string, bool) {
	s = strings.TrimLeft(s, " ")
	if len(s) < len(tag) || !strings.EqualFold(s[:len(tag)], tag) {
		return "", false
	}
	s = strings.TrimLeft(s[len(tag):], " ")
	if !strings.HasPrefix(s, "-") {
		return "", false
	}
	s = strings.TrimLeft(s[1:], " ")
	n := 0
	for n < len(s) && bridge.IDChar(s[n]) {
		n++
	}
	if n == 0 || n > bridge.MaxIDLen {
		return "", false
	}
	id := s[:n]
	if !strings.HasPrefix(strings.TrimLeft(s[n:], " "), "]") {
		return "", false
	}
	return id, true
}

// DefaultStatusMarkers are the subject markers DetectStatus uses when
// given none.
func DefaultStatusMarkers() map[string][]string {
	return map[string][]string{
		"resolved": {"[RESOLU]", "[RÉSOLU]", "[RESOLVED]"},
		"closed":   {"[CLOS]", "[FERMÉ]", "[FERME]", "[CLOSED]"},
		"waiting":  {"[EN ATTENTE]", "[WAITING]"},
	}
}

// statusWords are the values a status line may carry, by status key.
func statusWords() map[string][]string {
	return map[string][]string{
		"resolved": {"résolu", "resolu", "résolue", "resolue", "resolved"},
		"closed":   {"clos", "close", "clôturé", "cloture", "fermé", "ferme", "fermée", "closed"},
		"waiting":  {"en attente", "en attente de l'usager", "en attente de l'utilisateur", "waiting", "waiting for user", "pending"},
	}
}

// statusLineRE is a "Statut : résolu" line, compiled once (compiling it
// per mail cost more than the rest of the status detection).
var statusLineRE = regexp.MustCompile(`^\*{0,2}(?:statut|status|etat)\*{0,2}\s*:\s*\*{0,2}(.+?)\*{0,2}\s*\.?$`)

// DetectStatus finds the status the desk set on a reply: a marker of
// markers (status key → subject markers such as "[RESOLU]") in the
// subject, or a line of the new text that reads exactly "Statut : résolu"
// or "Status: resolved" (also clos/fermé/closed, en attente/waiting, or a
// marker's own word). It returns the status key; only keys of markers are
// returned (nil markers: DefaultStatusMarkers). Matching ignores case and
// French accents.
func DetectStatus(subject, text string, markers map[string][]string) (status string, ok bool) {
	if markers == nil {
		markers = DefaultStatusMarkers()
	}
	// The marker that appears first in the subject wins.
	fs := foldAccents(subject)
	best, bestAt := "", -1
	for key, ms := range markers {
		for _, m := range ms {
			fm := foldAccents(strings.TrimSpace(m))
			if fm == "" {
				continue
			}
			if at := strings.Index(fs, fm); at >= 0 && (bestAt < 0 || at < bestAt || at == bestAt && key < best) {
				best, bestAt = key, at
			}
		}
	}
	if bestAt >= 0 {
		return best, true
	}

	words := map[string]string{} // folded value → key
	builtin := statusWords()
	for key, ms := range markers {
		for _, w := range builtin[key] {
			words[foldAccents(w)] = key
		}
		for _, m := range ms {
			w := foldAccents(strings.Trim(strings.TrimSpace(m), "[]() "))
			if w != "" {
				words[w] = key
			}
		}
	}
	n := 0
	for _, line := range strings.Split(normalizeReply(text), "\n") {
		if n++; n > 5000 {
			break
		}
		l := strings.TrimSpace(line)
		if len(l) > 120 || l == "" || !strings.ContainsRune("SsEeÉé*", []rune(l)[0]) {
			continue
		}
		l = foldAccents(l)
		m := statusLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if key, found := words[strings.Join(strings.Fields(m[1]), " ")]; found {
			return key, true
		}
	}
	return "", false
}

// foldAccents lower-cases and removes French accents, for matching words that
// people type with or without them.
func foldAccents(s string) string {
	s = strings.ToLower(s)
	return strings.Map(func(r rune) rune {
		switch r {
		case 'à', 'â', 'ä', 'á':
			return 'a'
		case 'é', 'è', 'ê', 'ë':
			return 'e'
		case 'î', 'ï', 'í':
			return 'i'
		case 'ô', 'ö', 'ó':
			return 'o'
		case 'ù', 'û', 'ü', 'ú':
			return 'u'
		case 'ç':
			return 'c'
		case '\u00a0', '\u202f':
			return ' '
		case '’':
			return '\''
		}
		return r
	}, s)
}
