package api_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"supportbridge/api"
	"supportbridge/api/apitest"
	"supportbridge/webhook"
	"supportbridge/webhook/httpapi"
)

// TestDocumentIsValid loads and validates the document (apitest.New does
// kin-openapi's validation and its own lint), then holds it to the code:
// the same routes as webhook/httpapi/routes.go, every error code the daemon can
// answer and no other, a webhooks entry per callback type, and the
// enumerations of bridge's types.
func TestDocumentIsValid(t *testing.T) {
	v := apitest.New(t)
	doc := v.Doc()

	t.Run("routes", func(t *testing.T) {
		served := servedRoutes(t)
		var documented []string
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				documented = append(documented, method+" "+path)
			}
		}
		sameSet(t, "route", "webhook/httpapi/routes.go", served, "the document", documented)
	})

	t.Run("error codes", func(t *testing.T) {
		codes := slices.Collect(maps.Values(constsOfType(t, "../bridge", "Code")))
		codes = append(codes, problemCodes(t, "../webhook/httpapi")...)
		enum := schemaEnum(t, v, "ErrorCode")
		sameSet(t, "error code", "bridge/errors.go and httpapi's problems", codes, "ErrorCode's enum", enum)
	})

	t.Run("callback types", func(t *testing.T) {
		var types []string
		for name, value := range constsNamed(t, "../bridge", "Callback") {
			if name != "CallbackSender" {
				types = append(types, value)
			}
		}
		var hooks []string
		for name := range doc.Webhooks {
			hooks = append(hooks, name)
		}
		sameSet(t, "callback type", "bridge/notify.go", types, "the document's webhooks", hooks)
		// Each entry's schema fixes its type: a callback validated under
		// another entry fails.
		for _, typ := range types {
			props := doc.Webhooks[typ].Post.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties
			if c := props["type"]; c == nil || c.Value.Const != typ {
				t.Errorf("webhook %s: its schema does not fix type to %q", typ, typ)
			}
		}
	})

	t.Run("event types", func(t *testing.T) {
		types := slices.Collect(maps.Values(constsOfType(t, "../bridge", "EventType")))
		ev := doc.Components.Schemas["WebhookEvent"].Value
		var mapped []string
		for typ, ref := range ev.Discriminator.Mapping {
			mapped = append(mapped, typ)
			name := strings.TrimPrefix(ref.Ref, "#/components/schemas/")
			s := doc.Components.Schemas[name]
			if s == nil || s.Value.Properties["type"].Value.Const != typ {
				t.Errorf("%s: %s does not fix type to %q", typ, ref.Ref, typ)
			}
			if !slices.ContainsFunc(ev.OneOf, func(r *openapi3.SchemaRef) bool { return r.Ref == ref.Ref }) {
				t.Errorf("%s: %s is not one of WebhookEvent's oneOf", typ, ref.Ref)
			}
		}
		if len(ev.OneOf) != len(ev.Discriminator.Mapping) {
			t.Errorf("WebhookEvent: %d in oneOf, %d in the discriminator's mapping", len(ev.OneOf), len(ev.Discriminator.Mapping))
		}
		sameSet(t, "event type", "bridge/events.go", types, "WebhookEvent's discriminator", mapped)
	})

	t.Run("enumerations", func(t *testing.T) {
		for goType, schema := range map[string]string{
			"Status":           "TicketStatus",
			"EscalationStatus": "EscalationStatus",
			"DeskStatusValue":  "DeskStatusValue",
			"NotificationType": "NotificationType",
		} {
			values := slices.Collect(maps.Values(constsOfType(t, "../bridge", goType)))
			sameSet(t, goType, "bridge."+goType, values, schema+"'s enum", schemaEnum(t, v, schema))
		}
		digests := slices.Collect(maps.Values(constsOfType(t, "../bridge", "Digest")))
		enum := slices.DeleteFunc(schemaEnum(t, v, "EntReferent", "digest"), func(s string) bool { return s == "" })
		sameSet(t, "digest", "bridge.Digest", digests, "EntReferent.digest's enum", enum)
	})
}

// TestServedDocument: GET /openapi.yaml answers the embedded document,
// without a token, as application/yaml.
func TestServedDocument(t *testing.T) {
	v := apitest.New(t)
	srv := httptest.NewServer(httpapi.NewServer(fixtureService{}, httpapi.Options{
		Verifier: &webhook.Verifier{Keys: [][]byte{testKey}}, APITokens: []string{testToken}}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/openapi.yaml", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, api.Document()) {
		t.Errorf("served document differs from api.Document()")
	}
	v.Exchange(t, req, nil, resp.StatusCode, resp.Header, body)
	if _, err := apitest.Load(body); err != nil {
		t.Errorf("served document: %v", err)
	}
}

// servedRoutes reads the patterns of webhook/httpapi/routes.go, as "METHOD /path"
// with "/{$}" written "/".
func servedRoutes(t *testing.T) []string {
	t.Helper()
	f := parseFile(t, "../webhook/httpapi/routes.go")
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("routes.go: a %s whose pattern is not a literal", sel.Sel.Name)
			return true
		}
		pattern, _ := strconv.Unquote(lit.Value)
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			t.Errorf("routes.go: pattern %q has no method", pattern)
			return true
		}
		path = strings.TrimSuffix(path, "{$}")
		if len(path) > 1 {
			path = strings.TrimSuffix(path, "/")
		}
		out = append(out, method+" "+path)
		return true
	})
	if len(out) == 0 {
		t.Fatal("no route found in webhook/httpapi/routes.go")
	}
	return out
}

