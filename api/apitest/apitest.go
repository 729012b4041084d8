// Package apitest checks the daemon's HTTP exchanges and callbacks against
// the OpenAPI document of package api, with kin-openapi
// (github.com/getkin/kin-openapi): the document is loaded and validated
// once (New), then every request and its response (Exchange) and every
// callback body (Callback) is validated against it, schemas included.
//
// kin-openapi validates the schemas of an OpenAPI 3.1 document with a JSON
// Schema 2020-12 validator (github.com/santhosh-tekuri/jsonschema/v6), so
// const, type arrays with "null", unevaluatedProperties, anyOf/oneOf and
// patterns are all enforced. Two formats are given the daemon's own
// reading: "email" is a bare address as net/mail parses it (the decoder's
// rule), "date-time" is what time.Parse(time.RFC3339) takes.
package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"supportbridge/api"
)

// Validator validates exchanges and callbacks against one document, and
// keeps which documented responses and callbacks it has seen (Unseen).
// It is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options

	mu   sync.Mutex
	seen map[string]bool // "GET /v1/tickets/{id} 404", "webhook ticket.escalated"
}

// New loads and validates the document of package api; the test fails
// when it does not load or is not a valid OpenAPI document.
func New(t testing.TB) *Validator {
	t.Helper()
	v, err := Load(api.Document())
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return v
}

// Load is New for any document, with an error instead of a failed test.
func Load(data []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi %q: want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	if err := lint(doc); err != nil {
		return nil, err
	}
	// Route on paths alone: the servers of the document name the default
	// listen address, not the test's.
	routing := *doc
	routing.Servers = nil
	router, err := gorillamux.NewRouter(&routing)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    credentialsPresent,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("email", openapi3.NewCallbackValidator(bareEmail)),
			openapi3.WithStringFormatValidator("date-time", openapi3.NewCallbackValidator(rfc3339)),
		},
	}
	// One line per problem: where and what, without the schema's dump.
	opts.WithCustomSchemaErrorFunc(schemaReason)
	return &Validator{doc: doc, router: router, opts: opts, seen: map[string]bool{}}, nil
}

