package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"supportbridge/config"
)

// exampleEnv is what packaging/config.example.yaml reads from the
// environment (the secrets).
func exampleEnv() map[string]string {
	return map[string]string{
		"SB_REDIS_PASSWORD":     "redis-pw-value",
		"SB_WEBHOOK_SECRET":     testSecret,
		"SB_WEBHOOK_SECRET_OLD": oldSecret,
		"SB_CALLBACK_SECRET":    testSecret,
		"SB_API_TOKEN":          testToken,
		"SB_SIGNING_KEY":        "signing-key-0123456789",
		"SB_SMTP_PASSWORD":      "smtp-pw-value",
		"SB_IMAP_PASSWORD":      "imap-pw-value",
	}
}

// TestConfigExampleInSync keeps the packaged example identical to the
// config package's commented reference file, and checks it is valid the
// way an operator checks it.
func TestConfigExampleInSync(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("packaging", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, full) {
		t.Fatalf("packaging/config.example.yaml differs from config/testdata/full.yaml: copy the latter over the former")
	}
	if _, err := config.Parse(example, getenvWith(exampleEnv())); err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"supportbridge", "check-config", "--config", filepath.Join("packaging", "config.example.yaml")},
		getenvWith(exampleEnv()), &stdout, &stderr)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, stderr.String())
	}
	// Without the secrets' environment the same file is refused: the
	// example keeps its secrets out of the file.
	stderr.Reset()
	err = run(context.Background(), []string{"supportbridge", "check-config", "--config", filepath.Join("packaging", "config.example.yaml")},
		getenvWith(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "SB_API_TOKEN") {
		t.Errorf("check-config without the environment: %v\n%s", err, stderr.String())
	}
}

// unitKeys reads a systemd unit's Key=Value lines (comments skipped); a
// key given several times keeps every value.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a Key=Value line: %q", path, line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnit checks what the unit must hold for the daemon to run and
// stop cleanly under it: the command line that run accepts, a stop timeout
// above the daemon's own shutdown timeout, and the hardening asked for.
func TestSystemdUnit(t *testing.T) {
	u := unitKeys(t, filepath.Join("packaging", "supportbridge.service"))
	one := func(k string) string {
		t.Helper()
		if len(u[k]) != 1 {
			t.Fatalf("%s: %q, want one value", k, u[k])
		}
		return u[k][0]
	}
	start := strings.Fields(one("ExecStart"))
	if len(start) != 4 || start[0] != "/usr/local/bin/supportbridge" || start[1] != "serve" || start[2] != "--config" {
		t.Fatalf("ExecStart %q", start)
	}
	// The same command line, the binary replaced by run, loads the example.
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("packaging", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, filepath.Base(start[3]))
	if err := os.WriteFile(cfgPath, example, 0o600); err != nil {
		t.Fatal(err)
	}
	pre := strings.Fields(one("ExecStartPre"))
	if len(pre) != 4 || pre[1] != "check-config" || pre[3] != start[3] {
		t.Fatalf("ExecStartPre %q", pre)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"supportbridge", pre[1], pre[2], cfgPath}, getenvWith(exampleEnv()), &stdout, &stderr); err != nil {
		t.Fatalf("%q: %v\n%s", pre, err, stderr.String())
	}

	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	cfg, err := config.Parse(example, getenvWith(exampleEnv()))
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()
	if limit := max(cfg.ShutdownTimeout, def.ShutdownTimeout); stop <= limit+10*time.Second {
		t.Errorf("TimeoutStopSec %s leaves too little beyond shutdown_timeout %s", stop, limit)
	}
	for k, want := range map[string]string{
		"User": "supportbridge", "EnvironmentFile": "-/etc/supportbridge/env", "Restart": "on-failure",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}

// TestAlertRules checks packaging/alerts.yml: each rule is complete, and
// every supportbridge metric and label value it names is one the daemon
// really exports, so the rules cannot silently stop matching after a rename.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("packaging", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	// What the code exports: quoted literals of the daemon's sources (metric
	// names live in this package, label values in the others too).
	var sources strings.Builder
	for _, dir := range []string{".", "../../bridge", "../../mail", "../../mail/compose", "../../mail/smtpclient",
		"../../mail/imapreader", "../../mail/inbound", "../../webhook"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources.Write(b)
		}
	}
	code := sources.String()
	metricRE := regexp.MustCompile(`\bsupportbridge_[a-z_]+\b`)
	matcherRE := regexp.MustCompile(`\b([a-z_]+)="([^"]*)"`)
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: alert, expr, labels.severity and annotations.summary are required", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("rule %s: unbalanced expression %q", r.Alert, r.Expr)
			}
			for _, name := range metricRE.FindAllString(r.Expr, -1) {
				if !strings.Contains(code, `"`+name+`"`) {
					t.Errorf("rule %s: metric %s is not exported by the daemon", r.Alert, name)
				}
			}
			for _, m := range matcherRE.FindAllStringSubmatch(r.Expr, -1) {
				if m[1] == "job" {
					continue // the scrape config's, not ours
				}
				if !strings.Contains(code, `"`+m[2]+`"`) {
					t.Errorf("rule %s: label value %s=%q is never set by the daemon", r.Alert, m[1], m[2])
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("alerts.yml holds no rule")
	}
}
