package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
	"supportbridge/webhook"
)

// The chaos test runs only when asked: it takes minutes and real servers.
//
//	SUPPORTBRIDGE_CHAOS=1 SUPPORTBRIDGE_REQUIRE_SERVERS=1 go test -count=1 -run Chaos -v ./cmd/supportbridge/
//
// SUPPORTBRIDGE_CHAOS_DURATION bounds the chaos phase (default 60s); the
// quiet period after it waits for the queues to drain (at most
// chaosDrainLimit). SUPPORTBRIDGE_CHAOS_FAULT=no-aof runs the main phase
// with a real fault, and the test must then fail.
const (
	chaosEnv         = "SUPPORTBRIDGE_CHAOS"
	chaosDurationEnv = "SUPPORTBRIDGE_CHAOS_DURATION"
	chaosFaultEnv    = "SUPPORTBRIDGE_CHAOS_FAULT"

	// faultNoAOF runs Redis without persistence: its SIGKILL loses every
	// acknowledged webhook, which invariant 1 must report.
	faultNoAOF = "no-aof"

	chaosReplicas   = 3
	chaosWorkers    = 4
	chaosPrefix     = "chaos:"
	chaosQueue      = "chaos-jobs"
	chaosDrainLimit = 150 * time.Second
)

// chaosOptions shape one run.
type chaosOptions struct {
	duration time.Duration
	drain    time.Duration
	fault    string
}

// chaosResult is the outcome of a run: the broken invariants and the
// figures.
type chaosResult struct {
	violations []string
	figures    chaosFigures
}

type chaosFigures struct {
	webhooksSent, webhooksAcked, webhooksRefused, webhooksUnanswered int
	ackedByType                                                      map[string]int
	replicaKills, redisRestarts, dovecotRestarts                     int
	smtpRefusals, smtpOutages, smtpRefusedData                       int
	mailsAccepted, mailIDs, escalationMails                          int
	repliesDelivered                                                 int
	callbacksSeen, callbacksAcked, callbackTries                     int
	deadJobs                                                         int
	deadReasons                                                      map[string]int
	quiet                                                            time.Duration
}

func (f chaosFigures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhooks sent %d, acked %d (", f.webhooksSent, f.webhooksAcked)
	for i, k := range sortedKeys(f.ackedByType) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", strings.TrimPrefix(k, "ticket."), f.ackedByType[k])
	}
	fmt.Fprintf(&b, "), refused 4xx %d, unanswered %d\n", f.webhooksRefused, f.webhooksUnanswered)
	fmt.Fprintf(&b, "replica SIGKILLs %d, redis SIGKILL+restarts %d, dovecot kills+restarts %d, smtp 451 periods %d (DATA refused %d), smtp outages %d\n",
		f.replicaKills, f.redisRestarts, f.dovecotRestarts, f.smtpRefusals, f.smtpRefusedData, f.smtpOutages)
	fmt.Fprintf(&b, "mails accepted by the desk %d (distinct Message-IDs %d, escalations %d), desk replies delivered %d\n",
		f.mailsAccepted, f.mailIDs, f.escalationMails, f.repliesDelivered)
	fmt.Fprintf(&b, "callbacks seen %d, acknowledged %d, tries %d; dead jobs %d %v; quiet period %v",
		f.callbacksSeen, f.callbacksAcked, f.callbackTries, f.deadJobs, f.deadReasons, f.quiet.Round(time.Second))
	return b.String()
}

func TestChaos(t *testing.T) {
	if os.Getenv(chaosEnv) != "1" {
		t.Skipf("set %s=1 to run the chaos test (minutes, real servers)", chaosEnv)
	}
	duration := 60 * time.Second
	if s := os.Getenv(chaosDurationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", chaosDurationEnv, s)
		}
		duration = d
	}
	fault := os.Getenv(chaosFaultEnv)
	if fault != "" && fault != faultNoAOF {
		t.Fatalf("%s=%q: known faults: %s", chaosFaultEnv, fault, faultNoAOF)
	}

	// The checker must catch a real fault, in every run: Redis without
	// persistence, killed once the load has been acknowledged.
	t.Run("fault=no-aof is caught", func(t *testing.T) {
		res := runChaos(t, chaosOptions{duration: 12 * time.Second, drain: 15 * time.Second, fault: faultNoAOF})
		t.Logf("figures of the faulty run:\n%s", res.figures)
		var lost []string
		for _, v := range res.violations {
			if strings.Contains(v, "is not in Redis") {
				lost = append(lost, v)
			}
		}
		if len(lost) == 0 {
			t.Fatalf("Redis lost its data yet the checker saw no lost webhook; it said: %q", res.violations)
		}
		t.Logf("the checker reported %d lost webhooks (%d violations in all), e.g. %s", len(lost), len(res.violations), lost[0])
	})

	t.Run("invariants", func(t *testing.T) {
		res := runChaos(t, chaosOptions{duration: duration, drain: chaosDrainLimit, fault: fault})
		t.Logf("figures:\n%s", res.figures)
		if fault != "" {
			t.Logf("fault %s injected: the invariants below must be broken", fault)
		}
		for _, k := range violationKinds(res.violations) {
			t.Logf("violations: %s", k)
		}
		for i, v := range res.violations {
			if i == 30 {
				t.Errorf("… and %d more", len(res.violations)-i)
				break
			}
			t.Errorf("invariant broken: %s", v)
		}
	})
}

