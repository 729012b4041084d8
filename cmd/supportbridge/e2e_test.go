package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbridge/api"
	"supportbridge/api/apitest"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/webhook"
)

const (
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	oldSecret  = "whsec_c2VjcmV0LWtleS10aGF0LXdhcy1yb3RhdGVkLW91dA=="
	testToken  = "tok-0123456789abcdef"
)

// syncBuffer is an io.Writer safe for the daemon and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemonUnderTest struct {
	base   string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func writeConfig(t testing.TB, redisAddr string, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log_level: debug
redis: {addrs: [%q], key_prefix: "e2e:"}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}", %q]
  api_tokens: [%q]
  webhook_max_body: 64KiB
attachments: {max_bytes: 16KiB, max_count: 3}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: daily}]}
  - {id: s2, name: "Collège Jean Moulin", uai: "0750002B", escalation_enabled: false,
     referents: [{id: u-ref2, display_name: "M. Durand", email: "durand@school.example", digest: never}]}
%s`, redisAddr, oldSecret, testToken, extra)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func getenvWith(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// startDaemon runs the real program through run() and waits until /readyz
// answers.
func startDaemon(t *testing.T, cfgPath string) *daemonUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonUnderTest{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		d.done <- run(ctx, []string{"supportbridge", "serve", "--config", cfgPath},
			getenvWith(map[string]string{"SB_TEST_SECRET": testSecret}), d.stdout, d.stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenRE.FindStringSubmatch(d.stdout.String()); m != nil {
			d.base = m[1]
			break
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v\n%s", err, d.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if d.base == "" {
		t.Fatalf("daemon did not listen:\n%s", d.stderr.String())
	}
	for time.Now().Before(deadline) {
		resp, err := http.Get(d.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { d.stop(t) })
	waitConfiguredStructures(t, cfgPath)
	return d
}

// waitConfiguredStructures waits until the structures the configuration
// at cfgPath declares are in its Redis. A started daemon stores them in
// the background, and until then a demand of one of them is refused (409
// unknown_structure, which the ENT would retry): the tests send their
// first demand once they are stored.
func waitConfiguredStructures(t testing.TB, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath, getenvWith(map[string]string{"SB_TEST_SECRET": testSecret}))
	if err != nil {
		t.Fatalf("load %s: %v", cfgPath, err)
	}
	if len(cfg.Structures) == 0 {
		return
	}
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	store := redisstore.New(rdb, storeOptions(cfg))
	deadline := time.Now().Add(20 * time.Second)
	for _, st := range cfg.Structures {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := store.Structure(ctx, st.ID)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("structure %s of the configuration never stored: %v", st.ID, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (d *daemonUnderTest) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("daemon did not stop")
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.stderr.String())
	}
}

type answer struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

func (a answer) code() string {
	e, _ := a.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) fields() []string {
	e, _ := a.Body["error"].(map[string]any)
	var out []string
	fs, _ := e["fields"].([]any)
	for _, f := range fs {
		s, _ := f.(string)
		out = append(out, s)
	}
	return out
}

// contract is the OpenAPI document's validator, loaded once for the tests.
var contract = sync.OnceValues(func() (*apitest.Validator, error) { return apitest.Load(api.Document()) })

// do sends req and returns the answer; every request and its answer are
// checked against the OpenAPI document (api/openapi.yaml), so that the
// document and the daemon cannot drift apart.
func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	var reqBody []byte
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &a.Body)
	v, err := contract()
	if err != nil {
		t.Fatalf("the OpenAPI document: %v", err)
	}
	v.Exchange(t, req, reqBody, resp.StatusCode, resp.Header, raw)
	return a
}

var idSeq struct {
	sync.Mutex
	n int
}

func nextID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("msg_%d_%d", time.Now().UnixNano(), idSeq.n)
}

// signed builds a webhook request signed with secret at time ts.
func signed(t testing.TB, base, secret, id string, ts time.Time, body []byte) *http.Request {
	t.Helper()
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+"/v1/webhooks/ent", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	webhook.SignHeaders(req.Header, key, id, ts, body)
	return req
}

func (d *daemonUnderTest) post(t testing.TB, id string, body string) answer {
	t.Helper()
	return do(t, signed(t, d.base, testSecret, id, time.Now(), []byte(body)))
}

func (d *daemonUnderTest) get(t testing.TB, path string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", d.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return do(t, req)
}

func event(typ string, data string) string {
	return fmt.Sprintf(`{"type":%q,"timestamp":%q,"data":%s}`, typ, time.Now().UTC().Format(time.RFC3339), data)
}

func ticketCreated(id, structure string) string {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n-capture-" + id))
	return event("ticket.created", fmt.Sprintf(`{"ticket":{"id":%q,"structure_id":%q,
	  "owner":{"id":"u-owner","display_name":"Léa Dupont","email":"lea@school.example","profile":"Student"},
	  "category":{"app":"pronote","label":"Pronote"},"subject":"Écran blanc dans Pronote",
	  "description":"Depuis ce matin, la page reste blanche.","locale":"fr","created_at":%q,
	  "attachments":[{"id":"att-%s","filename":"capture écran.png","content_type":"image/png","content_base64":%q}]}}`,
		id, structure, time.Now().UTC().Format(time.RFC3339), id, png))
}

func statusChanged(ticket, status string) string {
	return event("ticket.status_changed", fmt.Sprintf(`{"ticket_id":%q,"actor":{"id":"u-ref1","display_name":"Mme Martin"},"status":%q}`, ticket, status))
}

func escalation(ticket string) string {
	return event("ticket.escalation_requested", fmt.Sprintf(`{"ticket_id":%q,"actor":{"id":"u-ref1","display_name":"Mme Martin","email":"martin@school.example"}}`, ticket))
}

func comment(ticket, commentID, author string) string {
	return event("ticket.commented", fmt.Sprintf(`{"ticket_id":%q,"comment":{"id":%q,"author":{"id":%q,"display_name":"X"},"body":"Une précision.","created_at":%q,"attachments":[]}}`,
		ticket, commentID, author, time.Now().UTC().Format(time.RFC3339)))
}

// e2eBackends runs f with the daemon on miniredis and on a real
// redis-server; down stops Redis and up starts it again with its data.
func e2eBackends(t *testing.T, f func(t *testing.T, redisAddr string, down, up func())) {
	t.Run("miniredis", func(t *testing.T) {
		m := redistest.Miniredis(t)
		f(t, m.Addr(), m.Close, func() {
			if err := redistest.RestartMiniredis(m); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithAOF())
		f(t, srv.Addr, srv.Kill, func() { srv.Restart(t) })
	})
}

func TestContract(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		d := startDaemon(t, writeConfig(t, redisAddr, ""))

		// Accepted, then duplicate for the same webhook-id.
		id := nextID()
		body := ticketCreated("T1", "s1")
		if a := d.post(t, id, body); a.Status != 202 || a.Body["status"] != "accepted" {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, id, body); a.Status != 200 || a.Body["status"] != "duplicate" {
			t.Fatalf("replay: %d %s", a.Status, a.Raw)
		}

		// Read API.
		a := d.get(t, "/v1/tickets/T1")
		if a.Status != 200 || a.Body["status"] != "new" || a.Body["subject"] != "Écran blanc dans Pronote" {
			t.Fatalf("get ticket: %d %s", a.Status, a.Raw)
		}
		esc, _ := a.Body["escalation"].(map[string]any)
		if esc["status"] != "not_done" {
			t.Errorf("escalation %v", esc)
		}
		atts, _ := a.Body["attachments"].([]any)
		if len(atts) != 1 {
			t.Fatalf("attachments %v", a.Body["attachments"])
		}
		att := atts[0].(map[string]any)
		if att["filename"] != "capture écran.png" || att["size"].(float64) != float64(len("\x89PNG\r\n\x1a\n-capture-T1")) {
			t.Errorf("attachment %v", att)
		}
		if _, leaked := a.Body["version"]; leaked {
			t.Errorf("internal field in the API: %s", a.Raw)
		}
		bytesAnswer := d.get(t, "/v1/attachments/att-T1")
		if bytesAnswer.Status != 200 || string(bytesAnswer.Raw) != "\x89PNG\r\n\x1a\n-capture-T1" {
			t.Errorf("attachment bytes: %d %q", bytesAnswer.Status, bytesAnswer.Raw)
		}
		if a := d.get(t, "/v1/attachments/nope"); a.Status != 404 || a.code() != "not_found" {
			t.Errorf("missing attachment: %d %s", a.Status, a.Raw)
		}
		if a := d.get(t, "/v1/tickets/nope"); a.Status != 404 {
			t.Errorf("missing ticket: %d %s", a.Status, a.Raw)
		}

		// Read API needs a token.
		req, _ := http.NewRequest("GET", d.base+"/v1/tickets/T1", nil)
		if a := do(t, req); a.Status != 401 {
			t.Errorf("no token: %d", a.Status)
		}
		req.Header.Set("Authorization", "Bearer wrong-token-0000000")
		if a := do(t, req); a.Status != 401 {
			t.Errorf("wrong token: %d", a.Status)
		}

		// Domain rules through the API.
		if a := d.post(t, nextID(), statusChanged("T1", "waiting")); a.Status != 202 {
			t.Errorf("to waiting: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), statusChanged("T1", "new")); a.Status != 409 || a.code() != "transition_not_allowed" {
			t.Errorf("back to new: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), statusChanged("T404", "opened")); a.Status != 409 || a.code() != "unknown_ticket" {
			t.Errorf("unknown ticket: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalation("T1")); a.Status != 202 {
			t.Fatalf("escalation: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalation("T1")); a.Status != 409 || a.code() != "escalation_conflict" {
			t.Errorf("second escalation: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), ticketCreated("T2", "s2")); a.Status != 202 {
			t.Fatalf("create T2: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalationBy("T2", "u-ref2")); a.Status != 403 || a.code() != "escalation_disabled" {
			t.Errorf("escalation disabled: %d %s", a.Status, a.Raw)
		}
		upd := event("ticket.updated", `{"ticket_id":"T1","actor":{"id":"u-ref1","display_name":"Mme Martin"},"changes":{"description":"autre"}}`)
		if a := d.post(t, nextID(), upd); a.Status != 409 || a.code() != "transition_not_allowed" {
			t.Errorf("frozen description: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), comment("T1", "c1", "u-ref1")); a.Status != 202 {
			t.Errorf("comment: %d %s", a.Status, a.Raw)
		}
		a = d.get(t, "/v1/tickets/T1")
		if a.Body["status"] != "opened" {
			t.Errorf("status after escalation: %v", a.Body["status"])
		}
		exs, _ := a.Body["exchanges"].([]any)
		evs, _ := a.Body["events"].([]any)
		if len(exs) != 1 || len(evs) < 4 {
			t.Errorf("exchanges %d events %d: %s", len(exs), len(evs), a.Raw)
		}

		// Structure by webhook, then a ticket of it may escalate.
		st := event("structure.upserted", `{"structure":{"id":"s3","name":"École Jules Ferry","uai":"0750003C","parent_id":"s1","escalation_enabled":true,"referents":[{"id":"u-ref3","display_name":"M. Petit","email":"petit@school.example","digest":"weekly"}]}}`)
		if a := d.post(t, nextID(), st); a.Status != 202 {
			t.Fatalf("structure: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), ticketCreated("T3", "s3")); a.Status != 202 {
			t.Fatalf("create T3: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalation("T3")); a.Status != 202 {
			t.Errorf("escalation on webhook structure: %d %s", a.Status, a.Raw)
		}

		// Listing.
		a = d.get(t, "/v1/tickets?structure_id=s1")
		if ts, _ := a.Body["tickets"].([]any); a.Status != 200 || len(ts) != 1 {
			t.Errorf("list s1: %d %s", a.Status, a.Raw)
		}
		a = d.get(t, "/v1/tickets?limit=2")
		ts, _ := a.Body["tickets"].([]any)
		if len(ts) != 2 || a.Body["next_cursor"] == nil {
			t.Fatalf("list page 1: %s", a.Raw)
		}
		if first := ts[0].(map[string]any)["id"]; first != "T3" {
			t.Errorf("newest first: %v", first)
		}
		a = d.get(t, "/v1/tickets?limit=2&cursor="+a.Body["next_cursor"].(string))
		if ts, _ := a.Body["tickets"].([]any); len(ts) != 1 || ts[0].(map[string]any)["id"] != "T1" {
			t.Errorf("list page 2: %s", a.Raw)
		}
		if a := d.get(t, "/v1/tickets?status=bogus"); a.Status != 400 {
			t.Errorf("bad status filter: %d", a.Status)
		}

		// Metrics.
		resp, err := http.Get(d.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metricsText, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`supportbridge_webhooks_total{outcome="accepted",type="ticket.created"} 3`,
			`supportbridge_webhooks_total{outcome="escalation_conflict",type="ticket.escalation_requested"} 1`,
			`supportbridge_webhook_duration_seconds_count`, `supportbridge_queue_jobs{state="pending"}`} {
			if !strings.Contains(string(metricsText), want) {
				t.Errorf("metrics lack %s", want)
			}
		}

		// Health.
		for _, p := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(d.base + p)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("%s: %v %v", p, resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	})
}

func TestBadWebhooks(t *testing.T) {
	m := redistest.Miniredis(t)
	d := startDaemon(t, writeConfig(t, m.Addr(), ""))
	good := ticketCreated("B1", "s1")
	now := time.Now()

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
		fields []string
	}{
		{"no signature", func() *http.Request {
			r, _ := http.NewRequest("POST", d.base+"/v1/webhooks/ent", strings.NewReader(good))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 401, "invalid_signature", nil},
		{"forged signature", func() *http.Request {
			return signed(t, d.base, "whsec_"+base64.StdEncoding.EncodeToString([]byte("not-the-secret-at-all-0123")), nextID(), now, []byte(good))
		}, 401, "invalid_signature", nil},
		{"tampered body", func() *http.Request {
			orig := signed(t, d.base, testSecret, nextID(), now, []byte(good))
			r, _ := http.NewRequest("POST", d.base+"/v1/webhooks/ent", strings.NewReader(strings.Replace(good, "Écran", "Ecran", 1)))
			r.Header = orig.Header.Clone()
			return r
		}, 401, "invalid_signature", nil},
		{"stale timestamp", func() *http.Request {
			return signed(t, d.base, testSecret, nextID(), now.Add(-6*time.Minute), []byte(good))
		}, 401, "stale_timestamp", nil},
		{"future timestamp", func() *http.Request {
			return signed(t, d.base, testSecret, nextID(), now.Add(6*time.Minute), []byte(good))
		}, 401, "stale_timestamp", nil},
		{"wrong content type", func() *http.Request {
			r := signed(t, d.base, testSecret, nextID(), now, []byte(good))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415, "unsupported_media_type", nil},
		{"oversized body", func() *http.Request {
			big := []byte(event("ticket.created", `{"pad":"`+strings.Repeat("x", 70<<10)+`"}`))
			return signed(t, d.base, testSecret, nextID(), now, big)
		}, 413, "payload_too_large", nil},
		{"malformed json", func() *http.Request {
			return signed(t, d.base, testSecret, nextID(), now, []byte(`{"type":"ticket.created",`))
		}, 400, "invalid_payload", nil},
		{"unknown type", func() *http.Request {
			return signed(t, d.base, testSecret, nextID(), now, []byte(event("ticket.deleted", `{}`)))
		}, 422, "unknown_event_type", nil},
		{"missing fields", func() *http.Request {
			return signed(t, d.base, testSecret, nextID(), now, []byte(event("ticket.status_changed", `{"ticket_id":"B1","actor":{"id":"u"}}`)))
		}, 400, "invalid_payload", []string{"data.status"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.req())
			if a.Status != tc.status || a.code() != tc.code {
				t.Fatalf("got %d %s, want %d %s", a.Status, a.Raw, tc.status, tc.code)
			}
			if tc.fields != nil && strings.Join(a.fields(), ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v", a.fields(), tc.fields)
			}
		})
	}
	// Nothing of the refused requests was stored.
	if a := d.get(t, "/v1/tickets/B1"); a.Status != 404 {
		t.Errorf("a refused webhook stored a ticket: %d %s", a.Status, a.Raw)
	}
	// A secret being rotated out is still accepted while listed.
	if a := do(t, signed(t, d.base, oldSecret, nextID(), now, []byte(good))); a.Status != 202 {
		t.Errorf("old secret: %d %s", a.Status, a.Raw)
	}
	// Attachment over the cap.
	bigAtt := event("ticket.created", fmt.Sprintf(`{"ticket":{"id":"B2","structure_id":"s1","owner":{"id":"u","display_name":"U"},
	  "category":{"app":"a","label":"A"},"subject":"s","description":"d","locale":"fr","created_at":%q,
	  "attachments":[{"id":"big","filename":"big.bin","content_type":"application/octet-stream","content_base64":%q}]}}`,
		now.UTC().Format(time.RFC3339), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 20<<10))))
	if a := d.post(t, nextID(), bigAtt); a.Status != 400 || a.code() != "invalid_payload" {
		t.Errorf("oversized attachment: %d %s", a.Status, a.Raw)
	}
	// No secret and no body in the log.
	log := d.stderr.String()
	for _, secret := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", testToken, "Depuis ce matin"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

// TestRedisOutage: while Redis is down webhooks get 503 (the ENT retries)
// and /readyz says unready; once it is back, the same daemon recovers and
// the retried webhook is applied once, its effects handed to the queue.
//
// While the connections come back, a retry may be committed and still be
// answered 503 because its effects could not yet be handed to the queue
// (the commit is kept, the effects wait in the ticket's outbox); the next
// retry then finds it applied (200 duplicate) and hands them over. So the
// first answer after the outage is 202, or 200 duplicate after such a try.
func TestRedisOutage(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, down, up func()) {
		d := startDaemon(t, writeConfig(t, redisAddr, ""))
		if a := d.post(t, nextID(), ticketCreated("R1", "s1")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		feedOfR1 := func() int {
			return strings.Count(string(d.get(t, "/v1/users/u-ref1/notifications").Raw), `"ticket_id":"R1"`)
		}
		// The creation's own notification, once its job has run.
		before := 0
		for deadline := time.Now().Add(15 * time.Second); before == 0 && time.Now().Before(deadline); {
			if before = feedOfR1(); before == 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if before == 0 {
			t.Fatal("no notification of the creation")
		}
		down()
		id, body := nextID(), comment("R1", "c-outage", "u-owner")
		if a := d.post(t, id, body); a.Status != 503 || a.code() != "unavailable" {
			t.Fatalf("during the outage: %d %s", a.Status, a.Raw)
		}
		resp, err := http.Get(d.base + "/readyz")
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("readyz during the outage: %v %v", resp, err)
		}
		resp.Body.Close()
		up()
		deadline := time.Now().Add(15 * time.Second)
		var a answer
		for time.Now().Before(deadline) {
			if a = d.post(t, id, body); a.Status != 503 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if a.Status != 202 && (a.Status != 200 || !strings.Contains(string(a.Raw), "duplicate")) {
			t.Fatalf("after the outage: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, id, body); a.Status != 200 {
			t.Fatalf("replay after the outage: %d %s", a.Status, a.Raw)
		}
		v := d.get(t, "/v1/tickets/R1")
		if exs, _ := v.Body["exchanges"].([]any); len(exs) != 1 {
			t.Fatalf("exchanges after outage: %s", v.Raw)
		}
		// The comment's notification reached the referent: its effect was
		// handed to the queue and run, whichever try committed it.
		for deadline := time.Now().Add(15 * time.Second); feedOfR1() != before+1; {
			if time.Now().After(deadline) {
				t.Fatalf("%d notifications of R1 after the outage, want %d", feedOfR1(), before+1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestGracefulShutdown: a request in flight when the daemon is told to stop
// still gets its answer, then run returns nil.
func TestGracefulShutdown(t *testing.T) {
	m := redistest.Miniredis(t)
	d := startDaemon(t, writeConfig(t, m.Addr(), ""))
	pr, pw := io.Pipe()
	body := []byte(ticketCreated("G1", "s1"))
	req := signed(t, d.base, testSecret, nextID(), time.Now(), body)
	req.Body = pr
	req.ContentLength = int64(len(body))
	res := make(chan answer, 1)
	go func() { res <- do(t, req) }()
	_, _ = pw.Write(body[:10])
	time.Sleep(100 * time.Millisecond)
	d.cancel()
	time.Sleep(100 * time.Millisecond)
	_, _ = pw.Write(body[10:])
	pw.Close()
	a := <-res
	if a.Status != 202 {
		t.Fatalf("in-flight request: %d %s", a.Status, a.Raw)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	d.cancel = nil
}

// With max_connections, a client past the cap waits to be accepted: it is
// not served until a connection ends.
func TestMaxConnections(t *testing.T) {
	m := redistest.Miniredis(t)
	d := startDaemon(t, writeConfig(t, m.Addr(), "max_connections: 1\n"))
	// startDaemon's readiness probe may keep a connection alive.
	http.DefaultClient.CloseIdleConnections()
	held, err := net.Dial("tcp", strings.TrimPrefix(d.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	quick := &http.Client{Timeout: 700 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := quick.Get(d.base + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection was served (%s) while the only one allowed is held", resp.Status)
	}
	held.Close()
	patient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := patient.Get(d.base + "/readyz")
	if err != nil {
		t.Fatalf("once the held connection ended: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz %s", resp.Status)
	}
}
