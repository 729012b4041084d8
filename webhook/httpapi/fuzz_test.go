package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"supportbridge/bridge"
)

func FuzzDecodeEvent(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed in testdata/valid: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0), uint8(0))
		f.Add(b, uint16(20), uint8(1))
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"type":"ticket.created"}`, `{"type":"ticket.merged"}`,
		`{"type":"ticket.commented","timestamp":"2025-03-10T07:45:00Z","data":{"ticket_id":"t1","comment":{"id":"c1","author":{"id":"u1"},"body":"\ud83d\ude00","created_at":"2025-03-10T07:45:00Z"}}}`,
		`{"type":"ticket.updated","timestamp":"2025-03-10T07:45:00Z","data":{"ticket_id":"t1","actor":{"id":"u1"},"changes":{"subject":"\ud800"}}}`,
		"{\"type\":\"structure.upserted\",\"\xff\":1}",
		`{"a":{"a":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}`,
	} {
		f.Add([]byte(s), uint16(0), uint8(0))
	}

	f.Fuzz(func(t *testing.T, body []byte, maxBytes uint16, maxCount uint8) {
		lim := DecodeLimits{MaxAttachmentBytes: int64(maxBytes), MaxAttachments: int(maxCount)}
		ev, err := DecodeEvent(testMsgID, body, lim)
		again, err2 := DecodeEvent(testMsgID, body, lim)
		if !reflect.DeepEqual(ev, again) || (err == nil) != (err2 == nil) {
			t.Fatalf("two decodings differ: %v / %v", err, err2)
		}
		if err != nil {
			checkProblem(t, ev, err)
			return
		}
		checkEvent(t, ev, body, lim)
	})
}

func checkProblem(t *testing.T, ev bridge.Event, err error) {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %T is not a *Problem: %v", err, err)
	}
	switch {
	case p.Status == http.StatusBadRequest && p.Code == "invalid_payload":
	case p.Status == http.StatusUnprocessableEntity && p.Code == "unknown_event_type":
		if !slices.Equal(p.Fields, []string{"type"}) {
			t.Fatalf("422 with fields %q", p.Fields)
		}
	default:
		t.Fatalf("problem %d %s", p.Status, p.Code)
	}
	if p.Message == "" || !utf8.ValidString(p.Message) || strings.ContainsAny(p.Message, "\r\n") {
		t.Fatalf("message %q", p.Message)
	}
	if len(p.Fields) > maxProblemFields || !slices.IsSorted(p.Fields) || len(slices.Compact(slices.Clone(p.Fields))) != len(p.Fields) {
		t.Fatalf("fields not sorted, unique and at most %d: %q", maxProblemFields, p.Fields)
	}
	for _, f := range p.Fields {
		if f == "" || !utf8.ValidString(f) || strings.ContainsFunc(f, unicode.IsControl) {
			t.Fatalf("field path %q", f)
		}
	}
	if !reflect.DeepEqual(ev, bridge.Event{}) {
		t.Fatalf("event returned with an error: %+v", ev)
	}
}

func checkEvent(t *testing.T, ev bridge.Event, body []byte, lim DecodeLimits) {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("accepted a body that is not JSON: %q", body)
	}
	if ev.ID != testMsgID || !ev.Type.Known() || ev.OccurredAt.IsZero() {
		t.Fatalf("event %q %q at %v", ev.ID, ev.Type, ev.OccurredAt)
	}
	// Exactly the fields of the type are set.
	set := map[string]bool{
		"Structure": ev.Structure != nil, "NewTicket": ev.NewTicket != nil, "TicketID": ev.TicketID != "",
		"Actor": ev.Actor != (bridge.Person{}), "Changes": ev.Changes != nil, "Comment": ev.Comment != nil, "Status": ev.Status != "",
	}
	want := map[bridge.EventType][]string{
		bridge.EventStructureUpserted:   {"Structure"},
		bridge.EventTicketCreated:       {"NewTicket"},
		bridge.EventTicketUpdated:       {"TicketID", "Actor", "Changes"},
		bridge.EventTicketCommented:     {"TicketID", "Comment"},
		bridge.EventStatusChanged:       {"TicketID", "Actor", "Status"},
		bridge.EventEscalationRequested: {"TicketID", "Actor"},
	}[ev.Type]
	for name, isSet := range set {
		if isSet != slices.Contains(want, name) {
			t.Fatalf("%s: field %s set = %v", ev.Type, name, isSet)
		}
	}
	walkStrings(t, reflect.ValueOf(ev), "ev")

	ids := map[string]bool{}
	checkAttachments := func(as []bridge.AttachmentData) {
		if lim.MaxAttachments > 0 && len(as) > lim.MaxAttachments {
			t.Fatalf("%d attachments over the limit %d", len(as), lim.MaxAttachments)
		}
		for _, a := range as {
			if a.Size != int64(len(a.Content)) || (lim.MaxAttachmentBytes > 0 && a.Size > lim.MaxAttachmentBytes) {
				t.Fatalf("attachment %s: size %d, %d bytes, limit %d", a.ID, a.Size, len(a.Content), lim.MaxAttachmentBytes)
			}
			if !bridge.ValidID(a.ID) || ids[a.ID] || strings.TrimSpace(a.Filename) == "" || a.ContentType == "" {
				t.Fatalf("attachment %+v", a.Attachment)
			}
			// A decoded name is already a bare, safe name.
			if bridge.SafeFilename(a.Filename) != a.Filename || strings.ContainsAny(a.Filename, "/\\\x00\r\n\u202e") {
				t.Fatalf("unsafe file name %q", a.Filename)
			}
			ids[a.ID] = true
		}
	}
	switch ev.Type {
	case bridge.EventTicketCreated:
		nt := ev.NewTicket
		if !bridge.ValidID(nt.ID) || !bridge.ValidID(nt.StructureID) || !bridge.ValidID(nt.Owner.ID) || strings.TrimSpace(nt.Owner.DisplayName) == "" ||
			strings.TrimSpace(nt.Subject) == "" || !validLocale(nt.Locale) || nt.CreatedAt.IsZero() || strings.TrimSpace(nt.Category.App) == "" {
			t.Fatalf("ticket %+v", nt)
		}
		checkAttachments(nt.Attachments)
	case bridge.EventTicketCommented:
		cm := ev.Comment
		if !bridge.ValidID(ev.TicketID) || !bridge.ValidID(cm.ID) || !bridge.ValidID(cm.Author.ID) || cm.CreatedAt.IsZero() ||
			(strings.TrimSpace(cm.Body) == "" && len(cm.Attachments) == 0) {
			t.Fatalf("comment %+v", cm)
		}
		checkAttachments(cm.Attachments)
	case bridge.EventTicketUpdated:
		if ev.Changes.Subject == nil && ev.Changes.Description == nil && ev.Changes.Category == nil {
			t.Fatal("an update without a change")
		}
	case bridge.EventStatusChanged:
		if !ev.Status.Valid() {
			t.Fatalf("status %q", ev.Status)
		}
	case bridge.EventStructureUpserted:
		s := ev.Structure
		if !bridge.ValidID(s.ID) || strings.TrimSpace(s.Name) == "" || s.Referents == nil || s.ParentID == s.ID {
			t.Fatalf("structure %+v", s)
		}
		for _, r := range s.Referents {
			if !bridge.ValidID(r.ID) || !r.Digest.Valid() || r.Email == "" || (r.Locale != "" && r.Locale != "fr" && r.Locale != "en") {
				t.Fatalf("referent %+v", r)
			}
		}
	}
}

// walkStrings checks every string of a decoded event: valid UTF-8 and no
// control character but tab, CR and LF.
func walkStrings(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n'
		}) {
			t.Fatalf("%s = %q", path, s)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(t, v.Elem(), path)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			walkStrings(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // attachment bytes are binary
		}
		for i := range v.Len() {
			walkStrings(t, v.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
	}
}
