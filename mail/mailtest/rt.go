package mailtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// Request Tracker 5 as Debian packages it (request-tracker5, rt5-clients,
// rt5-db-sqlite): rt-server is not on PATH but in RT's libexec.
var (
	rtServerNames   = []string{"rt-server", "/usr/share/request-tracker5/libexec/rt-server"}
	rtSetupNames    = []string{"rt-setup-database-5", "rt-setup-database", "/usr/sbin/rt-setup-database-5"}
	rtMailgateNames = []string{"rt-mailgate", "rt-mailgate-5"}
)

// Defaults of RTOptions.
const (
	defaultRTName            = "rt.desk.example"
	defaultCorrespondAddress = "support@desk.example"
	defaultCommentAddress    = "support-comment@desk.example"
)

// RT's superuser, as rt-setup-database creates it.
const (
	rtRootUser     = "root"
	rtRootPassword = "password"
)

// rtQueue is the queue rt-setup-database creates; Submit files mail there.
const rtQueue = "General"

// RTOptions configure StartRT; zero values give the defaults shown.
type RTOptions struct {
	// RTName is $rtname, the word of the subject tag: "rt.desk.example"
	// gives subjects "[rt.desk.example #12] …".
	RTName string // "rt.desk.example"
	// CorrespondAddress is $CorrespondAddress, the From and Reply-To of
	// what RT sends. Its domain is also $Organization, which RT puts in
	// its Message-IDs and in References: <RT-Ticket-12@domain>.
	CorrespondAddress string // "support@desk.example"
	// CommentAddress is $CommentAddress.
	CommentAddress string // "support-comment@desk.example"
}

// RT is a private Request Tracker 5: its own RT_SiteConfig.pm, SQLite
// database, Mason cache and log, the standalone web server on 127.0.0.1,
// and a sendmail that keeps every mail RT sends in a spool directory
// instead of delivering it.
//
// The database is the one rt-setup-database makes, plus the rights a help
// desk fed by mail needs: Everyone may CreateTicket, ReplyToTicket and
// CommentOnTicket. RT's default scrips are unchanged: it autoreplies to the
// requestor on create, notifies the requestors of correspondence (not of
// their own) and of the ticket's resolution.
type RT struct {
	// URL is "http://127.0.0.1:<port>" of the standalone rt-server; also
	// $WebBaseURL. REST 2 is at URL+"/REST/2.0/".
	URL string
	// Name is the rtname, the word of the subject tag.
	Name string
	// CorrespondAddress and CommentAddress are RT's own addresses.
	CorrespondAddress string
	CommentAddress    string
	// Dir holds everything: RT_SiteConfig.pm, sendmail (the script RT
	// pipes its mail to), spool/ (what it sent), var/rt.db (the database),
	// var/mason_data, rt.log (rt-server's output, RT's log).
	Dir string

	server   string // rt-server
	mailgate string // rt-mailgate
	env      string // env, to start rt-server with RT's variables
	spool    string
	logPath  string
	cred     *redistest.Credential
	proc     *redistest.Process
	client   *http.Client

	mu    sync.Mutex
	taken map[string]bool // spool files TakeOutgoing returned
}

