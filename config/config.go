// Package config holds supportbridge's configuration: the struct read from
// YAML, its defaults, ${VAR} expansion from the environment and a validation
// that reports every problem at once. It imports no other package of the
// project but its own leaf, config/whsec (the webhook secret format, which
// package webhook shares).
package config

import (
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"time"

	// Digest schedules carry CRON_TZ= zones; embedding the zone database
	// lets them load on machines without /usr/share/zoneinfo.
	_ "time/tzdata"

	"supportbridge/config/whsec"
)

// Config is the whole configuration of the daemon.
type Config struct {
	Listen          string        `yaml:"listen"`
	LogLevel        string        `yaml:"log_level"` // debug | info | warn | error
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxConnections caps the HTTP connections open at once; more wait to
	// be accepted. 0: no cap.
	MaxConnections int `yaml:"max_connections"`
	// InstanceID names this replica (leases, logs); Parse fills in the
	// hostname when it is empty.
	InstanceID    string        `yaml:"instance_id"`
	Redis         Redis         `yaml:"redis"`
	ENT           ENT           `yaml:"ent"`
	Desk          Desk          `yaml:"desk"`
	SMTP          SMTP          `yaml:"smtp"`
	IMAP          IMAP          `yaml:"imap"`
	Attachments   Attachments   `yaml:"attachments"`
	Notifications Notifications `yaml:"notifications"`
	Jobs          Jobs          `yaml:"jobs"`
	Digest        Digest        `yaml:"digest"`
	Operators     Operators     `yaml:"operators"`
	Structures    []Structure   `yaml:"structures"`
}

