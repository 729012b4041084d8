package mailtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"supportbridge/bridge/redisstore/redistest"
)

// DefaultUser is the mailbox owner of a Dovecot started by StartDovecot.
const DefaultUser = "assistance@ent.example"

// Mailboxes every Dovecot instance has, besides INBOX (the defaults of the
// imap config section).
const (
	ProcessedMailbox  = "Processed"
	QuarantineMailbox = "Quarantine"
)

// Dovecot is a private dovecot instance: its own configuration, base_dir,
// log and Maildir storage, IMAP on 127.0.0.1 without TLS, one user.
type Dovecot struct {
	// IMAPAddr is "127.0.0.1:<port>"; plaintext LOGIN and AUTH PLAIN work.
	IMAPAddr string
	// User and Password log in over IMAP.
	User, Password string
	// Dir holds everything: dovecot.conf, passwd, dovecot.log, run/
	// (base_dir), home/<user>/Maildir.
	Dir string
	// ConfigPath is the dovecot.conf, for `doveadm -c`.
	ConfigPath string
	// LMTPPath is the LMTP unix socket Deliver talks to.
	LMTPPath string

	bin     string
	port    int
	logPath string
	proc    *redistest.Process
}

// StartDovecot starts a private dovecot with mailboxes INBOX, Processed and
// Quarantine, and returns once its IMAP greeting arrives. It is killed when
// the test ends; its log is shown if the test failed.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	bin := redistest.NeedBinary(t, "dovecot")
	dir := serverDir(t, "dovecot-")
	d := &Dovecot{
		User:       DefaultUser,
		Password:   randomHex(t, 12),
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "dovecot.conf"),
		LMTPPath:   filepath.Join(dir, "run", "lmtp"),
		bin:        bin,
		logPath:    filepath.Join(dir, "dovecot.log"),
	}
	users := dovecotAccounts(t)
	home := filepath.Join(dir, "home", d.User)
	mkdirOwned(t, home, users.mail)
	passwd := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", d.User, d.Password, users.mail.uid, users.mail.gid, home)
	// Readable by the auth process, which runs unprivileged.
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatalf("dovecot passwd: %v", err)
	}
	redistest.LogOnFailure(t, d.logPath)

	d.proc, d.port = redistest.StartOnFreePort(t, func(port int) (*redistest.Process, error) {
		conf := dovecotConfig(dir, port, users)
		if err := os.WriteFile(d.ConfigPath, []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("dovecot.conf: %w", err)
		}
		return d.launch(port)
	})
	d.IMAPAddr = loopback(d.port)
	t.Cleanup(d.stop)
	return d
}

// launch starts dovecot in the foreground and waits for its IMAP greeting.
func (d *Dovecot) launch(port int) (*redistest.Process, error) {
	// A master killed by Kill leaves its pid file behind; dovecot would
	// refuse to start if that pid now belongs to another process.
	_ = os.Remove(filepath.Join(d.Dir, "run", "master.pid"))
	p, err := redistest.StartProcess(d.logPath, d.bin, "-F", "-c", d.ConfigPath)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(func() error { return greeting(loopback(port), "* OK") }); err != nil {
		p.Kill()
		return nil, redistest.LaunchError(d.logPath, err)
	}
	return p, nil
}

// Kill stops dovecot and all its processes with SIGKILL, as a crash would;
// connected clients see their connection drop. The mail stays on disk.
func (d *Dovecot) Kill(t testing.TB) {
	t.Helper()
	d.proc.Kill()
}