// StartRT starts a private RT with a fresh database and returns once its
// REST 2 API answers. It is killed when the test ends; its log is shown if
// the test failed. Without RT installed the test is skipped, or fails when
// SUPPORTBRIDGE_REQUIRE_SERVERS=1.
func StartRT(t testing.TB, opt RTOptions) *RT {
	t.Helper()
	server := needOneOf(t, rtServerNames...)
	setup := needOneOf(t, rtSetupNames...)
	mailgate := needOneOf(t, rtMailgateNames...)
	envBin := redistest.NeedBinary(t, "env")
	needDBDSQLite(t)
	if opt.RTName == "" {
		opt.RTName = defaultRTName
	}
	if opt.CorrespondAddress == "" {
		opt.CorrespondAddress = defaultCorrespondAddress
	}
	if opt.CommentAddress == "" {
		opt.CommentAddress = defaultCommentAddress
	}

	db, built, err := rtTemplateDB(setup)
	if err != nil {
		t.Fatalf("RT database: %v", err)
	}
	if built > 0 {
		t.Logf("RT: template database made by rt-setup-database in %s", built.Round(time.Millisecond))
	}

	dir := serverDir(t, "rt-")
	r := &RT{
		Name:              opt.RTName,
		CorrespondAddress: opt.CorrespondAddress,
		CommentAddress:    opt.CommentAddress,
		Dir:               dir,
		server:            server,
		mailgate:          mailgate,
		env:               envBin,
		spool:             filepath.Join(dir, "spool"),
		logPath:           filepath.Join(dir, "rt.log"),
		taken:             map[string]bool{},
		client: &http.Client{
			Timeout:   60 * time.Second,
			Transport: &http.Transport{Proxy: nil},
		},
	}
	// rt-server runs unprivileged when the test runs as root: it then
	// needs to write its database (and SQLite's journal beside it), Mason
	// cache, sessions and the spool its sendmail writes to.
	runAs := unprivileged(t)
	if os.Geteuid() == 0 {
		r.cred = &redistest.Credential{UID: uint32(runAs.uid), GID: uint32(runAs.gid)}
	}
	for _, d := range []string{"var", "var/mason_data", "var/session_data", "spool", "spool/.tmp"} {
		mkdirOwned(t, filepath.Join(dir, d), runAs)
	}
	// Empty: RT_SITE_CONFIG_DIR replaces /etc/request-tracker5/RT_SiteConfig.d.
	if err := os.Mkdir(filepath.Join(dir, "RT_SiteConfig.d"), 0o755); err != nil {
		t.Fatalf("RT dir: %v", err)
	}
	dbPath := filepath.Join(dir, "var", "rt.db")
	if err := os.WriteFile(dbPath, db, 0o644); err != nil {
		t.Fatalf("RT database: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dbPath, runAs.uid, runAs.gid); err != nil {
			t.Fatalf("RT database: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sendmail"), []byte(rtSendmailScript(r.spool)), 0o755); err != nil {
		t.Fatalf("RT sendmail: %v", err)
	}
	redistest.LogOnFailure(t, r.logPath)

	var port int
	r.proc, port = redistest.StartOnFreePort(t, func(port int) (*redistest.Process, error) {
		conf := rtSiteConfig(rtConfig{
			dir:        dir,
			db:         dbPath,
			port:       port,
			rtname:     r.Name,
			correspond: r.CorrespondAddress,
			comment:    r.CommentAddress,
			sendmail:   filepath.Join(dir, "sendmail"),
		})
		if err := os.WriteFile(r.configPath(), []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("RT_SiteConfig.pm: %w", err)
		}
		return r.launch(port)
	})
	r.URL = "http://" + loopback(port)
	t.Cleanup(r.proc.Kill)
	return r
}

func (r *RT) configPath() string { return filepath.Join(r.Dir, "RT_SiteConfig.pm") }

// rtEnv are the variables that make RT's programs read this instance's
// configuration and nothing from /etc/request-tracker5.
func rtEnv(dir string) []string {
	return []string{
		"RT_SITE_CONFIG=" + filepath.Join(dir, "RT_SiteConfig.pm"),
		"RT_SITE_CONFIG_DIR=" + filepath.Join(dir, "RT_SiteConfig.d"),
		"HOME=" + filepath.Join(dir, "var"),
	}
}

// launch starts rt-server, through env for RT's variables (env execs it:
// the pid stays the one Kill signals), and waits until REST 2 answers.
func (r *RT) launch(port int) (*redistest.Process, error) {
	args := append(rtEnv(r.Dir), r.server,
		// One process, no prefork workers: nothing outlives the parent
		// death signal of the process StartProcessAs starts.
		"--server", "Standalone",
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(port))
	p, err := redistest.StartProcessAs(r.cred, r.logPath, r.env, args...)
	if err != nil {
		return nil, err
	}
	base := "http://" + loopback(port)
	probe := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := r.rest(ctx, http.MethodGet, base+"/REST/2.0/queues/all", "", nil, http.StatusOK)
		return err
	}
	if err := p.WaitReady(probe); err != nil {
		p.Kill()
		// RT replaces the bind error by a warning of its own, which
		// LaunchError does not recognise.
		if bytes.Contains(readFile(r.logPath), fmt.Appendf(nil, "RT couldn't start up a web server on port %d.", port)) {
			return nil, fmt.Errorf("%w: port %d: %v", redistest.ErrAddrInUse, port, err)
		}
		return nil, redistest.LaunchError(r.logPath, err)
	}
	return p, nil
}

