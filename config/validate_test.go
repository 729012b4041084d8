package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBadFileListsEveryProblem(t *testing.T) {
	_, err := Load("testdata/bad.yaml", nil)
	got := problemsOf(t, err)
	want := []string{
		"listen: must be host:port (not \"localhost\") (line 2)",
		"log_level: must be one of debug, info, warn, error (not \"verbose\") (line 3)",
		"shutdown_timeout: must be a duration above 0 such as 30s, 5m or 120h (line 4)",
		"redis.addrs[0]: port must be a number from 1 to 65535 (not \"0\") (line 6)",
		"redis.addrs[1]: must be host:port (not \"nohost\") (line 6)",
		"redis.key_prefix: must not hold braces (line 7)",
		"redis.db: must be a whole number (line 8)",
		"redis.dial_timeout: must be a duration such as 30s, 5m or 120h (line 9)",
		"redis.bogus: unknown key (line 10)",
		"ent.webhook_secrets[0]: must be \"whsec_\" followed by standard base64 (line 12)",
		"ent.webhook_secrets[1]: must start with \"whsec_\" (line 12)",
		"ent.api_tokens[0]: must be at least 16 characters (line 13)",
		"ent.api_tokens[1]: environment variable MISSING_TOKEN is not set (write ${MISSING_TOKEN:-} if it may be empty) (line 13)",
		"ent.callback_url: must be an http or https URL (not \"ftp://ent.example/cb\") (line 14)",
		"ent.callback_secret: required when ent.callback_url is set (line 11)",
		"ent.callback_retry_schedule: at least one delay is required (line 15)",
		"ent.webhook_max_body: \"20 parsecs\" is not a size such as 4096, 512KiB, 20MiB or 10MB (line 16)",
		"desk.from: required when desk.address is set (line 17)",
		"desk.reply_to: not an email address: mail: no angle-addr (line 19)",
		"desk.allowed_senders[0]: must be an address, \"*@domain\" or \"*@*.domain\" (not \"*@\") (line 20)",
		"desk.allowed_senders[1]: must be an address, \"*@domain\" or \"*@*.domain\" (not \"*@*.desk..example\") (line 20)",
		"desk.allowed_senders[2]: must be an address, \"*@domain\" or \"*@*.domain\" (not \"bob\") (line 20)",
		"desk.subject_tag: must be 1 to 16 letters or digits (not \"ENT-X\") (line 21)",
		"desk.reference_pattern: must have exactly one capture group (the desk's ticket number), not 0 (line 22)",
		"desk.signing_key: must be at least 16 characters (line 23)",
		"desk.status_markers.closed[0]: \"[done]\" is also a marker of desk.status_markers.resolved (line 24)",
		"smtp.addr: required when desk.address is set (line 25)",
		"smtp.tls: must be one of starttls, implicit, none (not \"ssl\") (line 25)",
		"smtp.ca_file: cannot read: open missing-ca.pem: no such file or directory (line 25)",
		"imap.username: required when imap.addr is set (line 26)",
		"imap.tls: must be one of starttls, implicit, none (not \"sometimes\") (line 26)",
		"imap.processed_mailbox: must differ from imap.mailbox (line 26)",
		"imap.quarantine_mailbox: must not be empty (line 26)",
		"digest.daily: not a cron schedule (5 fields, optional CRON_TZ=Zone prefix): expected exactly 5 fields, found 4: [0 8 * *] (line 27)",
		"digest.weekly: not a cron schedule (5 fields, optional CRON_TZ=Zone prefix): provided bad location Mars/Olympus: unknown time zone Mars/Olympus (line 27)",
		"digest.default_locale: must be fr or en (not \"de\") (line 27)",
		"operators.emails[0]: not an email address: mail: no angle-addr (line 28)",
		"structures[0].parent_id: parent cycle: s1 → s2 → s1 (line 30)",
		"structures[0].referents[0].email: must be a bare email address such as name@school.example (not \"bad\") (line 30)",
		"structures[0].referents[1].id: \"r1\" is already the id of referents[0] (line 30)",
		"structures[0].referents[1].digest: must be one of daily, weekly, never (not \"hourly\") (line 30)",
		"structures[0].referents[1].locale: must be fr or en (not \"es\") (line 30)",
		"structures[2].id: \"s2\" is already the id of structures[1] (line 32)",
		"structures[3].nmae: unknown key (did you mean name?) (line 33)",
		"structures[3].id: required (line 33)",
		"structures[4].parent_id: a structure cannot be its own parent (line 34)",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing problem: %s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("unexpected problem: %s", g)
		}
	}
	// The bad secrets and tokens of the file are never echoed.
	text := err.Error()
	for _, secret := range []string{"notBase64", "plainSecretValue", "tooShortTok", "tinyKey"} {
		if strings.Contains(text, secret) {
			t.Errorf("a problem shows the secret %q", secret)
		}
	}
}

