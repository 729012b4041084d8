package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge"
)

const testMsgID = "msg_2tRkB9xQ"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "valid", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit loads a valid body, changes it as a generic map and returns it
// encoded again.
func edit(t testing.TB, name string, change func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readTestdata(t, name), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// at walks into a decoded body: string keys for objects, ints for arrays.
func at(m map[string]any, path ...any) map[string]any {
	var cur any = m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	return cur.(map[string]any)
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func ptr[T any](v T) *T { return &v }

// inUTC returns ev with its times in UTC, so that DeepEqual compares
// instants and not zones.
func inUTC(ev bridge.Event) bridge.Event {
	ev.OccurredAt = ev.OccurredAt.UTC()
	if ev.NewTicket != nil {
		nt := *ev.NewTicket
		nt.CreatedAt = nt.CreatedAt.UTC()
		ev.NewTicket = &nt
	}
	if ev.Comment != nil {
		cm := *ev.Comment
		cm.CreatedAt = cm.CreatedAt.UTC()
		ev.Comment = &cm
	}
	return ev
}

func TestDecodeEventValid(t *testing.T) {
	tests := []struct {
		file string
		lim  DecodeLimits
		want bridge.Event
	}{
		{file: "structure_upserted.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventStructureUpserted, OccurredAt: utc("2025-03-10T06:45:00Z"),
			Structure: &bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", ParentID: "academie-paris",
				EscalationEnabled: true, Referents: []bridge.Referent{
					{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Digest: bridge.DigestDaily, Locale: "fr"},
					{ID: "u-ref2", DisplayName: "M. Dubois-Lefèvre", Email: "dubois@school.example", Digest: bridge.DigestWeekly},
					{ID: "u-ref3", DisplayName: "Mrs. Smith", Email: "smith@school.example", Digest: bridge.DigestDaily, Locale: "en"},
				}},
		}},
		{file: "structure_upserted_minimal.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventStructureUpserted, OccurredAt: utc("2025-03-10T06:45:00Z"),
			Structure: &bridge.Structure{ID: "academie-paris", Name: "Académie de Paris", Referents: []bridge.Referent{}},
		}},
		{file: "ticket_created.json", lim: DecodeLimits{MaxAttachmentBytes: 39, MaxAttachments: 2}, want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketCreated, OccurredAt: utc("2025-03-10T07:15:02Z"),
			NewTicket: &bridge.NewTicket{
				ID: "t-2025-0042", StructureID: "s1",
				Owner:    bridge.Person{ID: "u-eleve-17", DisplayName: "Élodie Garçon", Email: "elodie.garcon@school.example", Profile: "Student"},
				Category: bridge.Category{App: "pronote", Label: "Pronote"},
				Subject:  "Écran blanc dans Pronote",
				Description: "Bonjour,\n\nDepuis ce matin, l'onglet « Cahier de textes » reste blanc.\r\n" +
					"J'ai essayé Firefox et Chrome.\tMerci d'avance !",
				Locale:    "fr-FR",
				CreatedAt: utc("2025-03-10T07:15:00Z"),
				Attachments: []bridge.AttachmentData{
					{Attachment: bridge.Attachment{ID: "a-1", Filename: "journal d'erreurs.txt", ContentType: "text/plain; charset=UTF-8", Size: 39},
						Content: []byte("Erreur 500 à 08:12 en ouvrant Pronote\n")},
					{Attachment: bridge.Attachment{ID: "a-2", Filename: "capture écran.png", ContentType: "image/png", Size: 16},
						Content: []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")},
				},
			},
		}},
		{file: "ticket_created_minimal.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketCreated, OccurredAt: utc("2025-03-11T14:00:00Z"),
			NewTicket: &bridge.NewTicket{
				ID: "t-2025-0043", StructureID: "s1",
				Owner:     bridge.Person{ID: "u-prof-3", DisplayName: "M. Lemaire"},
				Category:  bridge.Category{App: "messagerie"},
				Subject:   "  Impossible d'envoyer un message  ",
				Locale:    "fr",
				CreatedAt: utc("2025-03-11T13:59:58.25Z"),
			},
		}},
		{file: "ticket_updated.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketUpdated, OccurredAt: utc("2025-03-10T08:00:00Z"),
			TicketID: "t-2025-0042", Actor: bridge.Person{ID: "u-eleve-17", DisplayName: "Élodie Garçon"},
			Changes: &bridge.TicketChanges{
				Subject:     ptr("Écran blanc dans Pronote (cahier de textes)"),
				Description: ptr("Le problème touche aussi l'agenda."),
			},
		}},
		{file: "ticket_updated_category.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketUpdated, OccurredAt: utc("2025-03-10T09:05:00Z"),
			TicketID: "t-2025-0042", Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example"},
			Changes: &bridge.TicketChanges{Category: &bridge.Category{App: "cahier-de-textes", Label: "Cahier de textes"}},
		}},
		{file: "ticket_commented.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketCommented, OccurredAt: utc("2025-03-10T09:30:00Z"),
			TicketID: "t-2025-0042",
			Comment: &bridge.Comment{
				ID:        "c-981",
				Author:    bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example", Profile: "Personnel"},
				Body:      "Bonjour Élodie,\npouvez-vous vider le cache du navigateur et réessayer ?\nCordialement,\nMme Martin",
				CreatedAt: utc("2025-03-10T09:29:41Z"),
				Attachments: []bridge.AttachmentData{{
					Attachment: bridge.Attachment{ID: "a-3", Filename: "procédure.txt", ContentType: "text/plain", Size: 27},
					Content:    []byte("Bonjour,\nvoici la capture.\n"),
				}},
			},
		}},
		{file: "ticket_commented_attachment_only.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventTicketCommented, OccurredAt: utc("2025-03-10T10:45:00Z"),
			TicketID: "t-2025-0042",
			Comment: &bridge.Comment{
				ID: "c-982", Author: bridge.Person{ID: "u-eleve-17"}, Body: "  ", CreatedAt: utc("2025-03-10T10:44:00Z"),
				Attachments: []bridge.AttachmentData{{
					Attachment: bridge.Attachment{ID: "a-4", Filename: "capture.png", ContentType: "image/png", Size: 16},
					Content:    []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
				}},
			},
		}},
		{file: "ticket_status_changed.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventStatusChanged, OccurredAt: utc("2025-03-12T15:20:00Z"),
			TicketID: "t-2025-0042", Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}, Status: bridge.StatusResolved,
		}},
		{file: "ticket_escalation_requested.json", want: bridge.Event{
			ID: testMsgID, Type: bridge.EventEscalationRequested, OccurredAt: utc("2025-03-10T10:00:00Z"),
			TicketID: "t-2025-0042", Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example"},
		}},
	}
	seen := map[bridge.EventType]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := DecodeEvent(testMsgID, readTestdata(t, tt.file), tt.lim)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if got := inUTC(ev); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeEvent =\n%#v\nwant\n%#v", got, tt.want)
			}
			if !ev.OccurredAt.Equal(tt.want.OccurredAt) {
				t.Fatalf("OccurredAt = %v, want %v", ev.OccurredAt, tt.want.OccurredAt)
			}
			seen[ev.Type] = true
		})
	}
	// Every file in testdata/valid is listed above, and every type has one.
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/valid, %d tested", len(files), len(tests))
	}
	if len(seen) != 6 {
		t.Errorf("types covered: %v, want all six", seen)
	}
}

