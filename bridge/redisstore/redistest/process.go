package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns a missing server
// binary from a skip into a failure. CI sets it to "1".
const RequireEnv = "SUPPORTBRIDGE_REQUIRE_SERVERS"

// Required reports whether tests must fail rather than skip when a real
// server binary is missing.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// NeedBinary returns the path of the named executable. When it is not on
// PATH the test is skipped, or fails when Required.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if Required() {
		t.Fatalf("%s not found on PATH and %s=1: %v", name, RequireEnv, err)
	}
	t.Skipf("%s not found on PATH (set %s=1 to make this a failure)", name, RequireEnv)
	return ""
}

// ErrAddrInUse is returned by a launch function when the server could not
// bind its port, so that StartOnFreePort tries another one.
var ErrAddrInUse = errors.New("address already in use")

// readyTimeout bounds how long a server may take to answer after it was
// started. It is generous because CI machines are shared and slow.
const readyTimeout = 30 * time.Second

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the caller binds it: callers retry on
// ErrAddrInUse (see StartOnFreePort).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("free port: close: %v", err)
	}
	return port
}

// StartOnFreePort calls launch with a fresh free port until it succeeds, up
// to three times while launch reports ErrAddrInUse. Any other error, or a
// third bind failure, fails the test.
func StartOnFreePort(t testing.TB, launch func(port int) (*Process, error)) (*Process, int) {
	t.Helper()
	const attempts = 3
	var err error
	for i := 0; i < attempts; i++ {
		port := FreePort(t)
		var p *Process
		p, err = launch(port)
		if err == nil {
			return p, port
		}
		if !errors.Is(err, ErrAddrInUse) {
			break
		}
	}
	t.Fatalf("start server: %v", err)
	return nil, 0
}

// Process is a server started by a test. It runs in its own process group so
// that Kill also stops the workers it forks (dovecot's imap, auth, log…).
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the result of Wait, set before done is closed
}

// StartProcess runs name with args and appends its stdout and stderr to
// logPath. The caller must eventually call Kill or Terminate.
func StartProcess(logPath, name string, args ...string) (*Process, error) {
	return StartProcessAs(nil, logPath, name, args...)
}

// Credential is a user and group to run a process as.
type Credential struct {
	UID, GID uint32
}

// StartProcessAs is StartProcess with the process running as cred (when not
// nil; changing users needs root). Prefer it to a server's own option to drop
// privileges: the process then keeps its parent-death signal, which Linux
// clears when a process changes its own credentials.
func StartProcessAs(cred *Credential, logPath, name string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child holds its own copy of the descriptor.
	defer logFile.Close()

	cmd := exec.Command(name, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id of the server (the leader of its group).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and was reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process ended; only meaningful after Done.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Kill sends SIGKILL to the whole process group, as a crash would, and
// waits for the leader to exit. It does nothing once the leader was reaped:
// from then on its id may be reused by a process that is not ours.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	killGroup(p.cmd.Process)
	<-p.done
}

// Terminate asks the server to shut down (SIGTERM) and waits up to grace
// before it kills the process group.
func (p *Process) Terminate(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(termSignal)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.Kill()
	}
}

// StopGroup stops a server that forks workers and stops them itself on
// SIGTERM, as Postfix's master does: it sends SIGTERM to the leader, then
// waits until the leader and every other process of its group have exited
// (zombies waiting to be reaped by init do not count). What still runs
// after grace is killed with SIGKILL. It does nothing once the group is
// gone.
func (p *Process) StopGroup(grace time.Duration) {
	deadline := time.Now().Add(grace)
	p.Terminate(grace)
	killed := false
	for p.GroupRunning() {
		if !killed && time.Now().After(deadline) {
			// The group still has members, so its id is still theirs.
			killGroupID(p.Pid())
			killed = true
			deadline = time.Now().Add(grace)
		} else if killed && time.Now().After(deadline) {
			return // stuck in the kernel; nothing more to do from here
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// GroupRunning reports whether a process of the server's process group
// (the leader or a worker it forked) still runs.
func (p *Process) GroupRunning() bool {
	select {
	case <-p.done:
		return groupRunning(p.Pid())
	default:
		return true
	}
}

// WaitReady polls ready every 25ms until it returns nil. It gives up as soon
// as the process exits, or after 30s; the error then carries the last probe
// error. A probe runs beside the wait, so that a probe stuck on someone
// else's listener does not hide the exit of ours.
func (p *Process) WaitReady(ready func() error) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	last := errors.New("no answer yet")
	for {
		result := make(chan error, 1)
		go func() { result <- ready() }()
		select {
		case last = <-result:
			if last == nil {
				return nil
			}
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-deadline.C:
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready (%v): %w", p.err, last)
		case <-deadline.C:
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// LaunchError turns a failed start into an error, marked ErrAddrInUse when
// the server's log says its port was taken.
func LaunchError(logPath string, err error) error {
	if LogSaysAddrInUse(logPath) {
		return fmt.Errorf("%w: %v", ErrAddrInUse, err)
	}
	return fmt.Errorf("%w (log %s:\n%s)", err, logPath, TailFile(logPath, 4<<10))
}

// LogSaysAddrInUse reports whether the log at path mentions a bind failure
// because the address was taken.
func LogSaysAddrInUse(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return bytes.Contains(data, []byte("Address already in use")) ||
		bytes.Contains(data, []byte("address already in use"))
}

// LogOnFailure registers a cleanup that shows the end of the log at path
// when the test failed.
func LogOnFailure(t testing.TB, path string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s (tail) ---\n%s", path, TailFile(path, 16<<10))
		}
	})
}

// TailFile returns at most the last max bytes of the file at path, or a
// note saying why it could not be read.
func TailFile(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if info.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return "(" + err.Error() + ")"
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(data)
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
