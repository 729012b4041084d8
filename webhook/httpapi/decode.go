package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"supportbridge/bridge"
	"supportbridge/webhook"
)

// DecodeLimits bound what one event may carry. Zero or less means no limit.
type DecodeLimits struct {
	MaxAttachmentBytes int64 // decoded size of one attachment
	MaxAttachments     int   // attachments in one event
}

// The rules of the payload, from the integration contract.
const (
	maxIDChars          = bridge.MaxIDLen
	maxSubjectChars     = 1000
	maxTextChars        = 100_000 // description, comment body
	maxShortChars       = 1000    // names, labels, profile, uai
	maxFilenameChars    = 255
	maxEmailBytes       = 254 // RFC 5321's path limit
	maxDepth            = 32  // deeper than any valid payload, by far
	maxProblemFields    = 100
	maxMessageReasons   = 10
	maxPathSegmentChars = 64
	defaultLocale       = "fr"
)

// DecodeEvent decodes and validates the body of an ENT webhook whose
// webhook-id is msgID. The error, when there is one, is always a *Problem:
//   - 400 invalid_payload for malformed JSON (the message gives the byte
//     offset), a body that is not an object, a missing or non-string "type",
//     and field problems; Fields then lists every faulty field (sorted,
//     once each, the first 100), as a path such as "data.ticket.owner.id"
//     or "data.ticket.attachments[1].id", and the message says what is wrong
//     with the first ten. A missing type is a malformed envelope, hence 400
//     and not 422.
//   - 422 unknown_event_type for a "type" string that is none of the six;
//     it wins over any other problem, because a sender newer than us should
//     learn first that we do not know the type at all.
//
// Decoding is strict: unknown or repeated fields anywhere, strings that are
// not valid UTF-8 (or hold lone surrogates) and control characters other
// than tab, CR and LF are errors. Values are kept as sent (subjects are
// not trimmed, CR and LF stay for the mail layer to neutralise), except
// that an absent locale is "fr", an absent digest is daily, and content
// types are put in canonical form ("Image/PNG" becomes "image/png").
func DecodeEvent(msgID string, body []byte, lim DecodeLimits) (bridge.Event, error) {
	if !webhook.ValidMsgID(msgID) {
		return bridge.Event{}, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
			Message: fmt.Sprintf("the %s must be 1 to %d visible ASCII characters", webhook.HeaderID, webhook.MaxMsgIDBytes),
			Fields:  []string{webhook.HeaderID}}
	}
	root, p := parseJSON(body)
	if p != nil {
		return bridge.Event{}, p
	}
	c := &checker{}
	env := c.object("", root, "type", "timestamp", "data")
	if env == nil {
		return bridge.Event{}, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
			Message: "the body must be a JSON object"}
	}

	typ, typeOK := c.eventType(env["type"])
	if typeOK && !typ.Known() {
		return bridge.Event{}, &Problem{Status: http.StatusUnprocessableEntity, Code: codeUnknownEventType,
			Message: fmt.Sprintf("unknown event type %s", quoteShort(string(typ))), Fields: []string{"type"}}
	}
	ev := bridge.Event{ID: msgID, Type: typ}
	ev.OccurredAt = c.timestamp("timestamp", env["timestamp"])
	if typeOK {
		d := &eventDecoder{c: c, lim: lim, attachmentIDs: map[string]string{}}
		d.data(&ev, env["data"])
	} else if isAbsent(env["data"]) {
		c.fail("data", "required")
	}
	if len(c.problems) > 0 {
		return bridge.Event{}, c.problem()
	}
	return ev, nil
}

type eventDecoder struct {
	c   *checker
	lim DecodeLimits
	// attachmentIDs maps each attachment id seen to its path: ids are
	// unique within an event.
	attachmentIDs map[string]string
}

