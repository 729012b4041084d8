package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testWebhookSecret  = "whsec_c3VwcG9ydGJyaWRnZS1mdWxsLWV4YW1wbGUta2V5LTE=" // "supportbridge-full-example-key-1"
	testOldSecret      = "whsec_c3VwcG9ydGJyaWRnZS1vbGQtcm90YXRlZC1rZXktMDE=" // "supportbridge-old-rotated-key-01"
	testCallbackSecret = "whsec_c3VwcG9ydGJyaWRnZS1jYWxsYmFjay1leGFtcGxlLWs=" // "supportbridge-callback-example-k"
	testToken          = "0123456789abcdef-token"
)

// fullEnv is the environment testdata/full.yaml needs.
func fullEnv() map[string]string {
	return map[string]string{
		"SB_REDIS_PASSWORD":     "redis-pw-value",
		"SB_WEBHOOK_SECRET":     testWebhookSecret,
		"SB_WEBHOOK_SECRET_OLD": testOldSecret,
		"SB_CALLBACK_SECRET":    testCallbackSecret,
		"SB_API_TOKEN":          testToken,
		"SB_SIGNING_KEY":        "signing-key-0123456789",
		"SB_SMTP_PASSWORD":      "smtp-pw-value",
		"SB_IMAP_PASSWORD":      "imap-pw-value",
	}
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// minimal is the smallest valid file, followed by extra keys.
func minimal(extra string) string {
	return "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken + "\"]\n" + extra
}

func mustParse(t *testing.T, yaml string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), envFunc(env))
	if err != nil {
		t.Fatalf("Parse: %v\n--- yaml:\n%s", err, yaml)
	}
	return c
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %T: %v", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("ValidationError without problems")
	}
	for _, p := range ve.Problems {
		if p == "" || strings.ContainsAny(p, "\r\n") {
			t.Errorf("problem %q is not one non-empty line", p)
		}
	}
	return ve.Problems
}

