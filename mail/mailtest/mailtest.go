// Package mailtest starts real mail servers for tests: a private Dovecot
// (IMAP with IDLE, delivery through its LMTP), Postfix's smtp-sink (an
// SMTP server that accepts, rejects, counts or captures mail on demand) and
// a private Postfix relaying to another server through its queue on disk.
//
// Like redistest, a missing binary skips the test unless
// SUPPORTBRIDGE_REQUIRE_SERVERS=1 (CI) makes it fail; servers listen on
// 127.0.0.1 and a free port and are stopped by PID when the test ends.
//
// The servers drop privileges when the test runs as root (dovecot refuses
// to open a mailbox as uid 0; smtp-sink insists on -u; Postfix's master
// runs only as root and its workers as the postfix user), so their files live
// in a directory of their own under os.TempDir() that unprivileged users can
// reach, rather than in t.TempDir(), which is private to root. That
// directory is short, too: Dovecot puts unix sockets in it, and a socket
// path may not exceed 108 bytes.
package mailtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"testing"
)

// account is a system user the servers run (part of) their work as.
type account struct {
	name     string
	uid, gid int
	group    string
}

func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, err
	}
	return toAccount(u)
}

func toAccount(u *user.User) (account, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return account{}, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	a := account{name: u.Username, uid: uid, gid: gid, group: u.Gid}
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		a.group = g.Name
	}
	return a, nil
}

// unprivileged returns the account to run as: the current user, or, for
// root, nobody.
func unprivileged(t testing.TB) account {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("current user: %v", err)
		}
		a, err := toAccount(u)
		if err != nil {
			t.Fatalf("current user: %v", err)
		}
		return a
	}
	a, err := lookupAccount("nobody")
	if err != nil {
		t.Fatalf("running as root needs a \"nobody\" user to drop to: %v", err)
	}
	return a
}

// serverDir makes a fresh directory under os.TempDir() that any user may
// traverse, removed when the test ends.
func serverDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("server dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	// Traversable, so that unprivileged server processes reach what is
	// inside; each of them gets only its own subdirectory writable.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("server dir: %v", err)
	}
	return dir
}

// mkdirOwned creates dir owned by a, so a server process running as a
// can write into it.
func mkdirOwned(t testing.TB, dir string, a account) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, a.uid, a.gid); err != nil {
			t.Fatalf("chown %s: %v", dir, err)
		}
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