// dataFields returns the members of "data" for an event type.
func dataFields(t bridge.EventType) []string {
	switch t {
	case bridge.EventStructureUpserted:
		return []string{"structure"}
	case bridge.EventTicketCreated:
		return []string{"ticket"}
	case bridge.EventTicketUpdated:
		return []string{"ticket_id", "actor", "changes"}
	case bridge.EventTicketCommented:
		return []string{"ticket_id", "comment"}
	case bridge.EventStatusChanged:
		return []string{"ticket_id", "actor", "status"}
	case bridge.EventEscalationRequested:
		return []string{"ticket_id", "actor"}
	}
	return nil
}

func (d *eventDecoder) data(ev *bridge.Event, v *jvalue) {
	c := d.c
	m := c.requiredObject("data", v, dataFields(ev.Type)...)
	if m == nil {
		return // reported; its members would only repeat it
	}
	switch ev.Type {
	case bridge.EventStructureUpserted:
		ev.Structure = d.structure("data.structure", m["structure"])
	case bridge.EventTicketCreated:
		ev.NewTicket = d.newTicket("data.ticket", m["ticket"])
	case bridge.EventTicketUpdated:
		ev.TicketID = c.id("data.ticket_id", m["ticket_id"])
		ev.Actor = c.person("data.actor", m["actor"], false)
		ev.Changes = d.changes("data.changes", m["changes"])
	case bridge.EventTicketCommented:
		ev.TicketID = c.id("data.ticket_id", m["ticket_id"])
		ev.Comment = d.comment("data.comment", m["comment"])
	case bridge.EventStatusChanged:
		ev.TicketID = c.id("data.ticket_id", m["ticket_id"])
		ev.Actor = c.person("data.actor", m["actor"], false)
		ev.Status = c.status("data.status", m["status"])
	case bridge.EventEscalationRequested:
		ev.TicketID = c.id("data.ticket_id", m["ticket_id"])
		ev.Actor = c.person("data.actor", m["actor"], false)
	}
}

func (d *eventDecoder) structure(path string, v *jvalue) *bridge.Structure {
	c := d.c
	m := c.requiredObject(path, v, "id", "name", "uai", "parent_id", "escalation_enabled", "referents")
	if m == nil {
		return nil
	}
	s := &bridge.Structure{
		ID:                c.id(join(path, "id"), m["id"]),
		Name:              c.shortText(join(path, "name"), m["name"], true),
		UAI:               c.shortText(join(path, "uai"), m["uai"], false),
		ParentID:          c.optionalID(join(path, "parent_id"), m["parent_id"]),
		EscalationEnabled: c.boolean(join(path, "escalation_enabled"), m["escalation_enabled"]),
	}
	if s.ParentID != "" && s.ParentID == s.ID {
		c.fail(join(path, "parent_id"), "must differ from the structure's own id")
	}
	refsPath := join(path, "referents")
	items, ok := c.array(refsPath, m["referents"], true)
	if ok {
		s.Referents = make([]bridge.Referent, 0, len(items))
	}
	seen := map[string]bool{}
	for i, item := range items {
		rp := index(refsPath, i)
		r := c.requiredObject(rp, item, "id", "display_name", "email", "digest", "locale")
		if r == nil {
			continue
		}
		ref := bridge.Referent{
			ID:          c.id(join(rp, "id"), r["id"]),
			DisplayName: c.shortText(join(rp, "display_name"), r["display_name"], true),
			Email:       c.email(join(rp, "email"), r["email"], true),
			Digest:      c.digest(join(rp, "digest"), r["digest"]),
			Locale:      c.referentLocale(join(rp, "locale"), r["locale"]),
		}
		if ref.ID != "" {
			if seen[ref.ID] {
				c.fail(join(rp, "id"), "repeats the id of another referent")
			}
			seen[ref.ID] = true
		}
		s.Referents = append(s.Referents, ref)
	}
	return s
}

