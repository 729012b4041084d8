package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoDeskOnlyRecords: without desk.address, an escalation is recorded
// as the README says: it stays in_progress with an escalation_recorded
// event, nothing is dead-lettered; check-config is valid and says so in a
// warning.
func TestNoDeskOnlyRecords(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		cfgPath := writeConfig(t, redisAddr, "")
		d := startDaemon(t, cfgPath)
		defer d.stop(t)
		if a := d.post(t, nextID(), ticketCreated("ND1", "s1")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalation("ND1")); a.Status != 202 {
			t.Fatalf("escalate: %d %s", a.Status, a.Raw)
		}
		a := waitTicket(t, d, "ND1", func(a answer) bool {
			for _, e := range a.Body["events"].([]any) {
				if e.(map[string]any)["type"] == "escalation_recorded" {
					return true
				}
			}
			return false
		})
		if esc := a.Body["escalation"].(map[string]any); esc["status"] != "in_progress" || esc["last_error"] != "" {
			t.Errorf("escalation %v", esc)
		}
		time.Sleep(300 * time.Millisecond)
		if dead := runOps(t, "jobs", "list", "--config", cfgPath); strings.Contains(dead.stdout, "ND1") {
			t.Errorf("a dead letter for ND1:\n%s", dead.stdout)
		}

		var stdout, stderr bytes.Buffer
		env := getenvWith(map[string]string{"SB_TEST_SECRET": testSecret})
		if err := run(context.Background(), []string{"supportbridge", "check-config", "--config", cfgPath}, env, &stdout, &stderr); err != nil {
			t.Fatalf("check-config: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "warning: desk.address is empty: escalations are only recorded") {
			t.Errorf("no warning: %q", stderr.String())
		}
		// With a desk, no warning.
		withDesk := filepath.Join(t.TempDir(), "desk.yaml")
		raw, _ := os.ReadFile(writeConfig(t, redisAddr, deskConfig("127.0.0.1:2525")))
		if err := os.WriteFile(withDesk, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		stderr.Reset()
		if err := run(context.Background(), []string{"supportbridge", "check-config", "--config", withDesk}, env, &stdout, &stderr); err != nil || stderr.Len() != 0 {
			t.Errorf("check-config with a desk: %v %q", err, stderr.String())
		}
	})
}
