package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
)

// normalize fills in the values whose default depends on other keys or on
// the machine, so that consumers never see an empty choice.
func normalize(c *Config, p *problems) {
	c.InstanceID = strings.TrimSpace(c.InstanceID)
	if c.InstanceID == "" {
		if host, err := os.Hostname(); err == nil {
			c.InstanceID = host
		}
		if c.InstanceID == "" {
			p.at("instance_id", "not set and the hostname is unknown")
		}
	}
	locale := c.Digest.DefaultLocale
	if !validLocale(locale) {
		locale = "fr" // reported by validate
	}
	for i := range c.Structures {
		for j := range c.Structures[i].Referents {
			r := &c.Structures[i].Referents[j]
			if r.Digest == "" {
				r.Digest = "daily"
			}
			if r.Locale == "" {
				r.Locale = locale
			}
		}
	}
}

func validLocale(l string) bool { return l == "fr" || l == "en" }

// validate records every problem of c; it never stops at the first.
func validate(c *Config, p *problems) {
	if err := checkHostPort(c.Listen, true); err != nil {
		p.at("listen", "%v", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.at("log_level", "must be one of debug, info, warn, error (not %q)", c.LogLevel)
	}
	positive(p, "shutdown_timeout", c.ShutdownTimeout)
	if c.MaxConnections < 0 {
		p.at("max_connections", "must be 0 (no cap) or more (not %d)", c.MaxConnections)
	}
	if strings.IndexFunc(c.InstanceID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		p.at("instance_id", "must not hold spaces or control characters")
	}
	validateRedis(&c.Redis, p)
	validateENT(&c.ENT, p)
	validateDesk(c, p)
	validateSMTP(&c.SMTP, p)
	validateIMAP(&c.IMAP, p)

	positiveSize(p, "attachments.max_bytes", c.Attachments.MaxBytes)
	if c.Attachments.MaxCount <= 0 {
		p.at("attachments.max_count", "must be more than 0")
	}
	positive(p, "attachments.retention", c.Attachments.Retention)
	positive(p, "notifications.retention", c.Notifications.Retention)
	positive(p, "notifications.prune_interval", c.Notifications.PruneInterval)
	positive(p, "digest.lease_ttl", c.Digest.LeaseTTL)
	positive(p, "digest.lease_wait", c.Digest.LeaseWait)
	if c.Jobs.Concurrency <= 0 || c.Jobs.Concurrency > 1000 {
		p.at("jobs.concurrency", "must be between 1 and 1000")
	}
	positive(p, "jobs.poll_interval", c.Jobs.PollInterval)
	positive(p, "jobs.retention", c.Jobs.Retention)

	for _, s := range []struct{ key, spec string }{{"digest.daily", c.Digest.Daily}, {"digest.weekly", c.Digest.Weekly}} {
		if _, err := cron.ParseStandard(s.spec); err != nil {
			p.at(s.key, "not a cron schedule (5 fields, optional CRON_TZ=Zone prefix): %v", err)
		}
	}
	if !validLocale(c.Digest.DefaultLocale) {
		p.at("digest.default_locale", "must be fr or en (not %q)", c.Digest.DefaultLocale)
	}
	for i, t := range c.Operators.MetricsTokens {
		bearerToken(p, fmt.Sprintf("operators.metrics_tokens[%d]", i), t)
	}
	for i, e := range c.Operators.Emails {
		if _, err := mail.ParseAddress(e); err != nil {
			p.at(fmt.Sprintf("operators.emails[%d]", i), "not an email address: %v", err)
		}
	}
	validateStructures(c.Structures, p)
}

func validateRedis(r *Redis, p *problems) {
	if len(r.Addrs) == 0 {
		p.at("redis.addrs", "at least one host:port is required")
	}
	for i, a := range r.Addrs {
		if err := checkHostPort(a, false); err != nil {
			p.at(fmt.Sprintf("redis.addrs[%d]", i), "%v", err)
		}
	}
	if r.DB < 0 {
		p.at("redis.db", "must not be negative")
	}
	if r.DB != 0 && len(r.Addrs) > 1 && r.MasterName == "" {
		p.at("redis.db", "must be 0 with several addrs: Redis Cluster has only db 0")
	}
	switch {
	case r.KeyPrefix == "":
		p.at("redis.key_prefix", "must not be empty")
	case strings.ContainsAny(r.KeyPrefix, "{}"):
		// Braces would change the Cluster hash slot of every key.
		p.at("redis.key_prefix", "must not hold braces")
	case strings.IndexFunc(r.KeyPrefix, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }) >= 0:
		p.at("redis.key_prefix", "must not hold spaces or control characters")
	}
	checkCAFile(p, "redis.ca_file", r.CAFile, r.TLS, "redis.tls is false")
	positive(p, "redis.dial_timeout", r.DialTimeout)
	positive(p, "redis.read_timeout", r.ReadTimeout)
	positive(p, "redis.write_timeout", r.WriteTimeout)
	switch {
	case r.WaitReplicas < 0:
		p.at("redis.wait_replicas", "must not be negative")
	case r.WaitReplicas > 0 && len(r.Addrs) > 1 && r.MasterName == "":
		// WAIT counts the replicas of the connection's own node; a
		// pipeline spread over a Cluster's nodes has no one to ask.
		p.at("redis.wait_replicas", "is for a standalone or Sentinel Redis, not a Cluster (set it to 0)")
	case r.WaitReplicas > 0:
		positive(p, "redis.wait_timeout", r.WaitTimeout)
		if r.WaitTimeout > 0 && r.ReadTimeout > 0 && r.WaitTimeout >= r.ReadTimeout {
			p.at("redis.wait_timeout", "must be shorter than redis.read_timeout (%v): the client gives up reading at that", r.ReadTimeout)
		}
	}
}

