package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"supportbridge/mail/mailtest"
	"supportbridge/webhook"
)

// ---- the desk's SMTP server, switchable ----

// deskMode is how the chaos desk answers.
type deskMode int

const (
	deskAccepting deskMode = iota
	deskRefusing           // 451 to every DATA
	deskDown               // nothing listens
)

// acceptedMail is one mail the desk accepted (a 250 after DATA).
type acceptedMail struct {
	raw []byte
	at  time.Time
}

// chaosDesk is the desk's mail server (mailtest.StartSMTP), which can be
// told to refuse with 451 or to go away, and records what it accepted.
type chaosDesk struct {
	srv     *mailtest.SMTPServer
	addr    string
	mu      sync.Mutex
	mode    deskMode
	refused int
}

func (d *chaosDesk) data(int, *mailtest.SMTPMessage) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode != deskAccepting {
		d.refused++
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	return nil
}

// startChaosDesk listens on a free loopback port until the test ends.
func startChaosDesk(t *testing.T) *chaosDesk {
	d := &chaosDesk{}
	d.srv = mailtest.StartSMTP(t, mailtest.WithDomain("desk.example"), mailtest.OnData(d.data))
	d.addr = d.srv.Addr
	return d
}

// setMode switches the desk; going down closes the listener and every
// connection, coming back listens again on the same port.
func (d *chaosDesk) setMode(m deskMode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m == d.mode {
		return nil
	}
	if m == deskDown {
		d.srv.Stop()
	} else if d.mode == deskDown {
		if err := d.srv.Resume(); err != nil {
			return err
		}
	}
	d.mode = m
	return nil
}

func (d *chaosDesk) mails() []acceptedMail {
	var out []acceptedMail
	for _, m := range d.srv.Messages() {
		out = append(out, acceptedMail{raw: m.Data, at: m.At})
	}
	return out
}

// parsedDeskMail is what the checker needs of a desk mail.
type parsedDeskMail struct {
	MessageID string
	Kind      string // "esc", "fu" … from our Message-ID
	Ticket    string // from the [ENT-<id>] tag
	Tokens    []string
}

var (
	subjectTagRE = regexp.MustCompile(`\[ENT-([A-Za-z0-9_.-]+)\]`)
	chaosTokenRE = regexp.MustCompile(`chaostok-[a-z0-9-]+`)
)

// parseDeskMail reads a desk mail without failing the test: a mail that
// cannot be read is itself a finding.
func parseDeskMail(raw []byte) (parsedDeskMail, error) {
	var p parsedDeskMail
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return p, fmt.Errorf("read mail: %w", err)
	}
	p.MessageID, _ = mr.Header.MessageID()
	if rest, ok := strings.CutPrefix(p.MessageID, "sb."); ok {
		p.Kind, _, _ = strings.Cut(rest, ".")
	}
	subject, _ := mr.Header.Subject()
	if m := subjectTagRE.FindStringSubmatch(subject); m != nil {
		p.Ticket = m[1]
	}
	var text strings.Builder
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p, fmt.Errorf("read part: %w", err)
		}
		if h, ok := part.Header.(*gomail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, _ := io.ReadAll(part.Body)
				text.Write(b)
			}
		}
	}
	p.Tokens = uniqueIDs(chaosTokenRE.FindAllString(text.String(), -1))
	return p, nil
}

// hasToken says whether text holds tok as a whole token ("chaostok-r1" is
// not in "chaostok-r12").
func hasToken(text, tok string) bool {
	for _, t := range chaosTokenRE.FindAllString(text, -1) {
		if t == tok {
			return true
		}
	}
	return false
}

// ---- the ENT's callback receiver ----

// callbackRecord is what the receiver saw of one callback (by webhook-id).
type callbackRecord struct {
	Type     string
	Ticket   string
	Body     string
	Acked    bool // answered 2xx at least once
	Attempts int
}

// callbackReceiver plays the ENT's callback endpoint: it checks the
// signature, answers some tries with an error so that the daemon retries,
// never acknowledges the callbacks of "deaf" tickets (they must end in the
// dead letters), and records every webhook-id.
type callbackReceiver struct {
	verifier *webhook.Verifier
	deaf     func(ticket string) bool
	failRate float64

	mu        sync.Mutex
	seen      map[string]*callbackRecord
	badSigned int
}

