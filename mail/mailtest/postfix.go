package mailtest

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// PostfixRelay is a private Postfix instance that relays every mail it
// receives to one SMTP server, through its own queue on disk: its own
// config_directory, queue_directory and data_directory under Dir, SMTP on
// 127.0.0.1 without TLS, no local delivery. Nothing of the system's Postfix
// (its configuration, queue or service) is used or changed; only the
// packaged binaries, the postfix user and the postdrop group.
type PostfixRelay struct {
	// Addr is "127.0.0.1:<port>", the relay's smtpd. Clients on 127.0.0.0/8
	// may relay to any domain.
	Addr string
	// RelayTo is the server every mail goes to (relayhost).
	RelayTo string
	// Hostname is the relay's myhostname, unique to the instance: it
	// greets with "220 <Hostname> ESMTP" and adds it to Received headers.
	Hostname string
	// Dir holds everything: etc/ (main.cf, master.cf: `postconf -c`,
	// `postqueue -c`), queue/, data/ and postfix.log.
	Dir string
	// ConfigDir is Dir/etc.
	ConfigDir string

	master  string
	params  []string
	logPath string
	proc    *redistest.Process
}

// PostfixOption configures StartPostfixRelay.
type PostfixOption func(*PostfixRelay)

// WithPostfixParam sets a main.cf parameter, after (and so over) the ones
// StartPostfixRelay writes: for example
// WithPostfixParam("default_destination_concurrency_limit", "16").
func WithPostfixParam(name, value string) PostfixOption {
	return func(r *PostfixRelay) { r.params = append(r.params, name+" = "+value) }
}

// postfixStopGrace bounds how long Stop waits for the master and its
// workers to exit after SIGTERM before it kills them.
const postfixStopGrace = 10 * time.Second

// StartPostfixRelay starts Postfix's master in the foreground, as this
// test's child in a process group of its own, with a relay configuration
// whose relayhost is relayTo ("host:port"), and returns once its smtpd
// greets. It is stopped (SIGTERM to the master, as `postfix stop` does,
// which stops its workers) when the test ends; its log is shown if the
// test failed.
//
// Postfix's master runs only as root (it then runs its workers as the
// postfix user); without root, or without the binaries, the postfix user
// or the postdrop group, the test is skipped, or fails under
// SUPPORTBRIDGE_REQUIRE_SERVERS=1.
func StartPostfixRelay(t testing.TB, relayTo string, opts ...PostfixOption) *PostfixRelay {
	t.Helper()
	sys, err := findPostfix()
	if err != nil {
		unavailable(t, "%v", err)
	}
	host, port, err := net.SplitHostPort(relayTo)
	if err != nil {
		t.Fatalf("relay to %q: %v", relayTo, err)
	}
	dir := serverDir(t, "postfix-")
	r := &PostfixRelay{
		RelayTo:   relayTo,
		Hostname:  "relay-" + randomHex(t, 4) + ".mailtest.invalid",
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		master:    sys.master,
		logPath:   filepath.Join(dir, "postfix.log"),
	}
	for _, o := range opts {
		o(r)
	}
	postfixDirs(t, dir, sys.owner, sys.group)
	main := postfixMainCF(dir, r.Hostname, sys.owner.name, sys.group, "["+host+"]:"+port) + strings.Join(r.params, "\n") + "\n"
	if err := writeConfigFile(filepath.Join(r.ConfigDir, "main.cf"), main); err != nil {
		t.Fatalf("postfix main.cf: %v", err)
	}
	redistest.LogOnFailure(t, r.logPath)

	var smtpdPort int
	r.proc, smtpdPort = redistest.StartOnFreePort(t, func(port int) (*redistest.Process, error) {
		if err := writeConfigFile(filepath.Join(r.ConfigDir, "master.cf"), postfixMasterCF(port)); err != nil {
			return nil, fmt.Errorf("postfix master.cf: %w", err)
		}
		return r.launch(port)
	})
	r.Addr = loopback(smtpdPort)
	t.Cleanup(r.Stop)
	return r
}

