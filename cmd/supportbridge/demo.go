package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"supportbridge/config"
	"supportbridge/config/whsec"
	"supportbridge/webhook"
)

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// narrator prints the demo's story, one line a step.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (n *narrator) say(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, "[%5.1fs] %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

// demoENT stands for the ENT: it posts signed webhooks and receives the
// bridge's signed callbacks.
type demoENT struct {
	base     string // the bridge's URL
	key      []byte // webhook signing key
	token    string // API token
	verifier *webhook.Verifier
	say      func(string, ...any)
	client   *http.Client

	mu        sync.Mutex
	callbacks []string
	srv       *http.Server
	url       string
}

func startDemoENT(say func(string, ...any), callbackKey []byte) (*demoENT, error) {
	e := &demoENT{say: say, client: &http.Client{Timeout: 10 * time.Second},
		verifier: &webhook.Verifier{Keys: [][]byte{callbackKey}, Tolerance: 5 * time.Minute, Now: time.Now}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.url = "http://" + ln.Addr().String() + "/callbacks"
	e.srv = &http.Server{Handler: http.HandlerFunc(e.receive), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

func (e *demoENT) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 50<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if _, _, err := e.verifier.Verify(r.Header, body); err != nil {
		e.say("⚠️  The ENT refused a callback whose signature does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var cb struct {
		Type string `json:"type"`
		Data struct {
			Notification struct {
				Title string `json:"title"`
			} `json:"notification"`
			Recipients    []string `json:"recipients"`
			DeskReference string   `json:"desk_reference"`
			Status        string   `json:"status"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &cb)
	e.mu.Lock()
	e.callbacks = append(e.callbacks, cb.Type)
	e.mu.Unlock()
	switch cb.Type {
	case "notification.created":
		e.say("🔔 ENT ← signed callback notification.created: %q for %s", cb.Data.Notification.Title,
			strings.Join(cb.Data.Recipients, ", "))
	case "ticket.escalated":
		ref := ""
		if cb.Data.DeskReference != "" {
			ref = " (desk number " + cb.Data.DeskReference + ")"
		}
		e.say("🔔 ENT ← signed callback ticket.escalated%s", ref)
	default:
		e.say("🔔 ENT ← signed callback %s", cb.Type)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *demoENT) post(ctx context.Context, typ string, data any) (int, string, error) {
	d, err := json.Marshal(data)
	if err != nil {
		return 0, "", err
	}
	body, _ := json.Marshal(map[string]any{"type": typ, "timestamp": time.Now().UTC().Format(time.RFC3339),
		"data": json.RawMessage(d)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v1/webhooks/ent", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	webhook.SignHeaders(req.Header, e.key, "msg_"+randomToken(10), time.Now(), body)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

func (e *demoENT) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type demoTicket struct {
	Status     string `json:"status"`
	Escalation struct {
		Status        string `json:"status"`
		DeskReference string `json:"desk_reference"`
		LastError     string `json:"last_error"`
	} `json:"escalation"`
	Exchanges []struct {
		Origin string `json:"origin"`
		Body   string `json:"body"`
		Author struct {
			DisplayName string `json:"display_name"`
		} `json:"author"`
	} `json:"exchanges"`
}

// waitFor polls the read API until cond holds.
func (e *demoENT) waitFor(ctx context.Context, id string, what string, timeout time.Duration, cond func(demoTicket) bool) (demoTicket, error) {
	deadline := time.Now().Add(timeout)
	var t demoTicket
	for {
		if err := e.get(ctx, "/v1/tickets/"+id, &t); err == nil && cond(t) {
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, fmt.Errorf("demo: timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// screenshot draws a small PNG: the demand's "capture d'écran".
func screenshot() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 160, 90))
	for y := 0; y < 90; y++ {
		for x := 0; x < 160; x++ {
			c := color.RGBA{250, 250, 250, 255}
			if y < 14 {
				c = color.RGBA{30, 90, 160, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// The demo's webhook secret and API token: the README's examples use them.
const (
	demoWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	demoAPIToken      = "demo-api-token-4f9c2a71"
)

// demoReplyCommand is the shell command the demo prints to answer T-1001
// as the desk: a mail to the bridge's mailbox through the desk's server.
func demoReplyCommand(smtpAddr string) string {
	return `printf 'From: Julie Bernard <julie.bernard@desk.example>\r\nTo: ` + demoMailbox +
		`\r\nSubject: RE: [ENT-T-1001] Ecran blanc\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
		`Bonjour, une précision envoyée à la main.\r\n' | curl -sS smtp://` + smtpAddr +
		` --mail-from julie.bernard@desk.example --mail-rcpt ` + demoMailbox + ` -T -`
}

// writeDemoOpsConfig writes, in a directory of its own, the configuration
// the ops commands need to reach the demo's Redis: the demo's own settings.
func writeDemoOpsConfig(cfg *config.Config, base string) (string, error) {
	dir, err := os.MkdirTemp("", "supportbridge-demo-")
	if err != nil {
		return "", err
	}
	q := func(s string) string { return strconv.Quote(s) }
	body := fmt.Sprintf(`# Written by "supportbridge demo" for the ops commands against it
# (supportbridge status --config THIS_FILE); removed when the demo stops.
listen: %s
instance_id: demo-ops
redis: {addrs: [%s], key_prefix: %s}
ent:
  webhook_secrets: [%s]
  api_tokens: [%s]
desk:
  address: %s
  from: %s
  reply_to: %s
  allowed_senders: [%s]
  signing_key: %s
  identity: %s
smtp: {addr: %s, tls: none}
imap: {addr: %s, tls: none, username: %s, password: %s}
`, q(strings.TrimPrefix(base, "http://")), q(cfg.Redis.Addrs[0]), q(cfg.Redis.KeyPrefix),
		q(string(cfg.ENT.WebhookSecrets[0])), q(string(cfg.ENT.APITokens[0])),
		q(cfg.Desk.Address), q(cfg.Desk.From), q(cfg.Desk.ReplyTo), q(cfg.Desk.AllowedSenders[0]),
		q(string(cfg.Desk.SigningKey)), q(cfg.Desk.Identity), q(cfg.SMTP.Addr), q(cfg.IMAP.Addr),
		q(cfg.IMAP.Username), q(string(cfg.IMAP.Password)))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return path, nil
}

func demoConfig(listen, redisAddr string, desk *demoDesk, ent *demoENT, webhookSecret, callbackSecret, token string) *config.Config {
	cfg := config.Default()
	cfg.Listen = listen
	cfg.LogLevel = "warn"
	cfg.InstanceID = "demo"
	cfg.Redis.Addrs = []string{redisAddr}
	cfg.ENT.WebhookSecrets = []config.Secret{config.Secret(webhookSecret)}
	cfg.ENT.APITokens = []config.Secret{config.Secret(token)}
	cfg.ENT.CallbackURL = ent.url
	cfg.ENT.CallbackSecret = config.Secret(callbackSecret)
	cfg.ENT.LinkBase = "https://ent.example/assistance#/ticket/"
	cfg.Desk.Address = demoDeskAddress
	cfg.Desk.From = "Assistance ENT <" + demoMailbox + ">"
	cfg.Desk.ReplyTo = demoMailbox
	cfg.Desk.AllowedSenders = []string{"*@desk.example"}
	cfg.Desk.SigningKey = config.Secret(randomToken(20))
	cfg.Desk.Identity = "supportbridge-demo@ent.example"
	cfg.SMTP.Addr = desk.smtpAddr
	cfg.SMTP.TLS = config.TLSNone
	cfg.SMTP.RetryInitial = time.Second
	cfg.SMTP.RetryMax = 5 * time.Second
	cfg.IMAP.Addr = desk.imapAddr
	cfg.IMAP.TLS = config.TLSNone
	cfg.IMAP.Username = desk.imapUser
	cfg.IMAP.Password = config.Secret(desk.imapPass)
	cfg.IMAP.PollInterval = 2 * time.Second
	cfg.IMAP.LeaseTTL = 10 * time.Second
	cfg.Jobs.PollInterval = 100 * time.Millisecond
	return &cfg
}

func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the bridge's HTTP API")
	pace := fs.Duration("pace", 1500*time.Millisecond, "how long the desk agent takes to answer")
	if err := parseFlags(fs, args, false, stderr); err != nil {
		return err
	}
	n := &narrator{w: stdout, start: time.Now()}
	say := n.say
	say("supportbridge demo: an ENT, the bridge and an external support desk, all in this process.")

	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return fmt.Errorf("demo redis: %w", err)
	}
	defer mr.Close()
	// miniredis only ages its keys when told: keep its clock on the wall
	// clock, so that leases, windows and retention expire as on a real
	// Redis while the demo keeps running.
	clockDone := make(chan struct{})
	defer close(clockDone)
	go demoRedisClock(mr, clockDone)
	desk, err := startDemoDesk(say)
	if err != nil {
		return err
	}
	defer desk.close()
	callbackKey := make([]byte, 32)
	_, _ = rand.Read(callbackKey)
	// The webhook secret and the API token are the README's, so that its
	// examples run against the demo as written. Demo only: a deployment
	// gets its own (see ent.webhook_secrets).
	webhookSecret, token := demoWebhookSecret, demoAPIToken
	webhookKey, err := webhook.ParseSecret(webhookSecret)
	if err != nil {
		return err
	}
	callbackSecret := whsec.Format(callbackKey)
	ent, err := startDemoENT(say, callbackKey)
	if err != nil {
		return err
	}
	defer ent.srv.Close()

	cfg := demoConfig(*listen, mr.Addr(), desk, ent, webhookSecret, callbackSecret, token)
	d, err := newDaemon(cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer d.close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w (try --listen 127.0.0.1:0)", cfg.Listen, err)
	}
	ent.base = "http://" + ln.Addr().String()
	ent.key = webhookKey
	ent.token = token
	say("Embedded Redis at %s, desk mail server (SMTP) at %s, the bridge's mailbox (IMAP) at %s.",
		mr.Addr(), desk.smtpAddr, desk.imapAddr)

	opsPath, err := writeDemoOpsConfig(cfg, ent.base)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(opsPath))

	serveDone := make(chan error, 1)
	go func() { serveDone <- d.serveOn(ctx, ln, io.Discard) }()
	stopAgent := make(chan struct{})
	defer close(stopAgent)
	go desk.agent(stopAgent, *pace)

	scriptErr := demoScript(ctx, ent, desk, say)
	if scriptErr != nil && !errors.Is(scriptErr, context.Canceled) {
		say("❌ %v", scriptErr)
	}
	if scriptErr == nil {
		say("✅ The whole loop ran: demand → escalation mail → desk answer threaded back → follow-up → resolved.")
	}
	fmt.Fprintf(stdout, `
The bridge keeps running until Ctrl-C. Try it:
  supportbridge listening on %s
  API token:      %s
  webhook secret: %s
  curl -s -H 'Authorization: Bearer %s' %s/v1/tickets/T-1001 | head -c 2000
  curl -s -H 'Authorization: Bearer %s' '%s/v1/users/u-ref1/notifications'
  curl -s %s/readyz
  status page:    %s/login (paste the API token)

The ops commands, against this demo (a configuration written for them, removed on exit):
  supportbridge status --config %s
  supportbridge ticket show --config %s T-1001

The desk's side: answer as the desk does, from any mail client or with curl.
  the desk's mail server (SMTP): %s, no TLS, no login; mail for %s lands in the bridge's mailbox
  the bridge's mailbox (IMAP):   %s, no TLS, user %s, password %s
  an answer on T-1001 from an allowed sender (*@desk.example), threaded by the [ENT-T-1001] tag:
  %s
`, ent.base, token, webhookSecret, token, ent.base, token, ent.base, ent.base, ent.base, opsPath, opsPath,
		desk.smtpAddr, demoMailbox, desk.imapAddr, desk.imapUser, desk.imapPass, demoReplyCommand(desk.smtpAddr))
	if scriptErr == nil {
		fmt.Fprintln(stdout, "demo: scripted loop complete")
	} else {
		fmt.Fprintln(stdout, "demo: scripted loop FAILED:", scriptErr)
	}
	err = <-serveDone
	if scriptErr != nil && !errors.Is(scriptErr, context.Canceled) {
		return scriptErr
	}
	return err
}

func demoScript(ctx context.Context, ent *demoENT, desk *demoDesk, say func(string, ...any)) error {
	step := func(typ string, data any, what string) error {
		status, body, err := ent.post(ctx, typ, data)
		if err != nil {
			return err
		}
		say("ENT → bridge: %s (%s) — answered %d %s", typ, what, status, body)
		if status/100 != 2 {
			return fmt.Errorf("%s answered %d %s", typ, status, body)
		}
		return nil
	}
	referent := map[string]any{"id": "u-ref1", "display_name": "Mme Martin", "email": "martin@lycee-hugo.example"}
	owner := map[string]any{"id": "u-1234", "display_name": "Léa Dupont", "email": "lea.dupont@lycee-hugo.example", "profile": "Teacher"}
	if err := step("structure.upserted", map[string]any{"structure": map[string]any{
		"id": "s-0750001A", "name": "Lycée Victor Hugo", "uai": "0750001A", "parent_id": "", "escalation_enabled": true,
		"referents": []any{map[string]any{"id": "u-ref1", "display_name": "Mme Martin",
			"email": "martin@lycee-hugo.example", "digest": "daily"}}}}, "a school and its referent"); err != nil {
		return err
	}
	if err := step("ticket.created", map[string]any{"ticket": map[string]any{
		"id": "T-1001", "structure_id": "s-0750001A", "owner": owner,
		"category": map[string]any{"app": "pronote", "label": "Pronote"},
		"subject":  "Écran blanc à l'ouverture du cahier de textes",
		"description": "Depuis ce matin, quand j'ouvre le cahier de textes de la 2nde B, la page reste blanche.\n" +
			"J'ai vidé le cache du navigateur, sans effet. Capture jointe.",
		"locale": "fr", "created_at": time.Now().UTC().Format(time.RFC3339),
		"attachments": []any{map[string]any{"id": "att-T-1001-1", "filename": "capture écran.png",
			"content_type": "image/png", "content_base64": base64.StdEncoding.EncodeToString(screenshot())}},
	}}, "Léa files a demand with a screenshot"); err != nil {
		return err
	}
	if err := step("ticket.commented", map[string]any{"ticket_id": "T-1001", "comment": map[string]any{
		"id": "c-1", "author": referent, "body": "Je n'arrive pas à reproduire, je transmets au support.",
		"created_at": time.Now().UTC().Format(time.RFC3339), "attachments": []any{}}}, "the referent answers"); err != nil {
		return err
	}
	if err := step("ticket.escalation_requested", map[string]any{"ticket_id": "T-1001", "actor": referent},
		"Mme Martin clicks « Transmettre la demande au support »"); err != nil {
		return err
	}
	say("The bridge composes the escalation mail (fields, history, screenshot) and queues it for SMTP…")
	t, err := ent.waitFor(ctx, "T-1001", "the desk's server to accept the escalation", 20*time.Second,
		func(t demoTicket) bool { return t.Escalation.Status == "successful" || t.Escalation.Status == "failed" })
	if err != nil {
		return err
	}
	if t.Escalation.Status != "successful" {
		return fmt.Errorf("escalation failed: %s", t.Escalation.LastError)
	}
	say("📨 The desk's mail server accepted the mail: escalation %s.", t.Escalation.Status)

	t, err = ent.waitFor(ctx, "T-1001", "the desk's answer", 25*time.Second, func(t demoTicket) bool {
		for _, x := range t.Exchanges {
			if x.Origin == "desk" {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	for _, x := range t.Exchanges {
		if x.Origin == "desk" {
			say("📥 The bridge read the answer over IMAP and threaded it on T-1001 (desk number %s). New text only:\n        %s",
				t.Escalation.DeskReference, strings.ReplaceAll(strings.TrimSpace(x.Body), "\n", "\n        "))
		}
	}
	if err := step("ticket.commented", map[string]any{"ticket_id": "T-1001", "comment": map[string]any{
		"id": "c-2", "author": owner, "body": "Oui, même chose sous Firefox et sous Edge.",
		"created_at": time.Now().UTC().Format(time.RFC3339), "attachments": []any{}}},
		"Léa answers the desk's question in the ENT"); err != nil {
		return err
	}
	say("The bridge forwards Léa's comment to the desk, threaded on the escalation mail…")
	t, err = ent.waitFor(ctx, "T-1001", "the desk to resolve the demand", 25*time.Second,
		func(t demoTicket) bool { return t.Status == "resolved" })
	if err != nil {
		return err
	}
	say("🎉 The desk resolved the demand by mail: T-1001 is now %q, with %d exchanges.", t.Status, len(t.Exchanges))
	var feed struct {
		Unread        int `json:"unread"`
		Notifications []struct {
			Title string `json:"title"`
		} `json:"notifications"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := ent.get(ctx, "/v1/users/u-1234/notifications", &feed); err == nil && len(feed.Notifications) >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	say("Léa's news feed (%d unread):", feed.Unread)
	for _, n := range feed.Notifications {
		say("   • %s", n.Title)
	}
	return nil
}

// demoRedisClock moves the embedded Redis's TTL clock on with the wall
// clock until done closes.
func demoRedisClock(mr *miniredis.Miniredis, done <-chan struct{}) {
	const tick = 250 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			mr.FastForward(now.Sub(last))
			last = now
		}
	}
}