func validateENT(e *ENT, p *problems) {
	if len(e.WebhookSecrets) == 0 {
		p.at("ent.webhook_secrets", "at least one secret is required")
	}
	for i, s := range e.WebhookSecrets {
		if _, err := DecodeWebhookSecret(s.Reveal()); err != nil {
			p.at(fmt.Sprintf("ent.webhook_secrets[%d]", i), "%v", err)
		}
	}
	positive(p, "ent.webhook_tolerance", e.WebhookTolerance)
	positiveSize(p, "ent.webhook_max_body", e.WebhookMaxBody)
	positive(p, "ent.dedupe_ttl", e.DedupeTTL)
	if e.DedupeTTL > 0 && e.WebhookTolerance > 0 && e.DedupeTTL < 2*e.WebhookTolerance {
		// A signed request stays acceptable for ±tolerance: its id must be
		// remembered at least that long or a replay passes as new.
		p.at("ent.dedupe_ttl", "must be at least twice ent.webhook_tolerance")
	}
	if e.CallbackURL != "" {
		if err := checkHTTPURL(e.CallbackURL); err != nil {
			p.at("ent.callback_url", "%v", err)
		}
		if e.CallbackSecret.IsZero() {
			p.at("ent.callback_secret", "required when ent.callback_url is set")
		}
	}
	if !e.CallbackSecret.IsZero() {
		if _, err := DecodeWebhookSecret(e.CallbackSecret.Reveal()); err != nil {
			p.at("ent.callback_secret", "%v", err)
		}
	}
	for i, s := range e.CallbackExtraSecrets {
		if _, err := DecodeWebhookSecret(s.Reveal()); err != nil {
			p.at(fmt.Sprintf("ent.callback_extra_secrets[%d]", i), "%v", err)
		}
	}
	positive(p, "ent.callback_timeout", e.CallbackTimeout)
	if len(e.CallbackRetrySchedule) == 0 {
		p.at("ent.callback_retry_schedule", "at least one delay is required")
	}
	for i, d := range e.CallbackRetrySchedule {
		positive(p, fmt.Sprintf("ent.callback_retry_schedule[%d]", i), d)
	}
	if len(e.APITokens) == 0 {
		p.at("ent.api_tokens", "at least one token is required")
	}
	for i, t := range e.APITokens {
		bearerToken(p, fmt.Sprintf("ent.api_tokens[%d]", i), t)
	}
	if e.LinkBase != "" {
		if err := checkHTTPURL(e.LinkBase); err != nil {
			p.at("ent.link_base", "%v", err)
		}
	}
}