var idShapes = regexp.MustCompile(`T-w[0-9]+-[0-9]+(-deaf)?|chaostok-[a-z0-9-]+|msg_chaos_[0-9_w]+|s-w[0-9]+-[0-9]+|\bn[a-z2-7]{19,}\b|[0-9]+`)

// violationKinds sums the violations up by their shape, ids left out.
func violationKinds(vs []string) []string {
	counts := map[string]int{}
	for _, v := range vs {
		counts[idShapes.ReplaceAllString(v, "…")]++
	}
	var out []string
	for _, k := range sortedKeys(counts) {
		out = append(out, fmt.Sprintf("%d× %s", counts[k], k))
	}
	return out
}

// chaosRun is one run's moving parts.
type chaosRun struct {
	t       *testing.T
	opts    chaosOptions
	redis   *redistest.Server
	dovecot *mailtest.Dovecot
	desk    *chaosDesk
	recv    *callbackReceiver
	cfgs    []string
	kids    []*childDaemon
	set     *replicaSet
	sender  *entSender
	fig     chaosFigures

	mu    sync.Mutex
	hooks []hookRecord

	// desk replies: built from escalation mails, delivered while Dovecot is up
	mailCursor int
	replied    map[string]bool
	pending    []pendingReply
	replies    []replyRecord
	replySeq   int
	dovecotUp  bool
}

type pendingReply struct {
	rec replyRecord
	raw []byte
}

func runChaos(t *testing.T, opts chaosOptions) chaosResult {
	r := &chaosRun{t: t, opts: opts, replied: map[string]bool{}, dovecotUp: true}
	r.fig.ackedByType = map[string]int{}
	if opts.fault == faultNoAOF {
		r.redis = redistest.Start(t)
	} else {
		r.redis = redistest.Start(t, redistest.WithAOF())
	}
	r.dovecot = mailtest.StartDovecot(t)
	r.desk = startChaosDesk(t)

	cbSecret := "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(t, 24))
	cbKey, err := webhook.ParseSecret(cbSecret)
	if err != nil {
		t.Fatal(err)
	}
	r.recv = &callbackReceiver{
		verifier: &webhook.Verifier{Keys: [][]byte{cbKey}, Tolerance: 5 * time.Minute},
		deaf:     func(ticket string) bool { return strings.HasSuffix(ticket, "-deaf") },
		failRate: 0.1,
		seen:     map[string]*callbackRecord{},
	}
	ent := httptest.NewServer(r.recv)
	t.Cleanup(ent.Close)

	for i := range chaosReplicas {
		r.cfgs = append(r.cfgs, r.writeConfig(i, ent.URL, cbSecret))
	}
	r.set = &replicaSet{bases: make([]string, chaosReplicas)}
	for i := range chaosReplicas {
		r.startReplica(i)
	}
	key, err := webhook.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r.sender = &entSender{key: key, replicas: r.set, client: &http.Client{Timeout: 10 * time.Second}, patience: 30 * time.Second}

	// The load, in the background; the faults and the desk, here (the
	// server helpers may only fail the test from this goroutine).
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range chaosWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.load(ctx, w)
		}()
	}
	start := time.Now()
	for _, a := range r.timeline() {
		for time.Since(start) < a.at {
			r.tendDesk()
			time.Sleep(100 * time.Millisecond)
		}
		a.do()
	}
	for time.Since(start) < opts.duration {
		r.tendDesk()
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()

	// Quiet period: everything up; wait until the invariants hold or the
	// deadline passes.
	r.allUp()
	quietStart := time.Now()
	var violations []string
	for {
		r.tendDesk()
		rec := chaosRecord{hooks: r.recordedHooks(), replies: append([]replyRecord(nil), r.replies...)}
		obs, err := r.observe(rec)
		if err != nil {
			violations = []string{"observe: " + err.Error()}
		} else {
			violations = checkChaos(rec, obs)
			r.figuresFrom(rec, obs)
		}
		if (len(violations) == 0 && len(r.pending) == 0) || time.Since(quietStart) > opts.drain {
			break
		}
		time.Sleep(2 * time.Second)
	}
	r.fig.quiet = time.Since(quietStart)
	return chaosResult{violations: violations, figures: r.fig}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *chaosRun) writeConfig(i int, callbackURL, callbackSecret string) string {
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log_level: info
instance_id: replica-%d
shutdown_timeout: 5s
redis: {addrs: [%q], key_prefix: %q, dial_timeout: 1s, read_timeout: 3s, write_timeout: 3s}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}"]
  api_tokens: [%q]
  callback_url: %q
  callback_secret: %q
  callback_timeout: 3s
  callback_retry_schedule: [1s, 1s, 2s, 2s]