func TestDefault(t *testing.T) {
	d := Default()
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"listen", d.Listen, "127.0.0.1:8080"},
		{"log_level", d.LogLevel, "info"},
		{"shutdown_timeout", d.ShutdownTimeout, 15 * time.Second},
		{"max_connections", d.MaxConnections, 1024},
		{"instance_id", d.InstanceID, host},
		{"redis.addrs", d.Redis.Addrs, []string{"127.0.0.1:6379"}},
		{"redis.key_prefix", d.Redis.KeyPrefix, "sb:"},
		{"redis.dial_timeout", d.Redis.DialTimeout, 5 * time.Second},
		{"redis.read_timeout", d.Redis.ReadTimeout, 3 * time.Second},
		{"redis.write_timeout", d.Redis.WriteTimeout, 3 * time.Second},
		{"redis.wait_replicas", d.Redis.WaitReplicas, 0},
		{"redis.wait_timeout", d.Redis.WaitTimeout, time.Second},
		{"ent.webhook_secrets", len(d.ENT.WebhookSecrets), 0},
		{"ent.webhook_tolerance", d.ENT.WebhookTolerance, 5 * time.Minute},
		{"ent.webhook_max_body", d.ENT.WebhookMaxBody, ByteSize(20 << 20)},
		{"ent.dedupe_ttl", d.ENT.DedupeTTL, 168 * time.Hour},
		{"ent.callback_url", d.ENT.CallbackURL, ""},
		{"ent.callback_timeout", d.ENT.CallbackTimeout, 15 * time.Second},
		{"ent.callback_retry_schedule", d.ENT.CallbackRetrySchedule, []time.Duration{5 * time.Second, 5 * time.Minute,
			30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}},
		{"desk.address", d.Desk.Address, ""},
		{"desk.subject_tag", d.Desk.SubjectTag, "ENT"},
		{"desk.reference_pattern", d.Desk.ReferencePattern, `\[Desk #(\d+)\]`},
		{"desk.plus_token", d.Desk.PlusToken, true},
		{"desk.identity", d.Desk.Identity, "supportbridge"},
		{"desk.status_markers.resolved", d.Desk.StatusMarkers.Resolved, []string{"[RESOLU]", "[RESOLVED]"}},
		{"desk.status_markers.closed", d.Desk.StatusMarkers.Closed, []string{"[CLOS]", "[CLOSED]"}},
		{"desk.status_markers.waiting", d.Desk.StatusMarkers.Waiting, []string{"[ATTENTE]", "[WAITING]"}},
		{"desk.max_attachment_bytes", d.Desk.MaxAttachmentBytes, ByteSize(10 << 20)},
		{"smtp.tls", d.SMTP.TLS, TLSStartTLS},
		{"smtp.timeout", d.SMTP.Timeout, 30 * time.Second},
		{"smtp.retry_initial", d.SMTP.RetryInitial, 5 * time.Minute},
		{"smtp.retry_max", d.SMTP.RetryMax, 66 * time.Minute},
		{"smtp.lifetime", d.SMTP.Lifetime, 120 * time.Hour},
		{"imap.addr", d.IMAP.Addr, ""},
		{"imap.tls", d.IMAP.TLS, TLSImplicit},
		{"imap.mailbox", d.IMAP.Mailbox, "INBOX"},
		{"imap.processed_mailbox", d.IMAP.ProcessedMailbox, "Processed"},
		{"imap.quarantine_mailbox", d.IMAP.QuarantineMailbox, "Quarantine"},
		{"imap.poll_interval", d.IMAP.PollInterval, 30 * time.Second},
		{"imap.idle", d.IMAP.IDLE, true},
		{"imap.max_message_bytes", d.IMAP.MaxMessageBytes, ByteSize(40 << 20)},
		{"imap.raw_retention", d.IMAP.RawRetention, 2160 * time.Hour},
		{"imap.lease_ttl", d.IMAP.LeaseTTL, 30 * time.Second},
		{"attachments.max_bytes", d.Attachments.MaxBytes, ByteSize(10 << 20)},
		{"attachments.max_count", d.Attachments.MaxCount, 20},
		{"attachments.retention", d.Attachments.Retention, 8760 * time.Hour},
		{"notifications.retention", d.Notifications.Retention, 2160 * time.Hour},
		{"notifications.prune_interval", d.Notifications.PruneInterval, time.Hour},
		{"digest.lease_ttl", d.Digest.LeaseTTL, 5 * time.Minute},
		{"digest.lease_wait", d.Digest.LeaseWait, 15 * time.Minute},
		{"jobs.concurrency", d.Jobs.Concurrency, 8},
		{"jobs.poll_interval", d.Jobs.PollInterval, 200 * time.Millisecond},
		{"jobs.retention", d.Jobs.Retention, 168 * time.Hour},
		{"digest.daily", d.Digest.Daily, "CRON_TZ=Europe/Paris 0 8 * * 1-5"},
		{"digest.weekly", d.Digest.Weekly, "CRON_TZ=Europe/Paris 0 8 * * 1"},
		{"digest.default_locale", d.Digest.DefaultLocale, "fr"},
		{"operators.emails", len(d.Operators.Emails), 0},
		{"structures", len(d.Structures), 0},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	// Default hands out fresh slices: changing one copy leaves the next alone.
	d.Redis.Addrs[0] = "changed:1"
	d.ENT.CallbackRetrySchedule[0] = time.Hour
	if e := Default(); e.Redis.Addrs[0] != "127.0.0.1:6379" || e.ENT.CallbackRetrySchedule[0] != 5*time.Second {
		t.Error("Default shares its slices between calls")
	}
}