var (
	subjectTagRE = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)
	identityRE   = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,64}$`)
	domainRE     = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
)

func validateDesk(c *Config, p *problems) {
	d := &c.Desk
	addrs := map[string]*mail.Address{}
	for _, f := range []struct{ key, val string }{{"desk.address", d.Address}, {"desk.from", d.From}, {"desk.reply_to", d.ReplyTo}} {
		if f.val == "" {
			continue
		}
		a, err := mail.ParseAddress(f.val)
		if err != nil {
			p.at(f.key, "not an email address: %v", err)
			continue
		}
		addrs[f.key] = a
	}
	if d.MailEnabled() {
		for _, req := range []struct{ key, val string }{
			{"desk.from", d.From}, {"desk.reply_to", d.ReplyTo}, {"smtp.addr", c.SMTP.Addr}, {"desk.signing_key", d.SigningKey.Reveal()},
		} {
			if req.val == "" {
				p.at(req.key, "required when desk.address is set")
			}
		}
	}
	if to, rt := addrs["desk.address"], addrs["desk.reply_to"]; to != nil && rt != nil && strings.EqualFold(to.Address, rt.Address) {
		p.at("desk.reply_to", "must differ from desk.address, or the bridge would read its own mail")
	}
	if rt := addrs["desk.reply_to"]; rt != nil && d.PlusToken {
		if local, _, _ := strings.Cut(rt.Address, "@"); strings.Contains(local, "+") {
			p.at("desk.reply_to", `must not hold a "+" when desk.plus_token is on: the token is added after one`)
		}
	}
	if k := d.SigningKey.Reveal(); k != "" && utf8.RuneCountInString(k) < 16 {
		p.at("desk.signing_key", "must be at least 16 characters")
	}
	for i, k := range d.PreviousSigningKeys {
		if utf8.RuneCountInString(k.Reveal()) < 16 {
			p.at(fmt.Sprintf("desk.previous_signing_keys[%d]", i), "must be at least 16 characters")
		}
	}
	if c.IMAP.Enabled() && len(d.AllowedSenders) == 0 {
		p.at("desk.allowed_senders", "at least one is required when imap.addr is set: replies from other senders never land on a ticket")
	}
	for i, s := range d.AllowedSenders {
		if err := checkSenderPattern(s); err != nil {
			p.at(fmt.Sprintf("desk.allowed_senders[%d]", i), "%v", err)
		}
	}
	if d.AuthServID != "" && (len(d.AuthServID) > 253 || !domainRE.MatchString(d.AuthServID)) {
		p.at("desk.authserv_id", "must be the receiving server's authserv-id, a host name such as mx.school.example (not %q)", d.AuthServID)
	}
	if d.RequireDMARCPass && d.AuthServID == "" {
		p.at("desk.require_dmarc_pass", "needs desk.authserv_id: the server whose DMARC results are trusted")
	}
	if !slices.Contains(DeskProducts, d.Product) {
		p.at("desk.product", "must be one of %s (not %q)", strings.Join(DeskProducts, ", "), d.Product)
	}
	if !subjectTagRE.MatchString(d.SubjectTag) {
		p.at("desk.subject_tag", "must be 1 to 16 letters or digits (not %q)", d.SubjectTag)
	}
	if re, err := regexp.Compile(d.ReferencePattern); err != nil {
		p.at("desk.reference_pattern", "not a Go regular expression: %v", err)
	} else if re.NumSubexp() != 1 {
		p.at("desk.reference_pattern", "must have exactly one capture group (the desk's ticket number), not %d", re.NumSubexp())
	} else if re.MatchString("") {
		p.at("desk.reference_pattern", "must not match an empty text")
	}
	if !identityRE.MatchString(d.Identity) {
		p.at("desk.identity", "must be 1 to 64 of letters, digits and . _ @ + - (not %q)", d.Identity)
	}
	seen := map[string]string{}
	for _, m := range []struct {
		key  string
		list []string
	}{{"desk.status_markers.resolved", d.StatusMarkers.Resolved}, {"desk.status_markers.closed", d.StatusMarkers.Closed}, {"desk.status_markers.waiting", d.StatusMarkers.Waiting}} {
		for i, marker := range m.list {
			key := fmt.Sprintf("%s[%d]", m.key, i)
			if strings.TrimSpace(marker) == "" {
				p.at(key, "must not be empty")
				continue
			}
			if strings.ContainsAny(marker, "\r\n") {
				p.at(key, "must be on one line")
				continue
			}
			norm := strings.ToLower(strings.TrimSpace(marker))
			if other, dup := seen[norm]; dup && other != m.key {
				p.at(key, "%q is also a marker of %s", marker, other)
			}
			seen[norm] = m.key
		}
	}
	positiveSize(p, "desk.max_attachment_bytes", d.MaxAttachmentBytes)
}

// checkSenderPattern accepts "user@domain", "*@domain" and "*@*.domain".
func checkSenderPattern(s string) error {
	const want = `must be an address, "*@domain" or "*@*.domain"`
	switch {
	case strings.HasPrefix(s, "*@*."):
		if !domainRE.MatchString(s[4:]) {
			return fmt.Errorf("%s (not %q)", want, s)
		}
	case strings.HasPrefix(s, "*@"):
		if !domainRE.MatchString(s[2:]) {
			return fmt.Errorf("%s (not %q)", want, s)
		}
	default:
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" || strings.Contains(s, "*") {
			return fmt.Errorf("%s (not %q)", want, s)
		}
	}
	return nil
}

func validateSMTP(s *SMTP, p *problems) {
	if s.Addr != "" {
		if err := checkHostPort(s.Addr, false); err != nil {
			p.at("smtp.addr", "%v", err)
		}
	}
	checkTLSMode(p, "smtp.tls", s.TLS)
	positive(p, "smtp.timeout", s.Timeout)
	checkCAFile(p, "smtp.ca_file", s.CAFile, s.TLS != TLSNone, "smtp.tls is none")
	if s.HELO != "" && !domainRE.MatchString(s.HELO) && net.ParseIP(strings.Trim(s.HELO, "[]")) == nil {
		p.at("smtp.helo", "must be a host name or an address literal (not %q)", s.HELO)
	}
	positive(p, "smtp.retry_initial", s.RetryInitial)
	positive(p, "smtp.retry_max", s.RetryMax)
	positive(p, "smtp.lifetime", s.Lifetime)
	if s.RetryInitial > 0 && s.RetryMax > 0 && s.RetryMax < s.RetryInitial {
		p.at("smtp.retry_max", "must not be less than smtp.retry_initial")
	}
	if s.RetryInitial > 0 && s.Lifetime > 0 && s.Lifetime < s.RetryInitial {
		p.at("smtp.lifetime", "must not be less than smtp.retry_initial")
	}
}

func validateIMAP(m *IMAP, p *problems) {
	if m.Enabled() {
		if err := checkHostPort(m.Addr, false); err != nil {
			p.at("imap.addr", "%v", err)
		}
		if m.Username == "" {
			p.at("imap.username", "required when imap.addr is set")
		}
	}
	checkTLSMode(p, "imap.tls", m.TLS)
	checkCAFile(p, "imap.ca_file", m.CAFile, m.TLS != TLSNone, "imap.tls is none")
	boxes := map[string]string{}
	for _, b := range []struct{ key, name string }{
		{"imap.mailbox", m.Mailbox}, {"imap.processed_mailbox", m.ProcessedMailbox}, {"imap.quarantine_mailbox", m.QuarantineMailbox},
	} {
		if strings.TrimSpace(b.name) == "" {
			p.at(b.key, "must not be empty")
			continue
		}
		if strings.IndexFunc(b.name, unicode.IsControl) >= 0 {
			p.at(b.key, "must not hold control characters")
			continue
		}
		norm := b.name
		if strings.EqualFold(norm, "INBOX") {
			norm = "INBOX" // the only case-insensitive name in IMAP
		}
		if other, dup := boxes[norm]; dup {
			p.at(b.key, "must differ from %s", other)
			continue
		}
		boxes[norm] = b.key
	}
	positive(p, "imap.poll_interval", m.PollInterval)
	positiveSize(p, "imap.max_message_bytes", m.MaxMessageBytes)
	positive(p, "imap.raw_retention", m.RawRetention)
	positive(p, "imap.lease_ttl", m.LeaseTTL)
}

func validateStructures(sts []Structure, p *problems) {
	index := map[string]int{}
	for i, s := range sts {
		key := fmt.Sprintf("structures[%d]", i)
		uniqueID(p, index, key, "structures", s.ID, i)
		if s.ParentID != "" && s.ParentID == s.ID {
			p.at(key+".parent_id", "a structure cannot be its own parent")
		}
		refs := map[string]int{}
		for j, r := range s.Referents {
			rkey := fmt.Sprintf("%s.referents[%d]", key, j)
			uniqueID(p, refs, rkey, "referents", r.ID, j)
			if r.Email == "" {
				p.at(rkey+".email", "required")
			} else if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email {
				p.at(rkey+".email", "must be a bare email address such as name@school.example (not %q)", r.Email)
			}
			switch r.Digest {
			case "daily", "weekly", "never":
			default:
				p.at(rkey+".digest", "must be one of daily, weekly, never (not %q)", r.Digest)
			}
			if !validLocale(r.Locale) {
				p.at(rkey+".locale", "must be fr or en (not %q)", r.Locale)
			}
		}
	}
	// A parent cycle would make "this structure and its parents" endless.
	// Each cycle is reported once, at its first structure in file order.
	reported := map[string]bool{}
	for i, s := range sts {
		if s.ParentID == "" || s.ParentID == s.ID || index[s.ID] != i+1 {
			continue
		}
		chain := []string{s.ID}
		seen := map[string]bool{s.ID: true}
		for cur := s.ParentID; cur != ""; {
			at, ok := index[cur]
			if !ok {
				break // parent not configured: the ENT may send it later
			}
			if seen[cur] {
				if cur == s.ID && !reported[s.ID] {
					for _, id := range chain {
						reported[id] = true
					}
					p.at(fmt.Sprintf("structures[%d].parent_id", i), "parent cycle: %s", strings.Join(append(chain, cur), " → "))
				}
				break
			}
			seen[cur] = true
			chain = append(chain, cur)
			next := sts[at-1].ParentID
			if next == cur {
				break // reported above as its own parent
			}
			cur = next
		}
	}
}

// uniqueID checks the id of item i of a list (structures, referents) whose
// key is key: it is required, and must not be the id of an earlier item.
// index maps each id seen so far to its item's position plus one (0 means
// absent).
func uniqueID(p *problems, index map[string]int, key, list, id string, i int) {
	switch {
	case strings.TrimSpace(id) == "":
		p.at(key+".id", "required")
	case index[id] > 0:
		p.at(key+".id", "%q is already the id of %s[%d]", id, list, index[id]-1)
	default:
		index[id] = i + 1
	}
}

func positive(p *problems, key string, d time.Duration) {
	if d <= 0 {
		p.at(key, "must be a duration above 0 such as 30s, 5m or 120h")
	}
}

func positiveSize(p *problems, key string, b ByteSize) {
	if b <= 0 {
		p.at(key, "must be a size above 0 such as 512KiB or 20MiB")
	}
}

func checkTLSMode(p *problems, key string, m TLSMode) {
	switch m {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		p.at(key, "must be one of starttls, implicit, none (not %q)", string(m))
	}
}

// checkCAFile requires a readable PEM bundle; a CA file that TLS would not
// use is a mistake too.
func checkCAFile(p *problems, key, path string, tlsOn bool, why string) {
	if path == "" {
		return
	}
	if !tlsOn {
		p.at(key, "set but unused because %s", why)
	}
	switch _, err := LoadCAFile(path); {
	case errors.Is(err, ErrNoCertificate):
		p.at(key, "%s holds no PEM certificate", path)
	case err != nil:
		p.at(key, "cannot read: %v", err)
	}
}

// checkHostPort accepts "host:port" with a numeric port; listen addresses
// may leave the host out (all interfaces) and use port 0 (any free port).
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port (not %q)", s)
	}
	n, err := strconv.Atoi(port)
	lowest := 1
	if listen {
		lowest = 0
	}
	if err != nil || n < lowest || n > 65535 {
		return fmt.Errorf("port must be a number from %d to 65535 (not %q)", lowest, port)
	}
	if host == "" && !listen {
		return fmt.Errorf("host is missing in %q", s)
	}
	if strings.IndexFunc(host, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("host must not hold spaces or control characters (not %q)", host)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL (not %q)", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("must name a host (not %q)", s)
	}
	return nil
}

// bearerToken checks a token sent in an Authorization header: long enough
// not to be guessed, and nothing a header would mangle.
func bearerToken(p *problems, key string, t Secret) {
	switch v := t.Reveal(); {
	case utf8.RuneCountInString(v) < 16:
		p.at(key, "must be at least 16 characters")
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		p.at(key, "must not hold spaces or control characters (it is sent as a bearer token)")
	}
}