// Restart starts dovecot again on the same port, with the same mail (and
// the same UIDVALIDITY), and waits for its greeting. A running instance is
// killed first.
func (d *Dovecot) Restart(t testing.TB) {
	t.Helper()
	d.proc.Kill()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var p *redistest.Process
		if p, err = d.launch(d.port); err == nil {
			d.proc = p
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart dovecot on %s: %v", d.IMAPAddr, err)
}

func (d *Dovecot) stop() { d.proc.Kill() }

// Deliver puts raw into the user's INBOX the way an MTA would: over LMTP to
// this instance's dovecot-lmtpd, with the address of raw's From header as
// the envelope sender. Connected IMAP clients are notified (EXISTS, also
// during IDLE). Dovecot adds Return-Path, Delivered-To and Received headers
// on top of raw, as on a real mailbox.
func (d *Dovecot) Deliver(t testing.TB, raw []byte) {
	t.Helper()
	d.DeliverFrom(t, envelopeSender(raw), raw)
}

// DeliverFrom is Deliver with an explicit envelope sender; "" gives the
// null sender (Return-Path: <>) of bounces and auto-replies.
func (d *Dovecot) DeliverFrom(t testing.TB, from string, raw []byte) {
	t.Helper()
	if err := d.deliver(from, raw); err != nil {
		t.Fatalf("deliver to dovecot: %v", err)
	}
}

func (d *Dovecot) deliver(from string, raw []byte) error {
	conn, err := net.DialTimeout("unix", d.LMTPPath, 5*time.Second)
	if err != nil {
		return fmt.Errorf("lmtp: %w", err)
	}
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		conn.Close()
		return err
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mailtest"); err != nil {
		return fmt.Errorf("lmtp LHLO: %w", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("lmtp MAIL: %w", err)
	}
	if err := c.Rcpt(d.User, nil); err != nil {
		return fmt.Errorf("lmtp RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("lmtp DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("lmtp DATA: %w", err)
	}
	// One answer per recipient: the delivery is only done when dovecot
	// said 250 for ours.
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		return fmt.Errorf("lmtp end of DATA: %w", err)
	}
	return c.Quit()
}

// envelopeSender is the address in raw's From header, or a placeholder
// when there is none: never the null sender, which would look like a bounce.
func envelopeSender(raw []byte) string {
	const fallback = "mailtest@localhost"
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return fallback
	}
	addr, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		return fallback
	}
	return addr.Address
}

// dovecotUsers are the system users a dovecot instance involves.
type dovecotUsers struct {
	mail     account // owns the Maildir
	login    account // imap-login
	internal account // auth, anvil, stats…
	root     bool    // dovecot runs as root and drops privileges
}

// dovecotAccounts picks the users: as root, the packaged dovenull and
// dovecot users when they exist, and nobody for the mail (dovecot refuses
// uid 0 for mail access); otherwise the current user for everything.
func dovecotAccounts(t testing.TB) dovecotUsers {
	t.Helper()
	me := unprivileged(t)
	u := dovecotUsers{mail: me, login: me, internal: me, root: os.Geteuid() == 0}
	if u.root {
		if a, err := lookupAccount("dovenull"); err == nil {
			u.login = a
		}
		if a, err := lookupAccount("dovecot"); err == nil {
			u.internal = a
		}
	}
	return u
}

// dovecotConfig is a complete, self-contained dovecot.conf: nothing comes
// from /etc/dovecot.
func dovecotConfig(dir string, port int, u dovecotUsers) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by mailtest for one test; see mail/mailtest/dovecot.go.
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = mailtest
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = %[1]s/dovecot.log
mail_location = maildir:~/Maildir
# Dovecot refuses uid 0 for mail; anything above is fine here.
first_valid_uid = 1
first_valid_gid = 1
default_login_user = %[2]s
default_internal_user = %[3]s
default_internal_group = %[4]s
# IDLE is driven by inotify; if that is unavailable, still see new mail
# within a second rather than the default 30s.
mailbox_idle_check_interval = 1 secs

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}

namespace inbox {
  inbox = yes
  separator = /
  mailbox %[6]s {
    auto = subscribe
  }
  mailbox %[7]s {
    auto = subscribe
  }
}

protocol imap {
  # The default (10 per user and IP) is too few for tests that run
  # several pollers or a benchmark against one instance.
  mail_max_userip_connections = 200
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}

service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
`, dir, u.login.name, u.internal.name, u.internal.group, port, ProcessedMailbox, QuarantineMailbox)
	if !u.root {
		// Without root there is no chroot nor user switch.
		b.WriteString(`
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
`)
	}
	return b.String()
}

// greeting dials addr and expects a first line starting with prefix.
func greeting(addr, prefix string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, prefix) {
		return fmt.Errorf("greeting %q, want %q…", strings.TrimSpace(line), prefix)
	}
	return nil
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// TryDeliver is Deliver that returns its error instead of failing the
// test: for deliveries from other goroutines, or while dovecot may be
// down (a real MTA would keep the mail and try again).
func (d *Dovecot) TryDeliver(raw []byte) error {
	return d.deliver(envelopeSender(raw), raw)
}