func TestDefaultsNeedSecretsAndTokens(t *testing.T) {
	_, err := Parse(nil, nil)
	got := problemsOf(t, err)
	want := []string{
		"ent.webhook_secrets: at least one secret is required",
		"ent.api_tokens: at least one token is required",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems of an empty file:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMinimalFileKeepsDefaults(t *testing.T) {
	c := mustParse(t, minimal(""), nil)
	want := Default()
	want.ENT.WebhookSecrets = []Secret{testWebhookSecret}
	want.ENT.APITokens = []Secret{testToken}
	if want.InstanceID == "" {
		want.InstanceID = c.InstanceID // no hostname here: not the point
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("minimal file:\n got %+v\nwant %+v", *c, want)
	}
	if c.Desk.MailEnabled() || c.IMAP.Enabled() {
		t.Error("mail is on without desk.address / imap.addr")
	}
	if k, err := c.CallbackKey(); k != nil || err != nil {
		t.Errorf("CallbackKey without callback_url = %v, %v; want nil, nil", k, err)
	}
}

func TestFullExample(t *testing.T) {
	c, err := Load("testdata/full.yaml", envFunc(fullEnv()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"listen", c.Listen, "0.0.0.0:8080"},
		{"shutdown_timeout", c.ShutdownTimeout, 20 * time.Second},
		{"max_connections", c.MaxConnections, 512},
		{"instance_id from ${HOSTNAME:-bridge-1}", c.InstanceID, "bridge-1"},
		{"redis.addrs", c.Redis.Addrs, []string{"redis.internal:6379"}},
		{"redis.username", c.Redis.Username, "supportbridge"},
		{"redis.password", c.Redis.Password.Reveal(), "redis-pw-value"},
		{"redis.db", c.Redis.DB, 2},
		{"ent.webhook_secrets", len(c.ENT.WebhookSecrets), 2},
		{"ent.webhook_secrets[1]", c.ENT.WebhookSecrets[1].Reveal(), testOldSecret},
		{"ent.webhook_max_body", c.ENT.WebhookMaxBody, 20 * MiB},
		{"ent.callback_url", c.ENT.CallbackURL, "https://ent.example/supportbridge/callbacks"},
		{"ent.callback_retry_schedule[3]", c.ENT.CallbackRetrySchedule[3], 2 * time.Hour},
		{"ent.api_tokens", c.ENT.APITokens, []Secret{testToken}},
		{"ent.link_base", c.ENT.LinkBase, "https://ent.example/assistance#/ticket/"},
		{"desk.address", c.Desk.Address, "support@desk.example"},
		{"desk.from", c.Desk.From, "Assistance ENT <assistance@ent.example>"},
		{"desk.allowed_senders", len(c.Desk.AllowedSenders), 3},
		{"desk.authserv_id", c.Desk.AuthServID, "mx.ent.example"},
		{"desk.require_dmarc_pass", c.Desk.RequireDMARCPass, false},
		{"desk.signing_key", c.Desk.SigningKey.Reveal(), "signing-key-0123456789"},
		{"desk.status_markers.waiting", c.Desk.StatusMarkers.Waiting, []string{"[ATTENTE]", "[WAITING]"}},
		{"smtp.addr", c.SMTP.Addr, "smtp.ent.example:587"},
		{"smtp.password", c.SMTP.Password.Reveal(), "smtp-pw-value"},
		{"smtp.helo", c.SMTP.HELO, "bridge.ent.example"},
		{"smtp.retry_max", c.SMTP.RetryMax, 66 * time.Minute},
		{"imap.addr", c.IMAP.Addr, "imap.ent.example:993"},
		{"imap.password", c.IMAP.Password.Reveal(), "imap-pw-value"},
		{"imap.max_message_bytes", c.IMAP.MaxMessageBytes, 40 * MiB},
		{"operators.emails", c.Operators.Emails, []string{"Exploitation <ops@ent.example>"}},
		{"structures", len(c.Structures), 2},
		{"structures[1].parent_id", c.Structures[1].ParentID, "academie-paris"},
		{"structures[1].escalation_enabled", c.Structures[1].EscalationEnabled, true},
		{"structures[1].referents[1]", c.Structures[1].Referents[1],
			Referent{ID: "u-ref2", DisplayName: "Mr Smith", Email: "smith@school.example", Digest: "never", Locale: "en"}},
		{"mail enabled", c.Desk.MailEnabled(), true},
		{"imap enabled", c.IMAP.Enabled(), true},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	keys, err := c.WebhookKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || string(keys[0]) != "supportbridge-full-example-key-1" || string(keys[1]) != "supportbridge-old-rotated-key-01" {
		t.Errorf("WebhookKeys = %q", keys)
	}
	ck, err := c.CallbackKey()
	if err != nil || string(ck) != "supportbridge-callback-example-k" {
		t.Errorf("CallbackKey = %q, %v", ck, err)
	}
	re, err := c.Desk.ReferenceRegexp()
	if err != nil {
		t.Fatal(err)
	}
	if m := re.FindStringSubmatch("Re: [Desk #4711] écran blanc"); len(m) != 2 || m[1] != "4711" {
		t.Errorf("reference pattern found %q", m)
	}
}

// The example is the documentation: every key of the struct must appear in
// it with a comment, so that a new key cannot be added undocumented.
func TestFullExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var walk func(reflect.Type, string)
	walk = func(t2 reflect.Type, path string) {
		for name, i := range yamlFields(t2) {
			key := joinPath(path, name)
			if !strings.Contains(text, name+":") {
				t.Errorf("testdata/full.yaml does not set %s", key)
			}
			ft := t2.Field(i).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, key)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	// Every top-level key is introduced by a comment line.
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if l != "" && l[0] != ' ' && l[0] != '#' && (i == 0 || !strings.HasPrefix(lines[i-1], "#")) {
			t.Errorf("line %d %q has no comment above it", i+1, l)
		}
	}
}

func TestWebhookKeysRejectsBadSecret(t *testing.T) {
	c := Default()
	c.ENT.WebhookSecrets = []Secret{testWebhookSecret, "whsec_AAAA"}
	_, err := c.WebhookKeys()
	if err == nil || !strings.Contains(err.Error(), "ent.webhook_secrets[1]") {
		t.Errorf("WebhookKeys error = %v", err)
	}
	if strings.Contains(err.Error(), "AAAA") {
		t.Error("the error shows the secret")
	}
}

func TestDecodeWebhookSecret(t *testing.T) {
	for _, tc := range []struct {
		in   string
		size int // 0: an error is expected
	}{
		{testWebhookSecret, 32},
		{"whsec_" + strings.Repeat("A", 32), 24}, // 24 bytes
		{"whsec_" + strings.Repeat("A", 86) + "==", 64},
		{"whsec_" + strings.Repeat("A", 28), 0},                   // 21 bytes
		{"whsec_" + strings.Repeat("A", 92), 0},                   // 69 bytes
		{"whsec_c3VwcG9ydGJyaWRnZS1mdWxsLWV4YW1wbGUta2V5LTE", 0},  // padding missing
		{"c3VwcG9ydGJyaWRnZS1mdWxsLWV4YW1wbGUta2V5LTE=", 0},       // prefix missing
		{"whsec_c3VwcG9ydGJyaWRnZS1mdWxsLWV4YW1wbGUta2V5LTE_", 0}, // URL alphabet
		{"", 0},
	} {
		k, err := DecodeWebhookSecret(tc.in)
		if tc.size == 0 {
			if err == nil {
				t.Errorf("DecodeWebhookSecret(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || len(k) != tc.size {
			t.Errorf("DecodeWebhookSecret(%q) = %d bytes, %v; want %d", tc.in, len(k), err, tc.size)
		}
	}
}

func TestSenderAllowed(t *testing.T) {
	d := Desk{AllowedSenders: []string{"*@desk.example", "*@*.help.example", "Boss@Partner.example"}}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"agent@desk.example", true},
		{"Agent <AGENT@DESK.EXAMPLE>", true},
		{"agent@eu.desk.example", false},
		{"agent@evil-desk.example", false},
		{"agent@desk.example.evil", false},
		{"agent@fr.help.example", true},
		{"agent@a.b.help.example", true},
		{"agent@help.example", false},
		{"agent@nothelp.example", false},
		{"boss@partner.example", true},
		{"other@partner.example", false},
		{"not an address", false},
	} {
		if got := d.SenderAllowed(tc.addr); got != tc.want {
			t.Errorf("SenderAllowed(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"debug", "DEBUG"}, {"info", "INFO"}, {"warn", "WARN"}, {"error", "ERROR"}} {
		c := Config{LogLevel: tc.in}
		if got := c.SlogLevel().String(); got != tc.want {
			t.Errorf("SlogLevel(%s) = %s", tc.in, got)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir()+"/nope.yaml", nil)
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestValidationErrorJoinsLines(t *testing.T) {
	e := &ValidationError{Problems: []string{"a: x", "b: y"}}
	if e.Error() != "a: x\nb: y" {
		t.Errorf("Error() = %q", e.Error())
	}
	var buf bytes.Buffer
	buf.WriteString(e.Error())
	if strings.Count(buf.String(), "\n") != 1 {
		t.Error("want one problem a line")
	}
}

func TestInstanceID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no hostname on this machine")
	}
	for _, tc := range []struct {
		extra string
		want  string
		prob  string
	}{
		{extra: "", want: host},
		{extra: "instance_id: ''\n", want: host},
		{extra: "instance_id: '  replica-2 '\n", want: "replica-2"},
		{extra: "instance_id: 'replica 2'\n", prob: "instance_id: must not hold spaces or control characters (line 4)"},
	} {
		c, err := Parse([]byte(minimal(tc.extra)), nil)
		if tc.prob != "" {
			if got := problemsOf(t, err); !slices.Equal(got, []string{tc.prob}) {
				t.Errorf("%q: problems %q", tc.extra, got)
			}
			continue
		}
		if err != nil || c.InstanceID != tc.want {
			t.Errorf("%q: instance_id %q, %v; want %q", tc.extra, c.InstanceID, err, tc.want)
		}
	}
}

func TestFullExampleWithoutEnvironment(t *testing.T) {
	_, err := Load("testdata/full.yaml", nil)
	got := problemsOf(t, err)
	var vars []string
	for _, p := range got {
		_, rest, ok := strings.Cut(p, ": environment variable ")
		if !ok {
			t.Errorf("unexpected problem: %s", p)
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		vars = append(vars, name)
	}
	want := []string{"SB_REDIS_PASSWORD", "SB_WEBHOOK_SECRET", "SB_WEBHOOK_SECRET_OLD", "SB_API_TOKEN",
		"SB_CALLBACK_SECRET", "SB_SIGNING_KEY", "SB_SMTP_PASSWORD", "SB_IMAP_PASSWORD"}
	slices.Sort(vars)
	slices.Sort(want)
	if !slices.Equal(vars, want) {
		t.Errorf("missing variables reported: %q, want %q", vars, want)
	}
}