func (d *eventDecoder) newTicket(path string, v *jvalue) *bridge.NewTicket {
	c := d.c
	m := c.requiredObject(path, v, "id", "structure_id", "owner", "category", "subject",
		"description", "locale", "created_at", "attachments")
	if m == nil {
		return nil
	}
	t := &bridge.NewTicket{
		ID:          c.id(join(path, "id"), m["id"]),
		StructureID: c.id(join(path, "structure_id"), m["structure_id"]),
		Owner:       c.person(join(path, "owner"), m["owner"], true),
		Category:    c.category(join(path, "category"), m["category"]),
		Subject:     c.subject(join(path, "subject"), m["subject"]),
		Description: c.longText(join(path, "description"), m["description"], true),
		Locale:      c.locale(join(path, "locale"), m["locale"]),
		CreatedAt:   c.timestamp(join(path, "created_at"), m["created_at"]),
		Attachments: d.attachments(join(path, "attachments"), m["attachments"]),
	}
	return t
}

func (d *eventDecoder) changes(path string, v *jvalue) *bridge.TicketChanges {
	c := d.c
	m := c.requiredObject(path, v, "subject", "description", "category")
	if m == nil {
		return nil
	}
	ch := &bridge.TicketChanges{}
	if !isAbsent(m["subject"]) {
		s := c.subject(join(path, "subject"), m["subject"])
		ch.Subject = &s
	}
	if !isAbsent(m["description"]) {
		s := c.longText(join(path, "description"), m["description"], true)
		ch.Description = &s
	}
	if !isAbsent(m["category"]) {
		cat := c.category(join(path, "category"), m["category"])
		ch.Category = &cat
	}
	if ch.Subject == nil && ch.Description == nil && ch.Category == nil {
		c.fail(path, "must change at least one of subject, description, category")
	}
	return ch
}

func (d *eventDecoder) comment(path string, v *jvalue) *bridge.Comment {
	c := d.c
	m := c.requiredObject(path, v, "id", "author", "body", "created_at", "attachments")
	if m == nil {
		return nil
	}
	bodyPath := join(path, "body")
	before := len(c.problems)
	cm := &bridge.Comment{
		ID:     c.id(join(path, "id"), m["id"]),
		Author: c.person(join(path, "author"), m["author"], false),
		Body:   c.longText(bodyPath, m["body"], false),
	}
	bodyFailed := slices.ContainsFunc(c.problems[before:], func(p fieldProblem) bool { return p.path == bodyPath })
	cm.CreatedAt = c.timestamp(join(path, "created_at"), m["created_at"])
	cm.Attachments = d.attachments(join(path, "attachments"), m["attachments"])
	// A comment may be only a screenshot; otherwise it must say something.
	if !bodyFailed && strings.TrimSpace(cm.Body) == "" && !hasItems(m["attachments"]) {
		c.fail(bodyPath, "must not be blank when there is no attachment")
	}
	return cm
}

func hasItems(v *jvalue) bool { return v != nil && v.kind == kindArray && len(v.items) > 0 }

func (d *eventDecoder) attachments(path string, v *jvalue) []bridge.AttachmentData {
	c := d.c
	items, _ := c.array(path, v, false)
	if d.lim.MaxAttachments > 0 && len(items) > d.lim.MaxAttachments {
		c.fail(path, fmt.Sprintf("at most %d attachments", d.lim.MaxAttachments))
	}
	var out []bridge.AttachmentData
	for i, item := range items {
		ap := index(path, i)
		m := c.requiredObject(ap, item, "id", "filename", "content_type", "content_base64")
		if m == nil {
			continue
		}
		a := bridge.AttachmentData{Attachment: bridge.Attachment{
			ID:          c.id(join(ap, "id"), m["id"]),
			Filename:    c.filename(join(ap, "filename"), m["filename"]),
			ContentType: c.mediaType(join(ap, "content_type"), m["content_type"]),
		}}
		a.Content = d.content(join(ap, "content_base64"), m["content_base64"])
		a.Size = int64(len(a.Content))
		if a.ID != "" {
			if first, dup := d.attachmentIDs[a.ID]; dup {
				c.fail(join(ap, "id"), "repeats the id of "+first)
			} else {
				d.attachmentIDs[a.ID] = ap
			}
		}
		out = append(out, a)
	}
	return out
}