func (c *callbackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	id, _, err := c.verifier.Verify(r.Header, body)
	if err != nil {
		c.mu.Lock()
		c.badSigned++
		c.mu.Unlock()
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	var msg struct {
		Type string `json:"type"`
		Data struct {
			TicketID     string `json:"ticket_id"`
			Notification struct {
				TicketID string `json:"ticket_id"`
			} `json:"notification"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &msg)
	ticket := msg.Data.TicketID
	if ticket == "" {
		ticket = msg.Data.Notification.TicketID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.seen[id]
	if rec == nil {
		rec = &callbackRecord{Type: msg.Type, Ticket: ticket, Body: string(body)}
		c.seen[id] = rec
	}
	rec.Attempts++
	if c.deaf(ticket) || rand.Float64() < c.failRate {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	rec.Acked = true
	w.WriteHeader(http.StatusNoContent)
}

func (c *callbackReceiver) snapshot() (map[string]callbackRecord, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]callbackRecord, len(c.seen))
	for id, r := range c.seen {
		out[id] = *r
	}
	return out, c.badSigned
}

// ---- sending webhooks as the ENT does ----

// entSender posts signed webhooks to whichever replica is up, and retries
// the same webhook-id on network errors and 5xx as the ENT would, until a
// definite answer or its deadline.
type entSender struct {
	key      []byte
	replicas *replicaSet
	client   *http.Client
	patience time.Duration
}

// send returns the final status (0: never answered) and error code.
func (s *entSender) send(ctx context.Context, id string, body []byte) (int, string) {
	deadline := time.Now().Add(s.patience)
	status, code := 0, ""
	for {
		if base := s.replicas.pick(); base != "" {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/webhooks/ent", bytes.NewReader(body))
			if err != nil {
				return 0, err.Error()
			}
			req.Header.Set("Content-Type", "application/json")
			webhook.SignHeaders(req.Header, s.key, id, time.Now(), body)
			resp, err := s.client.Do(req)
			if err == nil {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status, code = resp.StatusCode, errorCode(raw)
				if status < 500 {
					return status, code
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return status, code
		}
		time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
	}
}

func errorCode(raw []byte) string {
	var b struct {
		Status string `json:"status"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &b)
	if b.Error.Code != "" {
		return b.Error.Code
	}
	return b.Status
}

// replicaSet holds the base URLs of the replicas that are up.
type replicaSet struct {
	mu    sync.Mutex
	bases []string // "" while a replica is down
}

func (r *replicaSet) pick() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var up []string
	for _, b := range r.bases {
		if b != "" {
			up = append(up, b)
		}
	}
	if len(up) == 0 {
		return ""
	}
	return up[rand.IntN(len(up))]
}

func (r *replicaSet) set(i int, base string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bases[i] = base
}

// ---- what the test did, what the system holds, and the invariants ----

// hookRecord is one webhook the load sent, with its final answer.
type hookRecord struct {
	ID, Type, Ticket string
	Key              string // structure id or comment token
	Status           int
	Code             string
}

func (h hookRecord) acked() bool { return h.Status >= 200 && h.Status < 300 }

// replyRecord is one desk reply delivered into the mailbox.
type replyRecord struct {
	Token, Ticket, MessageID string
}

// chaosRecord is what the test did.
type chaosRecord struct {
	hooks   []hookRecord
	replies []replyRecord
}

// jobRecord is one finished job of the daemon's queue.
type jobRecord struct {
	ID, Kind, Ticket, Reason string
}

// chaosObservation is what the system holds once everything is up again.
type chaosObservation struct {
	stored     map[string]bool            // webhook-id → found in Redis
	escalation map[string]string          // ticket → escalation status
	deskBodies map[string][]string        // ticket → bodies of its desk exchanges
	mails      []parsedDeskMail           // accepted by the desk
	badMails   int                        // accepted but unreadable
	callbacks  map[string]callbackRecord  // webhook-id → what the receiver saw
	unfinished int                        // jobs pending, active, scheduled or retrying
	done       []jobRecord                // completed callback jobs
	dead       []jobRecord                // archived jobs
	feeds      map[string]map[string]bool // user → notification ids in the feed
	recipients map[string][]string        // notification id → recipients (from callbacks)
	notifIDs   map[string]string          // callback webhook-id → notification id
}

// notifying says which accepted webhooks must end in a notification.
var notifying = map[string]bool{"ticket.created": true, "ticket.commented": true, "ticket.status_changed": true}

// checkChaos returns every invariant the run broke, one line each.
func checkChaos(rec chaosRecord, obs chaosObservation) []string {
	var v []string
	add := func(format string, a ...any) { v = append(v, fmt.Sprintf(format, a...)) }

	// 1. Nothing acknowledged is lost.
	for _, h := range rec.hooks {
		if h.acked() && !obs.stored[h.ID] {
			add("webhook %s (%s %s) was answered %d but is not in Redis", h.ID, h.Type, h.Ticket+h.Key, h.Status)
		}
	}

	// 2. Escalations reached the desk, once per Message-ID.
	escIDs := map[string]map[string]bool{} // ticket → Message-IDs of its escalation mails
	tokIDs := map[string]map[string]bool{} // comment token → Message-IDs of follow-ups
	for _, m := range obs.mails {
		switch m.Kind {
		case "esc":
			if escIDs[m.Ticket] == nil {
				escIDs[m.Ticket] = map[string]bool{}
			}
			escIDs[m.Ticket][m.MessageID] = true
		case "fu":
			for _, tok := range m.Tokens {
				if tokIDs[tok] == nil {
					tokIDs[tok] = map[string]bool{}
				}
				tokIDs[tok][m.MessageID] = true
			}
		}
	}
	if obs.badMails > 0 {
		add("%d mails accepted by the desk could not be read", obs.badMails)
	}
	for _, h := range rec.hooks {
		if h.Type != "ticket.escalation_requested" || !h.acked() {
			continue
		}
		if len(escIDs[h.Ticket]) == 0 {
			add("escalation of %s (webhook %s) never reached the desk", h.Ticket, h.ID)
		}
		if s := obs.escalation[h.Ticket]; s != "successful" {
			add("escalation of %s ended %q, want successful", h.Ticket, s)
		}
	}
	for _, ticket := range sortedKeys(escIDs) {
		if n := len(escIDs[ticket]); n > 1 {
			add("escalation of %s accepted by the desk under %d different Message-IDs", ticket, n)
		}
	}
	for _, tok := range sortedKeys(tokIDs) {
		if n := len(tokIDs[tok]); n > 1 {
			add("comment %s forwarded to the desk under %d different Message-IDs", tok, n)
		}
	}

	// 3. Every desk reply is on its ticket exactly once, and nowhere else.
	for _, r := range rec.replies {
		for ticket, bodies := range obs.deskBodies {
			n := 0
			for _, b := range bodies {
				if hasToken(b, r.Token) {
					n++
				}
			}
			switch {
			case ticket == r.Ticket && n != 1:
				add("desk reply %s is on %s %d times, want once", r.Token, ticket, n)
			case ticket != r.Ticket && n > 0:
				add("desk reply %s for %s landed on %s", r.Token, r.Ticket, ticket)
			}
		}
		if _, ok := obs.deskBodies[r.Ticket]; !ok {
			add("desk reply %s: ticket %s has no desk exchange", r.Token, r.Ticket)
		}
	}

	// 4. Every job ended: delivered, or dead with a reason.
	if obs.unfinished > 0 {
		add("%d jobs still pending, running or waiting for a retry", obs.unfinished)
	}
	for _, j := range obs.done {
		if !obs.callbacks[j.ID].Acked {
			add("callback job %s is done but the ENT never acknowledged it", j.ID)
		}
	}
	deadByPrefix := func(prefix string) bool {
		for _, j := range obs.dead {
			if strings.HasPrefix(j.ID, prefix) {
				return true
			}
		}
		return false
	}
	deadFor := func(ticket, infix string) bool {
		for _, j := range obs.dead {
			if j.Ticket == ticket && strings.Contains(j.ID, infix) {
				return true
			}
		}
		return false
	}
	for _, j := range obs.dead {
		if strings.TrimSpace(j.Reason) == "" {
			add("dead job %s has no reason", j.ID)
		}
	}
	ackedWithPrefix := func(prefix string) bool {
		for id, c := range obs.callbacks {
			if c.Acked && strings.HasPrefix(id, prefix) {
				return true
			}
		}
		return false
	}
	for _, h := range rec.hooks {
		// A 200 may be a no-op (same status again): only a 202 surely
		// changed the ticket and so notifies.
		if h.Status != http.StatusAccepted {
			continue
		}
		if notifying[h.Type] {
			p := h.ID + ":notify:"
			if !ackedWithPrefix(p) && !deadByPrefix(p) {
				add("webhook %s (%s on %s): no notification callback delivered nor dead", h.ID, h.Type, h.Ticket)
			}
		}
		if h.Type == "ticket.escalation_requested" {
			ok := deadFor(h.Ticket, ":cb:ticket.escalated")
			for _, c := range obs.callbacks {
				if c.Acked && c.Type == "ticket.escalated" && c.Ticket == h.Ticket {
					ok = true
				}
			}
			if !ok {
				add("escalation of %s: no ticket.escalated callback delivered nor dead", h.Ticket)
			}
		}
	}
	for _, r := range rec.replies {
		ok := deadFor(r.Ticket, ":cb:ticket.desk_replied")
		for _, c := range obs.callbacks {
			if c.Acked && c.Type == "ticket.desk_replied" && hasToken(c.Body, r.Token) {
				ok = true
			}
		}
		if !ok {
			add("desk reply %s on %s: no ticket.desk_replied callback delivered nor dead", r.Token, r.Ticket)
		}
	}
	// 5. Every notification told to the ENT is in its recipients' feeds.
	for id, c := range obs.callbacks {
		if !c.Acked || c.Type != "notification.created" {
			continue
		}
		nid := obs.notifIDs[id]
		for _, u := range obs.recipients[nid] {
			if !obs.feeds[u][nid] {
				add("notification %s (callback %s) is not in the feed of %s", nid, id, u)
			}
		}
	}
	sort.Strings(v)
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