// Doc returns the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// lint checks what OpenAPI allows but this contract does not: an
// operation without an id or without its own security (an endpoint left
// open by omission), a response content without a schema.
func lint(doc *openapi3.T) error {
	var problems []string
	seen := map[string]string{}
	check := func(where string, op *openapi3.Operation) {
		if op.OperationID == "" {
			problems = append(problems, where+": no operationId")
		} else if other, dup := seen[op.OperationID]; dup {
			problems = append(problems, where+": operationId "+op.OperationID+" also used by "+other)
		} else {
			seen[op.OperationID] = where
		}
		if op.Security == nil {
			problems = append(problems, where+": no security of its own (write security: [] for a public one)")
		}
		for code, r := range op.Responses.Map() {
			for mt, c := range r.Value.Content {
				if c.Schema == nil {
					problems = append(problems, fmt.Sprintf("%s %s %s: no schema", where, code, mt))
				}
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			check(method+" "+path, op)
		}
	}
	for name, item := range doc.Webhooks {
		if item.Post == nil || len(item.Operations()) != 1 {
			problems = append(problems, "webhook "+name+": want exactly one operation, post")
			continue
		}
		check("webhook "+name, item.Post)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return errors.New("lint:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

// Exchange validates a request the daemon was sent and the answer it gave:
// the operation exists, the status is one the operation documents, the
// response's content type, headers and body match it. The request itself
// (parameters, credentials' presence, body) must be valid unless the
// daemon refused it as malformed or unauthenticated (400, 401, 413, 415,
// 422): those requests are expected to break the document. reqBody is the
// body that was sent (req.Body is not read).
func (v *Validator) Exchange(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) {
	t.Helper()
	if err := v.CheckExchange(req, reqBody, status, header, respBody); err != nil {
		t.Errorf("%s %s → %d: %v\nresponse body: %s", req.Method, req.URL.RequestURI(), status, err, clip(respBody))
	}
}

// CheckExchange is Exchange with an error instead of a failed test.
func (v *Validator) CheckExchange(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	in, reqErr, err := v.request(req, reqBody)
	if err != nil {
		return err
	}
	v.see(fmt.Sprintf("%s %s %d", in.Route.Method, in.Route.Path, status))
	if reqErr != nil && !RequestFault(status) {
		return fmt.Errorf("the request breaks the document, yet was answered %d: %w", status, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status,
		Header: header, Options: v.opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

// Unseen lists what the document gives and no Exchange or Callback has
// shown yet: "METHOD /path STATUS" for each documented response of each
// operation, "webhook TYPE" for each callback type; sorted.
func (v *Validator) Unseen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for path, item := range v.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if k := method + " " + path + " " + code; !v.seen[k] {
					out = append(out, k)
				}
			}
		}
	}
	for typ := range v.doc.Webhooks {
		if k := "webhook " + typ; !v.seen[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Seen lists what Exchange and Callback have shown, in Unseen's form;
// sorted.
func (v *Validator) Seen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.seen))
	for k := range v.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (v *Validator) see(k string) {
	v.mu.Lock()
	v.seen[k] = true
	v.mu.Unlock()
}

// CheckRequest validates a request alone: nil when the document accepts
// it. A test uses it to show that what the daemon refuses, the document
// refuses too.
func (v *Validator) CheckRequest(req *http.Request, reqBody []byte) error {
	_, reqErr, err := v.request(req, reqBody)
	if err != nil {
		return err
	}
	return reqErr
}

// RequestFault reports whether status says that the request itself was at
// fault (malformed, too large, of the wrong type, unauthenticated).
func RequestFault(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// request finds the operation of req and validates req against it; err is
// set when there is no such operation, reqErr when the request breaks it.
func (v *Validator) request(req *http.Request, body []byte) (in *openapi3filter.RequestValidationInput, reqErr, err error) {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		return nil, nil, fmt.Errorf("no operation in the document for %s %s: %w", req.Method, req.URL.Path, err)
	}
	in = &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: v.opts}
	reqErr = openapi3filter.ValidateRequest(context.Background(), in)
	return in, reqErr, nil
}

// Callback validates a callback the daemon posted: typ has an entry in the
// document's webhooks, body matches its schema (the envelope with its
// type, timestamp and data), and the headers carry the content type and
// the Standard Webhooks headers its security requires, well formed.
func (v *Validator) Callback(t testing.TB, typ string, body []byte, header http.Header) {
	t.Helper()
	if err := v.CheckCallback(typ, body, header); err != nil {
		t.Errorf("callback %s: %v\nbody: %s", typ, err, clip(body))
	}
}

// CheckCallback is Callback with an error instead of a failed test.
func (v *Validator) CheckCallback(typ string, body []byte, header http.Header) error {
	item := v.doc.Webhooks[typ]
	if item == nil || item.Post == nil {
		return fmt.Errorf("no entry %q in the document's webhooks", typ)
	}
	v.see("webhook " + typ)
	op := item.Post
	var problems []string
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	media := op.RequestBody.Value.Content.Get(mt)
	if media == nil || media.Schema == nil {
		return fmt.Errorf("content type %q: not one the document gives", header.Get("Content-Type"))
	}
	if err := v.callbackHeaders(op, header); err != nil {
		problems = append(problems, err.Error())
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if err := media.Schema.Value.VisitJSON(value, v.schemaOptions()...); err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// CheckSchema validates a JSON value against a schema of the document's
// components, by name, as the request and response validation would.
func (v *Validator) CheckSchema(name string, value []byte) error {
	ref := v.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("no schema %q in the document's components", name)
	}
	var decoded any
	if err := json.Unmarshal(value, &decoded); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	return ref.Value.VisitJSON(decoded, v.schemaOptions()...)
}

func (v *Validator) schemaOptions() []openapi3.SchemaValidationOption {
	return append([]openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020(), openapi3.MultiErrors(),
		openapi3.SetSchemaErrorMessageCustomizer(schemaReason)}, v.opts.SchemaValidationOptions...)
}

// schemaReason is a schema error as one line: the JSON Schema 2020-12
// validator's reason says where ("at '/escalation': …").
func schemaReason(err *openapi3.SchemaError) string { return err.Reason }

// callbackHeaders checks that one of the operation's security requirements
// is met by the headers present, and the Standard Webhooks headers' form.
func (v *Validator) callbackHeaders(op *openapi3.Operation, h http.Header) error {
	if op.Security == nil || len(*op.Security) == 0 {
		return nil
	}
	var missing []string
	for _, reqmt := range *op.Security {
		missing = missing[:0]
		for name := range reqmt {
			s := v.doc.Components.SecuritySchemes[name]
			if s == nil || s.Value == nil {
				return fmt.Errorf("security scheme %q not declared", name)
			}
			if s.Value.Type == "apiKey" && s.Value.In == "header" && h.Get(s.Value.Name) == "" {
				missing = append(missing, s.Value.Name)
			}
		}
		if len(missing) == 0 {
			return standardWebhookHeaders(h)
		}
	}
	sort.Strings(missing)
	return fmt.Errorf("headers missing: %s", strings.Join(missing, ", "))
}

// standardWebhookHeaders checks the form of the headers the Standard
// Webhooks specification gives: an id of 1 to 256 visible ASCII
// characters, Unix seconds, and space-separated "v1,<base64 of 32 bytes>".
func standardWebhookHeaders(h http.Header) error {
	id := h.Get("webhook-id")
	if id == "" || len(id) > 256 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return fmt.Errorf("webhook-id %q: want 1 to 256 visible ASCII characters", id)
	}
	ts := h.Get("webhook-timestamp")
	if ts == "" || len(ts) > 18 || strings.ContainsFunc(ts, func(r rune) bool { return r < '0' || r > '9' }) {
		return fmt.Errorf("webhook-timestamp %q: want Unix seconds", ts)
	}
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		mac, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || len(mac) != 32 {
			return fmt.Errorf("webhook-signature %q: want v1,<base64 HMAC-SHA256>", sig)
		}
	}
	return nil
}

// credentialsPresent is the authentication of the validator: the
// credentials a security scheme names are present and of the right form.
// Whether they are right is the daemon's to say (its 401s).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			return errors.New("no bearer token")
		}
	case s.Type == "apiKey" && s.In == "header":
		if r.Header.Get(s.Name) == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err != nil {
			return fmt.Errorf("no %s cookie", s.Name)
		}
	case s.Type == "apiKey" && s.In == "query":
		if !r.URL.Query().Has(s.Name) {
			return fmt.Errorf("no %s query parameter", s.Name)
		}
	default:
		return fmt.Errorf("security scheme %s %s: not checked by apitest", s.Type, s.Scheme)
	}
	return nil
}

// bareEmail is the webhook decoder's rule for an address: one that
// net/mail parses, without a display name, as written, at most 254 bytes.
func bareEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || len(s) > 254 {
		return errors.New("not a bare email address")
	}
	return nil
}

func rfc3339(s string) error {
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return errors.New("not an RFC 3339 date-time")
	}
	return nil
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