desk:
  address: support@desk.example
  from: "Assistance ENT <assistance@ent.example>"
  reply_to: assistance@ent.example
  allowed_senders: ["*@desk.example"]
  signing_key: "chaos-signing-key-0123456789"
smtp: {addr: %q, tls: none, timeout: 5s, retry_initial: 1s, retry_max: 2s, lifetime: 1h}
imap: {addr: %q, tls: none, username: %q, password: %q, idle: true, poll_interval: 1s, lease_ttl: 3s}
jobs: {concurrency: 4}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: never}]}
`, i, r.redis.Addr, chaosPrefix, testToken, callbackURL, callbackSecret, r.desk.addr,
		r.dovecot.IMAPAddr, r.dovecot.User, r.dovecot.Password)
	path := filepath.Join(r.t.TempDir(), fmt.Sprintf("replica-%d.yaml", i))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

func (r *chaosRun) startReplica(i int) {
	// Not waiting for the configured structures: a replica may restart
	// while Redis is down; it stores them once Redis is back, and the load
	// takes a 409 unknown_structure meanwhile as the ENT would.
	c := launchChild(r.t, r.cfgs[i])
	for len(r.kids) <= i {
		r.kids = append(r.kids, nil)
	}
	r.kids[i] = c
	r.set.set(i, c.base)
}

// killReplica SIGKILLs a running replica, by its PID.
func (r *chaosRun) killReplica() int {
	var up []int
	for i, c := range r.kids {
		if c != nil {
			up = append(up, i)
		}
	}
	if len(up) <= 1 {
		return -1 // keep one serving: the ENT would otherwise only wait
	}
	i := up[mrand.IntN(len(up))]
	r.set.set(i, "")
	c := r.kids[i]
	_ = c.cmd.Process.Kill()
	<-c.exited
	r.kids[i] = nil
	r.fig.replicaKills++
	return i
}

// chaosAction is one step of the fault timeline.
type chaosAction struct {
	at time.Duration
	do func()
}

// timeline draws the faults of the run: each resource fails and comes back
// on its own random schedule, so that faults overlap. Replicas are killed in
// the first half only: a job a dead replica held comes back once the queue
// reclaims it (its lease, 30 s, run out), within the quiet period.
func (r *chaosRun) timeline() []chaosAction {
	d := r.opts.duration
	frac := func(lo, hi float64) time.Duration {
		return time.Duration((lo + mrand.Float64()*(hi-lo)) * float64(d))
	}
	secs := func(lo, hi float64) time.Duration {
		return time.Duration((lo + mrand.Float64()*(hi-lo)) * float64(time.Second))
	}
	var acts []chaosAction
	add := func(at time.Duration, f func()) { acts = append(acts, chaosAction{at, f}) }

	if r.opts.fault == faultNoAOF {
		// One Redis crash once the load is acknowledged, nothing else:
		// the point is that the checker sees what was lost.
		at := d / 2
		add(at, func() { r.redis.Kill() })
		add(at+time.Second, func() { r.redis.Restart(r.t); r.fig.redisRestarts++ })
	} else {
		kills := max(2, int(d/(12*time.Second)))
		for i := range kills {
			at := time.Duration(float64(d) * (0.05 + 0.45*float64(i)/float64(kills)))
			at += frac(0, 0.4/float64(kills))
			slot := new(int)
			add(at, func() { *slot = r.killReplica() })
			add(at+secs(1, 3), func() {
				if *slot >= 0 {
					r.startReplica(*slot)
				}
			})
		}
		redisCrashes := max(1, int(d/(30*time.Second)))
		for i := range redisCrashes {
			at := time.Duration(float64(d)*(0.1+0.7*float64(i)/float64(redisCrashes))) + frac(0, 0.5/float64(redisCrashes))
			add(at, func() { r.redis.Kill() })
			add(at+secs(1, 3), func() { r.redis.Restart(r.t); r.fig.redisRestarts++ })
		}
		smtpCycles := max(1, int(d/(30*time.Second)))
		for i := range smtpCycles {
			at := time.Duration(float64(d)*(0.05+0.7*float64(i)/float64(smtpCycles))) + frac(0, 0.3/float64(smtpCycles))
			refuse := secs(3, 6)
			down := secs(3, 6)
			add(at, func() { r.mustDesk(deskRefusing); r.fig.smtpRefusals++ })
			add(at+refuse, func() { r.mustDesk(deskDown); r.fig.smtpOutages++ })
			add(at+refuse+down, func() { r.mustDesk(deskAccepting) })
		}
		imapCycles := max(1, int(d/(30*time.Second)))
		for i := range imapCycles {
			at := time.Duration(float64(d)*(0.15+0.6*float64(i)/float64(imapCycles))) + frac(0, 0.3/float64(imapCycles))
			add(at, func() { r.dovecot.Kill(r.t); r.dovecotUp = false })
			add(at+secs(3, 6), func() { r.dovecot.Restart(r.t); r.dovecotUp = true; r.fig.dovecotRestarts++ })
		}
	}
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].at < acts[j].at })
	return acts
}

func (r *chaosRun) mustDesk(m deskMode) {
	if err := r.desk.setMode(m); err != nil {
		r.t.Fatal(err)
	}
}

// allUp ends every fault still running.
func (r *chaosRun) allUp() {
	if err := redistest.Client(r.t, r.redis.Addr).Ping(context.Background()).Err(); err != nil {
		r.redis.Restart(r.t)
		r.fig.redisRestarts++
	}
	if !r.dovecotUp {
		r.dovecot.Restart(r.t)
		r.dovecotUp = true
		r.fig.dovecotRestarts++
	}
	r.mustDesk(deskAccepting)
	for i, c := range r.kids {
		if c == nil {
			r.startReplica(i)
		}
	}
}

// tendDesk plays the desk's agents: each escalation that reached the desk
// gets a reply (some two), threaded on its Message-ID, delivered into the
// mailbox whenever Dovecot is up.
func (r *chaosRun) tendDesk() {
	mails := r.desk.mails()
	for ; r.mailCursor < len(mails); r.mailCursor++ {
		p, err := parseDeskMail(mails[r.mailCursor].raw)
		if err != nil || p.Kind != "esc" || p.Ticket == "" || r.replied[p.Ticket] {
			continue
		}
		r.replied[p.Ticket] = true
		n := 1 + mrand.IntN(2)
		for range n {
			r.replySeq++
			tok := fmt.Sprintf("chaostok-r%d", r.replySeq)
			mid := fmt.Sprintf("%s.%d@desk.example", tok, time.Now().UnixNano())
			raw := fmt.Sprintf("From: Agent <agent@desk.example>\r\nTo: assistance@ent.example\r\nSubject: RE: votre demande\r\n"+
				"Date: %s\r\nMessage-ID: <%s>\r\nIn-Reply-To: <%s>\r\nReferences: <%s>\r\nMIME-Version: 1.0\r\n"+
				"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
				"Bonjour, réponse %s .\r\n\r\nLe lun. 3 nov. 2026 à 09:00, Assistance ENT <assistance@ent.example> a écrit :\r\n> la demande\r\n",
				time.Now().Format(time.RFC1123Z), mid, p.MessageID, p.MessageID, tok)
			r.pending = append(r.pending, pendingReply{rec: replyRecord{Token: tok, Ticket: p.Ticket, MessageID: mid}, raw: []byte(raw)})
		}
	}
	if !r.dovecotUp {
		return
	}
	for len(r.pending) > 0 {
		if err := r.dovecot.TryDeliver(r.pending[0].raw); err != nil {
			return // Dovecot may be restarting: next time
		}
		r.replies = append(r.replies, r.pending[0].rec)
		r.pending = r.pending[1:]
	}
}

// loadTicket is a worker's idea of one of its tickets.
type loadTicket struct {
	id        string
	status    string
	escalated bool
}

// load plays the ENT for one worker until ctx ends: mixed, signed webhooks
// spread over the replicas, each retried with its webhook-id until it gets
// an answer.
func (r *chaosRun) load(ctx context.Context, w int) {
	var tickets []*loadTicket
	structures := []string{"s1"}
	seq := 0
	next := func() int { seq++; return seq }
	send := func(h hookRecord, body string) hookRecord {
		h.ID = fmt.Sprintf("msg_chaos_w%d_%d_%d", w, next(), time.Now().UnixNano())
		h.Status, h.Code = r.sender.send(ctx, h.ID, []byte(body))
		r.mu.Lock()
		r.hooks = append(r.hooks, h)
		r.mu.Unlock()
		return h
	}
	actor := `{"id":"u-ref1","display_name":"Mme Martin","email":"martin@school.example"}`
	for ctx.Err() == nil {
		x := mrand.Float64()
		switch {
		case len(tickets) == 0 || x < 0.18:
			id := fmt.Sprintf("T-w%d-%d", w, next())
			if mrand.IntN(10) == 0 {
				id += "-deaf" // its callbacks are never acknowledged
			}
			st := structures[mrand.IntN(len(structures))]
			if h := send(hookRecord{Type: "ticket.created", Ticket: id}, ticketCreated(id, st)); h.acked() {
				tickets = append(tickets, &loadTicket{id: id, status: "new"})
			}
		case x < 0.22:
			id := fmt.Sprintf("s-w%d-%d", w, next())
			body := event("structure.upserted", fmt.Sprintf(`{"structure":{"id":%q,"name":"École %s","uai":"0750%03dZ","parent_id":"s1","escalation_enabled":true,"referents":[{"id":"u-%s","display_name":"Référent","email":"ref@school.example","digest":"never"}]}}`,
				id, id, next()%1000, id))
			if h := send(hookRecord{Type: "structure.upserted", Key: id}, body); h.acked() {
				structures = append(structures, id)
			}
		case x < 0.50:
			tk := tickets[mrand.IntN(len(tickets))]
			tok := fmt.Sprintf("chaostok-w%d-c%d", w, next())
			author, byOwner := `{"id":"u-owner","display_name":"Léa Dupont"}`, true
			if mrand.IntN(3) == 0 {
				author, byOwner = actor, false
			}
			body := event("ticket.commented", fmt.Sprintf(`{"ticket_id":%q,"comment":{"id":%q,"author":%s,"body":"Précision %s .","created_at":%q,"attachments":[]}}`,
				tk.id, tok, author, tok, time.Now().UTC().Format(time.RFC3339)))
			h := send(hookRecord{Type: "ticket.commented", Ticket: tk.id, Key: tok}, body)
			// The support module's rules: a comment reopens a finished
			// ticket, and one by someone else than the owner opens a new one.
			if h.acked() && (tk.status == "resolved" || tk.status == "closed" || (tk.status == "new" && !byOwner)) {
				tk.status = "opened"
			}
			tickets = forgetIfUnsure(tickets, tk, h)
		case x < 0.72:
			tk := tickets[mrand.IntN(len(tickets))]
			to := []string{"opened", "waiting", "resolved", "closed"}[mrand.IntN(4)]
			if to == tk.status {
				continue
			}
			h := send(hookRecord{Type: "ticket.status_changed", Ticket: tk.id, Key: to}, statusChanged(tk.id, to))
			if h.acked() {
				tk.status = to
			}
			tickets = forgetIfUnsure(tickets, tk, h)
		default:
			var open []*loadTicket
			for _, tk := range tickets {
				if !tk.escalated && tk.status != "resolved" && tk.status != "closed" {
					open = append(open, tk)
				}
			}
			if len(open) == 0 {
				continue
			}
			tk := open[mrand.IntN(len(open))]
			h := send(hookRecord{Type: "ticket.escalation_requested", Ticket: tk.id}, escalation(tk.id))
			if h.acked() || h.Code == "escalation_conflict" {
				tk.escalated, tk.status = true, "opened"
			}
			tickets = forgetIfUnsure(tickets, tk, h)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(30+mrand.IntN(90)) * time.Millisecond):
		}
	}
}

// forgetIfUnsure drops a ticket from the worker's load once a webhook on it
// got no answer: whether it was applied is unknown, so the worker can no
// longer tell a real status change from a no-op (which notifies nobody).
func forgetIfUnsure(tickets []*loadTicket, tk *loadTicket, h hookRecord) []*loadTicket {
	if h.Status != 0 && h.Status < 500 {
		return tickets
	}
	return slices.DeleteFunc(tickets, func(x *loadTicket) bool { return x == tk })
}

func (r *chaosRun) recordedHooks() []hookRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRecord(nil), r.hooks...)
}

// observe reads what the system holds: Redis through the store and the
// job queue, the desk's mails, the callbacks the ENT saw.
func (r *chaosRun) observe(rec chaosRecord) (chaosObservation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{r.redis.Addr}})
	defer rdb.Close()
	store := redisstore.New(rdb, redisstore.Options{Prefix: chaosPrefix})
	obs := chaosObservation{stored: map[string]bool{}, escalation: map[string]string{}, deskBodies: map[string][]string{},
		feeds: map[string]map[string]bool{}, recipients: map[string][]string{}, notifIDs: map[string]string{}}

	tickets := map[string]bool{}
	for _, h := range rec.hooks {
		if h.Ticket != "" {
			tickets[h.Ticket] = true
		}
		if !h.acked() {
			continue
		}
		if h.Type == "structure.upserted" {
			_, err := store.Structure(ctx, h.Key)
			if err != nil && !errors.Is(err, bridge.ErrNotFound) {
				return obs, err
			}
			obs.stored[h.ID] = err == nil
			continue
		}
		_, seen, err := store.LoadTicket(ctx, h.Ticket, h.ID)
		if err != nil && !errors.Is(err, bridge.ErrNotFound) {
			return obs, err
		}
		obs.stored[h.ID] = seen
	}
	for _, rp := range rec.replies {
		tickets[rp.Ticket] = true
	}
	for id := range tickets {
		v, err := store.TicketView(ctx, id)
		if errors.Is(err, bridge.ErrNotFound) {
			continue
		}
		if err != nil {
			return obs, err
		}
		obs.escalation[id] = string(v.Escalation.Status)
		bodies := []string{}
		for _, x := range v.Exchanges {
			if x.Origin == bridge.OriginDesk {
				bodies = append(bodies, x.Body)
			}
		}
		obs.deskBodies[id] = bodies
	}

	for _, m := range r.desk.mails() {
		p, err := parseDeskMail(m.raw)
		if err != nil {
			obs.badMails++
			continue
		}
		obs.mails = append(obs.mails, p)
	}

	obs.callbacks, _ = r.recv.snapshot()
	for id, c := range obs.callbacks {
		if c.Type != "notification.created" || !c.Acked {
			continue
		}
		var msg struct {
			Data struct {
				Notification struct {
					ID string `json:"id"`
				} `json:"notification"`
				Recipients []string `json:"recipients"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(c.Body), &msg); err != nil {
			return obs, fmt.Errorf("callback %s: %w", id, err)
		}
		nid := msg.Data.Notification.ID
		obs.notifIDs[id] = nid
		obs.recipients[nid] = msg.Data.Recipients
		for _, u := range msg.Data.Recipients {
			if obs.feeds[u] != nil {
				continue
			}
			_, ns, err := store.Notifications(ctx, u, false, 100000)
			if err != nil {
				return obs, fmt.Errorf("feed of %s: %w", u, err)
			}
			obs.feeds[u] = map[string]bool{}
			for _, n := range ns {
				obs.feeds[u][n.ID] = true
			}
		}
	}

	q := jobqueue.New(rdb, jobqueue.Options{Queue: chaosQueue})
	depths, err := q.Depths()
	if err != nil {
		return obs, fmt.Errorf("queue depths: %w", err)
	}
	obs.unfinished = depths.Pending + depths.Active + depths.Retry
	dead, err := q.Dead()
	if err != nil {
		return obs, fmt.Errorf("dead jobs: %w", err)
	}
	isDead := map[string]bool{}
	for _, j := range dead {
		isDead[j.ID] = true
		obs.dead = append(obs.dead, jobRecord{ID: j.ID, Kind: j.Kind, Ticket: j.TicketID, Reason: j.LastError})
	}
	// A finished job leaves only its id key (kept for the retention): with
	// nothing pending, running or retrying, every id that is not dead is
	// a job that ended well. Callback ids end with ":cb:<type>".
	const idKeys = "sbq:{" + chaosQueue + "}:id:"
	iter := rdb.Scan(ctx, 0, idKeys+"*", 1000).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), idKeys)
		if !isDead[id] && strings.Contains(id, ":cb:") {
			obs.done = append(obs.done, jobRecord{ID: id, Kind: string(bridge.EffectCallback)})
		}
	}
	if err := iter.Err(); err != nil {
		return obs, fmt.Errorf("finished jobs: %w", err)
	}
	return obs, nil
}

