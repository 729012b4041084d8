package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// runningDemo is the demo started by a test, its scripted loop complete.
type runningDemo struct {
	out  *syncBuffer
	base string // http://127.0.0.1:port
	stop func()
}

func startDemoForTest(t *testing.T) *runningDemo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"supportbridge", "demo", "--listen", "127.0.0.1:0", "--pace", "200ms"},
			func(string) string { return "" }, out, errOut)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "demo: scripted loop") && time.Now().Before(deadline) {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("demo ended early: %v\n%s\n%s", err, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), "demo: scripted loop complete") {
		cancel()
		t.Fatalf("the scripted loop did not complete:\n%s\n%s", out.String(), errOut.String())
	}
	base := regexp.MustCompile(`listening on (http://[0-9.:]+)`).FindStringSubmatch(out.String())
	if base == nil {
		cancel()
		t.Fatalf("no URL in:\n%s", out.String())
	}
	d := &runningDemo{out: out, base: base[1]}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("demo did not stop")
			}
		})
	}
	t.Cleanup(d.stop)
	return d
}

func (d *runningDemo) ticket(t *testing.T, id string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", d.base+"/v1/tickets/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+demoAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestDemoPlayground: the demo's printed desk path works as printed — the
// curl command sends a desk reply through the desk's mail server and the
// bridge threads it onto T-1001 — and the printed ops configuration opens
// the demo's deployment.
func TestDemoPlayground(t *testing.T) {
	redistest.NeedBinary(t, "curl")
	d := startDemoForTest(t)
	cmdLine := regexp.MustCompile(`(?m)^  (printf '.*' \| curl .*)$`).FindStringSubmatch(d.out.String())
	if cmdLine == nil {
		t.Fatalf("no reply command printed:\n%s", d.out.String())
	}
	if out, err := exec.Command("bash", "-c", cmdLine[1]).CombinedOutput(); err != nil {
		t.Fatalf("the printed command: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		found := false
		for _, x := range d.ticket(t, "T-1001")["exchanges"].([]any) {
			if x.(map[string]any)["body"] == "Bonjour, une précision envoyée à la main." {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hand-sent reply never reached T-1001:\n%s", d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	cfg := regexp.MustCompile(`status --config (\S+)`).FindStringSubmatch(d.out.String())
	if cfg == nil {
		t.Fatalf("no ops configuration printed")
	}
	st, stderr, err := runCLI("status", "--config", cfg[1])
	if err != nil || !strings.Contains(st, "imap poller        demo") {
		t.Errorf("status against the demo: %v\n%s\n%s", err, st, stderr)
	}
	show, _, err := runCLI("ticket", "show", "--config", cfg[1], "T-1001")
	if err != nil || !strings.Contains(show, "une précision envoyée à la main") {
		t.Errorf("ticket show against the demo: %v\n%s", err, show)
	}
	d.stop()
	if _, err := os.Stat(cfg[1]); !os.IsNotExist(err) {
		t.Errorf("the ops configuration outlived the demo: %v", err)
	}
}

// TestREADMEExamples runs, as written, every shell example of README.md
// that talks to the demo's address (127.0.0.1:8080; the test's demo listens
// elsewhere, the one thing changed), so that they cannot drift from it.
func TestREADMEExamples(t *testing.T) {
	redistest.NeedBinary(t, "curl")
	redistest.NeedBinary(t, "openssl")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "127.0.0.1:8080") {
			blocks = append(blocks, m[1])
		}
	}
	if len(blocks) < 2 {
		t.Fatalf("%d examples against the demo in README.md", len(blocks))
	}
	d := startDemoForTest(t)
	addr := strings.TrimPrefix(d.base, "http://")
	for i, b := range blocks {
		script := strings.ReplaceAll(b, "127.0.0.1:8080", addr)
		out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
		if err != nil || strings.Contains(string(out), `"error"`) {
			t.Errorf("example %d:\n%s\n--- %v:\n%s", i+1, b, err, out)
			continue
		}
		if strings.Contains(b, "/v1/webhooks/ent") && !strings.Contains(string(out), `{"status":"accepted"}`) {
			t.Errorf("the signed example was not accepted: %s", out)
		}
	}
	if got := d.ticket(t, "T-1001")["status"]; got != "opened" {
		t.Errorf("T-1001 is %v after the README's status change", got)
	}
}
