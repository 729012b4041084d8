package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// Replicas: three `serve` processes (the test binary re-executed as the
// program, see TestMain) share one redis-server; cluster_test.go runs the
// same scenarios on a 3-master Redis Cluster.

func TestReplicasOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	rpWorkShared(t, []string{srv.Addr})
}

// The digest tests wait for a minute to begin: in parallel, they wait
// together.
func TestReplicasDigestScheduler(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rpDigestHandOver(t, []string{srv.Addr})
}

// rpWorkShared: webhooks sent round robin to three replicas all land with
// the contract's answers; each escalation reaches the desk once, whichever
// replica sent it; one replica at a time reads the mailbox, and when it is
// SIGKILLed another takes the lease within the lease time and applies the
// next reply, once; feeds and ops commands read the shared Redis; no
// replica answers a 5xx or meets CROSSSLOT.
func rpWorkShared(t *testing.T, addrs []string) {
	dc := mailtest.StartDovecot(t)
	desk := startRPDesk(t, false)
	// imapConfig: IDLE, poll every 2s, lease 3s.
	const leaseTTL = 3 * time.Second
	f := startRPFleet(t, addrs, rpDeskConfig(desk.addr)+imapConfig(dc), "r0", "r1", "r2")

	// Webhooks round robin; each step is checked against the contract.
	// A referent of s1 escalates and changes the status; the feed read at
	// the end is another referent's (rpReferents[0]).
	referent := rpReferents[1]
	const tickets = 9
	escalated := []string{}
	for i := range tickets {
		id := fmt.Sprintf("RP%d", i)
		created := nextID()
		f.send(t, created, ticketCreated(id, "s1"), 202, "")
		// The ENT retries on another replica: the webhook-id is taken.
		if a := f.send(t, created, ticketCreated(id, "s1"), 200, ""); a.Body["status"] != "duplicate" {
			t.Fatalf("replayed webhook of %s: %s", id, a.Raw)
		}
		f.send(t, nextID(), comment(id, "c-"+id, "u-owner"), 202, "")
		switch i % 3 {
		case 0, 1:
			f.send(t, nextID(), escalationBy(id, referent), 202, "")
			// Escalation is atomic across replicas: a second one conflicts.
			f.send(t, nextID(), escalationBy(id, referent), 409, "escalation_conflict")
			escalated = append(escalated, id)
		case 2:
			f.send(t, nextID(), statusBy(id, referent, "waiting"), 202, "")
		}
	}
	f.send(t, nextID(), comment("RP-none", "c-none", "u-owner"), 409, "unknown_ticket")

	// Jobs are shared: every escalation is mailed once, by some replica.
	roots := map[string]string{}
	for _, id := range escalated {
		_, d := f.pick()
		waitTicket(t, d, id, func(a answer) bool { return escalationStatus(a) == "successful" })
	}
	seen := map[string]bool{}
	for _, raw := range desk.to("support@desk.example") {
		h := parseMail(t, raw).header
		mid, _ := h.MessageID()
		if seen[mid] {
			t.Errorf("Message-ID %s accepted twice", mid)
		}
		seen[mid] = true
		if h.Get("In-Reply-To") != "" {
			continue
		}
		subject, _ := h.Subject()
		for _, id := range escalated {
			if strings.Contains(subject, "[ENT-"+id+"]") {
				if _, dup := roots[id]; dup {
					t.Errorf("escalation of %s mailed twice", id)
				}
				roots[id] = mid
			}
		}
	}
	if len(roots) != len(escalated) {
		t.Fatalf("%d escalation mails, want %d", len(roots), len(escalated))
	}
	senders := 0
	for _, n := range f.names {
		c := strings.Count(f.children[n].stderr.String(), "mail accepted by the desk's server")
		t.Logf("%s: %d webhooks answered, %d mails sent", n,
			strings.Count(f.children[n].stderr.String(), `"path":"/v1/webhooks/ent"`), c)
		if c > 0 {
			senders++
		}
	}
	// Every ticket reads the same from every replica.
	for i := range tickets {
		for _, n := range f.names {
			if a := f.children[n].daemon().get(t, fmt.Sprintf("/v1/tickets/RP%d", i)); a.Status != 200 {
				t.Fatalf("RP%d from %s: %d %s", i, n, a.Status, a.Raw)
			}
		}
	}

	// One mailbox reader at a time.
	inbox := redisstore.CheckpointLease("INBOX")
	waitOps(t, "a mailbox reader", 20*time.Second, func() bool { return f.holder(t, inbox) != "" })
	first := f.holder(t, inbox)
	if f.children[first] == nil {
		t.Fatalf("the mailbox lease is held by %q, not a replica", first)
	}
	dc.Deliver(t, deskReply("julie@desk.example", "RE: demande", roots["RP0"], "Première réponse."))
	_, d := f.pick()
	waitTicket(t, d, "RP0", func(a answer) bool { return len(deskBodies(a)) == 1 })
	for _, n := range f.names {
		if n != first && strings.Contains(f.children[n].stderr.String(), `"msg":"imap: connected"`) {
			t.Errorf("%s connected to the mailbox while %s held the lease", n, first)
		}
	}

	// The reader dies: another replica takes the lease within the lease
	// time, plus one of the waiting replicas' retries (every third of the
	// lease at most), and applies a new reply.
	killed := f.kill(t, first)
	var next string
	waitOps(t, "a new mailbox reader", 3*leaseTTL, func() bool {
		next = f.holder(t, inbox)
		return next != "" && next != first
	})
	took := time.Since(killed)
	t.Logf("%s took the mailbox %v after %s was killed (lease %v)", next, took.Round(10*time.Millisecond), first, leaseTTL)
	if f.children[next] == nil {
		t.Fatalf("the mailbox lease went to %q, not a replica", next)
	}
	if took > leaseTTL+2*time.Second {
		t.Errorf("hand-over took %v, lease time is %v", took, leaseTTL)
	}
	dc.Deliver(t, deskReply("julie@desk.example", "RE: demande", roots["RP1"], "Après la relève."))
	_, d = f.pick()
	a := waitTicket(t, d, "RP1", func(a answer) bool { return len(deskBodies(a)) >= 1 })
	if b := deskBodies(a); len(b) != 1 || b[0] != "Après la relève." {
		t.Errorf("RP1 desk replies %q", b)
	}
	// Let a poll or two go by: nothing is applied twice.
	time.Sleep(2 * time.Second)
	for _, id := range []string{"RP0", "RP1"} {
		_, d := f.pick()
		if b := deskBodies(d.get(t, "/v1/tickets/"+id)); len(b) != 1 {
			t.Errorf("%s desk replies %q, want one", id, b)
		}
	}
	readers := 0
	for _, n := range f.alive() {
		if strings.Contains(f.children[n].stderr.String(), `"msg":"imap: connected"`) {
			readers++
		}
	}
	if readers != 1 {
		t.Errorf("%d surviving replicas connected to the mailbox, want 1", readers)
	}

	out := rpFeedsAndOps(t, f, "RP0", "Première réponse.")
	f.checkLogs(t, out...)
	if senders == 0 {
		t.Error("no replica logged a mail sent")
	}
}