// readFile is the content of path, or nothing.
func readFile(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

// Submit feeds raw to RT as an MTA would for CorrespondAddress: through
// rt-mailgate --queue General --action correspond. A reply whose subject
// carries the tag "[<rtname> #<id>]" is added to that ticket; any other
// mail creates one. Like an MTA, Submit only fails when rt-mailgate does
// (exit 75 when RT is unreachable); when RT refuses the mail (rt-mailgate
// still exits 0), RT mails its refusal, which TakeOutgoing returns.
func (r *RT) Submit(raw []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.mailgate,
		"--queue", rtQueue, "--action", "correspond", "--url", r.URL, "--timeout", "60")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("rt-mailgate: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// TakeOutgoing returns every mail RT has sent since the last call, oldest
// first, as RT piped them to its sendmail (raw RFC 5322, LF line ends, no
// envelope). It never blocks.
func (r *RT) TakeOutgoing() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := os.ReadDir(r.spool)
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, e := range entries { // sorted by name, which is by time
		name := e.Name()
		if !strings.HasSuffix(name, ".eml") || r.taken[name] {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.spool, name))
		if err != nil {
			continue // again at the next call
		}
		r.taken[name] = true
		out = append(out, data)
	}
	return out
}

// WaitOutgoing waits until RT has sent at least n mails since the last
// TakeOutgoing or WaitOutgoing, and returns them all, oldest first. On
// timeout the test fails with a summary of what did come.
func (r *RT) WaitOutgoing(t testing.TB, n int, timeout time.Duration) [][]byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got [][]byte
	for {
		got = append(got, r.TakeOutgoing()...)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var b strings.Builder
	for i, m := range got {
		fmt.Fprintf(&b, "\n  %d: %s", i+1, summarizeMail(m))
	}
	t.Fatalf("RT sent %d mail(s) within %s, want %d:%s", len(got), timeout, n, b.String())
	return nil
}

// summarizeMail is "To: … Subject: …" of raw, for failure messages.
func summarizeMail(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return fmt.Sprintf("(unparsable: %v) %q", err, clip(raw, 200))
	}
	return fmt.Sprintf("To: %s Subject: %s", msg.Header.Get("To"), msg.Header.Get("Subject"))
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Correspond adds an agent's reply to the ticket through REST 2, as root
// (Enoch Root): RT mails it to the requestors and Ccs.
//
// The text goes as JSON {"Content": text, "ContentType": "text/plain"}: RT
// 5.0.3 takes a text/plain request body for Latin-1 whatever its charset
// parameter says, and mails UTF-8 text encoded twice ("é" as "Ã©").
func (r *RT) Correspond(t testing.TB, ticketID int, text string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"Content": text, "ContentType": "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	r.restT(t, http.MethodPost, fmt.Sprintf("/REST/2.0/ticket/%d/correspond", ticketID), "application/json", body, http.StatusCreated)
}

// SetStatus changes the ticket's status through REST 2, as root, and
// checks that RT took it ("resolved" mails the requestors).
func (r *RT) SetStatus(t testing.TB, ticketID int, status string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"Status": status})
	if err != nil {
		t.Fatal(err)
	}
	resp := r.restT(t, http.MethodPut, fmt.Sprintf("/REST/2.0/ticket/%d", ticketID), "application/json", body, http.StatusOK)
	// RT answers 200 with its messages even when it refused the change.
	if got := r.Ticket(t, ticketID)["Status"]; got != status {
		t.Fatalf("RT ticket %d: status %v after setting %q: %s", ticketID, got, status, resp)
	}
}

// Ticket returns the ticket as REST 2 shows it (GET /REST/2.0/ticket/{id}):
// "Subject", "Status", "Requestor" ([{"id": "a@b", …}]), "id" (a number)…
func (r *RT) Ticket(t testing.TB, ticketID int) map[string]any {
	t.Helper()
	body := r.restT(t, http.MethodGet, fmt.Sprintf("/REST/2.0/ticket/%d", ticketID), "", nil, http.StatusOK)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("RT ticket %d: %v: %s", ticketID, err, body)
	}
	return m
}

// History returns the ticket's whole history as RT's REST 1.0 prints it
// (every transaction with its content), for a test to look for a text in.
func (r *RT) History(t testing.TB, ticketID int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	form := url.Values{"user": {rtRootUser}, "pass": {rtRootPassword}}
	u := fmt.Sprintf("%s/REST/1.0/ticket/%d/history?format=l", r.URL, ticketID)
	body, err := r.rest(ctx, http.MethodPost, u, "application/x-www-form-urlencoded", []byte(form.Encode()), http.StatusOK)
	if err != nil {
		t.Fatalf("RT history: %v", err)
	}
	if !bytes.HasPrefix(body, []byte("RT/")) || !bytes.Contains(body[:min(len(body), 40)], []byte(" 200 ")) {
		t.Fatalf("RT history of ticket %d: %s", ticketID, clip(body, 500))
	}
	return string(body)
}

