package mailtest

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// waitFor polls cond every 10ms and fails after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
	}
}

// sameMail reports whether relayed is sent after it went through Postfix:
// the same headers, in the same order, among the ones Postfix adds
// (Received on top, Date when missing), and the same body.
func sameMail(relayed, sent []byte) bool {
	rh, rb, ok1 := bytes.Cut(relayed, []byte("\r\n\r\n"))
	sh, sb, ok2 := bytes.Cut(sent, []byte("\r\n\r\n"))
	if !ok1 || !ok2 || !bytes.Equal(rb, sb) {
		return false
	}
	rest := rh
	for _, line := range bytes.Split(sh, []byte("\r\n")) {
		i := bytes.Index(rest, append([]byte("\r\n"), line...))
		if i < 0 {
			return false
		}
		rest = rest[i+2+len(line):]
	}
	return true
}

func TestPostfixRelay(t *testing.T) {
	sink := StartSMTPSink(t, WithDump(), WithCount())
	r := StartPostfixRelay(t, sink.Addr)
	if err := PostfixRelayAvailable(); err != nil {
		t.Fatalf("PostfixRelayAvailable after a start: %v", err)
	}
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") || r.RelayTo != sink.Addr {
		t.Fatalf("Addr = %q, RelayTo = %q", r.Addr, r.RelayTo)
	}
	first, second := sampleMail("one"), sampleMail("two")
	if err := send(t, r.Addr, "assistance@ent.example", []string{"support@desk.example"}, first); err != nil {
		t.Fatalf("send to the relay: %v", err)
	}
	// Any domain, from 127.0.0.1: a relay, not a destination.
	if err := send(t, r.Addr, "assistance@ent.example", []string{"a@one.example", "b@two.example"}, second); err != nil {
		t.Fatalf("send to the relay: %v", err)
	}
	waitFor(t, 30*time.Second, "the sink did not receive both mails", func() bool { return sink.Received(t) >= 2 })
	waitFor(t, 10*time.Second, "the relay's queue is not empty", func() bool { return r.Queued(t) == 0 })

	got := sink.Deliveries(t)
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	byBody := map[string]SinkMessage{}
	for _, m := range got {
		switch {
		case sameMail(m.Data, first):
			byBody["one"] = m
		case sameMail(m.Data, second):
			byBody["two"] = m
		}
		if m.Helo != r.Hostname {
			t.Errorf("EHLO %q, want the relay's %q", m.Helo, r.Hostname)
		}
		// The mail went through this Postfix: its Received header is on top.
		if !bytes.HasPrefix(m.Data, []byte("Received: from ")) || !bytes.Contains(m.Data, []byte("by "+r.Hostname+" (Postfix)")) {
			t.Errorf("no Received header of the relay in %q", m.Data[:min(len(m.Data), 300)])
		}
	}
	if m, ok := byBody["one"]; !ok || m.From != "assistance@ent.example" || strings.Join(m.To, ",") != "support@desk.example" {
		t.Errorf("first mail: %+v, present %v", m, ok)
	}
	if m, ok := byBody["two"]; !ok || strings.Join(m.To, ",") != "a@one.example,b@two.example" {
		t.Errorf("second mail: %+v, present %v", m, ok)
	}

	if !r.Running() {
		t.Fatal("Running = false before Stop")
	}
	r.Stop()
	if r.Running() {
		t.Fatal("a process of the instance still runs after Stop")
	}
	if conn, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the relay's port still accepts after Stop")
	}
	r.Stop() // idempotent
}

// The queue is on disk and retried: a mail accepted while the next server
// is down is delivered once it is back.
func TestPostfixRelayQueuesWhileTheServerIsDown(t *testing.T) {
	sink := StartSMTPSink(t, WithDump())
	r := StartPostfixRelay(t, sink.Addr,
		WithPostfixParam("queue_run_delay", "1s"),
		WithPostfixParam("minimal_backoff_time", "1s"),
		WithPostfixParam("maximal_backoff_time", "1s"))
	sink.Kill()
	mail := sampleMail("queued")
	if err := send(t, r.Addr, "assistance@ent.example", []string{"support@desk.example"}, mail); err != nil {
		t.Fatalf("send to the relay: %v", err)
	}
	// Tried, failed, deferred: still queued.
	time.Sleep(500 * time.Millisecond)
	if n := r.Queued(t); n != 1 {
		t.Fatalf("Queued = %d with the next server down, want 1", n)
	}
	sink.Restart(t)
	waitFor(t, 30*time.Second, "the deferred mail was not delivered", func() bool { return len(sink.Deliveries(t)) == 1 })
	if m := sink.Messages(t)[0]; !sameMail(m, mail) {
		t.Fatalf("delivered %q", m)
	}
	waitFor(t, 10*time.Second, "the relay's queue is not empty", func() bool { return r.Queued(t) == 0 })
}

func TestPostfixRelayConfigs(t *testing.T) {
	main := postfixMainCF("/tmp/x", "relay-1.mailtest.invalid", "postfix", "postdrop", "[127.0.0.1]:2525")
	for _, want := range []string{
		"queue_directory = /tmp/x/queue\n",
		"relayhost = [127.0.0.1]:2525\n",
		"mydestination =\n",
		"inet_interfaces = loopback-only\n",
		"maillog_file = /tmp/x/postfix.log\n",
	} {
		if !strings.Contains(main, want) {
			t.Errorf("main.cf lacks %q", want)
		}
	}
	master := postfixMasterCF(2526)
	if !strings.Contains(master, "\n127.0.0.1:2526  inet  n       -       n ") {
		t.Errorf("master.cf has no unchrooted smtpd on the port:\n%s", master)
	}
	for _, line := range strings.Split(master, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && !strings.HasPrefix(f[0], "#") && f[4] != "n" {
			t.Errorf("service %s is chrooted", f[0])
		}
	}
}

func TestPostfixLaunchReportsTakenPort(t *testing.T) {
	sink := StartSMTPSink(t)
	r := StartPostfixRelay(t, sink.Addr)
	r.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if err := writeConfigFile(filepath.Join(r.ConfigDir, "master.cf"), postfixMasterCF(port)); err != nil {
		t.Fatal(err)
	}
	p, err := r.launch(port)
	if err == nil {
		p.StopGroup(postfixStopGrace)
		t.Fatal("launch on a taken port succeeded")
	}
	if !errors.Is(err, redistest.ErrAddrInUse) {
		t.Fatalf("launch on a taken port: %v, want ErrAddrInUse", err)
	}
}