// rpFeedsAndOps reads the referent's feed through the replicas, marks one
// entry read on one replica and the rest on another, and runs the ops
// commands that read Redis; it returns what the commands printed.
func rpFeedsAndOps(t *testing.T, f *rpFleet, ticket, replyBody string) []string {
	t.Helper()
	user := rpReferents[0]
	type feedDoc struct {
		Unread int
		IDs    []string
	}
	feedOf := func(d *daemonUnderTest) feedDoc {
		a := d.get(t, "/v1/users/"+user+"/notifications?limit=100")
		if a.Status != 200 {
			t.Fatalf("feed: %d %s", a.Status, a.Raw)
		}
		doc := feedDoc{Unread: int(a.Body["unread"].(float64))}
		ns, _ := a.Body["notifications"].([]any)
		for _, n := range ns {
			m, _ := n.(map[string]any)
			if id, ok := m["id"].(string); ok && m["read"] == false {
				doc.IDs = append(doc.IDs, id)
			}
		}
		return doc
	}
	// Notifications are written as the events are applied: wait until
	// every demand's is there and the count holds still.
	var before feedDoc
	last := -1
	waitOps(t, "the referent's notifications", 20*time.Second, func() bool {
		_, d := f.pick()
		before = feedOf(d)
		stable := before.Unread == last
		last = before.Unread
		if !stable {
			time.Sleep(300 * time.Millisecond)
		}
		return stable && before.Unread >= 9 && len(before.IDs) > 0
	})
	_, d := f.pick()
	if a := rpMarkRead(t, d, user, fmt.Sprintf(`{"ids":[%q]}`, before.IDs[0])); a.Status != 200 {
		t.Fatalf("mark one read: %d %s", a.Status, a.Raw)
	}
	_, d = f.pick()
	if now := feedOf(d); now.Unread != before.Unread-1 {
		t.Errorf("%d unread after marking one read on another replica, want %d", now.Unread, before.Unread-1)
	}
	_, d = f.pick()
	if a := rpMarkRead(t, d, user, `{"all":true}`); a.Status != 200 {
		t.Fatalf("mark all read: %d %s", a.Status, a.Raw)
	}
	_, d = f.pick()
	if now := feedOf(d); now.Unread != 0 {
		t.Errorf("%d unread after mark-all-read on another replica", now.Unread)
	}

	cfg := f.cfgs[f.alive()[0]]
	var outs []string
	show := mustOps(t, "ticket", "show", ticket, "--config", cfg)
	outs = append(outs, show.stdout, show.stderr)
	if !strings.Contains(show.stdout, ticket) || !strings.Contains(show.stdout, replyBody) {
		t.Errorf("ticket show %s lacks the ticket or its desk reply:\n%s", ticket, show.stdout)
	}
	var jobs jobsDoc
	opsJSON(t, &jobs, "jobs", "list", "--config", cfg)
	jl := mustOps(t, "jobs", "list", "--config", cfg)
	outs = append(outs, jl.stdout, jl.stderr)
	st := mustOps(t, "status", "--config", cfg)
	outs = append(outs, st.stdout, st.stderr)
	q := mustOps(t, "quarantine", "list", "--config", cfg)
	outs = append(outs, q.stdout, q.stderr)
	return outs
}

