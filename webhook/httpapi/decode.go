package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

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

// dataFields returns the members of "data" for an event type, in the order
// they are decoded.
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
	fields := dataFields(ev.Type)
	m := c.requiredObject("data", v, fields...)
	if m == nil {
		return // reported; its members would only repeat it
	}
	for _, name := range fields {
		v := m[name]
		switch name {
		case "structure":
			ev.Structure = d.structure("data.structure", v)
		case "ticket":
			ev.NewTicket = d.newTicket("data.ticket", v)
		case "ticket_id":
			ev.TicketID = c.id("data.ticket_id", v)
		case "actor":
			ev.Actor = c.person("data.actor", v, false)
		case "changes":
			ev.Changes = d.changes("data.changes", v)
		case "comment":
			ev.Comment = d.comment("data.comment", v)
		case "status":
			ev.Status = c.status("data.status", v)
		}
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