// constsOfType returns the string constants of a Go type declared in the
// package in dir (test files aside), by name.
func constsOfType(t *testing.T, dir, typeName string) map[string]string {
	t.Helper()
	out := map[string]string{}
	eachConst(t, dir, func(name string, typ ast.Expr, value ast.Expr) {
		id, ok := typ.(*ast.Ident)
		if !ok || id.Name != typeName {
			return
		}
		if s, ok := stringLit(value); ok {
			out[name] = s
		}
	})
	if len(out) == 0 {
		t.Fatalf("no constant of type %s in %s", typeName, dir)
	}
	return out
}

// constsNamed returns the string constants whose name starts with prefix.
func constsNamed(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	eachConst(t, dir, func(name string, _ ast.Expr, value ast.Expr) {
		if s, ok := stringLit(value); ok && strings.HasPrefix(name, prefix) {
			out[name] = s
		}
	})
	if len(out) == 0 {
		t.Fatalf("no constant named %s… in %s", prefix, dir)
	}
	return out
}

func eachConst(t *testing.T, dir string, f func(name string, typ ast.Expr, value ast.Expr)) {
	t.Helper()
	for _, file := range packageFiles(t, dir) {
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						f(name.Name, vs.Type, vs.Values[i])
					}
				}
			}
		}
	}
}

// problemCodes returns the codes httpapi answers with: the Code of every
// Problem literal (a string, a constant of httpapi, or string(bridge.X)),
// and the strings assigned to a variable named code.
func problemCodes(t *testing.T, dir string) []string {
	t.Helper()
	files := packageFiles(t, dir)
	local := map[string]ast.Expr{}
	for _, file := range files {
		for _, decl := range file.Decls {
			if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.CONST {
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							local[name.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	bridgeCodes := constsOfType(t, "../bridge", "Code")
	var resolve func(e ast.Expr) (string, bool)
	resolve = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			return stringLit(e)
		case *ast.Ident:
			if v, ok := local[e.Name]; ok {
				return resolve(v)
			}
		case *ast.CallExpr: // string(bridge.CodeX)
			if fn, ok := e.Fun.(*ast.Ident); ok && fn.Name == "string" && len(e.Args) == 1 {
				if sel, ok := e.Args[0].(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "bridge" {
						v, ok := bridgeCodes[sel.Sel.Name]
						return v, ok
					}
				}
			}
		}
		return "", false
	}
	var out []string
	for _, file := range files {
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); !ok || id.Name != "Problem" {
					return true
				}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Code" {
						continue
					}
					if s, ok := resolve(kv.Value); ok {
						out = append(out, s)
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if id, ok := lhs.(*ast.Ident); ok && id.Name == "code" && i < len(n.Rhs) {
						if s, ok := resolve(n.Rhs[i]); ok {
							out = append(out, s)
						}
					}
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatal("no Problem code found in httpapi")
	}
	return out
}

func packageFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no Go file in %s: %v", dir, err)
	}
	var out []*ast.File
	for _, name := range names {
		if !strings.HasSuffix(name, "_test.go") {
			out = append(out, parseFile(t, name))
		}
	}
	return out
}

func parseFile(t *testing.T, name string) *ast.File {
	t.Helper()
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// schemaEnum returns the string values of a component schema's enum, or of
// one of its properties'.
func schemaEnum(t *testing.T, v *apitest.Validator, name string, property ...string) []string {
	t.Helper()
	ref := v.Doc().Components.Schemas[name]
	if ref == nil {
		t.Fatalf("no schema %s", name)
	}
	s := ref.Value
	for _, p := range property {
		s = s.Properties[p].Value
	}
	var out []string
	for _, e := range s.Enum {
		if str, ok := e.(string); ok {
			out = append(out, str)
		}
	}
	if len(out) == 0 {
		t.Fatalf("schema %s %v has no enum", name, property)
	}
	return out
}

// sameSet fails the test for every value in one list and not the other.
func sameSet(t *testing.T, what, aName string, a []string, bName string, b []string) {
	t.Helper()
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, s := range list {
			m[s] = true
		}
		return m
	}
	am, bm := in(a), in(b)
	var onlyA, onlyB []string
	for s := range am {
		if !bm[s] {
			onlyA = append(onlyA, s)
		}
	}
	for s := range bm {
		if !am[s] {
			onlyB = append(onlyB, s)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	for _, s := range onlyA {
		t.Errorf("%s %q: in %s, not in %s", what, s, aName, bName)
	}
	for _, s := range onlyB {
		t.Errorf("%s %q: in %s, not in %s", what, s, bName, aName)
	}
}
