package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// childEnv makes the test binary run the real program instead of the tests,
// so crash tests can SIGKILL a daemon without killing themselves.
const childEnv = "SUPPORTBRIDGE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// The child is the daemon under test: the failpoint its test asked
		// for is armed here, never in the program itself.
		if err := armFailpoint(os.Getenv(failpointEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "supportbridge test child:", err)
			os.Exit(2)
		}
		if err := run(context.Background(), append([]string{"supportbridge"}, os.Args[1:]...), os.Getenv, os.Stdout, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childDaemon is the daemon in its own process.
type childDaemon struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	exited chan error
}

// startChild starts the daemon in its own process on cfgPath and returns
// once it listens and has stored the structures of its configuration.
func startChild(t testing.TB, cfgPath string, env ...string) *childDaemon {
	t.Helper()
	c := launchChild(t, cfgPath, env...)
	waitConfiguredStructures(t, cfgPath)
	return c
}

// launchChild is startChild without waiting for the configured structures
// (which Redis may not be up to take yet).
func launchChild(t testing.TB, cfgPath string, env ...string) *childDaemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), childEnv+"=1", "SB_TEST_SECRET="+testSecret)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &childDaemon{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { c.exited <- cmd.Wait() }()
	select {
	case c.base = <-found:
	case err := <-c.exited:
		t.Fatalf("child exited: %v\n%s", err, c.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not listen\n%s", c.stderr.String())
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(20 * time.Second):
				_ = c.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("child log:\n%s", c.stderr.String())
		}
	})
	return c
}

func (c *childDaemon) daemon() *daemonUnderTest {
	return &daemonUnderTest{base: c.base}
}

// TestKillAfterAcceptanceDoesNotResend: the daemon is SIGKILLed after the
// desk's server accepted the escalation mail and the ledger recorded it, but
// before the job was acknowledged. The restarted daemon runs the job again
// and must not send the mail a second time.
func TestKillAfterAcceptanceDoesNotResend(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the job queue to recover an orphaned job (about a minute)")
	}
	srv := redistest.Start(t, redistest.WithAOF())
	desk := startFakeDesk(t, &fakeDesk{})
	cfg := writeConfig(t, srv.Addr, deskConfig(desk.addr))

	first := startChild(t, cfg, failpointEnv+"="+failpointAfterAccept)
	d := first.daemon()
	if a := d.post(t, nextID(), ticketCreated("K1", "s1")); a.Status != 202 {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := d.post(t, nextID(), escalation("K1")); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}
	select {
	case err := <-first.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(ee.String(), "killed") {
			t.Fatalf("first daemon ended with %v, want killed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the failpoint did not fire")
	}
	if n := len(desk.mails()); n != 1 {
		t.Fatalf("%d mails before the restart", n)
	}

	second := startChild(t, cfg)
	d = second.daemon()
	if s := escalationStatus(d.get(t, "/v1/tickets/K1")); s != "in_progress" {
		t.Fatalf("escalation %s right after the crash, want in_progress", s)
	}
	// The orphaned job comes back once its lease has expired; the ledger
	// says the mail was accepted, so the job only records it.
	deadline := time.Now().Add(150 * time.Second)
	for time.Now().Before(deadline) {
		if escalationStatus(d.get(t, "/v1/tickets/K1")) == "successful" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if s := escalationStatus(d.get(t, "/v1/tickets/K1")); s != "successful" {
		t.Fatalf("escalation %s after the restart", s)
	}
	if n := len(desk.mails()); n != 1 {
		t.Fatalf("%d mails at the desk, want exactly 1", n)
	}
}