// rpDigestHandOver: three replicas start with a digest due; one holds the
// digest lease and sends, the others wait. The holder is SIGKILLed in the
// middle of its run (its first digest held in DATA); once the lease is
// gone a survivor takes it and sends the remaining digests, each once.
// The digest it was sending when it died stays claimed: never sent twice.
func rpDigestHandOver(t *testing.T, addrs []string) {
	desk := startRPDesk(t, true)
	mailCfg := rpDeskConfig(desk.addr)

	// Demands left new are "waiting for action" in the next digest. They
	// must be recorded before the period's time: the schedule runs each
	// minute, so the digest replicas start after the next minute begins.
	// The seed replica has no mail, so no digest run: a run of its own
	// (the default schedule) could mark today's period done.
	f := startRPFleet(t, addrs, "", "seed")
	for i := range 3 {
		f.send(t, nextID(), ticketCreated(fmt.Sprintf("DG%d", i), "s1"), 202, "")
	}
	f.kill(t, "seed")
	wait := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 500*time.Millisecond))
	t.Logf("waiting %v for the next minute", wait.Round(time.Second))
	time.Sleep(wait)

	// A short lease: a dead holder keeps the others waiting 8s.
	digestCfg := mailCfg + "digest: {daily: \"* * * * *\", default_locale: fr, lease_ttl: 8s}\n"
	for _, n := range []string{"d0", "d1", "d2"} {
		f.add(t, addrs, n, digestCfg)
	}
	select {
	case <-desk.stalledCh:
	case <-time.After(20 * time.Second):
		t.Fatal("no digest was sent")
	}
	lease := "digest:daily"
	holder := f.holder(t, lease)
	if f.children[holder] == nil || holder == "seed" {
		t.Fatalf("the digest lease is held by %q while a digest is in flight", holder)
	}
	killed := f.kill(t, holder)
	desk.letGo()
	waitOps(t, "the held digest to be refused", 5*time.Second, func() bool { return desk.digestsInFlight() == 0 })
	// While the dead holder's lease lives, the survivors (polling every
	// 2s) send nothing.
	time.Sleep(2500 * time.Millisecond)
	if n := rpDigestsAccepted(desk); n != 0 {
		t.Fatalf("%d digests sent while the dead holder's lease was alive", n)
	}
	if h := f.holder(t, lease); h != holder {
		t.Fatalf("the digest lease went from the dead %s to %q before its expiry", holder, h)
	}
	// Then the lease expires (digest.lease_ttl: 8s) and a survivor
	// (polling every 2s) takes the run over.
	stalled := desk.stalledRcpt()
	others := []string{}
	for _, id := range rpReferents {
		if rpReferentEmail(id) != stalled {
			others = append(others, rpReferentEmail(id))
		}
	}
	waitOps(t, "the survivors' digests", 20*time.Second, func() bool {
		for _, o := range others {
			if len(desk.to(o)) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("digests sent %v after %s was killed", time.Since(killed).Round(10*time.Millisecond), holder)
	// Let the other survivor's wait end (it polls every 2s) and a cron
	// tick possibly pass: still once each.
	time.Sleep(3 * time.Second)
	for _, o := range others {
		if n := len(desk.to(o)); n != 1 {
			t.Errorf("%d digests for %s, want 1", n, o)
		}
		for _, raw := range desk.to(o) {
			if text := digText(t, raw); !strings.Contains(text, "Écran blanc dans Pronote") {
				t.Errorf("digest for %s lacks the waiting demands:\n%s", o, text)
			}
		}
	}
	if n := len(desk.to(stalled)); n != 0 {
		t.Errorf("%d digests for %s, whose send died with its replica: want 0 (claimed, never twice)", n, stalled)
	}
	if m := desk.maxDigestsInFlight(); m != 1 {
		t.Errorf("%d digests were in flight at once, want 1 (one holder)", m)
	}
	runs := 0
	for _, n := range f.alive() {
		if strings.Contains(f.children[n].stderr.String(), `"msg":"digest run"`) {
			runs++
		}
	}
	if runs == 0 {
		t.Error("no survivor logged a digest run")
	}
	f.checkLogs(t)
}