// launch starts the master in the foreground and waits for its smtpd's
// greeting.
func (r *PostfixRelay) launch(port int) (*redistest.Process, error) {
	// -d: stay in the foreground, in our process group (without it the
	// master detaches into a session of its own and leaves the test's
	// process tree). The master passes SIGTERM on to that group.
	p, err := redistest.StartProcess(r.logPath, r.master, "-c", r.ConfigDir, "-d")
	if err != nil {
		return nil, err
	}
	// Our smtpd, not another server that took the port meanwhile: the
	// greeting names this instance.
	if err := p.WaitReady(func() error { return greeting(loopback(port), "220 "+r.Hostname+" ") }); err != nil {
		p.StopGroup(postfixStopGrace)
		// Until its postlogd runs, the master logs to syslog, so a bind
		// failure is in no log here: ask the port itself.
		if portTaken(port) {
			return nil, fmt.Errorf("%w: postfix smtpd on port %d: %v", redistest.ErrAddrInUse, port, err)
		}
		return nil, fmt.Errorf("postfix master: %w (its log %s:\n%s\nerrors before its postlogd started went to syslog; try `postfix -c %s check`)",
			err, r.logPath, redistest.TailFile(r.logPath, 4<<10), r.ConfigDir)
	}
	return p, nil
}

// Stop stops the master and its workers (SIGTERM, as `postfix stop` does)
// and waits until every process of the instance has exited. The queue
// stays on disk. It does nothing once the instance is stopped.
func (r *PostfixRelay) Stop() { r.proc.StopGroup(postfixStopGrace) }

// Running reports whether a process of the instance (the master or one
// of its workers) still runs.
func (r *PostfixRelay) Running() bool { return r.proc.GroupRunning() }

// MasterPID is the process id of the instance's master.
func (r *PostfixRelay) MasterPID() int { return r.proc.Pid() }

// Queued returns how many mails are in the instance's queue: received and
// not yet delivered (or bounced), deferred ones included.
func (r *PostfixRelay) Queued(t testing.TB) int {
	t.Helper()
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		err := filepath.WalkDir(filepath.Join(r.Dir, "queue", q), func(_ string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // moved or removed meanwhile
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("postfix queue: %v", err)
		}
	}
	return n
}

// portTaken reports whether something listens on 127.0.0.1:port.
func portTaken(port int) bool {
	ln, err := net.Listen("tcp", loopback(port))
	if err != nil {
		return true
	}
	ln.Close()
	return false
}

// postfixSystem is what a private instance needs from the machine.
type postfixSystem struct {
	master string  // Postfix's master daemon
	owner  account // mail_owner: the postfix user
	group  string  // setgid_group: postdrop
}

// findPostfix finds the master daemon (from the postconf on PATH), the
// postfix user and the postdrop group, and checks that we run as root.
func findPostfix() (postfixSystem, error) {
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		return postfixSystem{}, fmt.Errorf("postconf not found on PATH: %w", err)
	}
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		return postfixSystem{}, fmt.Errorf("postconf -d -h daemon_directory: %w", err)
	}
	master, err := exec.LookPath(filepath.Join(strings.TrimSpace(string(out)), "master"))
	if err != nil {
		return postfixSystem{}, fmt.Errorf("the Postfix master: %w", err)
	}
	if os.Geteuid() != 0 {
		return postfixSystem{}, errors.New("the Postfix master runs only as root")
	}
	owner, err := lookupAccount("postfix")
	if err != nil {
		return postfixSystem{}, fmt.Errorf("no postfix user (the Postfix package creates it): %w", err)
	}
	if _, err := user.LookupGroup("postdrop"); err != nil {
		return postfixSystem{}, fmt.Errorf("no postdrop group (the Postfix package creates it): %w", err)
	}
	return postfixSystem{master: master, owner: owner, group: "postdrop"}, nil
}

// PostfixRelayAvailable tells whether StartPostfixRelay can start an
// instance here (nil), or why not: for a benchmark that measures other
// things too and does without this one when it must.
func PostfixRelayAvailable() error {
	_, err := findPostfix()
	return err
}

// unavailable skips the test for a server it cannot run, or fails it under
// SUPPORTBRIDGE_REQUIRE_SERVERS=1.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if redistest.Required() {
		t.Fatalf("%s and %s=1", msg, redistest.RequireEnv)
	}
	t.Skipf("%s (set %s=1 to make this a failure)", msg, redistest.RequireEnv)
}