// Redis is where all state lives. One address is a standalone server,
// several a Cluster, a master name a Sentinel group.
type Redis struct {
	Addrs        []string      `yaml:"addrs"`
	MasterName   string        `yaml:"master_name"`
	Username     string        `yaml:"username"`
	Password     Secret        `yaml:"password"`
	DB           int           `yaml:"db"`
	KeyPrefix    string        `yaml:"key_prefix"`
	TLS          bool          `yaml:"tls"`
	CAFile       string        `yaml:"ca_file"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// WaitReplicas, when above 0, holds every acknowledgement (a webhook's
	// 2xx, a desk reply moved, an accepted mail's job completed) until that
	// many replicas hold the write (Redis's WAIT, up to WaitTimeout), so
	// that a Sentinel failover promoting one of them loses none. Not for a
	// Cluster.
	WaitReplicas int           `yaml:"wait_replicas"`
	WaitTimeout  time.Duration `yaml:"wait_timeout"`
}

// ENT is the school workspace side: inbound webhooks, outbound callbacks
// and the read API.
type ENT struct {
	// WebhookSecrets are "whsec_<base64>" keys; several are accepted at
	// once so that a key can be rotated without downtime.
	WebhookSecrets   []Secret      `yaml:"webhook_secrets"`
	WebhookTolerance time.Duration `yaml:"webhook_tolerance"`
	WebhookMaxBody   ByteSize      `yaml:"webhook_max_body"`
	// DedupeTTL is how long the webhook-id of a structure event is
	// remembered; those of ticket events live as long as their ticket.
	DedupeTTL      time.Duration `yaml:"dedupe_ttl"`
	CallbackURL    string        `yaml:"callback_url"` // empty: no callbacks
	CallbackSecret Secret        `yaml:"callback_secret"`
	// CallbackExtraSecrets also sign every callback, for a rotation.
	CallbackExtraSecrets  []Secret        `yaml:"callback_extra_secrets"`
	CallbackTimeout       time.Duration   `yaml:"callback_timeout"`
	CallbackRetrySchedule []time.Duration `yaml:"callback_retry_schedule"`
	APITokens             []Secret        `yaml:"api_tokens"`
	// LinkBase is prefixed to a ticket id to link to it from digests.
	LinkBase string `yaml:"link_base"`
	// TrustActorRoles leaves the actors' rights to the ENT: the daemon
	// then takes any actor for any action (the module's roles unchecked).
	TrustActorRoles bool `yaml:"trust_actor_roles"`
}

// Desk is the external support desk reached by email.
type Desk struct {
	Address        string   `yaml:"address"` // empty: escalations are only recorded
	From           string   `yaml:"from"`
	ReplyTo        string   `yaml:"reply_to"`
	AllowedSenders []string `yaml:"allowed_senders"` // "a@b", "*@domain", "*@*.domain"
	// AuthServID is the authserv-id with which the server receiving the
	// reply_to mailbox's mail writes its Authentication-Results. When set,
	// a mail from an allowed sender that this server found failing DMARC
	// never lands on a ticket: it is quarantined. Empty: not checked.
	AuthServID string `yaml:"authserv_id"`
	// RequireDMARCPass, with authserv_id, quarantines also every mail
	// whose DMARC result from that server is not "pass".
	RequireDMARCPass bool   `yaml:"require_dmarc_pass"`
	SubjectTag       string `yaml:"subject_tag"`
	// Product is the help-desk product that answers as the desk: auto
	// (recognised from each mail), one of DeskProducts, or generic (a
	// person's mail client: no product's conventions).
	Product string `yaml:"product"`
	// ReferencePattern finds the desk's own ticket number (its one capture
	// group) in the desk's mails.
	ReferencePattern string `yaml:"reference_pattern"`
	PlusToken        bool   `yaml:"plus_token"`
	SigningKey       Secret `yaml:"signing_key"`
	// PreviousSigningKeys are accepted when checking tokens and
	// Message-IDs, never used to sign: they keep replies to older mails
	// threading after a rotation.
	PreviousSigningKeys []Secret      `yaml:"previous_signing_keys"`
	Identity            string        `yaml:"identity"`
	StatusMarkers       StatusMarkers `yaml:"status_markers"`
	MaxAttachmentBytes  ByteSize      `yaml:"max_attachment_bytes"`
}

// DeskProducts are the values of desk.product. The inbound side has the
// conventions of each product (a test keeps the two lists the same).
var DeskProducts = []string{"auto", "glpi", "rt", "zammad", "zendesk", "freshdesk", "osticket", "jira", "otrs", "freescout", "generic"}

// StatusMarkers are the texts by which a desk reply changes the ticket's
// status.
type StatusMarkers struct {
	Resolved []string `yaml:"resolved"`
	Closed   []string `yaml:"closed"`
	Waiting  []string `yaml:"waiting"`
}

// TLSMode is how a mail connection is secured.
type TLSMode string

// The TLS modes of smtp.tls and imap.tls.
const (
	TLSStartTLS TLSMode = "starttls"
	TLSImplicit TLSMode = "implicit"
	TLSNone     TLSMode = "none"
)

// SMTP is the outbound mail server.
type SMTP struct {
	Addr     string        `yaml:"addr"`
	TLS      TLSMode       `yaml:"tls"`
	Username string        `yaml:"username"`
	Password Secret        `yaml:"password"`
	Timeout  time.Duration `yaml:"timeout"`
	CAFile   string        `yaml:"ca_file"`
	HELO     string        `yaml:"helo"`
	// Temporary failures are retried from RetryInitial, doubling up to
	// RetryMax, until Lifetime after the first attempt.
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	Lifetime     time.Duration `yaml:"lifetime"`
}

// IMAP is the mailbox where the desk's replies arrive.
type IMAP struct {
	Addr              string        `yaml:"addr"` // empty: no inbound mail
	TLS               TLSMode       `yaml:"tls"`
	Username          string        `yaml:"username"`
	Password          Secret        `yaml:"password"`
	Mailbox           string        `yaml:"mailbox"`
	ProcessedMailbox  string        `yaml:"processed_mailbox"`
	QuarantineMailbox string        `yaml:"quarantine_mailbox"`
	PollInterval      time.Duration `yaml:"poll_interval"`
	IDLE              bool          `yaml:"idle"`
	CAFile            string        `yaml:"ca_file"`
	MaxMessageBytes   ByteSize      `yaml:"max_message_bytes"`
	RawRetention      time.Duration `yaml:"raw_retention"`
	LeaseTTL          time.Duration `yaml:"lease_ttl"`
}

// Attachments are the limits on inbound attachments (webhooks and desk
// mails).
type Attachments struct {
	MaxBytes  ByteSize      `yaml:"max_bytes"`
	MaxCount  int           `yaml:"max_count"`
	Retention time.Duration `yaml:"retention"`
}

// Jobs tunes the durable job queue (mails, notifications, callbacks).
type Jobs struct {
	// Concurrency is how many jobs one replica runs at once.
	Concurrency int `yaml:"concurrency"`
	// PollInterval is how often a replica looks for retries that are due
	// (new jobs are taken as soon as they are queued).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Retention keeps the id of a job (so that an effect handed over
	// twice runs once) for that long after its dispatch or last failure.
	Retention time.Duration `yaml:"retention"`
}

// Notifications configures the users' feeds.
type Notifications struct {
	Retention time.Duration `yaml:"retention"`
	// PruneInterval is how often one replica removes the entries older
	// than Retention.
	PruneInterval time.Duration `yaml:"prune_interval"`
}

// Digest holds the cron specs of the digest runs.
type Digest struct {
	Daily         string `yaml:"daily"`
	Weekly        string `yaml:"weekly"`
	DefaultLocale string `yaml:"default_locale"` // fr | en
	// LeaseTTL bounds how long the replicas wait for a digest run whose
	// replica died; LeaseWait how long a run waits for another replica's.
	LeaseTTL  time.Duration `yaml:"lease_ttl"`
	LeaseWait time.Duration `yaml:"lease_wait"`
}

// Operators are the people who run the daemon.
type Operators struct {
	Emails []string `yaml:"emails"`
	// MetricsTokens, when any, are the bearer tokens /metrics asks for;
	// several at once so that a scraper's token can be rotated.
	MetricsTokens []Secret `yaml:"metrics_tokens"`
}

// Structure is a school known from the configuration.
type Structure struct {
	ID                string     `yaml:"id"`
	Name              string     `yaml:"name"`
	UAI               string     `yaml:"uai"`
	ParentID          string     `yaml:"parent_id"`
	EscalationEnabled bool       `yaml:"escalation_enabled"`
	Referents         []Referent `yaml:"referents"`
}

// Referent is a local administrator of a structure. After Parse, Digest is
// one of daily, weekly, never and Locale one of fr, en.
type Referent struct {
	ID          string `yaml:"id"`
	DisplayName string `yaml:"display_name"`
	Email       string `yaml:"email"`
	Digest      string `yaml:"digest"`
	Locale      string `yaml:"locale"`
}

// Default returns the configuration used for every key the file leaves out.
// The secrets and the API tokens have no default: a file must set them.
func Default() Config {
	host, _ := os.Hostname() // empty on failure; Parse reports it then
	return Config{
		Listen:          "127.0.0.1:8080",
		LogLevel:        "info",
		ShutdownTimeout: 15 * time.Second,
		MaxConnections:  1024,
		InstanceID:      host,
		Redis: Redis{
			Addrs:        []string{"127.0.0.1:6379"},
			KeyPrefix:    "sb:",
			DialTimeout:  5 * time.Second,
			ReadTimeout:  3 * time.Second,
			WriteTimeout: 3 * time.Second,
			WaitTimeout:  time.Second,
		},
		ENT: ENT{
			WebhookTolerance: 5 * time.Minute,
			WebhookMaxBody:   20 * MiB,
			DedupeTTL:        168 * time.Hour,
			CallbackTimeout:  15 * time.Second,
			// Standard Webhooks' own schedule.
			CallbackRetrySchedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
				2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
		},
		Desk: Desk{
			Product:          "auto",
			SubjectTag:       "ENT",
			ReferencePattern: `\[Desk #(\d+)\]`,
			PlusToken:        true,
			Identity:         "supportbridge",
			StatusMarkers: StatusMarkers{
				Resolved: []string{"[RESOLU]", "[RESOLVED]"},
				Closed:   []string{"[CLOS]", "[CLOSED]"},
				Waiting:  []string{"[ATTENTE]", "[WAITING]"},
			},
			MaxAttachmentBytes: 10 * MiB,
		},
		// Postfix's defaults: 5 min backoff doubling to about 66 min, give
		// up after 5 days.
		SMTP: SMTP{
			TLS:          TLSStartTLS,
			Timeout:      30 * time.Second,
			RetryInitial: 5 * time.Minute,
			RetryMax:     66 * time.Minute,
			Lifetime:     120 * time.Hour,
		},
		IMAP: IMAP{
			TLS:               TLSImplicit,
			Mailbox:           "INBOX",
			ProcessedMailbox:  "Processed",
			QuarantineMailbox: "Quarantine",
			PollInterval:      30 * time.Second,
			IDLE:              true,
			MaxMessageBytes:   40 * MiB,
			RawRetention:      2160 * time.Hour,
			LeaseTTL:          30 * time.Second,
		},
		Attachments:   Attachments{MaxBytes: 10 * MiB, MaxCount: 20, Retention: 8760 * time.Hour},
		Notifications: Notifications{Retention: 2160 * time.Hour, PruneInterval: time.Hour},
		Jobs:          Jobs{Concurrency: 8, PollInterval: 200 * time.Millisecond, Retention: 168 * time.Hour},
		Digest: Digest{
			Daily:         "CRON_TZ=Europe/Paris 0 8 * * 1-5",
			Weekly:        "CRON_TZ=Europe/Paris 0 8 * * 1",
			DefaultLocale: "fr",
			LeaseTTL:      5 * time.Minute,
			LeaseWait:     15 * time.Minute,
		},
	}
}