func (d *eventDecoder) content(path string, v *jvalue) []byte {
	s, ok := d.c.text(path, v, true)
	if !ok {
		return nil
	}
	limit := d.lim.MaxAttachmentBytes
	// Refuse before allocating when even the smallest reading of the
	// text (every byte but padding and line breaks) is over the limit.
	if limit > 0 {
		n := len(s) - strings.Count(s, "\n") - strings.Count(s, "\r")
		if int64(n)/4*3-2 > limit {
			d.c.fail(path, fmt.Sprintf("decodes to more than %d bytes", limit))
			return nil
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		d.c.fail(path, "must be standard base64")
		return nil
	}
	if limit > 0 && int64(len(b)) > limit {
		d.c.fail(path, fmt.Sprintf("decodes to more than %d bytes", limit))
		return nil
	}
	return b
}

// checker walks the parsed body and collects every problem.
type checker struct {
	problems []fieldProblem
}

type fieldProblem struct{ path, reason string }

func (c *checker) fail(path, reason string) {
	c.problems = append(c.problems, fieldProblem{path, reason})
}

// problem reports the collected problems: fields sorted and unique, and
// the first reasons in the message.
func (c *checker) problem() *Problem {
	ps := slices.Clone(c.problems)
	slices.SortStableFunc(ps, func(a, b fieldProblem) int { return strings.Compare(a.path, b.path) })
	var fields []string
	var reasons []string
	for _, p := range ps {
		if len(fields) > 0 && fields[len(fields)-1] == p.path {
			continue
		}
		fields = append(fields, p.path)
		if len(reasons) < maxMessageReasons {
			reasons = append(reasons, p.path+": "+p.reason)
		}
	}
	total := len(fields)
	if len(fields) > maxProblemFields {
		fields = fields[:maxProblemFields]
	}
	msg := fmt.Sprintf("%d faulty field(s): %s", total, strings.Join(reasons, "; "))
	if total > len(reasons) {
		msg += fmt.Sprintf("; and %d more", total-len(reasons))
	}
	return &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload, Message: msg, Fields: fields}
}

func isAbsent(v *jvalue) bool { return v == nil || v.kind == kindNull }

// object checks that v is an object with only the known members, reports
// unknown and repeated members, and returns the known ones by name. It
// returns nil when v is absent, null or not an object (the latter is
// reported).
func (c *checker) object(path string, v *jvalue, known ...string) map[string]*jvalue {
	if isAbsent(v) {
		return nil
	}
	if v.kind != kindObject {
		c.fail(pathOrRoot(path), "must be an object")
		return nil
	}
	m := make(map[string]*jvalue, len(v.members))
	for _, mem := range v.members {
		p := join(path, mem.name)
		switch {
		case mem.badName:
			c.fail(p, "field name is not valid UTF-8")
		case !slices.Contains(known, mem.name):
			c.fail(p, "unknown field")
		case m[mem.name] != nil:
			// A repeated member could be read differently by another
			// parser along the way: refuse it.
			c.fail(p, "repeated field")
		default:
			m[mem.name] = mem.value
		}
	}
	return m
}

func (c *checker) requiredObject(path string, v *jvalue, known ...string) map[string]*jvalue {
	if isAbsent(v) {
		c.fail(path, "required")
		return nil
	}
	return c.object(path, v, known...)
}

// array returns the items of v; absent or null is an empty list unless
// required.
func (c *checker) array(path string, v *jvalue, required bool) ([]*jvalue, bool) {
	if isAbsent(v) {
		if required {
			c.fail(path, "required")
		}
		return nil, false
	}
	if v.kind != kindArray {
		c.fail(path, "must be an array")
		return nil, false
	}
	return v.items, true
}