// TicketIDs returns the ids of every ticket, ascending: all statuses, but
// not deleted tickets, nor merged ones (RT's TicketSQL "id > 0").
func (r *RT) TicketIDs(t testing.TB) []int {
	t.Helper()
	var ids []int
	for page := 1; ; page++ {
		q := url.Values{
			"query":    {"id > 0"},
			"orderby":  {"id"},
			"order":    {"ASC"},
			"per_page": {"100"},
			"page":     {strconv.Itoa(page)},
		}
		body := r.restT(t, http.MethodGet, "/REST/2.0/tickets?"+q.Encode(), "", nil, http.StatusOK)
		var res struct {
			Pages float64 `json:"pages"` // RT may say 0.0
			Items []struct {
				ID json.RawMessage `json:"id"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("RT ticket search: %v: %s", err, body)
		}
		for _, it := range res.Items {
			id, err := strconv.Atoi(strings.Trim(string(it.ID), `"`))
			if err != nil {
				t.Fatalf("RT ticket search: id %s: %v", it.ID, err)
			}
			ids = append(ids, id)
		}
		if float64(page) >= res.Pages || len(res.Items) == 0 {
			break
		}
	}
	sort.Ints(ids)
	return ids
}

// restT is rest for a test: any error fails it.
func (r *RT) restT(t testing.TB, method, path, contentType string, body []byte, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := r.rest(ctx, method, r.URL+path, contentType, body, want)
	if err != nil {
		t.Fatalf("RT REST: %v", err)
	}
	return resp
}

// rest sends one request to RT as root (HTTP basic auth) and returns the
// response body, or an error unless RT answered with the status want.
func (r *RT) rest(ctx context.Context, method, u, contentType string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(rtRootUser, rtRootPassword)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s, want %d: %s", method, u, resp.Status, want, clip(data, 2000))
	}
	return data, nil
}

// needOneOf is redistest.NeedBinary for a program known under several
// names or paths: the first that exists is returned.
func needOneOf(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if redistest.Required() {
		t.Fatalf("none of %s found and %s=1 (install request-tracker5, rt5-clients and rt5-db-sqlite)",
			strings.Join(names, ", "), redistest.RequireEnv)
	}
	t.Skipf("none of %s found (set %s=1 to make this a failure)", strings.Join(names, ", "), redistest.RequireEnv)
	return ""
}

// rtSQLite records whether perl has DBD::SQLite, RT's SQLite driver
// (Debian's libdbd-sqlite3-perl, which rt5-db-sqlite pulls in).
var rtSQLite struct {
	once sync.Once
	err  error
}

// needDBDSQLite skips the test, or fails it when servers are required,
// unless perl can load DBD::SQLite.
func needDBDSQLite(t testing.TB) {
	t.Helper()
	rtSQLite.once.Do(func() {
		out, err := exec.Command("perl", "-MDBD::SQLite", "-e", "1").CombinedOutput()
		if err != nil {
			rtSQLite.err = fmt.Errorf("perl -MDBD::SQLite: %w: %s", err, bytes.TrimSpace(out))
		}
	})
	if rtSQLite.err == nil {
		return
	}
	if redistest.Required() {
		t.Fatalf("RT needs DBD::SQLite (install rt5-db-sqlite) and %s=1: %v", redistest.RequireEnv, rtSQLite.err)
	}
	t.Skipf("RT needs DBD::SQLite (install rt5-db-sqlite; set %s=1 to make this a failure): %v", redistest.RequireEnv, rtSQLite.err)
}

// The template database: rt-setup-database takes several seconds, so it
// runs once per test process; every StartRT gets a copy of the file.
var rtTemplate struct {
	once sync.Once
	db   []byte
	err  error
}

// rtTemplateDB returns the content of a freshly initialised SQLite
// database, with mail rights granted to Everyone, and how long making it
// took when this call made it (0 for later calls).
func rtTemplateDB(setup string) ([]byte, time.Duration, error) {
	var took time.Duration
	rtTemplate.once.Do(func() {
		start := time.Now()
		rtTemplate.db, rtTemplate.err = buildRTTemplate(setup)
		took = time.Since(start)
	})
	return rtTemplate.db, took, rtTemplate.err
}

// rtMailRights let anybody open tickets, and reply or comment on them, by
// mail: without them RT refuses mail from unknown senders ("Permission
// Denied", mailed back to the sender and to $OwnerEmail).
const rtMailRights = `@ACL = map {
    { GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => $_ }
} qw(CreateTicket ReplyToTicket CommentOnTicket);
1;
`