// WebhookKeys returns the HMAC keys of ent.webhook_secrets, in file order.
func (c *Config) WebhookKeys() ([][]byte, error) {
	keys := make([][]byte, 0, len(c.ENT.WebhookSecrets))
	for i, s := range c.ENT.WebhookSecrets {
		k, err := DecodeWebhookSecret(s.Reveal())
		if err != nil {
			return nil, fmt.Errorf("config: ent.webhook_secrets[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// CallbackKey returns the HMAC key of ent.callback_secret, or nil when
// callbacks are off (no callback_url).
func (c *Config) CallbackKey() ([]byte, error) {
	if c.ENT.CallbackURL == "" {
		return nil, nil
	}
	k, err := DecodeWebhookSecret(c.ENT.CallbackSecret.Reveal())
	if err != nil {
		return nil, fmt.Errorf("config: ent.callback_secret: %w", err)
	}
	return k, nil
}

// CallbackExtraKeys returns the HMAC keys of ent.callback_extra_secrets,
// which sign every callback beside callback_secret while it is rotated;
// nil when callbacks are off.
func (c *Config) CallbackExtraKeys() ([][]byte, error) {
	if c.ENT.CallbackURL == "" {
		return nil, nil
	}
	var keys [][]byte
	for i, s := range c.ENT.CallbackExtraSecrets {
		k, err := DecodeWebhookSecret(s.Reveal())
		if err != nil {
			return nil, fmt.Errorf("config: ent.callback_extra_secrets[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// DecodeWebhookSecret returns the key of a Standard Webhooks secret
// ("whsec_" + standard base64 of 24 to 64 bytes): the one rule, whsec.Parse.
// The error never holds the secret.
func DecodeWebhookSecret(s string) ([]byte, error) { return whsec.Parse(s) }

// SlogLevel returns log_level as a slog level (info when unknown, which a
// validated config never is).
func (c *Config) SlogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// MailEnabled reports whether escalations are mailed to the desk.
func (d Desk) MailEnabled() bool { return d.Address != "" }

// Warnings lists what is valid but likely not meant: check-config prints
// them and still exits 0.
func (c *Config) Warnings() []string {
	var out []string
	if !c.Desk.MailEnabled() {
		out = append(out, "desk.address is empty: escalations are only recorded (escalation in_progress, an \"escalation_recorded\" event), nothing is mailed to a desk")
	}
	return out
}

// ReferenceRegexp compiles reference_pattern; Parse has checked it, so the
// error only comes for a Desk built by hand.
func (d Desk) ReferenceRegexp() (*regexp.Regexp, error) {
	re, err := regexp.Compile(d.ReferencePattern)
	if err != nil {
		return nil, fmt.Errorf("config: desk.reference_pattern: %w", err)
	}
	return re, nil
}

// SenderAllowed reports whether address (bare or with a display name)
// matches one of allowed_senders: an exact address, "*@domain" (that domain
// only) or "*@*.domain" (its subdomains only). Matching ignores case.
func (d Desk) SenderAllowed(address string) bool {
	a, err := mail.ParseAddress(address)
	if err != nil {
		return false
	}
	addr := strings.ToLower(a.Address)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	domain := addr[at+1:]
	for _, p := range d.AllowedSenders {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case strings.HasPrefix(p, "*@*."):
			if strings.HasSuffix(domain, p[3:]) { // p[3:] keeps the dot: subdomains only
				return true
			}
		case strings.HasPrefix(p, "*@"):
			if domain == p[2:] {
				return true
			}
		default:
			if addr == p {
				return true
			}
		}
	}
	return false
}

// Enabled reports whether desk replies are read from an IMAP mailbox.
func (i IMAP) Enabled() bool { return i.Addr != "" }