// TestDecodeEventEdits checks variations of valid bodies that must still
// be accepted, and how they map.
func TestDecodeEventEdits(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		lim   DecodeLimits
		check func(t *testing.T, ev bridge.Event)
	}{
		{name: "id of 128 characters", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["id"] = strings.Repeat("a", 64) + "AZ09._:@-" + strings.Repeat("z", 55)
		}), check: func(t *testing.T, ev bridge.Event) {
			if len(ev.NewTicket.ID) != 128 {
				t.Errorf("id of %d bytes", len(ev.NewTicket.ID))
			}
		}},
		{name: "subject of 1000 characters between spaces", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["subject"] = "  " + strings.Repeat("é", 1000) + "\t"
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Subject != "  "+strings.Repeat("é", 1000)+"\t" {
				t.Errorf("subject not kept as sent")
			}
		}},
		{name: "description of 100000 characters", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["description"] = strings.Repeat("ô", 100_000)
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Description != strings.Repeat("ô", 100_000) {
				t.Errorf("description changed")
			}
		}},
		{name: "surrogate pair escape", body: strings.Replace(edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["subject"] = "@SUBJECT@"
		}), "@SUBJECT@", `\ud83d\ude00 \u00c9cran blanc`, 1), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Subject != "😀 Écran blanc" {
				t.Errorf("subject = %q", ev.NewTicket.Subject)
			}
		}},
		{name: "literal replacement character", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["subject"] = "Écran \uFFFD blanc"
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Subject != "Écran \uFFFD blanc" {
				t.Errorf("subject = %q", ev.NewTicket.Subject)
			}
		}},
		{name: "locale en-GB", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["locale"] = "en-GB"
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Locale != "en-GB" {
				t.Errorf("locale = %q", ev.NewTicket.Locale)
			}
		}},
		{name: "locale empty means fr", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["locale"] = ""
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Locale != "fr" {
				t.Errorf("locale = %q", ev.NewTicket.Locale)
			}
		}},
		{name: "locale null means fr", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket")["locale"] = nil
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Locale != "fr" {
				t.Errorf("locale = %q", ev.NewTicket.Locale)
			}
		}},
		{name: "optional fields empty or null", body: edit(t, "ticket_created.json", func(m map[string]any) {
			owner := at(m, "data", "ticket", "owner")
			owner["email"] = ""
			owner["profile"] = nil
			at(m, "data", "ticket", "category")["label"] = nil
			at(m, "data", "ticket")["attachments"] = nil
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.NewTicket.Owner.Email != "" || ev.NewTicket.Owner.Profile != "" || ev.NewTicket.Category.Label != "" || ev.NewTicket.Attachments != nil {
				t.Errorf("ticket = %+v", ev.NewTicket)
			}
		}},
		{name: "attachments at the limits", lim: DecodeLimits{MaxAttachmentBytes: 39, MaxAttachments: 2},
			body: string(readTestdata(t, "ticket_created.json")), check: func(t *testing.T, ev bridge.Event) {
				if len(ev.NewTicket.Attachments) != 2 {
					t.Errorf("%d attachments", len(ev.NewTicket.Attachments))
				}
			}},
		{name: "base64 wrapped over lines", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket", "attachments", 0)["content_base64"] = "RXJyZXVyIDUwMCDDoCAwODoxMiBl\r\nbiBvdXZyYW50IFByb25vdGUK"
		}), check: func(t *testing.T, ev bridge.Event) {
			if string(ev.NewTicket.Attachments[0].Content) != "Erreur 500 à 08:12 en ouvrant Pronote\n" {
				t.Errorf("content = %q", ev.NewTicket.Attachments[0].Content)
			}
		}},
		{name: "empty attachment", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket", "attachments", 0)["content_base64"] = ""
		}), check: func(t *testing.T, ev bridge.Event) {
			if a := ev.NewTicket.Attachments[0]; a.Size != 0 || len(a.Content) != 0 {
				t.Errorf("attachment = %+v", a)
			}
		}},
		{name: "content type normalised", body: edit(t, "ticket_created.json", func(m map[string]any) {
			at(m, "data", "ticket", "attachments", 0)["content_type"] = `Text/Plain; Charset="utf-8"; name="a b.txt"`
		}), check: func(t *testing.T, ev bridge.Event) {
			if got := ev.NewTicket.Attachments[0].ContentType; got != `text/plain; charset=utf-8; name="a b.txt"` {
				t.Errorf("content type = %q", got)
			}
		}},
		{name: "changes: empty description only", body: edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data")["changes"] = map[string]any{"description": ""}
		}), check: func(t *testing.T, ev bridge.Event) {
			if c := ev.Changes; c.Subject != nil || c.Category != nil || c.Description == nil || *c.Description != "" {
				t.Errorf("changes = %+v", c)
			}
		}},
		{name: "comment without attachments key", body: edit(t, "ticket_commented.json", func(m map[string]any) {
			delete(at(m, "data", "comment"), "attachments")
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.Comment.Attachments != nil {
				t.Errorf("attachments = %v", ev.Comment.Attachments)
			}
		}},
		{name: "comment of attachments only, no body key", body: edit(t, "ticket_commented_attachment_only.json", func(m map[string]any) {
			delete(at(m, "data", "comment"), "body")
		}), check: func(t *testing.T, ev bridge.Event) {
			if ev.Comment.Body != "" || len(ev.Comment.Attachments) != 1 {
				t.Errorf("comment = %+v", ev.Comment)
			}
		}},
		{name: "every status", body: string(readTestdata(t, "ticket_status_changed.json")), check: func(t *testing.T, ev bridge.Event) {
			for _, st := range []string{"new", "opened", "waiting", "resolved", "closed"} {
				body := edit(t, "ticket_status_changed.json", func(m map[string]any) { at(m, "data")["status"] = st })
				ev, err := DecodeEvent(testMsgID, []byte(body), DecodeLimits{})
				if err != nil || string(ev.Status) != st {
					t.Errorf("status %s: %v, %v", st, ev.Status, err)
				}
			}
		}},
		{name: "referent digest absent and null", body: edit(t, "structure_upserted.json", func(m map[string]any) {
			delete(at(m, "data", "structure", "referents", 0), "digest")
			at(m, "data", "structure", "referents", 1)["digest"] = nil
			at(m, "data", "structure", "referents", 2)["digest"] = "never"
		}), check: func(t *testing.T, ev bridge.Event) {
			r := ev.Structure.Referents
			if r[0].Digest != bridge.DigestDaily || r[1].Digest != bridge.DigestDaily || r[2].Digest != bridge.DigestNever {
				t.Errorf("digests = %v %v %v", r[0].Digest, r[1].Digest, r[2].Digest)
			}
		}},
		{name: "white space around the body", body: "\n\t " + string(readTestdata(t, "ticket_escalation_requested.json")) + "\r\n",
			check: func(t *testing.T, ev bridge.Event) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent(testMsgID, []byte(tt.body), tt.lim)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			tt.check(t, ev)
		})
	}
}

