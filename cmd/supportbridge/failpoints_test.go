package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"supportbridge/bridge"
	"supportbridge/mail/imapreader"
)

// Failpoints stop a child daemon (see TestMain) at chosen points, for the
// crash tests: the environment variable SUPPORTBRIDGE_FAILPOINT of the child
// names one. They are armed through wiringHook and live here, in the tests:
// the built binary has none (TestBinaryHasNoFailpoints).
const (
	failpointEnv         = "SUPPORTBRIDGE_FAILPOINT"
	failpointAfterAccept = "kill-after-accept" // SIGKILL once a mail is accepted and recorded
	failpointAfterApply  = "kill-after-apply"  // SIGKILL once a desk reply is applied, before its mail is moved
)

// armFailpoint arms the failpoint name ("" for none) in this process.
func armFailpoint(name string) error {
	switch name {
	case "":
		wiringHook = nil
	case failpointAfterAccept:
		wiringHook = func(wo *bridge.WorkerOptions, _ *imapreader.MessageHandler) {
			wo.OnAccepted = func(bridge.Effect, bridge.MailRecord) { killSelf() }
		}
	case failpointAfterApply:
		wiringHook = func(_ *bridge.WorkerOptions, h *imapreader.MessageHandler) {
			if *h != nil {
				*h = killAfterApply{*h}
			}
		}
	default:
		return fmt.Errorf("unknown failpoint %q", name)
	}
	return nil
}

func killSelf() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// killAfterApply is the handler of failpointAfterApply: the process dies
// right after a reply is applied, before the mail is moved.
type killAfterApply struct{ imapreader.MessageHandler }

func (k killAfterApply) Apply(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error) {
	v, err := k.MessageHandler.Apply(ctx, m, rt)
	if err == nil && v.Reason == string(bridge.Applied) {
		killSelf()
	}
	return v, err
}

// TestBinaryHasNoFailpoints: the binary `go build` makes holds no
// failpoint: neither its variable nor its names.
func TestBinaryHasNoFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build the binary with")
		}
	}
	bin := filepath.Join(t.TempDir(), "supportbridge")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{failpointEnv, failpointAfterAccept, failpointAfterApply, "killAfterApply", "armFailpoint"} {
		if strings.Contains(string(data), s) {
			t.Errorf("the built binary holds %q", s)
		}
	}
}
