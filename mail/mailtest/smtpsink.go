package mailtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbridge/bridge/redisstore/redistest"
)

// SMTPSink is Postfix's smtp-sink: an SMTP server on 127.0.0.1 that answers
// every command (or rejects the ones it was told to) and, with WithDump,
// keeps each message it accepted, or, with WithCount, counts them.
type SMTPSink struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// Dir receives, with WithDump, the file messages.dump where smtp-sink
	// appends each message as its transaction ends.
	Dir string

	bin     string
	port    int
	args    []string // options before the address
	dump    bool
	count   bool
	sep     string // line that starts every capture in the dump file
	cred    *redistest.Credential
	ready   func(addr string) error
	logPath string
	proc    *redistest.Process
}

// SinkOption configures StartSMTPSink.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	dump, count                      bool
	hard, soft, disconnect, shutdown []string
}

// WithDump has smtp-sink append every mail transaction to a file in Dir
// (its -D option), for Messages and Deliveries to read back.
func WithDump() SinkOption {
	return func(c *sinkConfig) { c.dump = true }
}

// WithCount has smtp-sink count the messages it receives (its -c option),
// for Received to read. smtp-sink then writes one short line to its log per
// message, as each message's final "." arrives.
func WithCount() SinkOption {
	return func(c *sinkConfig) { c.count = true }
}

// WithHardError makes smtp-sink answer the named commands with a permanent
// error, "500 5.3.0 Error: command failed" (its -f option). Commands are
// SMTP verbs (CONNECT, EHLO, MAIL, RCPT, DATA, ".", RSET, QUIT…),
// case-insensitive; "." is the end of the message data.
func WithHardError(cmds ...string) SinkOption {
	return func(c *sinkConfig) { c.hard = append(c.hard, cmds...) }
}

// WithSoftError makes smtp-sink answer the named commands with a temporary
// error, "450 4.3.0 Error: command failed" (its -r option).
func WithSoftError(cmds ...string) SinkOption {
	return func(c *sinkConfig) { c.soft = append(c.soft, cmds...) }
}

// WithDisconnect makes smtp-sink drop the connection, without an answer,
// after the named commands (its -q option): a network failure mid-session.
func WithDisconnect(cmds ...string) SinkOption {
	return func(c *sinkConfig) { c.disconnect = append(c.disconnect, cmds...) }
}

// WithShutdown makes smtp-sink answer the named commands with "421" and
// drop the connection (its -Q option): a server going down mid-session.
func WithShutdown(cmds ...string) SinkOption {
	return func(c *sinkConfig) { c.shutdown = append(c.shutdown, cmds...) }
}

// StartSMTPSink starts smtp-sink on 127.0.0.1 and a free port and returns
// once it greets with 220. It is killed when the test ends; its log is
// shown if the test failed.
func StartSMTPSink(t testing.TB, opts ...SinkOption) *SMTPSink {
	t.Helper()
	bin := redistest.NeedBinary(t, "smtp-sink")
	var cfg sinkConfig
	for _, o := range opts {
		o(&cfg)
	}
	base := serverDir(t, "smtp-sink-")
	s := &SMTPSink{
		Dir:     filepath.Join(base, "messages"),
		bin:     bin,
		dump:    cfg.dump,
		count:   cfg.count,
		logPath: filepath.Join(base, "smtp-sink.log"),
	}
	// smtp-sink refuses to run as root without its -u option; as root, we
	// start it as nobody ourselves instead (see redistest.StartProcessAs).
	runAs := unprivileged(t)
	if os.Geteuid() == 0 {
		s.cred = &redistest.Credential{UID: uint32(runAs.uid), GID: uint32(runAs.gid)}
	}
	mkdirOwned(t, s.Dir, runAs)
	if cfg.dump {
		// One file appended in the order transactions end: per-message
		// files (-d) are named by the second plus a random suffix, so
		// their order is lost. A random start line (-S) separates the
		// captures; no message contains it by chance.
		s.sep = "mailtest-capture-" + randomHex(t, 12)
		s.args = append(s.args, "-D", s.dumpPath(), "-S", s.sep+"\n")
	}
	if cfg.count {
		s.args = append(s.args, "-c")
	}
	for _, o := range []struct {
		flag string
		cmds []string
	}{{"-f", cfg.hard}, {"-r", cfg.soft}, {"-q", cfg.disconnect}, {"-Q", cfg.shutdown}} {
		if len(o.cmds) > 0 {
			s.args = append(s.args, o.flag, strings.Join(o.cmds, ","))
		}
	}
	s.ready = sinkReady(cfg)
	redistest.LogOnFailure(t, s.logPath)

	s.proc, s.port = redistest.StartOnFreePort(t, s.launch)
	s.Addr = loopback(s.port)
	t.Cleanup(func() { s.proc.Kill() }) // the current process: Restart replaces it
	return s
}

