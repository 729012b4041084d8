package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// Scale-out: several `serve` processes share one redis-server, or a
// 3-master Redis Cluster. Each replica is the test binary re-executed as
// the real program (see TestMain).

// soReplicaConfig writes the configuration of replica name: the same
// deployment for all (Redis, desk, mailbox), its own instance id.
func soReplicaConfig(t *testing.T, name string, redisAddrs []string, extra string) string {
	t.Helper()
	quoted := make([]string, len(redisAddrs))
	for i, a := range redisAddrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log_level: debug
instance_id: %s
redis: {addrs: [%s], key_prefix: "so:", dial_timeout: 2s}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}"]
  api_tokens: [%q]
jobs: {poll_interval: 50ms, concurrency: 4}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [{id: u-ref1, display_name: "Mme Martin", email: "martin@school.example", digest: daily}]}
%s`, name, strings.Join(quoted, ", "), testToken, extra)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScaleOutOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	soScaleOut(t, []string{srv.Addr})
}

func TestScaleOutRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	soScaleOut(t, c.Addrs)
}

// soScaleOut runs three replicas on the Redis at addrs and checks that
// webhooks spread over them all land, that the jobs are shared (each
// escalation mailed once), that one replica at a time reads the mailbox
// and another takes over within the lease time when it is killed, that
// the feeds and the ops commands work, and that no replica ever met a
// CROSSSLOT error.
func soScaleOut(t *testing.T, addrs []string) {
	dc := mailtest.StartDovecot(t)
	desk := startFakeDesk(t, &fakeDesk{})
	extra := deskConfig(desk.addr) + imapConfig(dc)
	names := []string{"r0", "r1", "r2"}
	cfgs := map[string]string{}
	replicas := map[string]*childDaemon{}
	for _, n := range names {
		cfgs[n] = soReplicaConfig(t, n, addrs, extra)
		replicas[n] = startChild(t, cfgs[n])
	}
	api := func(i int) *daemonUnderTest { return replicas[names[i%len(names)]].daemon() }

	// Webhooks spread round robin: demands, comments, escalations.
	const tickets = 12
	for i := range tickets {
		id := fmt.Sprintf("SO%d", i)
		if a := api(i).post(t, nextID(), ticketCreated(id, "s1")); a.Status != 202 {
			t.Fatalf("create %s on %s: %d %s", id, names[i%3], a.Status, a.Raw)
		}
		if a := api(i+1).post(t, nextID(), comment(id, "c"+id, "u-owner")); a.Status != 202 {
			t.Fatalf("comment %s: %d %s", id, a.Status, a.Raw)
		}
		if i%2 == 0 {
			if a := api(i+2).post(t, nextID(), escalation(id)); a.Status != 202 {
				t.Fatalf("escalate %s: %d %s", id, a.Status, a.Raw)
			}
		}
	}
	roots := map[string]string{}
	for i := 0; i < tickets; i += 2 {
		id := fmt.Sprintf("SO%d", i)
		waitTicket(t, api(i), id, func(a answer) bool { return escalationStatus(a) == "successful" })
	}
	for _, raw := range desk.mails() {
		h := parseMail(t, raw).header
		subject, _ := h.Subject()
		if h.Get("In-Reply-To") != "" {
			continue
		}
		for i := 0; i < tickets; i += 2 {
			id := fmt.Sprintf("SO%d", i)
			if strings.Contains(subject, "[ENT-"+id+"]") {
				if _, dup := roots[id]; dup {
					t.Errorf("escalation of %s mailed twice", id)
				}
				roots[id], _ = h.MessageID()
			}
		}
	}
	if len(roots) != tickets/2 {
		t.Fatalf("%d escalation mails, want %d", len(roots), tickets/2)
	}
	// Every demand is visible from every replica.
	for i := range tickets {
		for r := range names {
			if a := api(r).get(t, fmt.Sprintf("/v1/tickets/SO%d", i)); a.Status != 200 {
				t.Fatalf("SO%d from %s: %d", i, names[r], a.Status)
			}
		}
	}

	// One reader of the mailbox at a time.
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, redisstore.Options{Prefix: "so:"})
	holder := func() string {
		h, _, err := store.LeaseHolder(context.Background(), redisstore.CheckpointLease("INBOX"))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	waitOps(t, "a mailbox reader", 20*time.Second, func() bool { return holder() != "" })
	first := holder()
	if replicas[first] == nil {
		t.Fatalf("the lease is held by %q, not a replica", first)
	}
	dc.Deliver(t, deskReply("julie@desk.example", "RE: demande", roots["SO0"], "Première réponse."))
	a := waitTicket(t, api(1), "SO0", func(a answer) bool { return len(deskBodies(a)) == 1 })
	for _, r := range names {
		if r != first && strings.Contains(replicas[r].stderr.String(), `"msg":"imap: connected"`) {
			t.Errorf("%s connected to the mailbox while %s held the lease", r, first)
		}
	}

	// The reader dies: another replica takes the mailbox over within the
	// lease time (3s) and applies the next reply, once.
	killed := time.Now()
	if err := replicas[first].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-replicas[first].exited
	alive := []string{}
	for _, r := range names {
		if r != first {
			alive = append(alive, r)
		}
	}
	dc.Deliver(t, deskReply("julie@desk.example", "RE: demande", roots["SO2"], "Après la relève."))
	a = waitTicket(t, replicas[alive[0]].daemon(), "SO2", func(a answer) bool { return len(deskBodies(a)) == 1 })
	t.Logf("reply applied %v after the reader was killed", time.Since(killed).Round(10*time.Millisecond))
	if now := holder(); now == first || replicas[now] == nil {
		t.Errorf("lease holder after the kill: %q (was %q)", now, first)
	}
	if b := deskBodies(a); len(b) != 1 || b[0] != "Après la relève." {
		t.Errorf("SO2 desk replies %q", b)
	}
	a = replicas[alive[1]].daemon().get(t, "/v1/tickets/SO0")
	if b := deskBodies(a); len(b) != 1 {
		t.Errorf("SO0 desk replies %q", b)
	}

	// Feeds through any replica: the referent was notified of every
	// demand; marking read on one replica shows on another.
	var feed struct {
		Unread int `json:"unread"`
	}
	feedOf := func(d *daemonUnderTest) int {
		r := d.get(t, "/v1/users/u-ref1/notifications?limit=100")
		if r.Status != 200 {
			t.Fatalf("feed: %d %s", r.Status, r.Raw)
		}
		feed.Unread = int(r.Body["unread"].(float64))
		return feed.Unread
	}
	waitOps(t, "the referent's notifications", 20*time.Second, func() bool {
		return feedOf(replicas[alive[0]].daemon()) >= tickets
	})
	req, _ := http.NewRequest("POST", replicas[alive[1]].daemon().base+"/v1/users/u-ref1/notifications/read",
		strings.NewReader(`{"all":true}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	if r := do(t, req); r.Status != 200 {
		t.Fatalf("mark read: %d %s", r.Status, r.Raw)
	}
	if n := feedOf(replicas[alive[0]].daemon()); n != 0 {
		t.Errorf("%d unread after mark-all-read on another replica", n)
	}

	// Ops commands against the same Redis.
	for _, args := range [][]string{{"status"}, {"jobs", "list"}, {"ticket", "show", "SO0"}, {"quarantine", "list"},
		{"digest", "--period", "daily"}} {
		var out, errb bytes.Buffer
		argv := append(append([]string{"supportbridge"}, args...), "--config", cfgs[alive[0]])
		if err := run(context.Background(), argv, getenvWith(map[string]string{"SB_TEST_SECRET": testSecret}), &out, &errb); err != nil {
			t.Errorf("%v: %v\n%s", args, err, errb.String())
		}
	}

	// Who did the work (informative: the queue decides).
	for _, r := range names {
		log := replicas[r].stderr.String()
		t.Logf("%s: %d webhooks, %d mails accepted", r, strings.Count(log, `"path":"/v1/webhooks/ent"`),
			strings.Count(log, "mail accepted by the desk's server"))
	}
	for _, r := range names {
		if log := replicas[r].stderr.String(); strings.Contains(log, "CROSSSLOT") {
			t.Errorf("%s met CROSSSLOT:\n%s", r, log)
		}
	}
}