func (r *chaosRun) figuresFrom(rec chaosRecord, obs chaosObservation) {
	f := &r.fig
	f.webhooksSent, f.webhooksAcked, f.webhooksRefused, f.webhooksUnanswered = len(rec.hooks), 0, 0, 0
	f.ackedByType = map[string]int{}
	for _, h := range rec.hooks {
		switch {
		case h.acked():
			f.webhooksAcked++
			f.ackedByType[h.Type]++
		case h.Status == 0 || h.Status >= 500:
			f.webhooksUnanswered++
		default:
			f.webhooksRefused++
		}
	}
	r.desk.mu.Lock()
	f.smtpRefusedData = r.desk.refused
	r.desk.mu.Unlock()
	ids := map[string]bool{}
	f.escalationMails = 0
	for _, m := range obs.mails {
		ids[m.MessageID] = true
		if m.Kind == "esc" {
			f.escalationMails++
		}
	}
	f.mailsAccepted, f.mailIDs = len(obs.mails)+obs.badMails, len(ids)
	f.repliesDelivered = len(rec.replies)
	f.callbacksSeen, f.callbacksAcked, f.callbackTries = len(obs.callbacks), 0, 0
	for _, c := range obs.callbacks {
		if c.Acked {
			f.callbacksAcked++
		}
		f.callbackTries += c.Attempts
	}
	f.deadJobs = len(obs.dead)
	f.deadReasons = map[string]int{}
	for _, j := range obs.dead {
		reason := j.Reason
		if len(reason) > 40 {
			reason = reason[:40]
		}
		f.deadReasons[j.Kind+": "+reason]++
	}
}