func TestConditionalRequirements(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ent   string // more keys of the ent section (line 4 on)
		extra string
		want  []string // nil: valid
	}{
		{"no desk, no imap: valid", "", "", nil},
		{"desk complete", "", `
desk: {address: support@desk.example, from: "A <a@ent.example>", reply_to: a@ent.example, signing_key: 0123456789abcdef}
smtp: {addr: "smtp.example:587"}`, nil},
		{"desk address alone", "", `
desk: {address: support@desk.example}`, []string{
			"desk.from: required when desk.address is set (line 5)",
			"desk.reply_to: required when desk.address is set (line 5)",
			"smtp.addr: required when desk.address is set",
			"desk.signing_key: required when desk.address is set (line 5)",
		}},
		{"reply_to is the desk", "", `
desk: {address: support@desk.example, from: a@ent.example, reply_to: "Desk <SUPPORT@desk.example>", signing_key: 0123456789abcdef}
smtp: {addr: "smtp.example:587"}`, []string{
			"desk.reply_to: must differ from desk.address, or the bridge would read its own mail (line 5)",
		}},
		{"plus token and a plus in reply_to", "", `
desk: {address: support@desk.example, from: a@ent.example, reply_to: a+b@ent.example, signing_key: 0123456789abcdef}
smtp: {addr: "smtp.example:587"}`, []string{
			`desk.reply_to: must not hold a "+" when desk.plus_token is on: the token is added after one (line 5)`,
		}},
		{"authserv_id a host name", "", `
desk: {authserv_id: mx.ent.example, require_dmarc_pass: true}`, nil},
		{"authserv_id not a host name", "", `
desk: {authserv_id: "mx ent; dmarc=pass"}`, []string{
			`desk.authserv_id: must be the receiving server's authserv-id, a host name such as mx.school.example (not "mx ent; dmarc=pass") (line 5)`,
		}},
		{"require_dmarc_pass without authserv_id", "", `
desk: {require_dmarc_pass: true}`, []string{
			"desk.require_dmarc_pass: needs desk.authserv_id: the server whose DMARC results are trusted (line 5)",
		}},
		{"plus in reply_to without plus token", "", `
desk: {address: support@desk.example, from: a@ent.example, reply_to: a+b@ent.example, signing_key: 0123456789abcdef, plus_token: false}
smtp: {addr: "smtp.example:587"}`, nil},
		{"imap without allowed senders", "", `
imap: {addr: "imap.example:993", username: u}`, []string{
			"desk.allowed_senders: at least one is required when imap.addr is set: replies from other senders never land on a ticket",
		}},
		{"imap complete", "", `
imap: {addr: "imap.example:993", username: u, mailbox: Inbox, processed_mailbox: Done, quarantine_mailbox: Bad}
desk: {allowed_senders: ["*@desk.example"]}`, nil},
		{"inbox names ignore case", "", `
imap: {mailbox: inbox, processed_mailbox: INBOX}`, []string{
			"imap.processed_mailbox: must differ from imap.mailbox (line 5)",
		}},
		{"callback complete", "  callback_url: https://ent.example/cb\n  callback_secret: " + testCallbackSecret + "\n", "", nil},
		{"callback url without host", "  callback_url: https:///cb\n  callback_secret: " + testCallbackSecret + "\n", "", []string{
			`ent.callback_url: must name a host (not "https:///cb") (line 4)`,
		}},
		{"callback secret malformed", "  callback_url: http://ent.example/cb\n  callback_secret: whsec_c2hvcnQ=\n", "", []string{
			"ent.callback_secret: key must be 24 to 64 bytes, not 5 (line 5)",
		}},
		{"link base must be a URL", "  link_base: ent.example/t/\n", "", []string{
			`ent.link_base: must be an http or https URL (not "ent.example/t/") (line 4)`,
		}},
		{"cluster has db 0 only", "", `
redis: {addrs: ["a:1", "b:2"], db: 1}`, []string{
			"redis.db: must be 0 with several addrs: Redis Cluster has only db 0 (line 5)",
		}},
		{"sentinel may use another db", "", `
redis: {addrs: ["a:26379", "b:26379"], master_name: mymaster, db: 1}`, nil},
		{"sentinel waits for a replica", "", `
redis: {addrs: ["a:26379"], master_name: mymaster, wait_replicas: 1, wait_timeout: 500ms}`, nil},
		{"cluster cannot wait for replicas", "", `
redis: {addrs: ["a:1", "b:2"], wait_replicas: 1}`, []string{
			"redis.wait_replicas: is for a standalone or Sentinel Redis, not a Cluster (set it to 0) (line 5)",
		}},
		{"wait bounds", "", `
redis: {wait_replicas: 1, wait_timeout: 3s, read_timeout: 3s}`, []string{
			"redis.wait_timeout: must be shorter than redis.read_timeout (3s): the client gives up reading at that (line 5)",
		}},
		{"negative replicas", "", `
redis: {wait_replicas: -1}`, []string{
			"redis.wait_replicas: must not be negative (line 5)",
		}},
		{"retry bounds", "", `
smtp: {retry_initial: 1h, retry_max: 30m, lifetime: 10m}`, []string{
			"smtp.retry_max: must not be less than smtp.retry_initial (line 5)",
			"smtp.lifetime: must not be less than smtp.retry_initial (line 5)",
		}},
		{"dedupe shorter than replay window", "  webhook_tolerance: 10m\n  dedupe_ttl: 15m\n", "", []string{
			"ent.dedupe_ttl: must be at least twice ent.webhook_tolerance (line 5)",
		}},
		{"zero and negative durations and sizes", "  callback_retry_schedule: [5s, 0s, -1m]\n", `
imap: {lease_ttl: 0s, max_message_bytes: 0}
attachments: {max_count: 0}
jobs: {concurrency: 1001, poll_interval: 0s}`, []string{
			"ent.callback_retry_schedule[1]: must be a duration above 0 such as 30s, 5m or 120h (line 4)",
			"ent.callback_retry_schedule[2]: must be a duration above 0 such as 30s, 5m or 120h (line 4)",
			"imap.max_message_bytes: must be a size above 0 such as 512KiB or 20MiB (line 6)",
			"imap.lease_ttl: must be a duration above 0 such as 30s, 5m or 120h (line 6)",
			"attachments.max_count: must be more than 0 (line 7)",
			"jobs.concurrency: must be between 1 and 1000 (line 8)",
			"jobs.poll_interval: must be a duration above 0 such as 30s, 5m or 120h (line 8)",
		}},
		{"listen forms", "", `
listen: ":0"`, nil},
		{"listen needs a numeric port", "", `
listen: "127.0.0.1:http"`, []string{`listen: port must be a number from 0 to 65535 (not "http") (line 5)`}},
		{"reference pattern matching nothing", "", `
desk: {reference_pattern: '(\d*)'}`, []string{"desk.reference_pattern: must not match an empty text (line 5)"}},
		{"reference pattern that does not compile", "", `
desk: {reference_pattern: '(\d+'}`, []string{"desk.reference_pattern: not a Go regular expression: error parsing regexp: missing closing ): `(\\d+` (line 5)"}},

		{"cron descriptors and zones", "", `
digest: {daily: "@daily", weekly: "TZ=America/New_York 30 7 * * 0"}`, nil},
		{"referent defaults follow default_locale", "", `
digest: {default_locale: en}
structures: [{id: s1, referents: [{id: r, email: r@s.example}]}]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken + "\"]\n" +
				tc.ent + tc.extra + "\n"
			c, err := Parse([]byte(yaml), nil)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				if tc.name == "referent defaults follow default_locale" {
					if r := c.Structures[0].Referents[0]; r.Digest != "daily" || r.Locale != "en" {
						t.Errorf("referent = %+v", r)
					}
				}
				return
			}
			if got := problemsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestAPITokenForm(t *testing.T) {
	for _, tc := range []struct {
		token string
		want  string // "" for valid
	}{
		{"0123456789abcdef", ""},
		{"ééééééééééééééé€", ""}, // 16 characters, more bytes
		{"0123456789abcde", "ent.api_tokens[0]: must be at least 16 characters (line 3)"},
		{"0123456789 abcdef", "ent.api_tokens[0]: must not hold spaces or control characters (it is sent as a bearer token) (line 3)"},
	} {
		yaml := "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + tc.token + "\"]\n"
		_, err := Parse([]byte(yaml), nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("token %q: %v", tc.token, err)
			}
			continue
		}
		if got := problemsOf(t, err); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("token %q: problems %q", tc.token, got)
		}
	}
}

// Metrics tokens follow the API tokens' form, are optional, and are kept
// out of every printed form of the configuration.
func TestMetricsTokenForm(t *testing.T) {
	base := "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken + "\"]\n"
	for _, tc := range []struct {
		yaml string
		want string // "" for valid
	}{
		{"", ""},
		{"operators:\n  metrics_tokens: []\n", ""},
		{"operators:\n  metrics_tokens: [metrics-new-0123456789, metrics-old-0123456789]\n", ""},
		{"operators:\n  metrics_tokens: [short]\n", "operators.metrics_tokens[0]: must be at least 16 characters (line 5)"},
		{"operators:\n  metrics_tokens: [\"metrics new 0123456789\"]\n",
			"operators.metrics_tokens[0]: must not hold spaces or control characters (it is sent as a bearer token) (line 5)"},
	} {
		c, err := Parse([]byte(base+tc.yaml), nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
				continue
			}
			for _, tok := range c.Operators.MetricsTokens {
				if s := fmt.Sprintf("%v %+v %#v", c.Operators, c.Operators, tok); strings.Contains(s, tok.Reveal()) {
					t.Errorf("metrics token printed: %s", s)
				}
			}
			continue
		}
		if got := problemsOf(t, err); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%q: problems %q", tc.yaml, got)
		}
	}
}

// Extra callback secrets must decode like callback_secret, and give their
// keys only when callbacks are on.
func TestCallbackExtraSecrets(t *testing.T) {
	base := "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken + "\"]\n" +
		"  callback_url: https://ent.example/cb\n  callback_secret: " + testCallbackSecret + "\n"
	c, err := Parse([]byte(base+"  callback_extra_secrets: [\""+testOldSecret+"\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.CallbackExtraKeys()
	if err != nil || len(keys) != 1 || string(keys[0]) != "supportbridge-old-rotated-key-01" {
		t.Errorf("extra keys %q, %v", keys, err)
	}
	c.ENT.CallbackURL = ""
	if keys, err := c.CallbackExtraKeys(); keys != nil || err != nil {
		t.Errorf("without callback_url: %q, %v", keys, err)
	}
	_, err = Parse([]byte(base+"  callback_extra_secrets: [whsec_short]\n"), nil)
	if got := problemsOf(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "ent.callback_extra_secrets[0]: ") {
		t.Errorf("bad extra secret: %q", got)
	}
}

func TestParentCycles(t *testing.T) {
	for _, tc := range []struct {
		name       string
		structures string
		want       []string
	}{
		{"chain to an unknown parent is fine", "[{id: a, parent_id: b}, {id: b, parent_id: c}]", nil},
		{"tree", "[{id: root}, {id: a, parent_id: root}, {id: b, parent_id: root}, {id: c, parent_id: a}]", nil},
		{"three-cycle reported once", "[{id: a, parent_id: b}, {id: b, parent_id: c}, {id: c, parent_id: a}, {id: d, parent_id: a}]",
			[]string{"structures[0].parent_id: parent cycle: a → b → c → a (line 4)"}},
		{"two cycles", "[{id: a, parent_id: b}, {id: b, parent_id: a}, {id: c, parent_id: d}, {id: d, parent_id: c}]",
			[]string{
				"structures[0].parent_id: parent cycle: a → b → a (line 4)",
				"structures[2].parent_id: parent cycle: c → d → c (line 4)",
			}},
		{"leading into a self loop", "[{id: a, parent_id: b}, {id: b, parent_id: b}]",
			[]string{"structures[1].parent_id: a structure cannot be its own parent (line 4)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal("structures: "+tc.structures+"\n")), nil)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := problemsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// writeCA writes a self-signed CA certificate in PEM to dir.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCAFiles(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name  string
		extra string
		want  []string
	}{
		{"readable CAs", "redis: {tls: true, ca_file: '" + ca + "'}\nsmtp: {ca_file: '" + ca + "'}\nimap: {ca_file: '" + ca + "'}\n", nil},
		{"CA without TLS", "redis: {ca_file: '" + ca + "'}\nsmtp: {tls: none, ca_file: '" + ca + "'}\n", []string{
			"redis.ca_file: set but unused because redis.tls is false (line 4)",
			"smtp.ca_file: set but unused because smtp.tls is none (line 5)",
		}},
		{"not PEM", "imap: {ca_file: '" + garbage + "'}\n", []string{
			"imap.ca_file: " + garbage + " holds no PEM certificate (line 4)",
		}},
		{"missing", "smtp: {ca_file: '" + missing + "'}\n", []string{
			"smtp.ca_file: cannot read: open " + missing + ": no such file or directory (line 4)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal(tc.extra)), nil)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := problemsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCheckSenderPattern(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"agent@desk.example", true},
		{"*@desk.example", true},
		{"*@*.desk.example", true},
		{"*@localhost", true},
		{"*@", false},
		{"*@*.", false},
		{"*@-desk.example", false},
		{"*@desk..example", false},
		{"a*@desk.example", false},
		{"*agent@desk.example", false},
		{"Agent <agent@desk.example>", false},
		{"@desk.example", false},
		{"", false},
	} {
		if err := checkSenderPattern(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkSenderPattern(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// Previous signing keys have the signing key's form and are secrets.
func TestPreviousSigningKeys(t *testing.T) {
	base := "ent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken + "\"]\n"
	c, err := Parse([]byte(base+"desk:\n  previous_signing_keys: [\"old-signing-key-0123\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Desk.PreviousSigningKeys) != 1 || c.Desk.PreviousSigningKeys[0].Reveal() != "old-signing-key-0123" {
		t.Errorf("keys %v", c.Desk.PreviousSigningKeys)
	}
	if s := fmt.Sprintf("%v %+v", c.Desk.PreviousSigningKeys, c.Desk); strings.Contains(s, "old-signing-key-0123") {
		t.Errorf("a previous key is printed: %s", s)
	}
	_, err = Parse([]byte(base+"desk:\n  previous_signing_keys: [\"short\"]\n"), nil)
	want := []string{"desk.previous_signing_keys[0]: must be at least 16 characters (line 5)"}
	if got := problemsOf(t, err); !slices.Equal(got, want) {
		t.Errorf("problems %q", got)
	}
}
