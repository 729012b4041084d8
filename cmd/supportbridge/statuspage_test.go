package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// screenshotDirEnv, when set, names a directory where the browser test
// also copies its screenshot (a CI artifact, or a look by a human).
const screenshotDirEnv = "SUPPORTBRIDGE_SCREENSHOT_DIR"

// runChromium runs headless Chromium once with its own profile and home,
// in its own process group so that its helper processes go with it.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(dir, "profile")}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Helpers (zygote, GPU, network service) left behind by a crash.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestStatusPageInBrowser renders the status page of a running daemon in a
// real browser, signing in the way an operator does: /login?token=… sets
// the cookie and redirects to /.
func TestStatusPageInBrowser(t *testing.T) {
	bin := redistest.NeedBinary(t, "chromium")
	m := redistest.Miniredis(t)
	// The desk refuses the escalation for good (550): its job is given up
	// and dead-lettered, which the page must show.
	desk := startFakeDesk(t, &fakeDesk{rejectTo: true})
	d := startDaemon(t, writeConfig(t, m.Addr(), deskConfig(desk.addr)))

	hostile := `<script>alert(1)</script>`
	evil := event("ticket.created", fmt.Sprintf(`{"ticket":{"id":"T-EVIL","structure_id":"s2",
	  "owner":{"id":"u-2","display_name":"Mallory","email":"m@school.example","profile":"Student"},
	  "category":{"app":"mail","label":"Messagerie"},"subject":%s,"description":"x","locale":"fr",
	  "created_at":%q,"attachments":[]}}`, mustJSON(t, hostile), time.Now().UTC().Format(time.RFC3339)))
	for _, body := range []string{
		ticketCreated("T-100", "s1"),
		ticketCreated("T-200", "s1"),
		evil,
		comment("T-100", "c-1", "u-ref1"),
		escalation("T-100"),
		statusChanged("T-200", "waiting"),
	} {
		if a := d.post(t, nextID(), body); a.Status != 202 {
			t.Fatalf("post: %d %s", a.Status, a.Raw)
		}
	}
	// Wait for the dead letter.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := d.get(t, "/")
		if a.Status == 200 && strings.Contains(string(a.Raw), `<table id="dead">`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter on the page: %d\n%s", a.Status, a.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	login := d.base + "/login?token=" + url.QueryEscape(testToken)

	dom := string(runChromium(t, bin, "--dump-dom", login))
	for _, want := range []string{`<table id="queue">`, "<th>pending</th>", "<th>dead</th>",
		`href="/tickets/T-100"`, `href="/tickets/T-200"`, `href="/tickets/T-EVIL"`,
		"&lt;script&gt;alert(1)&lt;/script&gt;", "Écran blanc dans Pronote", "waiting",
		`<table id="dead">`, "escalate", "no such user here", "No mailbox is read"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %q:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "<script") {
		t.Errorf("a script element in the DOM:\n%s", dom)
	}

	// Without the token the browser gets the sign-in page, not the data.
	if dom := string(runChromium(t, bin, "--dump-dom", d.base+"/")); strings.Contains(dom, "T-100") || !strings.Contains(dom, "Sign in") {
		t.Errorf("unauthenticated DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1600", login)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1600 {
		t.Errorf("screenshot %v, want 1280x1600", b)
	}
	// A blank page is one colour; the rendered tables and text are not.
	colours := map[[4]uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y && len(colours) < 16; y += 4 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 4 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colours) < 16 {
		t.Errorf("screenshot looks blank: %d colours", len(colours))
	}
	if dir := os.Getenv(screenshotDirEnv); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "status.png"), raw, 0o644); err != nil {
			t.Errorf("copy screenshot: %v", err)
		}
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(raw))

	// The ticket page through the same cookie, as a browser sends it.
	jarless := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := jarless.Get(login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, cookies)
	}
	req, _ := http.NewRequest("GET", d.base+"/tickets/T-100", nil)
	req.AddCookie(cookies[0])
	a := do(t, req)
	for _, want := range []string{"Ticket T-100", "Une précision.", "escalation_requested",
		"escalation_failed", "Mme Martin &lt;martin@school.example&gt;"} {
		if a.Status != 200 || !strings.Contains(string(a.Raw), want) {
			t.Errorf("ticket page lacks %q: %d\n%s", want, a.Status, a.Raw)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