// TestChaosChecker feeds the checker runs that broke each invariant: every
// one must be reported, and a clean run must pass. It needs no server.
func TestChaosChecker(t *testing.T) {
	clean := func() (chaosRecord, chaosObservation) {
		rec := chaosRecord{
			hooks: []hookRecord{
				{ID: "h1", Type: "ticket.created", Ticket: "T1", Status: 202},
				{ID: "h2", Type: "ticket.escalation_requested", Ticket: "T1", Status: 202},
				{ID: "h3", Type: "ticket.commented", Ticket: "T1", Key: "chaostok-c1", Status: 200},
				{ID: "h4", Type: "ticket.status_changed", Ticket: "T9", Status: 409},
			},
			replies: []replyRecord{{Token: "chaostok-r1", Ticket: "T1"}},
		}
		obs := chaosObservation{
			stored:     map[string]bool{"h1": true, "h2": true, "h3": true},
			escalation: map[string]string{"T1": "successful"},
			deskBodies: map[string][]string{"T1": {"Bonjour, réponse chaostok-r1 ."}, "T2": {}},
			mails: []parsedDeskMail{
				{MessageID: "sb.esc.a", Kind: "esc", Ticket: "T1"},
				{MessageID: "sb.esc.a", Kind: "esc", Ticket: "T1"}, // the same mail again: allowed
				{MessageID: "sb.fu.b", Kind: "fu", Ticket: "T1", Tokens: []string{"chaostok-c1"}},
			},
			callbacks: map[string]callbackRecord{
				"h1:notify:ticket.created:cb:notification.created": {Type: "notification.created", Ticket: "T1", Acked: true},
				"h2:cb:ticket.escalated":                           {Type: "ticket.escalated", Ticket: "T1", Acked: true},
				"reply:x:cb:ticket.desk_replied":                   {Type: "ticket.desk_replied", Ticket: "T1", Body: `{"body":"réponse chaostok-r1"}`, Acked: true},
			},
			done:       []jobRecord{{ID: "h2:cb:ticket.escalated", Kind: "callback", Ticket: "T1"}},
			notifIDs:   map[string]string{"h1:notify:ticket.created:cb:notification.created": "n1"},
			recipients: map[string][]string{"n1": {"u-ref1"}},
			feeds:      map[string]map[string]bool{"u-ref1": {"n1": true}},
		}
		return rec, obs
	}
	if v := checkChaos(clean()); len(v) != 0 {
		t.Fatalf("a clean run reported %q", v)
	}
	cases := []struct {
		name  string
		spoil func(*chaosRecord, *chaosObservation)
		want  string
	}{
		{"acked webhook lost", func(_ *chaosRecord, o *chaosObservation) { o.stored["h3"] = false }, "h3 (ticket.commented T1chaostok-c1) was answered 200 but is not in Redis"},
		{"escalation never sent", func(_ *chaosRecord, o *chaosObservation) { o.mails = o.mails[2:] }, "escalation of T1 (webhook h2) never reached the desk"},
		{"escalation stuck", func(_ *chaosRecord, o *chaosObservation) { o.escalation["T1"] = "in_progress" }, `escalation of T1 ended "in_progress"`},
		{"escalation sent twice", func(_ *chaosRecord, o *chaosObservation) {
			o.mails = append(o.mails, parsedDeskMail{MessageID: "sb.esc.other", Kind: "esc", Ticket: "T1"})
		}, "escalation of T1 accepted by the desk under 2 different Message-IDs"},
		{"comment forwarded twice", func(_ *chaosRecord, o *chaosObservation) {
			o.mails = append(o.mails, parsedDeskMail{MessageID: "sb.fu.c", Kind: "fu", Ticket: "T1", Tokens: []string{"chaostok-c1"}})
		}, "comment chaostok-c1 forwarded to the desk under 2 different Message-IDs"},
		{"reply twice", func(_ *chaosRecord, o *chaosObservation) {
			o.deskBodies["T1"] = append(o.deskBodies["T1"], "réponse chaostok-r1")
		}, "desk reply chaostok-r1 is on T1 2 times"},
		{"reply missing", func(_ *chaosRecord, o *chaosObservation) { o.deskBodies["T1"] = nil }, "desk reply chaostok-r1 is on T1 0 times"},
		{"reply on the wrong ticket", func(_ *chaosRecord, o *chaosObservation) { o.deskBodies["T2"] = []string{"chaostok-r1"} }, "desk reply chaostok-r1 for T1 landed on T2"},
		{"a longer token is another reply", func(_ *chaosRecord, o *chaosObservation) {
			o.deskBodies["T1"] = append(o.deskBodies["T1"], "réponse chaostok-r12 .")
			o.deskBodies["T2"] = []string{"réponse chaostok-r10 ."}
		}, ""},
		{"jobs left", func(_ *chaosRecord, o *chaosObservation) { o.unfinished = 3 }, "3 jobs still pending"},
		{"done but not acknowledged", func(_ *chaosRecord, o *chaosObservation) {
			o.done = append(o.done, jobRecord{ID: "zz:cb:ticket.escalated", Kind: "callback"})
		}, "callback job zz:cb:ticket.escalated is done but the ENT never acknowledged it"},
		{"dead without reason", func(_ *chaosRecord, o *chaosObservation) {
			o.dead = append(o.dead, jobRecord{ID: "d1", Kind: "callback", Ticket: "T1"})
		}, "dead job d1 has no reason"},
		{"notification never told", func(_ *chaosRecord, o *chaosObservation) {
			delete(o.callbacks, "h1:notify:ticket.created:cb:notification.created")
		}, "webhook h1 (ticket.created on T1): no notification callback"},
		{"notification dead is fine", func(_ *chaosRecord, o *chaosObservation) {
			delete(o.callbacks, "h1:notify:ticket.created:cb:notification.created")
			o.dead = append(o.dead, jobRecord{ID: "h1:notify:ticket.created:cb:notification.created", Kind: "callback", Ticket: "T1", Reason: "503"})
		}, ""},
		{"escalated callback missing", func(_ *chaosRecord, o *chaosObservation) {
			delete(o.callbacks, "h2:cb:ticket.escalated")
			o.done = nil
		}, "escalation of T1: no ticket.escalated callback"},
		{"desk_replied callback missing", func(_ *chaosRecord, o *chaosObservation) {
			delete(o.callbacks, "reply:x:cb:ticket.desk_replied")
		}, "desk reply chaostok-r1 on T1: no ticket.desk_replied callback"},
		{"notification not in the feed", func(_ *chaosRecord, o *chaosObservation) { o.feeds["u-ref1"] = map[string]bool{} }, "notification n1 (callback h1:notify:ticket.created:cb:notification.created) is not in the feed of u-ref1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, obs := clean()
			tc.spoil(&rec, &obs)
			v := checkChaos(rec, obs)
			if tc.want == "" {
				if len(v) != 0 {
					t.Fatalf("reported %q", v)
				}
				return
			}
			for _, line := range v {
				if strings.Contains(line, tc.want) {
					return
				}
			}
			t.Fatalf("want a violation containing %q, got %q", tc.want, v)
		})
	}
}
