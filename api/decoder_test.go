package api_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"supportbridge/api/apitest"
	"supportbridge/webhook/httpapi"
)

// The valid bodies of httpapi's own decoder tests.
const validDir = "../webhook/httpapi/testdata/valid"

func body(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(validDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit changes a valid body as a generic map.
func edit(t *testing.T, name string, change func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body(t, name)), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// in walks into a decoded body: string keys for objects, ints for arrays.
func in(m map[string]any, path ...any) map[string]any {
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

type verdictCase struct {
	name string
	body string
}

// TestSchemasAgreeWithDecoder sends the same bodies to httpapi.DecodeEvent
// and to the document's WebhookEvent schema (through a signed request):
// each is taken by both or refused by both. The rules the schemas cannot
// hold (they span several values, or depend on the configuration) are
// listed apart, with the side that refuses.
func TestSchemasAgreeWithDecoder(t *testing.T) {
	v := apitest.New(t)
	created := func(change func(tk map[string]any)) string {
		return edit(t, "ticket_created.json", func(m map[string]any) { change(in(m, "data", "ticket")) })
	}
	structure := func(change func(st map[string]any)) string {
		return edit(t, "structure_upserted.json", func(m map[string]any) { change(in(m, "data", "structure")) })
	}
	commented := func(change func(c map[string]any)) string {
		return edit(t, "ticket_commented.json", func(m map[string]any) { change(in(m, "data", "comment")) })
	}
	updated := func(changes map[string]any) string {
		return edit(t, "ticket_updated.json", func(m map[string]any) { in(m, "data")["changes"] = changes })
	}
	attachment := func(field string, value any) string {
		return created(func(tk map[string]any) { in(tk, "attachments", 0)[field] = value })
	}

	files, err := filepath.Glob(filepath.Join(validDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid bodies in %s", validDir)
	}
	var valid []verdictCase
	for _, f := range files {
		valid = append(valid, verdictCase{filepath.Base(f), body(t, filepath.Base(f))})
	}
	valid = append(valid, []verdictCase{
		{"id of 128 characters", created(func(tk map[string]any) {
			tk["id"] = strings.Repeat("a", 64) + "AZ09._:@-" + strings.Repeat("z", 55)
		})},
		{"locale en-GB", created(func(tk map[string]any) { tk["locale"] = "en-GB" })},
		{"locale empty", created(func(tk map[string]any) { tk["locale"] = "" })},
		{"locale null", created(func(tk map[string]any) { tk["locale"] = nil })},
		{"locale absent", created(func(tk map[string]any) { delete(tk, "locale") })},
		{"optional fields empty or null", created(func(tk map[string]any) {
			in(tk, "owner")["email"] = ""
			in(tk, "owner")["profile"] = nil
			in(tk, "category")["label"] = nil
			tk["attachments"] = nil
		})},
		{"description empty", created(func(tk map[string]any) { tk["description"] = "" })},
		{"description of 100000 characters", created(func(tk map[string]any) { tk["description"] = strings.Repeat("ô", 100_000) })},
		{"subject of 1000 characters", created(func(tk map[string]any) { tk["subject"] = strings.Repeat("é", 1000) })},
		{"tab, CR and LF in a text", created(func(tk map[string]any) { tk["subject"] = "a\tb\r\nc" })},
		{"base64 wrapped over lines", attachment("content_base64", "RXJyZXVyIDUwMCDDoCAwODoxMiBl\r\nbiBvdXZyYW50IFByb25vdGUK")},
		{"base64 with one padding", attachment("content_base64", "YWI=")},
		{"base64 of nothing", attachment("content_base64", "")},
		{"content type with parameters", attachment("content_type", `Text/Plain; Charset="utf-8"; name="a b.txt"`)},
		{"content type with a trailing semicolon", attachment("content_type", "text/plain;")},
		{"filename with a path", attachment("filename", `C:\Users\léa\capture.png`)},
		{"timestamp with fractions and offset", edit(t, "ticket_status_changed.json", func(m map[string]any) {
			m["timestamp"] = "2025-03-12T16:20:00.123456+01:00"
		})},
		{"actor without display name", edit(t, "ticket_status_changed.json", func(m map[string]any) {
			delete(in(m, "data", "actor"), "display_name")
		})},
		{"actor with a blank display name", edit(t, "ticket_status_changed.json", func(m map[string]any) {
			in(m, "data", "actor")["display_name"] = " "
		})},
		{"every status: new", edit(t, "ticket_status_changed.json", func(m map[string]any) { in(m, "data")["status"] = "new" })},
		{"every status: waiting", edit(t, "ticket_status_changed.json", func(m map[string]any) { in(m, "data")["status"] = "waiting" })},
		{"changes: description empty only", updated(map[string]any{"description": ""})},
		{"changes: subject, others null", updated(map[string]any{"subject": "x", "description": nil, "category": nil})},
		{"comment without attachments key", commented(func(c map[string]any) { delete(c, "attachments") })},
		{"comment of an attachment only, no body", commented(func(c map[string]any) { delete(c, "body") })},
		{"comment with a body, attachments null", commented(func(c map[string]any) { c["attachments"] = nil })},
		{"referent digest absent, null, never", structure(func(st map[string]any) {
			delete(in(st, "referents", 0), "digest")
			in(st, "referents", 1)["digest"] = nil
			in(st, "referents", 2)["digest"] = "never"
		})},
		{"referent locale null", structure(func(st map[string]any) { in(st, "referents", 0)["locale"] = nil })},
		{"parent_id empty", structure(func(st map[string]any) { st["parent_id"] = "" })},
		{"parent_id null, uai null", structure(func(st map[string]any) { st["parent_id"] = nil; st["uai"] = nil })},
	}...)

	const ts = `"timestamp":"2025-03-10T07:45:00Z"`
	invalid := []verdictCase{
		{"missing type", `{` + ts + `,"data":{}}`},
		{"unknown type", `{"type":"ticket.deleted",` + ts + `,"data":{}}`},
		{"type not a string", `{"type":3,` + ts + `,"data":{}}`},
		{"missing timestamp", edit(t, "ticket_status_changed.json", func(m map[string]any) { delete(m, "timestamp") })},
		{"timestamp not RFC 3339", edit(t, "ticket_status_changed.json", func(m map[string]any) { m["timestamp"] = "2025-03-12 16:20:00" })},
		{"timestamp on a day February lacks", edit(t, "ticket_status_changed.json", func(m map[string]any) { m["timestamp"] = "2025-02-30T10:00:00Z" })},
		{"missing data", edit(t, "ticket_status_changed.json", func(m map[string]any) { delete(m, "data") })},
		{"data null", edit(t, "ticket_status_changed.json", func(m map[string]any) { m["data"] = nil })},
		{"unknown field at the top", edit(t, "ticket_status_changed.json", func(m map[string]any) { m["extra"] = 1 })},
		{"unknown field in data", edit(t, "ticket_status_changed.json", func(m map[string]any) { in(m, "data")["note"] = "x" })},
		{"unknown field in the ticket", created(func(tk map[string]any) { tk["priority"] = "high" })},
		{"unknown field in the owner", created(func(tk map[string]any) { in(tk, "owner")["role"] = "x" })},
		{"unknown field in the category", created(func(tk map[string]any) { in(tk, "category")["x"] = 1 })},
		{"unknown field in an attachment", attachment("size", 3)},
		{"unknown field in a referent", structure(func(st map[string]any) { in(st, "referents", 0)["phone"] = "x" })},
		{"unknown field in a comment", commented(func(c map[string]any) { c["edited"] = true })},
		{"unknown field in the changes", updated(map[string]any{"subject": "x", "priority": "high"})},
		{"a field of another event type", edit(t, "ticket_status_changed.json", func(m map[string]any) {
			in(m, "data")["changes"] = map[string]any{"subject": "x"}
		})},
		{"ticket null", edit(t, "ticket_created.json", func(m map[string]any) { in(m, "data")["ticket"] = nil })},
		{"id with a space", created(func(tk map[string]any) { tk["id"] = "t 1" })},
		{"id of 129 characters", created(func(tk map[string]any) { tk["id"] = strings.Repeat("a", 129) })},
		{"id empty", created(func(tk map[string]any) { tk["id"] = "" })},
		{"id a number", created(func(tk map[string]any) { tk["id"] = 42 })},
		{"structure_id missing", created(func(tk map[string]any) { delete(tk, "structure_id") })},
		{"owner's display name missing", created(func(tk map[string]any) { delete(in(tk, "owner"), "display_name") })},
		{"owner's display name blank", created(func(tk map[string]any) { in(tk, "owner")["display_name"] = " \t " })},
		{"owner's email with a name", created(func(tk map[string]any) { in(tk, "owner")["email"] = "Léa <lea@school.example>" })},
		{"owner's email not an address", created(func(tk map[string]any) { in(tk, "owner")["email"] = "lea" })},
		{"category's app blank", created(func(tk map[string]any) { in(tk, "category")["app"] = "" })},
		{"category's label of 1001 characters", created(func(tk map[string]any) { in(tk, "category")["label"] = strings.Repeat("x", 1001) })},
		{"subject blank", created(func(tk map[string]any) { tk["subject"] = "   " })},
		{"subject of 1001 characters", created(func(tk map[string]any) { tk["subject"] = strings.Repeat("é", 1001) })},
		{"subject with a control character", created(func(tk map[string]any) { tk["subject"] = "a\u0001b" })},
		{"subject with a C1 control character", created(func(tk map[string]any) { tk["subject"] = "a\u0085b" })},
		{"description missing", created(func(tk map[string]any) { delete(tk, "description") })},
		{"description of 100001 characters", created(func(tk map[string]any) { tk["description"] = strings.Repeat("ô", 100_001) })},
		{"description with a NUL", created(func(tk map[string]any) { tk["description"] = "a\u0000" })},
		{"locale FR", created(func(tk map[string]any) { tk["locale"] = "FR" })},
		{"locale fr_FR", created(func(tk map[string]any) { tk["locale"] = "fr_FR" })},
		{"created_at missing", created(func(tk map[string]any) { delete(tk, "created_at") })},
		{"attachments not an array", created(func(tk map[string]any) { tk["attachments"] = "a-1" })},
		{"attachment null", created(func(tk map[string]any) { tk["attachments"] = []any{nil} })},
		{"attachment's id missing", created(func(tk map[string]any) { delete(in(tk, "attachments", 0), "id") })},
		{"filename blank", attachment("filename", " ")},
		{"filename of 256 characters", attachment("filename", strings.Repeat("f", 256))},
		{"content type without a subtype", attachment("content_type", "png")},
		{"content type with a bad parameter", attachment("content_type", "text/plain; charset")},
		{"content type empty", attachment("content_type", "")},
		{"base64 not base64", attachment("content_base64", "***")},
		{"base64 without its padding", attachment("content_base64", "YWI")},
		{"base64 with unused bits set", attachment("content_base64", "YWJ=")},
		{"base64 URL alphabet", attachment("content_base64", "-_8=")},
		{"base64 missing", created(func(tk map[string]any) { delete(in(tk, "attachments", 0), "content_base64") })},
		{"status unknown", edit(t, "ticket_status_changed.json", func(m map[string]any) { in(m, "data")["status"] = "reopened" })},
		{"status missing", edit(t, "ticket_status_changed.json", func(m map[string]any) { delete(in(m, "data"), "status") })},
		{"actor missing", edit(t, "ticket_status_changed.json", func(m map[string]any) { delete(in(m, "data"), "actor") })},
		{"actor's id missing", edit(t, "ticket_escalation_requested.json", func(m map[string]any) { delete(in(m, "data", "actor"), "id") })},
		{"changes empty", updated(map[string]any{})},
		{"changes all null", updated(map[string]any{"subject": nil, "description": nil, "category": nil})},
		{"changes missing", edit(t, "ticket_updated.json", func(m map[string]any) { delete(in(m, "data"), "changes") })},
		{"changes: subject blank", updated(map[string]any{"subject": " "})},
		{"comment blank without attachments", commented(func(c map[string]any) { c["body"] = " \n"; c["attachments"] = []any{} })},
		{"comment without body nor attachments", commented(func(c map[string]any) { delete(c, "body"); delete(c, "attachments") })},
		{"comment's author missing", commented(func(c map[string]any) { delete(c, "author") })},
		{"comment's created_at missing", commented(func(c map[string]any) { delete(c, "created_at") })},
		{"structure's name blank", structure(func(st map[string]any) { st["name"] = "" })},
		{"structure's name missing", structure(func(st map[string]any) { delete(st, "name") })},
		{"escalation_enabled a string", structure(func(st map[string]any) { st["escalation_enabled"] = "yes" })},
		{"escalation_enabled missing", structure(func(st map[string]any) { delete(st, "escalation_enabled") })},
		{"referents missing", structure(func(st map[string]any) { delete(st, "referents") })},
		{"referents null", structure(func(st map[string]any) { st["referents"] = nil })},
		{"parent_id with a space", structure(func(st map[string]any) { st["parent_id"] = "a b" })},
		{"uai of 1001 characters", structure(func(st map[string]any) { st["uai"] = strings.Repeat("0", 1001) })},
		{"referent's digest monthly", structure(func(st map[string]any) { in(st, "referents", 0)["digest"] = "monthly" })},
		{"referent's locale de", structure(func(st map[string]any) { in(st, "referents", 0)["locale"] = "de" })},
		{"referent's email missing", structure(func(st map[string]any) { delete(in(st, "referents", 0), "email") })},
		{"referent's email empty", structure(func(st map[string]any) { in(st, "referents", 0)["email"] = "" })},
		{"referent's email with a name", structure(func(st map[string]any) {
			in(st, "referents", 0)["email"] = "Mme Martin <martin@school.example>"
		})},
		{"referent's display name blank", structure(func(st map[string]any) { in(st, "referents", 0)["display_name"] = "  " })},
	}

	// What the schemas cannot say; the verdicts differ, on purpose.
	decoderOnly := []verdictCase{ // refused by the decoder, taken by the schema
		{"two attachments with one id", created(func(tk map[string]any) { in(tk, "attachments", 1)["id"] = "a-1" })},
		{"a structure its own parent", structure(func(st map[string]any) { st["parent_id"] = st["id"] })},
		{"two referents with one id", structure(func(st map[string]any) { in(st, "referents", 1)["id"] = "u-ref1" })},
		{"a filename that is only dots", attachment("filename", "..")},
		{"a content type with a repeated parameter", attachment("content_type", "text/plain; a=1; a=2")},
		{"a display name of non-breaking spaces", created(func(tk map[string]any) { in(tk, "owner")["display_name"] = "\u00a0\u00a0" })},
	}
	schemaOnly := []verdictCase{ // taken by the decoder, refused by the schema (maxLength counts the spaces)
		{"a subject of 1000 characters between spaces", created(func(tk map[string]any) {
			tk["subject"] = "  " + strings.Repeat("é", 1000) + "\t"
		})},
	}

	decoder := func(b string) error {
		_, err := httpapi.DecodeEvent("msg_1", []byte(b), httpapi.DecodeLimits{})
		return err
	}
	// The request's verdict (WebhookEvent's oneOf), and the verdict of the
	// one schema its type names, which must agree and says why.
	mapping := v.Doc().Components.Schemas["WebhookEvent"].Value.Discriminator.Mapping
	schema := func(b string) error {
		err := v.CheckRequest(signedWebhook("http://daemon.test", []byte(b)), []byte(b))
		var env struct{ Type any }
		_ = json.Unmarshal([]byte(b), &env)
		typ, _ := env.Type.(string)
		ref, ok := mapping[typ]
		if !ok {
			return err
		}
		branch := v.CheckSchema(strings.TrimPrefix(ref.Ref, "#/components/schemas/"), []byte(b))
		if (err == nil) != (branch == nil) {
			t.Errorf("WebhookEvent says %v, %s says %v", err, ref.Ref, branch)
		}
		return branch
	}
	for _, c := range valid {
		t.Run("valid/"+c.name, func(t *testing.T) {
			if err := decoder(c.body); err != nil {
				t.Fatalf("decoder refuses: %v", err)
			}
			if err := schema(c.body); err != nil {
				t.Errorf("the decoder takes it, the schema refuses: %v", err)
			}
		})
	}
	for _, c := range invalid {
		t.Run("invalid/"+c.name, func(t *testing.T) {
			if err := decoder(c.body); err == nil {
				t.Fatalf("decoder takes it")
			}
			if err := schema(c.body); err == nil {
				t.Errorf("the decoder refuses it, the schema takes it")
			}
		})
	}
	for _, c := range decoderOnly {
		t.Run("decoder only/"+c.name, func(t *testing.T) {
			if err := decoder(c.body); err == nil {
				t.Errorf("decoder takes it")
			}
			if err := schema(c.body); err != nil {
				t.Errorf("the schema refuses it too (move it to invalid): %v", err)
			}
		})
	}
	for _, c := range schemaOnly {
		t.Run("schema only/"+c.name, func(t *testing.T) {
			if err := decoder(c.body); err != nil {
				t.Errorf("decoder refuses it: %v", err)
			}
			if err := schema(c.body); err == nil {
				t.Errorf("the schema takes it too (move it to valid)")
			}
		})
	}
}