type invalidCase struct {
	name   string
	msgID  string // testMsgID when empty
	body   string
	lim    DecodeLimits
	status int
	code   string
	fields []string
	msg    string // a part of the message, when it matters
}

func bad(name, body string, fields ...string) invalidCase {
	return invalidCase{name: name, body: body, status: http.StatusBadRequest, code: "invalid_payload", fields: fields}
}

func malformed(name, body, msg string) invalidCase {
	return invalidCase{name: name, body: body, status: http.StatusBadRequest, code: "invalid_payload", msg: msg}
}

func unknownType(name, body string) invalidCase {
	return invalidCase{name: name, body: body, status: http.StatusUnprocessableEntity, code: "unknown_event_type", fields: []string{"type"}}
}

func TestDecodeEventInvalid(t *testing.T) {
	const ts = `"timestamp":"2025-03-10T07:45:00Z"`
	created := func(change func(tk map[string]any)) string {
		return edit(t, "ticket_created.json", func(m map[string]any) { change(at(m, "data", "ticket")) })
	}
	nested := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	many := map[string]any{}
	for i := range 150 {
		many[fmt.Sprintf("x%03d", i)] = i
	}

	tests := []invalidCase{
		// The envelope and the JSON itself.
		malformed("empty body", "", "at byte offset 0:"),
		malformed("white space only", "  \n", "at byte offset 3:"),
		malformed("truncated", `{"type": "ticket.created",`, "at byte offset 26:"),
		malformed("missing colon", `{"type" "ticket.created"}`, "at byte offset 8:"),
		malformed("trailing data", `{"type":"ticket.created"} {}`, "at byte offset 26:"),
		malformed("bad escape", `{"type":"ticket\qcreated"}`, "at byte offset 16:"),
		malformed("raw control character", "{\"type\":\"a\x01\"}", "at byte offset 10:"),
		malformed("single quotes", `{'type':'ticket.created'}`, "at byte offset 1:"),
		malformed("nested too deeply", `{"type":"ticket.created",`+ts+`,"data":{"ticket":{"foo":`+nested+`}}}`, "nested deeper than 32 levels"),
		malformed("array", `["ticket.created"]`, "must be a JSON object"),
		malformed("null", `null`, "must be a JSON object"),
		malformed("string", `"ticket.created"`, "must be a JSON object"),
		bad("missing type", `{`+ts+`,"data":{}}`, "type"),
		bad("null type", `{"type":null,`+ts+`,"data":{}}`, "type"),
		bad("type not a string", `{"type":3,`+ts+`,"data":{}}`, "type"),
		bad("empty type", `{"type":"",`+ts+`,"data":{}}`, "type"),
		bad("missing type, bad timestamp, unknown field", `{"timestamp":"yesterday","data":{},"extra":1}`, "extra", "timestamp", "type"),
		func() invalidCase {
			c := unknownType("unknown type", `{"type":"ticket.deleted",`+ts+`,"data":{}}`)
			c.msg = `unknown event type "ticket.deleted"`
			return c
		}(),
		func() invalidCase {
			c := unknownType("long unknown type cut short", `{"type":"`+strings.Repeat("é", 200)+`"}`)
			c.msg = `unknown event type "` + strings.Repeat(`\u00e9`, 64) + `"…`
			return c
		}(),
		unknownType("type is case sensitive", `{"type":"Ticket.Created",`+ts+`,"data":{}}`),
		unknownType("unknown type wins over other problems", `{"type":"ticket.merged","timestamp":"nope","oops":true}`),
		bad("missing data", `{"type":"ticket.escalation_requested",`+ts+`}`, "data"),
		bad("null data", `{"type":"ticket.escalation_requested",`+ts+`,"data":null}`, "data"),
		bad("data not an object", `{"type":"ticket.escalation_requested",`+ts+`,"data":"t-1"}`, "data"),
		bad("missing timestamp and data", `{"type":"ticket.created"}`, "data", "timestamp"),
		bad("timestamp with a space", `{"type":"ticket.escalation_requested","timestamp":"2025-03-10 08:15:00","data":{"ticket_id":"t1","actor":{"id":"u1"}}}`, "timestamp"),
		bad("timestamp without zone", `{"type":"ticket.escalation_requested","timestamp":"2025-03-10T08:15:00","data":{"ticket_id":"t1","actor":{"id":"u1"}}}`, "timestamp"),
		bad("timestamp on 30 February", `{"type":"ticket.escalation_requested","timestamp":"2025-02-30T08:15:00Z","data":{"ticket_id":"t1","actor":{"id":"u1"}}}`, "timestamp"),
		bad("timestamp as a number", `{"type":"ticket.escalation_requested","timestamp":1741593600,"data":{"ticket_id":"t1","actor":{"id":"u1"}}}`, "timestamp"),
		{name: "invalid webhook-id", msgID: "msg 1", body: string(readTestdata(t, "ticket_escalation_requested.json")),
			status: 400, code: "invalid_payload", fields: []string{"webhook-id"}},
		{name: "more than 100 faulty fields", body: edit(t, "ticket_escalation_requested.json", func(m map[string]any) {
			for k, v := range many {
				m[k] = v
			}
		}), status: 400, code: "invalid_payload", fields: func() []string {
			var f []string
			for i := range 100 {
				f = append(f, fmt.Sprintf("x%03d", i))
			}
			return f
		}(), msg: "; and 140 more"},

		// ticket.created
		bad("no ticket", `{"type":"ticket.created",`+ts+`,"data":{}}`, "data.ticket"),
		bad("empty ticket", `{"type":"ticket.created",`+ts+`,"data":{"ticket":{}}}`,
			"data.ticket.category", "data.ticket.created_at", "data.ticket.description", "data.ticket.id",
			"data.ticket.owner", "data.ticket.structure_id", "data.ticket.subject"),
		bad("several faults at once", edit(t, "ticket_created.json", func(m map[string]any) {
			tk := at(m, "data", "ticket")
			delete(at(tk, "owner"), "id")
			at(tk, "owner")["age"] = 16
			tk["subject"] = " \n "
			tk["foo"] = map[string]any{"bar": 1}
			at(tk, "attachments", 1)["content_base64"] = "@@@"
			at(m, "data")["extra"] = true
			m["version"] = "2"
		}), "data.extra", "data.ticket.attachments[1].content_base64", "data.ticket.foo", "data.ticket.owner.age",
			"data.ticket.owner.id", "data.ticket.subject", "version"),
		bad("bad ids", created(func(tk map[string]any) {
			tk["id"] = "t 42"
			tk["structure_id"] = strings.Repeat("s", 129)
			at(tk, "owner")["id"] = ""
			at(tk, "attachments", 0)["id"] = "pièce-1"
			at(tk, "attachments", 1)["id"] = 2
		}), "data.ticket.attachments[0].id", "data.ticket.attachments[1].id", "data.ticket.id",
			"data.ticket.owner.id", "data.ticket.structure_id"),
		bad("id with a slash", created(func(tk map[string]any) { tk["id"] = "t/42" }), "data.ticket.id"),
		bad("owner not an object", created(func(tk map[string]any) { tk["owner"] = "u-eleve-17" }), "data.ticket.owner"),
		bad("owner null", created(func(tk map[string]any) { tk["owner"] = nil }), "data.ticket.owner"),
		bad("owner without a name", created(func(tk map[string]any) { delete(at(tk, "owner"), "display_name") }), "data.ticket.owner.display_name"),
		bad("owner with a blank name", created(func(tk map[string]any) { at(tk, "owner")["display_name"] = " \t" }), "data.ticket.owner.display_name"),
		bad("owner name too long", created(func(tk map[string]any) { at(tk, "owner")["display_name"] = strings.Repeat("É", 1001) }), "data.ticket.owner.display_name"),
		bad("subject too long", created(func(tk map[string]any) { tk["subject"] = strings.Repeat("é", 1001) }), "data.ticket.subject"),
		bad("subject empty", created(func(tk map[string]any) { tk["subject"] = "" }), "data.ticket.subject"),
		bad("subject not a string", created(func(tk map[string]any) { tk["subject"] = []any{"Écran"} }), "data.ticket.subject"),
		bad("description too long", created(func(tk map[string]any) { tk["description"] = strings.Repeat("ô", 100_001) }), "data.ticket.description"),
		bad("description missing", created(func(tk map[string]any) { delete(tk, "description") }), "data.ticket.description"),
		bad("description null", created(func(tk map[string]any) { tk["description"] = nil }), "data.ticket.description"),
		bad("locale upper case", created(func(tk map[string]any) { tk["locale"] = "FR" }), "data.ticket.locale"),
		bad("locale with underscore", created(func(tk map[string]any) { tk["locale"] = "fr_FR" }), "data.ticket.locale"),
		bad("locale of three letters", created(func(tk map[string]any) { tk["locale"] = "fra" }), "data.ticket.locale"),
		bad("locale region lower case", created(func(tk map[string]any) { tk["locale"] = "fr-fr" }), "data.ticket.locale"),
		bad("email with a name", created(func(tk map[string]any) { at(tk, "owner")["email"] = "Élodie <elodie@school.example>" }), "data.ticket.owner.email"),
		bad("email in brackets", created(func(tk map[string]any) { at(tk, "owner")["email"] = "<elodie@school.example>" }), "data.ticket.owner.email"),
		bad("email without domain", created(func(tk map[string]any) { at(tk, "owner")["email"] = "elodie" }), "data.ticket.owner.email"),
		bad("email list", created(func(tk map[string]any) { at(tk, "owner")["email"] = "a@school.example, b@school.example" }), "data.ticket.owner.email"),
		bad("category missing", created(func(tk map[string]any) { delete(tk, "category") }), "data.ticket.category"),
		bad("category without app", created(func(tk map[string]any) { tk["category"] = map[string]any{"label": "Pronote"} }), "data.ticket.category.app"),
		bad("category with a blank app and an id", created(func(tk map[string]any) {
			tk["category"] = map[string]any{"app": " ", "id": "c1"}
		}), "data.ticket.category.app", "data.ticket.category.id"),
		bad("created_at not RFC 3339", created(func(tk map[string]any) { tk["created_at"] = "10/03/2025 08:15" }), "data.ticket.created_at"),
		bad("control characters", created(func(tk map[string]any) {
			tk["subject"] = "Écran\x00blanc"
			at(tk, "owner")["display_name"] = "\x1b[31mÉlodie"
			tk["description"] = "DEL \x7f"
			at(tk, "category")["label"] = "C1 \u0085"
			at(tk, "attachments", 0)["filename"] = "a\x07.txt"
		}), "data.ticket.attachments[0].filename", "data.ticket.category.label", "data.ticket.description",
			"data.ticket.owner.display_name", "data.ticket.subject"),
		bad("invalid UTF-8", strings.Replace(string(readTestdata(t, "ticket_created.json")), "Écran blanc", "\xc3\x28cran blanc", 1), "data.ticket.subject"),
		bad("invalid UTF-8 in an unknown field's value", strings.Replace(string(readTestdata(t, "ticket_created.json")),
			`"locale"`, "\"remark\": \"\xff\", \"locale\"", 1), "data.ticket.remark"),
		bad("lone surrogates", strings.NewReplacer("@D@", `\ud800`, "@L@", `\udc00 bis`, "@H@", `\ud83dx`, "@E@", `\ud83d\u0041`).Replace(created(func(tk map[string]any) {
			tk["description"] = "@D@"
			at(tk, "category")["label"] = "@L@"
			tk["subject"] = "@H@"
			at(tk, "owner")["profile"] = "@E@"
		})), "data.ticket.category.label", "data.ticket.description", "data.ticket.owner.profile", "data.ticket.subject"),
		bad("repeated field", strings.Replace(string(readTestdata(t, "ticket_created.json")),
			`"locale"`, `"subject": "Autre sujet", "locale"`, 1), "data.ticket.subject"),
		bad("repeated unknown field listed once", strings.Replace(string(readTestdata(t, "ticket_created.json")),
			`"locale"`, `"foo": 1, "foo": 2, "locale"`, 1), "data.ticket.foo"),
		bad("odd unknown field names", strings.Replace(string(readTestdata(t, "ticket_created.json")),
			`"locale"`, "\"a.b\": 1, \"\xff\": 2, \"\": 3, \"locale\"", 1),
			`data.ticket[""]`, `data.ticket["\ufffd"]`, `data.ticket["a.b"]`),
		bad("long unknown field name", strings.Replace(string(readTestdata(t, "ticket_created.json")),
			`"locale"`, `"`+strings.Repeat("n", 100)+`": 1, "locale"`, 1), `data.ticket["`+strings.Repeat("n", 64)+`"…]`),
		bad("attachments not an array", created(func(tk map[string]any) { tk["attachments"] = map[string]any{} }), "data.ticket.attachments"),
		bad("attachment not an object", created(func(tk map[string]any) { tk["attachments"] = []any{1, nil} }),
			"data.ticket.attachments[0]", "data.ticket.attachments[1]"),
		bad("attachment empty", created(func(tk map[string]any) { tk["attachments"] = []any{map[string]any{}} }),
			"data.ticket.attachments[0].content_base64", "data.ticket.attachments[0].content_type",
			"data.ticket.attachments[0].filename", "data.ticket.attachments[0].id"),
		bad("attachment with a size", created(func(tk map[string]any) { at(tk, "attachments", 0)["size"] = 39 }), "data.ticket.attachments[0].size"),
		bad("filename too long", created(func(tk map[string]any) { at(tk, "attachments", 0)["filename"] = strings.Repeat("é", 252) + ".png" }),
			"data.ticket.attachments[0].filename"),
		bad("filename blank", created(func(tk map[string]any) { at(tk, "attachments", 0)["filename"] = "  " }), "data.ticket.attachments[0].filename"),
		bad("content types", created(func(tk map[string]any) {
			at(tk, "attachments", 0)["content_type"] = "pas un type"
			at(tk, "attachments", 1)["content_type"] = "image"
		}), "data.ticket.attachments[0].content_type", "data.ticket.attachments[1].content_type"),
		bad("content type with a broken parameter", created(func(tk map[string]any) {
			at(tk, "attachments", 0)["content_type"] = "text/plain; charset"
		}), "data.ticket.attachments[0].content_type"),
		bad("base64 unpadded, url alphabet", created(func(tk map[string]any) {
			at(tk, "attachments", 0)["content_base64"] = "iVBORw0KGgo"
			at(tk, "attachments", 1)["content_base64"] = "_-__"
		}), "data.ticket.attachments[0].content_base64", "data.ticket.attachments[1].content_base64"),
		bad("base64 with stray bits", created(func(tk map[string]any) {
			at(tk, "attachments", 1)["content_base64"] = "iVBORw0KGgoAAAANSUhEUh=="
		}), "data.ticket.attachments[1].content_base64"),
		bad("attachment ids repeated", created(func(tk map[string]any) { at(tk, "attachments", 1)["id"] = "a-1" }), "data.ticket.attachments[1].id"),
		{name: "attachment too large", body: string(readTestdata(t, "ticket_created.json")), lim: DecodeLimits{MaxAttachmentBytes: 38},
			status: 400, code: "invalid_payload", fields: []string{"data.ticket.attachments[0].content_base64"}},
		{name: "attachment far too large", body: created(func(tk map[string]any) {
			at(tk, "attachments", 1)["content_base64"] = strings.Repeat("AAAA", 1000)
		}), lim: DecodeLimits{MaxAttachmentBytes: 100},
			status: 400, code: "invalid_payload", fields: []string{"data.ticket.attachments[1].content_base64"}, msg: "more than 100 bytes"},
		{name: "too many attachments", body: string(readTestdata(t, "ticket_created.json")), lim: DecodeLimits{MaxAttachments: 1},
			status: 400, code: "invalid_payload", fields: []string{"data.ticket.attachments"}, msg: "at most 1 attachments"},

		// ticket.updated
		bad("updated: nothing", `{"type":"ticket.updated",`+ts+`,"data":{}}`, "data.actor", "data.changes", "data.ticket_id"),
		bad("updated: changes all null", edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data")["changes"] = map[string]any{"subject": nil, "description": nil, "category": nil}
		}), "data.changes"),
		bad("updated: changes empty", edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data")["changes"] = map[string]any{}
		}), "data.changes"),
		bad("updated: changes not an object", edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data")["changes"] = []any{"subject"}
		}), "data.changes"),
		bad("updated: actor without id", edit(t, "ticket_updated.json", func(m map[string]any) {
			delete(at(m, "data", "actor"), "id")
		}), "data.actor.id"),
		bad("updated: bad changes", edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data")["changes"] = map[string]any{"subject": "", "description": strings.Repeat("x", 100_001),
				"category": map[string]any{"label": "Pronote"}, "status": "closed"}
		}), "data.changes.category.app", "data.changes.description", "data.changes.status", "data.changes.subject"),
		bad("updated: actor email", edit(t, "ticket_updated.json", func(m map[string]any) {
			at(m, "data", "actor")["email"] = "martin@"
		}), "data.actor.email"),

		// ticket.commented
		bad("commented: nothing", `{"type":"ticket.commented",`+ts+`,"data":{}}`, "data.comment", "data.ticket_id"),
		bad("commented: empty comment", `{"type":"ticket.commented",`+ts+`,"data":{"ticket_id":"t1","comment":{}}}`,
			"data.comment.author", "data.comment.body", "data.comment.created_at", "data.comment.id"),
		bad("commented: blank body", edit(t, "ticket_commented.json", func(m map[string]any) {
			at(m, "data", "comment")["body"] = " \r\n\t"
			at(m, "data", "comment")["attachments"] = []any{}
		}), "data.comment.body"),
		bad("commented: blank body, attachments null", edit(t, "ticket_commented.json", func(m map[string]any) {
			at(m, "data", "comment")["body"] = ""
			at(m, "data", "comment")["attachments"] = nil
		}), "data.comment.body"),
		bad("commented: body not a string", edit(t, "ticket_commented.json", func(m map[string]any) {
			at(m, "data", "comment")["body"] = 42
			delete(at(m, "data", "comment"), "attachments")
		}), "data.comment.body"),
		bad("commented: author without id, bad email", edit(t, "ticket_commented.json", func(m map[string]any) {
			a := at(m, "data", "comment", "author")
			delete(a, "id")
			a["email"] = "Mme Martin"
		}), "data.comment.author.email", "data.comment.author.id"),
		bad("commented: actor is not a field", edit(t, "ticket_commented.json", func(m map[string]any) {
			at(m, "data")["actor"] = map[string]any{"id": "u-ref1"}
		}), "data.actor"),
		bad("commented: attachment ids repeated", edit(t, "ticket_commented.json", func(m map[string]any) {
			c := at(m, "data", "comment")
			c["attachments"] = append(c["attachments"].([]any), map[string]any{"id": "a-3", "filename": "b.txt",
				"content_type": "text/plain", "content_base64": ""})
		}), "data.comment.attachments[1].id"),

		// ticket.status_changed
		bad("status unknown", edit(t, "ticket_status_changed.json", func(m map[string]any) { at(m, "data")["status"] = "reopened" }), "data.status"),
		bad("status capitalised", edit(t, "ticket_status_changed.json", func(m map[string]any) { at(m, "data")["status"] = "Resolved" }), "data.status"),
		bad("status missing, actor missing", edit(t, "ticket_status_changed.json", func(m map[string]any) {
			delete(at(m, "data"), "status")
			delete(at(m, "data"), "actor")
		}), "data.actor", "data.status"),

		// ticket.escalation_requested
		bad("escalation: reason is not a field", edit(t, "ticket_escalation_requested.json", func(m map[string]any) {
			at(m, "data")["reason"] = "urgent"
		}), "data.reason"),
		bad("escalation: bad ticket id, no actor", edit(t, "ticket_escalation_requested.json", func(m map[string]any) {
			at(m, "data")["ticket_id"] = "t 42"
			delete(at(m, "data"), "actor")
		}), "data.actor", "data.ticket_id"),

		// structure.upserted
		bad("structure: nothing", `{"type":"structure.upserted",`+ts+`,"data":{"structure":{}}}`,
			"data.structure.escalation_enabled", "data.structure.id", "data.structure.name", "data.structure.referents"),
		bad("structure: escalation_enabled as a string", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure")["escalation_enabled"] = "true"
		}), "data.structure.escalation_enabled"),
		bad("structure: escalation_enabled null", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure")["escalation_enabled"] = nil
		}), "data.structure.escalation_enabled"),
		bad("structure: referents null", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure")["referents"] = nil
		}), "data.structure.referents"),
		bad("structure: referents an object", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure")["referents"] = map[string]any{}
		}), "data.structure.referents"),
		bad("structure: own parent, blank name, long uai", edit(t, "structure_upserted.json", func(m map[string]any) {
			s := at(m, "data", "structure")
			s["parent_id"] = "s1"
			s["name"] = "   "
			s["uai"] = strings.Repeat("0", 1001)
		}), "data.structure.name", "data.structure.parent_id", "data.structure.uai"),
		bad("structure: bad parent id", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure")["parent_id"] = "académie"
		}), "data.structure.parent_id"),
		bad("structure: referent faults", edit(t, "structure_upserted.json", func(m map[string]any) {
			refs := at(m, "data", "structure")["referents"].([]any)
			refs[0].(map[string]any)["digest"] = "monthly"
			refs[1].(map[string]any)["locale"] = "de"
			refs[2].(map[string]any)["id"] = "u-ref1"
			delete(refs[2].(map[string]any), "email")
			at(m, "data", "structure")["referents"] = append(refs, map[string]any{}, "u-ref9")
		}), "data.structure.referents[0].digest", "data.structure.referents[1].locale", "data.structure.referents[2].email",
			"data.structure.referents[2].id", "data.structure.referents[3].display_name", "data.structure.referents[3].email",
			"data.structure.referents[3].id", "data.structure.referents[4]"),
		bad("structure: referent locale with region", edit(t, "structure_upserted.json", func(m map[string]any) {
			at(m, "data", "structure", "referents", 0)["locale"] = "fr-FR"
		}), "data.structure.referents[0].locale"),
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.msgID
			if id == "" {
				id = testMsgID
			}
			ev, err := DecodeEvent(id, []byte(tt.body), tt.lim)
			if err == nil {
				t.Fatalf("DecodeEvent accepted the body: %+v", ev)
			}
			if !reflect.DeepEqual(ev, bridge.Event{}) {
				t.Errorf("DecodeEvent returned an event with its error: %+v", ev)
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %T %v is not a *Problem", err, err)
			}
			if p.Status != tt.status || p.Code != tt.code {
				t.Errorf("status, code = %d %s, want %d %s (%s)", p.Status, p.Code, tt.status, tt.code, p.Message)
			}
			if !slices.Equal(p.Fields, tt.fields) {
				t.Errorf("fields = %q\nwant %q\n(%s)", p.Fields, tt.fields, p.Message)
			}
			if !strings.Contains(p.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", p.Message, tt.msg)
			}
			for _, f := range p.Fields {
				if !strings.Contains(p.Message, f) && !strings.Contains(p.Message, "more") {
					t.Errorf("message %q does not name %s", p.Message, f)
				}
			}
		})
	}
}