// postfixDirs makes the directories of an instance with the owners and
// modes of Postfix's postfix-files, as `postfix check` would.
func postfixDirs(t testing.TB, dir string, owner account, setgidGroup string) {
	t.Helper()
	g, err := user.LookupGroup(setgidGroup)
	if err != nil {
		t.Fatalf("group %s: %v", setgidGroup, err)
	}
	sgid, err := strconv.Atoi(g.Gid)
	if err != nil {
		t.Fatalf("group %s: gid %q: %v", setgidGroup, g.Gid, err)
	}
	root := -1 // unchanged: ours, root
	type postfixDir struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}
	dirs := []postfixDir{
		{path: "etc", uid: root, gid: root, mode: 0o755},
		{path: "data", uid: owner.uid, gid: root, mode: 0o700},
		{path: "queue", uid: root, gid: root, mode: 0o755},
		{path: "queue/pid", uid: root, gid: root, mode: 0o755},
		{path: "queue/maildrop", uid: owner.uid, gid: sgid, mode: 0o730},
		{path: "queue/public", uid: owner.uid, gid: sgid, mode: 0o710},
	}
	// The other queue directories: the mail owner's, mode 0700.
	for _, q := range []string{"private", "active", "bounce", "corrupt", "defer", "deferred",
		"flush", "hold", "incoming", "saved", "trace"} {
		dirs = append(dirs, postfixDir{path: "queue/" + q, uid: owner.uid, gid: root, mode: 0o700})
	}
	for _, d := range dirs {
		path := filepath.Join(dir, d.path)
		if err := os.Mkdir(path, d.mode); err != nil {
			t.Fatalf("postfix dir: %v", err)
		}
		if err := os.Chown(path, d.uid, d.gid); err != nil {
			t.Fatalf("postfix dir: %v", err)
		}
		// Mkdir's mode went through the umask.
		if err := os.Chmod(path, d.mode); err != nil {
			t.Fatalf("postfix dir: %v", err)
		}
	}
}

// writeConfigFile writes a Postfix configuration file, dated a minute ago:
// Postfix waits (in steps of 300ms) until a file it reads is older than
// a second or two, in case it is still being written, which would make
// every start two seconds longer.
func writeConfigFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	past := time.Now().Add(-time.Minute)
	return os.Chtimes(path, past, past)
}

// postfixMainCF is a complete main.cf: nothing comes from /etc/postfix's
// main.cf; the rest are Postfix's compiled-in defaults.
func postfixMainCF(dir, hostname, owner, setgidGroup, relayhost string) string {
	return fmt.Sprintf(`# Written by mailtest for one test; see mail/mailtest/postfix.go.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = %[3]s
setgid_group = %[4]s
myhostname = %[2]s
inet_interfaces = loopback-only
inet_protocols = ipv4
biff = no

# Logs go to a file through postlogd (the postlog service of master.cf).
maillog_file = %[1]s/postfix.log
maillog_file_prefixes = %[1]s

# A relay only: nothing is delivered here, every mail from 127.0.0.0/8 goes
# to the relayhost, with the queue on disk in between.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery here
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = %[5]s
# The relayhost is an address: no DNS, for it or for clients' names.
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
# Keep connections to the relayhost open between deliveries, as a relay
# to one server would be set up (by default only under a backlog).
smtp_connection_cache_destinations = $relayhost
`, dir, hostname, owner, setgidGroup, relayhost)
}

// postfixMasterCF is master.cf with smtpd on 127.0.0.1:port and the
// services a relay needs, none chrooted (Debian's default chroots them
// into the system queue directory).
func postfixMasterCF(port int) string {
	return fmt.Sprintf(`# Written by mailtest for one test; see mail/mailtest/postfix.go.
# service         type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:%d  inet  n       -       n       -       -       smtpd
cleanup           unix  n       -       n       -       0       cleanup
qmgr              unix  n       -       n       300     1       qmgr
rewrite           unix  -       -       n       -       -       trivial-rewrite
bounce            unix  -       -       n       -       0       bounce
defer             unix  -       -       n       -       0       bounce
trace             unix  -       -       n       -       0       bounce
flush             unix  n       -       n       1000?   0       flush
proxymap          unix  -       -       n       -       -       proxymap
showq             unix  n       -       n       -       -       showq
smtp              unix  -       -       n       -       -       smtp
relay             unix  -       -       n       -       -       smtp
error             unix  -       -       n       -       -       error
retry             unix  -       -       n       -       -       error
discard           unix  -       -       n       -       -       discard
anvil             unix  -       -       n       -       1       anvil
scache            unix  -       -       n       -       1       scache
postlog           unix-dgram n  -       n       -       1       postlogd
`, port)
}