func buildRTTemplate(setup string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "rt-template-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "var", "rt.db")
	for _, d := range []string{"var", "RT_SiteConfig.d"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	conf := rtSiteConfig(rtConfig{
		dir: dir, db: db, port: 80,
		rtname:     defaultRTName,
		correspond: defaultCorrespondAddress,
		comment:    defaultCommentAddress,
		sendmail:   "/bin/false",
	})
	if err := os.WriteFile(filepath.Join(dir, "RT_SiteConfig.pm"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	rights := filepath.Join(dir, "rights.pl")
	if err := os.WriteFile(rights, []byte(rtMailRights), 0o644); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"--action", "init"},
		{"--action", "insert", "--datafile", rights},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, setup, args...)
		cmd.Env = append(os.Environ(), rtEnv(dir)...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w:\n%s", setup, strings.Join(args, " "), err, out)
		}
	}
	data, err := os.ReadFile(db)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, errors.New("rt-setup-database left an empty database")
	}
	return data, nil
}

type rtConfig struct {
	dir, db    string
	port       int
	rtname     string
	correspond string
	comment    string
	sendmail   string
}

// rtSiteConfig is the RT_SiteConfig.pm of an instance. With RT_SITE_CONFIG
// and RT_SITE_CONFIG_DIR set, RT reads it instead of Debian's files in
// /etc/request-tracker5; RT_Config.pm gives the rest.
func rtSiteConfig(c rtConfig) string {
	org := c.correspond
	if i := strings.LastIndexByte(org, '@'); i >= 0 {
		org = org[i+1:]
	}
	var b strings.Builder
	set := func(name, value string) { fmt.Fprintf(&b, "Set($%s, %s);\n", name, value) }
	b.WriteString("# Written by mailtest for one test; see mail/mailtest/rt.go.\n")
	set("rtname", perlString(c.rtname))
	set("Organization", perlString(org))
	set("CorrespondAddress", perlString(c.correspond))
	set("CommentAddress", perlString(c.comment))
	// RT never mails its own addresses (nor creates requestors of them).
	set("RTAddressRegexp", fmt.Sprintf("qr/^(?:%s|%s)$/i", perlQuoteMeta(c.correspond), perlQuoteMeta(c.comment)))
	set("Timezone", perlString("UTC"))
	set("DatabaseType", perlString("SQLite"))
	set("DatabaseName", perlString(c.db))
	set("WebDomain", perlString("127.0.0.1"))
	set("WebPort", strconv.Itoa(c.port))
	set("WebPath", perlString(""))
	set("WebBaseURL", perlString("http://"+loopback(c.port)))
	// Every mail goes to the spool, through the harness's sendmail.
	set("MailCommand", perlString("sendmailpipe"))
	set("SendmailPath", perlString(c.sendmail))
	set("SendmailArguments", perlString("-oi"))
	set("LogToSTDERR", perlString("info"))
	set("LogToSyslog", "undef")
	set("LogToFile", "undef")
	set("LogDir", perlString(filepath.Join(c.dir, "var")))
	// Paths Debian fixes in RT::Generated under /var: this instance's own.
	fmt.Fprintf(&b, "$RT::VarPath = %s;\n", perlString(filepath.Join(c.dir, "var")))
	fmt.Fprintf(&b, "$RT::MasonDataDir = %s;\n", perlString(filepath.Join(c.dir, "var", "mason_data")))
	fmt.Fprintf(&b, "$RT::MasonSessionDir = %s;\n", perlString(filepath.Join(c.dir, "var", "session_data")))
	b.WriteString("1;\n")
	return b.String()
}

// perlString quotes s as a Perl single-quoted string.
func perlString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}

// perlQuoteMeta escapes s for a Perl regexp, as quotemeta does (which also
// keeps "@" from interpolating an array).
func perlQuoteMeta(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 128 && !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rtSendmailScript is the $SendmailPath of an instance: it ignores its
// arguments and keeps the message on stdin as a new file of spool, named
// by the time (sortable, nanoseconds) and its pid. The file is written
// under spool/.tmp and then renamed, so a reader never sees half a mail.
func rtSendmailScript(spool string) string {
	return fmt.Sprintf(`#!/bin/sh
# Written by mailtest: RT's sendmail keeps every mail in the spool.
umask 022
spool=%s
name=$(date -u +%%Y%%m%%d%%H%%M%%S%%N).$$.eml
cat > "$spool/.tmp/$name" || exit 75
mv "$spool/.tmp/$name" "$spool/$name" || exit 75
`, shellQuote(spool))
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