// text returns a string that passes the rules every string follows:
// valid UTF-8 and no control character but tab, CR and LF.
func (c *checker) text(path string, v *jvalue, required bool) (string, bool) {
	if isAbsent(v) {
		if required {
			c.fail(path, "required")
		}
		return "", false
	}
	if v.kind != kindString {
		c.fail(path, "must be a string")
		return "", false
	}
	if v.badText {
		c.fail(path, "must be valid UTF-8")
		return "", false
	}
	for _, r := range v.str {
		if unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n' {
			c.fail(path, "must not contain control characters")
			return "", false
		}
	}
	return v.str, true
}

func (c *checker) eventType(v *jvalue) (bridge.EventType, bool) {
	if isAbsent(v) {
		c.fail("type", "required")
		return "", false
	}
	if v.kind != kindString {
		c.fail("type", "must be a string")
		return "", false
	}
	if v.str == "" {
		c.fail("type", "required")
		return "", false
	}
	return bridge.EventType(v.str), true
}

func (c *checker) id(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	if !bridge.ValidID(s) {
		c.fail(path, fmt.Sprintf("must be 1 to %d characters of %s", maxIDChars, bridge.IDChars))
		return ""
	}
	return s
}

// optionalID accepts an absent, null or empty id.
func (c *checker) optionalID(path string, v *jvalue) string {
	s, ok := c.text(path, v, false)
	if !ok || s == "" {
		return ""
	}
	if !bridge.ValidID(s) {
		c.fail(path, fmt.Sprintf("must be empty or 1 to %d characters of %s", maxIDChars, bridge.IDChars))
		return ""
	}
	return s
}

func (c *checker) timestamp(path string, v *jvalue) time.Time {
	s, ok := c.text(path, v, true)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		c.fail(path, "must be an RFC 3339 date-time")
		return time.Time{}
	}
	return t
}

func (c *checker) boolean(path string, v *jvalue) bool {
	if isAbsent(v) {
		c.fail(path, "required")
		return false
	}
	if v.kind != kindBool {
		c.fail(path, "must be true or false")
		return false
	}
	return v.b
}

// shortText is a name or label: when required, not blank.
func (c *checker) shortText(path string, v *jvalue, required bool) string {
	s, ok := c.text(path, v, required)
	if !ok {
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		c.fail(path, "must not be blank")
		return ""
	}
	if utf8.RuneCountInString(s) > maxShortChars {
		c.fail(path, fmt.Sprintf("at most %d characters", maxShortChars))
		return ""
	}
	return s
}

func (c *checker) subject(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(s)); n == 0 || n > maxSubjectChars {
		c.fail(path, fmt.Sprintf("must be 1 to %d characters, white space aside", maxSubjectChars))
		return ""
	}
	return s
}

// longText is a description or a comment body: may be empty.
func (c *checker) longText(path string, v *jvalue, required bool) string {
	s, ok := c.text(path, v, required)
	if !ok {
		return ""
	}
	if utf8.RuneCountInString(s) > maxTextChars {
		c.fail(path, fmt.Sprintf("at most %d characters", maxTextChars))
		return ""
	}
	return s
}

