package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"supportbridge/bridge/redisstore"
	"supportbridge/mail/mailtest"
)

// Helpers of the replica tests (replicas_test.go, cluster_test.go): a
// fleet of `serve` processes sharing one Redis deployment, a desk mail
// server that knows who each mail was for, and the checks every scenario
// ends with.

const rpPrefix = "rp:"

// rpReferents are the referents of structure s1: each gets a daily digest.
var rpReferents = []string{"u-rp1", "u-rp2", "u-rp3"}

func rpReferentEmail(id string) string { return id + "@school.example" }

// rpConfig writes the configuration of replica name: the same deployment
// for all (Redis at addrs, desk, mailbox), its own instance id. extra is
// appended as is (desk, smtp, imap, digest sections).
func rpConfig(t *testing.T, name string, addrs []string, extra string) string {
	t.Helper()
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	refs := make([]string, len(rpReferents))
	for i, id := range rpReferents {
		refs[i] = fmt.Sprintf("{id: %s, display_name: \"Référent %d\", email: %q, digest: daily}", id, i+1, rpReferentEmail(id))
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log_level: debug
instance_id: %s
redis: {addrs: [%s], key_prefix: %q, dial_timeout: 2s}
ent:
  webhook_secrets: ["${SB_TEST_SECRET}"]
  api_tokens: [%q]
jobs: {poll_interval: 50ms, concurrency: 4}
structures:
  - {id: s1, name: "Lycée Victor Hugo", uai: "0750001A", escalation_enabled: true,
     referents: [%s]}
%s`, name, strings.Join(quoted, ", "), rpPrefix, testToken, strings.Join(refs, ", "), extra)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rpDeskConfig points the mail at the desk server; the SMTP timeout is
// long enough for a stalled DATA to outlive the kill of its sender.
func rpDeskConfig(smtpAddr string) string { return deskConfigWith(smtpAddr, "20s") }

// rpDesk is the mail server of the desk and of the referents
// (mailtest.StartSMTP). It can hold the first digest (a mail not addressed
// to the desk) in DATA until told, to catch a digest run in the middle, and
// it records how many digest deliveries were ever in flight at once.
type rpDesk struct {
	srv  *mailtest.SMTPServer
	addr string

	mu         sync.Mutex
	stallFirst bool
	stalled    string        // the recipient held
	stalledCh  chan struct{} // closed once a digest is held
	release    chan struct{} // closed to let the held digest go (refused)
	inFlight   int
	maxFlight  int
	releaseOne sync.Once
}

func (d *rpDesk) data(_ int, m *mailtest.SMTPMessage) error {
	if len(m.To) == 0 || strings.EqualFold(m.To[0], "support@desk.example") {
		return nil
	}
	// A digest.
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inFlight++
	defer func() { d.inFlight-- }()
	d.maxFlight = max(d.maxFlight, d.inFlight)
	if d.stallFirst && d.stalled == "" {
		d.stalled = strings.ToLower(m.To[0])
		close(d.stalledCh)
		d.mu.Unlock()
		// The sender is killed while it waits here: the mail is
		// refused, so the desk never holds it.
		<-d.release
		d.mu.Lock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "held by the test"}
	}
	return nil
}

func startRPDesk(t *testing.T, stallFirstDigest bool) *rpDesk {
	t.Helper()
	d := &rpDesk{stallFirst: stallFirstDigest, stalledCh: make(chan struct{}), release: make(chan struct{})}
	d.srv = mailtest.StartSMTP(t, mailtest.WithDomain("desk.example"), mailtest.OnData(d.data))
	t.Cleanup(d.letGo) // before the server closes
	d.addr = d.srv.Addr
	return d
}

func (d *rpDesk) letGo() { d.releaseOne.Do(func() { close(d.release) }) }

// to returns the mails accepted for rcpt.
func (d *rpDesk) to(rcpt string) [][]byte {
	var out [][]byte
	for _, m := range d.srv.Messages() {
		if slices.ContainsFunc(m.To, func(r string) bool { return strings.EqualFold(r, rcpt) }) {
			out = append(out, m.Data)
		}
	}
	return out
}

func (d *rpDesk) stalledRcpt() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stalled
}

func (d *rpDesk) digestsInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inFlight
}

func (d *rpDesk) maxDigestsInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxFlight
}

// rpFleet is the set of replicas of one deployment.
type rpFleet struct {
	names    []string
	cfgs     map[string]string
	children map[string]*childDaemon
	next     int
	store    *redisstore.Store
	rdb      redis.UniversalClient
}

func startRPFleet(t *testing.T, addrs []string, extra string, names ...string) *rpFleet {
	t.Helper()
	f := &rpFleet{cfgs: map[string]string{}, children: map[string]*childDaemon{}}
	for _, n := range names {
		f.add(t, addrs, n, extra)
	}
	f.rdb = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	t.Cleanup(func() { f.rdb.Close() })
	f.store = redisstore.New(f.rdb, redisstore.Options{Prefix: rpPrefix})
	return f
}

// add starts one more replica.
func (f *rpFleet) add(t *testing.T, addrs []string, name, extra string) {
	t.Helper()
	f.names = append(f.names, name)
	f.cfgs[name] = rpConfig(t, name, addrs, extra)
	f.children[name] = startChild(t, f.cfgs[name])
}

// alive lists the replicas not killed, in start order.
func (f *rpFleet) alive() []string {
	var out []string
	for _, n := range f.names {
		if f.children[n].cmd.ProcessState == nil {
			out = append(out, n)
		}
	}
	return out
}

// pick returns the next live replica, round robin.
func (f *rpFleet) pick() (string, *daemonUnderTest) {
	live := f.alive()
	n := live[f.next%len(live)]
	f.next++
	return n, f.children[n].daemon()
}

// send posts a webhook to the next replica and checks the contract's
// answer: the status wanted, and never a 5xx.
func (f *rpFleet) send(t *testing.T, id, body string, wantStatus int, wantCode string) answer {
	t.Helper()
	name, d := f.pick()
	a := d.post(t, id, body)
	if a.Status >= 500 || a.Status != wantStatus || a.code() != wantCode {
		t.Fatalf("webhook %s on %s: %d %s, want %d %q", id, name, a.Status, a.Raw, wantStatus, wantCode)
	}
	return a
}

// kill SIGKILLs a replica and waits for its end.
func (f *rpFleet) kill(t *testing.T, name string) time.Time {
	t.Helper()
	c := f.children[name]
	at := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	return at
}

// holder is the replica holding lease name ("" when none); digest holders
// are "<instance>/<random>".
func (f *rpFleet) holder(t *testing.T, name string) string {
	t.Helper()
	h, _, err := f.store.LeaseHolder(context.Background(), name)
	if err != nil {
		t.Fatalf("lease %s: %v", name, err)
	}
	instance, _, _ := strings.Cut(h, "/")
	return instance
}

// checkLogs fails on any CROSSSLOT error in a replica's log or in other
// output the test collected (ops commands), and on any 5xx a replica
// answered.
func (f *rpFleet) checkLogs(t *testing.T, other ...string) {
	t.Helper()
	for _, n := range f.names {
		log := f.children[n].stderr.String()
		if strings.Contains(log, "CROSSSLOT") {
			t.Errorf("%s met CROSSSLOT:\n%s", n, rpLinesWith(log, "CROSSSLOT"))
		}
		for _, l := range strings.Split(rpLinesWith(log, `"msg":"http request"`), "\n") {
			if strings.Contains(l, `"status":5`) {
				t.Errorf("%s answered a 5xx: %s", n, l)
			}
		}
	}
	for _, o := range other {
		if strings.Contains(o, "CROSSSLOT") {
			t.Errorf("CROSSSLOT in a command's output:\n%s", rpLinesWith(o, "CROSSSLOT"))
		}
	}
}

func rpLinesWith(log, s string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// rpMarkRead posts to a user's notifications/read on d.
func rpMarkRead(t *testing.T, d *daemonUnderTest, user, body string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", d.base+"/v1/users/"+user+"/notifications/read", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// rpDigestsAccepted counts the mails accepted for the referents.
func rpDigestsAccepted(d *rpDesk) int {
	n := 0
	for _, id := range rpReferents {
		n += len(d.to(rpReferentEmail(id)))
	}
	return n
}