func (s *SMTPSink) launch(port int) (*redistest.Process, error) {
	args := append(slices.Clone(s.args), loopback(port), "100")
	p, err := redistest.StartProcessAs(s.cred, s.logPath, s.bin, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(func() error { return s.ready(loopback(port)) }); err != nil {
		p.Kill()
		return nil, redistest.LaunchError(s.logPath, err)
	}
	return p, nil
}

// sinkReady tells how a started smtp-sink greets: 220, unless it was told
// to refuse or drop connections.
func sinkReady(cfg sinkConfig) func(addr string) error {
	switch {
	case slices.ContainsFunc(cfg.disconnect, isConnect):
		return func(addr string) error {
			err := greeting(addr, "")
			if errors.Is(err, io.EOF) {
				return nil // accepted, then dropped: up
			}
			if err == nil {
				return errors.New("greeted, but should have dropped the connection")
			}
			return err
		}
	case slices.ContainsFunc(cfg.hard, isConnect):
		return func(addr string) error { return greeting(addr, "5") }
	case slices.ContainsFunc(cfg.soft, isConnect), slices.ContainsFunc(cfg.shutdown, isConnect):
		return func(addr string) error { return greeting(addr, "4") }
	default:
		return func(addr string) error { return greeting(addr, "220") }
	}
}

func isConnect(cmd string) bool { return strings.EqualFold(strings.TrimSpace(cmd), "connect") }

// Kill stops smtp-sink with SIGKILL: clients then get connection errors.
func (s *SMTPSink) Kill() { s.proc.Kill() }

// Restart starts smtp-sink again on the same port with the same options,
// after killing it if it still runs.
func (s *SMTPSink) Restart(t testing.TB) {
	t.Helper()
	s.proc.Kill()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var p *redistest.Process
		if p, err = s.launch(s.port); err == nil {
			s.proc = p
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart smtp-sink on %s: %v", s.Addr, err)
}

// Received returns how many messages smtp-sink has received since it was
// (re)started: the data of each ended with its final ".", whatever the
// answer. It needs WithCount, and is cheap enough to poll: it reads the
// end of the log only.
func (s *SMTPSink) Received(t testing.TB) int {
	t.Helper()
	if !s.count {
		t.Fatal("SMTPSink.Received needs StartSMTPSink(t, WithCount())")
	}
	n, err := receivedCount(s.logPath)
	if err != nil {
		t.Fatalf("smtp-sink count: %v", err)
	}
	return n
}

// receivedCount reads the last counter smtp-sink -c wrote to the log at
// path. smtp-sink writes "sess=S quit=Q mesg=M\r" each time a message or a
// session ends, so the last "mesg=" is the current count.
func receivedCount(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// A counter line is about 30 bytes; the tail also leaves room for a
	// warning written after it.
	const tail = 4 << 10
	off := max(info.Size()-tail, 0)
	buf := make([]byte, info.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return lastCounter(buf), nil
}

// lastCounter returns the number of the last complete "mesg=<n>\r" in
// buf, or 0. A restart appends to the log and counts from 0 again: the
// last counter is the current run's.
func lastCounter(buf []byte) int {
	for {
		i := bytes.LastIndex(buf, []byte("mesg="))
		if i < 0 {
			return 0
		}
		digits := buf[i+len("mesg="):]
		end := 0
		for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
			end++
		}
		// Complete only with its terminator: our read may have caught
		// smtp-sink in the middle of writing it.
		if end > 0 && end < len(digits) && (digits[end] == '\r' || digits[end] == '\n') {
			if n, err := strconv.Atoi(string(digits[:end])); err == nil {
				return n
			}
		}
		buf = buf[:i]
	}
}

// SinkMessage is one mail transaction that smtp-sink captured.
type SinkMessage struct {
	// Helo is what the client said in EHLO or HELO.
	Helo string
	// From is the MAIL FROM address ("" for the null sender).
	From string
	// To are the RCPT TO addresses, in order.
	To []string
	// Data is the message as sent, with CRLF line ends and the SMTP
	// dot-stuffing undone.
	Data []byte
}

// Messages returns the data of every message smtp-sink captured, in the
// order their transactions ended. It needs WithDump.
func (s *SMTPSink) Messages(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range s.Deliveries(t) {
		out = append(out, m.Data)
	}
	return out
}

// Deliveries returns every mail transaction smtp-sink captured, in the
// order they ended. It needs WithDump.
//
// smtp-sink writes the capture before it answers the final ".", so a
// message is here once the client saw that answer — also when
// WithHardError(".") or WithSoftError(".") made the answer an error. It
// drops every CR from the data: a bare CR in a message does not survive.
func (s *SMTPSink) Deliveries(t testing.TB) []SinkMessage {
	t.Helper()
	if !s.dump {
		t.Fatal("SMTPSink.Deliveries needs StartSMTPSink(t, WithDump())")
	}
	data, err := os.ReadFile(s.dumpPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing received yet
	}
	if err != nil {
		t.Fatalf("smtp-sink dump: %v", err)
	}
	out, err := parseSinkDumps(data, s.sep)
	if err != nil {
		t.Fatalf("smtp-sink dump %s: %v", s.dumpPath(), err)
	}
	return out
}

// dumpPath is the file smtp-sink appends captures to. It is also an
// strftime template for smtp-sink, hence no "%" in it.
func (s *SMTPSink) dumpPath() string { return filepath.Join(s.Dir, "messages.dump") }

// parseSinkDumps splits a multi-message dump whose captures each start
// with the line sep, and parses them.
func parseSinkDumps(data []byte, sep string) ([]SinkMessage, error) {
	marker := []byte(sep + "\n")
	rest, ok := bytes.CutPrefix(data, marker)
	if !ok {
		return nil, errors.New("dump does not start with the capture separator")
	}
	var out []SinkMessage
	for i, capture := range bytes.Split(rest, marker) {
		m, err := parseSinkDump(capture)
		if err != nil {
			return nil, fmt.Errorf("capture %d: %w", i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseSinkDump reads one smtp-sink capture file: its own X-Mail-Args,
// X-Rcpt-Args and similar records, then a three-line Received header that
// ends them, then the message with LF line ends, then one empty line that
// stands for the final ".".
func parseSinkDump(data []byte) (SinkMessage, error) {
	var m SinkMessage
	rest := data
	// smtp-sink's Received header has exactly two continuation lines; a
	// message whose first line starts with a tab must keep it.
	continuations := -1
	for continuations < 2 {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if !found {
			return m, errors.New("capture ends inside smtp-sink's header")
		}
		if continuations >= 0 {
			if !bytes.HasPrefix(line, []byte("\t")) {
				return m, fmt.Errorf("unexpected Received line %q", truncate(line))
			}
			continuations++
			rest = after
			continue
		}
		rest = after
		name, value, ok := strings.Cut(string(line), ": ")
		if !ok {
			return m, fmt.Errorf("unexpected capture record %q", truncate(line))
		}
		switch name {
		case "X-Helo-Args":
			m.Helo = value
		case "X-Mail-Args":
			m.From = pathArg(value)
		case "X-Rcpt-Args":
			m.To = append(m.To, pathArg(value))
		case "Received":
			continuations = 0
		}
	}
	// The final empty line is the trace of the "." terminator.
	body, ok := bytes.CutSuffix(rest, []byte("\n"))
	if !ok {
		return m, errors.New("capture is incomplete (no end of data)")
	}
	m.Data = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	return m, nil
}

// pathArg returns the address of a MAIL/RCPT argument such as
// "<a@b.example> BODY=8BITMIME".
func pathArg(arg string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(arg), " ")
	return strings.TrimSuffix(strings.TrimPrefix(first, "<"), ">")
}

func truncate(b []byte) string {
	const max = 60
	if len(b) > max {
		return string(b[:max]) + "…(" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(b)
}