// email accepts a bare address ("a@b.example"), not a name with one.
func (c *checker) email(path string, v *jvalue, required bool) string {
	s, ok := c.text(path, v, required)
	if !ok {
		return ""
	}
	if s == "" && !required {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || len(s) > maxEmailBytes {
		c.fail(path, "must be a bare email address")
		return ""
	}
	return s
}

// person decodes an owner, actor or author; every one has the same shape.
func (c *checker) person(path string, v *jvalue, nameRequired bool) bridge.Person {
	m := c.requiredObject(path, v, "id", "display_name", "email", "profile")
	if m == nil {
		return bridge.Person{}
	}
	return bridge.Person{
		ID:          c.id(join(path, "id"), m["id"]),
		DisplayName: c.shortText(join(path, "display_name"), m["display_name"], nameRequired),
		Email:       c.email(join(path, "email"), m["email"], false),
		Profile:     c.shortText(join(path, "profile"), m["profile"], false),
	}
}

func (c *checker) category(path string, v *jvalue) bridge.Category {
	m := c.requiredObject(path, v, "app", "label")
	if m == nil {
		return bridge.Category{}
	}
	return bridge.Category{
		App:   c.shortText(join(path, "app"), m["app"], true),
		Label: c.shortText(join(path, "label"), m["label"], false),
	}
}

// locale is a ticket's language: absent, null or empty means French.
func (c *checker) locale(path string, v *jvalue) string {
	s, ok := c.text(path, v, false)
	if !ok || s == "" {
		return defaultLocale
	}
	if !validLocale(s) {
		c.fail(path, `must look like "fr" or "fr-FR"`)
		return ""
	}
	return s
}

// validLocale matches ^[a-z]{2}(-[A-Z]{2})?$.
func validLocale(s string) bool {
	lower := func(b byte) bool { return b >= 'a' && b <= 'z' }
	upper := func(b byte) bool { return b >= 'A' && b <= 'Z' }
	switch len(s) {
	case 2:
		return lower(s[0]) && lower(s[1])
	case 5:
		return lower(s[0]) && lower(s[1]) && s[2] == '-' && upper(s[3]) && upper(s[4])
	}
	return false
}

// referentLocale is the language of a referent's digests: fr or en; left
// empty when absent so that the digest applies its own default.
func (c *checker) referentLocale(path string, v *jvalue) string {
	s, ok := c.text(path, v, false)
	if !ok || s == "" {
		return ""
	}
	if s != "fr" && s != "en" {
		c.fail(path, `must be "fr" or "en"`)
		return ""
	}
	return s
}

// digest is absent, null or empty for daily.
func (c *checker) digest(path string, v *jvalue) bridge.Digest {
	s, ok := c.text(path, v, false)
	if !ok || s == "" {
		return bridge.DigestDaily
	}
	d := bridge.Digest(s)
	if !d.Valid() {
		c.fail(path, "must be daily, weekly or never")
		return ""
	}
	return d
}

func (c *checker) status(path string, v *jvalue) bridge.Status {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	st := bridge.Status(s)
	if !st.Valid() {
		c.fail(path, "must be new, opened, waiting, resolved or closed")
		return ""
	}
	return st
}

func (c *checker) filename(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > maxFilenameChars {
		c.fail(path, fmt.Sprintf("must be 1 to %d characters", maxFilenameChars))
		return ""
	}
	safe := bridge.SafeFilename(s)
	if safe == "" {
		c.fail(path, "must be a file name, not a path")
		return ""
	}
	return safe
}

// mediaType returns the content type in its canonical form (lower-case
// type, parameters re-quoted), so that nothing odd reaches a MIME header.
func (c *checker) mediaType(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(mt, "/") {
		c.fail(path, "must be a media type such as image/png")
		return ""
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" {
		c.fail(path, "must be a media type such as image/png")
		return ""
	}
	return out
}

// join appends a member name to a path. Names that are not plain
// identifiers (they can only come from unknown fields) are quoted and
// shortened, so that a path is always one safe line.
func join(path, name string) string {
	seg := "." + name
	if !plainName(name) {
		seg = "[" + quoteShort(name) + "]"
	}
	if path == "" {
		return strings.TrimPrefix(seg, ".")
	}
	return path + seg
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func pathOrRoot(path string) string {
	if path == "" {
		return "$"
	}
	return path
}

func plainName(s string) bool {
	if s == "" || len(s) > maxPathSegmentChars {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// quoteShort quotes s for a message or path, cut to a few dozen runes.
func quoteShort(s string) string {
	n := 0
	for i := range s {
		if n == maxPathSegmentChars {
			return strconv.QuoteToASCII(s[:i]) + "…"
		}
		n++
	}
	return strconv.QuoteToASCII(s)
}

// The parsed body. encoding/json is used for the syntax and the tokens;
// the tree keeps what its Unmarshal would lose: member order, repeated
// members, and whether a string was valid UTF-8 before it was decoded
// (Unmarshal silently turns bad bytes into U+FFFD).

type jkind uint8

const (
	kindNull jkind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

type jvalue struct {
	kind    jkind
	b       bool
	str     string // string, or the text of a number
	badText bool   // the string held invalid UTF-8 or a lone surrogate
	members []jmember
	items   []*jvalue
}

type jmember struct {
	name    string
	badName bool
	value   *jvalue
}

func parseJSON(body []byte) (*jvalue, *Problem) {
	// Unmarshal gives exact byte offsets for syntax errors, which the
	// streaming Decoder does not. json.Valid, the same scanner without
	// the decoding, first tells whether there is an error to place; well
	// formed JSON that is not an object is the checker's to report.
	if !json.Valid(body) {
		var se *json.SyntaxError
		if err := json.Unmarshal(body, new(struct{})); errors.As(err, &se) {
			off := se.Offset - 1 // Offset counts the bad byte itself
			if se.Offset >= int64(len(body)) {
				off = int64(len(body))
			}
			return nil, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
				Message: fmt.Sprintf("malformed JSON at byte offset %d: %s", off, se.Error())}
		}
	}
	p := &parser{dec: json.NewDecoder(bytes.NewReader(body)), body: body}
	p.dec.UseNumber()
	v, err := p.value(0)
	if err != nil {
		return nil, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
			Message: "malformed JSON: " + err.Error()}
	}
	return v, nil
}

type parser struct {
	dec  *json.Decoder
	body []byte
}

func (p *parser) value(depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels at byte offset %d", maxDepth, p.dec.InputOffset())
	}
	start := p.dec.InputOffset()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	switch t := tok.(type) {
	case nil:
		return &jvalue{kind: kindNull}, nil
	case bool:
		return &jvalue{kind: kindBool, b: t}, nil
	case json.Number:
		return &jvalue{kind: kindNumber, str: string(t)}, nil
	case string:
		return &jvalue{kind: kindString, str: t, badText: !p.literalValid(start)}, nil
	case json.Delim:
		switch t {
		case '{':
			v := &jvalue{kind: kindObject}
			for p.dec.More() {
				keyStart := p.dec.InputOffset()
				tok, err := p.dec.Token()
				if err != nil {
					return nil, unexpectedEOF(err)
				}
				name, ok := tok.(string)
				if !ok {
					return nil, fmt.Errorf("object key expected at byte offset %d", keyStart)
				}
				mv, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				v.members = append(v.members, jmember{name: name, badName: !p.literalValid(keyStart), value: mv})
			}
			return v, p.closing('}')
		case '[':
			v := &jvalue{kind: kindArray}
			for p.dec.More() {
				item, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				v.items = append(v.items, item)
			}
			return v, p.closing(']')
		}
	}
	return nil, fmt.Errorf("unexpected %v at byte offset %d", tok, start)
}

func (p *parser) closing(want json.Delim) error {
	tok, err := p.dec.Token()
	if err != nil {
		return unexpectedEOF(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%q expected", want)
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// literalValid reports whether the string literal that starts at or after
// byte off of the body (past white space, ':' or ',') is valid UTF-8 with
// no lone surrogate escape. The literal's syntax was already checked.
func (p *parser) literalValid(off int64) bool {
	b := p.body
	i := int(off)
	for i < len(b) && b[i] != '"' {
		i++
	}
	i++ // the opening quote
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return true
		case c == '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := hex4(b, i+2)
				if !ok {
					return false
				}
				i += 6
				switch {
				case utf16.IsSurrogate(r) && r < 0xDC00: // high half: a low half must follow
					if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return false
					}
					lo, ok := hex4(b, i+2)
					if !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
						return false
					}
					i += 6
				case utf16.IsSurrogate(r): // a low half alone
					return false
				}
				continue
			}
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return false
			}
			i += size
		}
	}
	return false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
