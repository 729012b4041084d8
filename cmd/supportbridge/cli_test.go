package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"supportbridge/bridge/redisstore/redistest"
)

func runCLI(args ...string) (stdout, stderr string, err error) {
	var out, errb syncBuffer
	err = run(context.Background(), append([]string{"supportbridge"}, args...), opsEnv, &out, &errb)
	return out.String(), errb.String(), err
}

// TestCLIHelpAndArguments: -h/--help of any command exits 0 with its flags;
// help lists every flag of every command; an argument a command does not
// take is an error.
func TestCLIHelpAndArguments(t *testing.T) {
	for _, args := range [][]string{{"demo", "--help"}, {"demo", "-h"}, {"serve", "--help"}, {"check-config", "-h"},
		{"digest", "--help"}, {"jobs", "list", "--help"}, {"status", "--help"}} {
		_, stderr, err := runCLI(args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(stderr, "-") {
			t.Errorf("%v printed no flags: %q", args, stderr)
		}
	}
	if _, stderr, _ := runCLI("demo", "--help"); !strings.Contains(stderr, "-pace") || !strings.Contains(stderr, "-listen") {
		t.Errorf("demo --help: %q", stderr)
	}
	help, _, err := runCLI("help")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--listen", "--pace", "--config", "--period", "--dead", "--retry", "--all", "--json", "-h"} {
		if !strings.Contains(help, flag) {
			t.Errorf("help does not list %s", flag)
		}
	}
	m := redistest.Miniredis(t)
	cfg := opsConfig(t, m.Addr(), "", "")
	for _, args := range [][]string{{"check-config", "--config", cfg, "extra"}, {"serve", "--config", cfg, "extra"},
		{"demo", "extra"}, {"digest", "--config", cfg, "extra"}, {"status", "--config", cfg, "extra"}} {
		_, stderr, err := runCLI(args...)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(stderr, "extra") {
			t.Errorf("%v: %v %q", args, err, stderr)
		}
	}
}

// TestReplayUnknownJob: replaying a job that does not exist says so, once,
// without a "replayed 0/1" beside it, and exits 1.
func TestReplayUnknownJob(t *testing.T) {
	m := redistest.Miniredis(t)
	cfg := opsConfig(t, m.Addr(), "", "")
	stdout, stderr, err := runCLI("jobs", "replay", "--config", cfg, "no-such-job")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("exit %v", err)
	}
	if strings.Contains(stdout+stderr, "replayed 0/1") || !strings.Contains(stderr, "no-such-job: no such job") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
}

// TestStatusMailboxWording: a file without imap.addr, against a deployment
// whose replica reads the mailbox, does not say that no replica reads it.
func TestStatusMailboxWording(t *testing.T) {
	var b strings.Builder
	writeStatus(&b, deploymentStatus{IMAP: mailboxStatus{Mailbox: "INBOX", LeaseHolder: "demo", LeaseFence: 3}})
	if out := b.String(); strings.Contains(out, "no replica reads it") || !strings.Contains(out, "a replica reads the mailbox") {
		t.Errorf("status:\n%s", out)
	}
	b.Reset()
	writeStatus(&b, deploymentStatus{IMAP: mailboxStatus{Mailbox: "INBOX"}})
	if out := b.String(); !strings.Contains(out, "no replica reads it") {
		t.Errorf("status without any reader:\n%s", out)
	}
}