// The message must never carry a value from the body: it may be logged.
func TestDecodeEventMessageHasNoValues(t *testing.T) {
	body := edit(t, "ticket_created.json", func(m map[string]any) {
		tk := at(m, "data", "ticket")
		tk["subject"] = strings.Repeat("secret-subject ", 100)
		at(tk, "owner")["email"] = "secret-mail"
		tk["description"] = "secret-description\x00"
	})
	_, err := DecodeEvent(testMsgID, []byte(body), DecodeLimits{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error = %v", err)
	}
}

func TestProblemJSON(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Status: 400, Code: "invalid_payload", Message: "m", Fields: []string{"data.ticket.subject"}},
			`{"code":"invalid_payload","message":"m","fields":["data.ticket.subject"]}`},
		{Problem{Status: 422, Code: "unknown_event_type", Message: "m"}, `{"code":"unknown_event_type","message":"m"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(&tt.p)
		if err != nil || string(b) != tt.want {
			t.Errorf("json = %s, %v; want %s", b, err, tt.want)
		}
	}
	p := &Problem{Status: 400, Code: "invalid_payload", Message: "data.ticket.subject: required"}
	if got, want := p.Error(), "webhook: 400 invalid_payload: data.ticket.subject: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var err error = p
	var target *Problem
	if !errors.As(err, &target) || target != p {
		t.Errorf("errors.As failed")
	}
}
