package imapreader_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/imapreader"
	"supportbridge/mail/mailtest"
)

// The Redis store serves the reader as is.
var (
	_ imapreader.Leaser       = (*redisstore.Store)(nil)
	_ imapreader.Checkpointer = (*redisstore.Store)(nil)
)

// imapTestServer is an IMAP server the reader is tested against: the
// in-memory one of go-imap, or a real Dovecot (imap_dovecot_test.go).
type imapTestServer struct {
	addr, user, password string
	// deliver puts a mail into INBOX, the way new mail arrives.
	deliver func(t *testing.T, raw []byte)
	// exactRaw: the reader gets back the bytes delivered (Dovecot adds
	// trace headers).
	exactRaw bool
}

// imapServers runs f against the memory server and against Dovecot.
func imapServers(t *testing.T, f func(t *testing.T, srv *imapTestServer)) {
	t.Run("memserver", func(t *testing.T) { f(t, imapStartMem(t, imapMemOpts{})) })
	t.Run("dovecot", func(t *testing.T) { f(t, imapStartDovecot(t)) })
}

type imapMemOpts struct {
	caps     imap.CapSet // default IMAP4rev1 + IMAP4rev2
	tls      *tls.Config
	implicit bool      // TLS from the first byte; else STARTTLS when tls is set
	badUID   imap.UID  // a message whose body the server refuses to fetch
	fetches  *[]string // records FETCH items asked for, when set
	mu       *sync.Mutex
	debug    io.Writer // gets the raw traffic
	noSASL   bool      // offer no AUTH=… mechanism: LOGIN only
}

// imapTraffic collects a server's raw traffic.
type imapTraffic struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *imapTraffic) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *imapTraffic) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// imapStartMem serves an imapmemserver with user "bob" and an INBOX on a
// loopback port, until the test ends.
func imapStartMem(t *testing.T, o imapMemOpts) *imapTestServer {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("bob", "pw")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	caps := o.caps
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			sess := mem.NewSession()
			full, ok := sess.(imapserver.SessionIMAP4rev2)
			if !ok {
				return nil, nil, errors.New("memory session lacks IMAP4rev2")
			}
			switch {
			case o.noSASL:
				return imapLoginOnlySession{full}, nil, nil
			case o.badUID != 0 || o.fetches != nil:
				return &imapFaultySession{SessionIMAP4rev2: full, o: o}, nil, nil
			}
			return sess, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
		DebugWriter:  o.debug,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.tls != nil {
		if o.implicit {
			ln = tls.NewListener(ln, o.tls)
		} else {
			opts.TLSConfig = o.tls
		}
	}
	srv := imapserver.New(opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	addr := ln.Addr().String()
	return &imapTestServer{addr: addr, user: "bob", password: "pw", exactRaw: true,
		deliver: func(t *testing.T, raw []byte) {
			t.Helper()
			c := imapLogin(t, &imapTestServer{addr: addr, user: "bob", password: "pw"})
			imapAppend(t, c, "INBOX", raw)
			_ = c.Logout().Wait()
		}}
}

// imapFaultySession is the memory server's session, except that it
// refuses to give out the body of one message, as a server does with a
// corrupted mail, and can record what FETCH asked for.
type imapFaultySession struct {
	imapserver.SessionIMAP4rev2
	o imapMemOpts
}

func (s *imapFaultySession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if s.o.fetches != nil {
		var items []string
		for _, bs := range options.BodySection {
			items = append(items, fmt.Sprintf("BODY peek=%v", bs.Peek))
		}
		if options.RFC822Size {
			items = append(items, "RFC822.SIZE")
		}
		s.o.mu.Lock()
		*s.o.fetches = append(*s.o.fetches, strings.Join(items, " "))
		s.o.mu.Unlock()
	}
	if set, ok := numSet.(imap.UIDSet); ok && s.o.badUID != 0 && set.Contains(s.o.badUID) && len(options.BodySection) > 0 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "corrupted message"}
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

// imapLoginOnlySession offers no SASL mechanism, like a server that only
// knows LOGIN.
type imapLoginOnlySession struct{ imapserver.SessionIMAP4rev2 }

func (imapLoginOnlySession) AuthenticateMechanisms() []string { return nil }
func (imapLoginOnlySession) Authenticate(string) (sasl.Server, error) {
	return nil, errors.New("no SASL here")
}

// imapLogin opens a second client, for the test's own look at mailboxes.
func imapLogin(t *testing.T, srv *imapTestServer) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(srv.user, srv.password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func imapAppend(t *testing.T, c *imapclient.Client, box string, raw []byte) {
	t.Helper()
	cmd := c.Append(box, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", box, err)
	}
}

// imapTestMsg is a message as the test client sees it.
type imapTestMsg struct {
	uid   imap.UID
	flags []imap.Flag
	id    string // of the Message-ID
}

var imapIDRe = regexp.MustCompile(`(?mi)^Message-ID: <([^@>]+)@`)

func imapMsgID(raw []byte) string {
	m := imapIDRe.FindSubmatch(raw)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// imapBox lists a mailbox read-only (EXAMINE), so the look changes no flag.
func imapBox(t *testing.T, c *imapclient.Client, box string) ([]imapTestMsg, uint32) {
	t.Helper()
	msgs, uv, err := imapBoxErr(c, box)
	if err != nil {
		t.Fatalf("list %s: %v", box, err)
	}
	return msgs, uv
}

func imapBoxErr(c *imapclient.Client, box string) ([]imapTestMsg, uint32, error) {
	sel, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, 0, err
	}
	if sel.NumMessages == 0 {
		return nil, sel.UIDValidity, nil
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, 0, err
	}
	var out []imapTestMsg
	for _, b := range bufs {
		out = append(out, imapTestMsg{uid: b.UID, flags: b.Flags, id: imapMsgID(b.FindBodySection(sec))})
	}
	slices.SortFunc(out, func(a, b imapTestMsg) int { return int(a.uid) - int(b.uid) })
	return out, sel.UIDValidity, nil
}

func imapIDs(msgs []imapTestMsg) []string {
	ids := []string{}
	for _, m := range msgs {
		ids = append(ids, m.id)
	}
	return ids
}

func imapNoSeen(t *testing.T, box string, msgs []imapTestMsg) {
	t.Helper()
	for _, m := range msgs {
		if slices.Contains(m.flags, imap.FlagSeen) {
			t.Errorf("%s: message %s (uid %d) is \\Seen", box, m.id, m.uid)
		}
	}
}

// imapMail is a desk reply; extra headers drive the test handler
// (X-Test: quarantine, retry-once, transient-once, permanent, …).
func imapMail(id, extra string) []byte {
	return []byte("From: Agent Desk <agent@desk.example>\r\n" +
		"To: assistance@ent.example\r\n" +
		"Subject: Re: [ENT-42] " + id + "\r\n" +
		"Message-ID: <" + id + "@desk.example>\r\n" +
		"Date: Tue, 04 Mar 2025 09:30:00 +0100\r\n" +
		extra +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Bonjour, voici la réponse à " + id + ".\r\n")
}

var imapTestHeaderRe = regexp.MustCompile(`(?m)^X-Test: ([a-z-]+)`)

// imapRecorder is the test's message handler: it records every call and
// decides by the mail's X-Test header.
type imapRecorder struct {
	mu    sync.Mutex
	calls []imapreader.FetchedMessage
	seen  map[string]int
	// check, when set, runs first in each call (e.g. look at flags).
	check func(m imapreader.FetchedMessage)
}

// Route routes every message to no key: the recorder's messages need no
// order among themselves.
func (h *imapRecorder) Route(context.Context, imapreader.FetchedMessage) (imapreader.Route, error) {
	return imapreader.Route{}, nil
}

func (h *imapRecorder) Apply(ctx context.Context, m imapreader.FetchedMessage, _ imapreader.Route) (imapreader.Verdict, error) {
	return h.handle(ctx, m)
}

func (h *imapRecorder) handle(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Verdict, error) {
	if h.check != nil {
		h.check(m)
	}
	h.mu.Lock()
	if h.seen == nil {
		h.seen = map[string]int{}
	}
	key := imapMsgID(m.Raw)
	if m.TooLarge {
		key = fmt.Sprintf("uid-%d", m.UID)
	}
	h.seen[key]++
	n := h.seen[key]
	h.calls = append(h.calls, m)
	h.mu.Unlock()

	if m.TooLarge {
		return imapreader.Verdict{Disposition: imapreader.DispositionQuarantine, Reason: "too large"}, nil
	}
	kind := ""
	if sub := imapTestHeaderRe.FindSubmatch(m.Raw); sub != nil {
		kind = string(sub[1])
	}
	switch {
	case kind == "quarantine":
		return imapreader.Verdict{Disposition: imapreader.DispositionQuarantine, Reason: "no ticket"}, nil
	case kind == "retry-once" && n == 1:
		return imapreader.Verdict{Disposition: imapreader.DispositionRetry, Reason: "ticket locked"}, nil
	case kind == "transient-once" && n == 1:
		return imapreader.Verdict{}, errors.New("redis: connection refused")
	case kind == "permanent":
		return imapreader.Verdict{}, bridge.Permanent(errors.New("cannot parse"))
	case kind == "domain-error":
		return imapreader.Verdict{}, bridge.Errorf(bridge.CodeUnknownTicket, "no ticket 42")
	case kind == "panic":
		panic("handler bug")
	case kind == "zero":
		return imapreader.Verdict{}, nil
	}
	return imapreader.Verdict{Disposition: imapreader.DispositionProcessed}, nil
}

func (h *imapRecorder) got() []imapreader.FetchedMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *imapRecorder) ids() []string {
	ids := []string{}
	for _, m := range h.got() {
		if m.TooLarge {
			ids = append(ids, "too-large")
			continue
		}
		ids = append(ids, imapMsgID(m.Raw))
	}
	return ids
}

// imapEventually polls cond until it holds or timeout passes.
func imapEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// imapTestLog sends the reader's log to the test's, so a failure shows it.
type imapTestLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *imapTestLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func imapLogger(t *testing.T) *slog.Logger {
	w := &imapTestLog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func imapConfig(t *testing.T, srv *imapTestServer, holder string) imapreader.Config {
	return imapreader.Config{
		Addr: srv.addr, TLS: "none", Username: srv.user, Password: srv.password,
		Mailbox: "INBOX", ProcessedMailbox: "Processed", QuarantineMailbox: "Quarantine",
		PollInterval: 300 * time.Millisecond, LeaseTTL: 1500 * time.Millisecond,
		Holder: holder, Logger: imapLogger(t).With("reader", holder), DialTimeout: 5 * time.Second,
		// One at a time: these tests read the order of the handler's
		// calls. TestIMAPReaderConcurrentOrder runs several.
		Workers: 1,
	}
}

func imapRedis(t *testing.T) (*redisstore.Store, *miniredis.Miniredis) {
	m := redistest.Miniredis(t)
	return redisstore.New(redistest.Client(t, m.Addr()), redisstore.Options{Prefix: "sbtest:"}), m
}

// imapRunning is a reader started by imapStart.
type imapRunning struct {
	r      *imapreader.Reader
	cancel context.CancelFunc
	done   chan error
}

func imapStart(t *testing.T, cfg imapreader.Config, lease imapreader.Leaser, cp imapreader.Checkpointer, h imapreader.MessageHandler) *imapRunning {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &imapRunning{r: imapreader.NewIMAPReader(cfg, lease, cp, h), cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- run.r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels the reader and waits for Run to return nil.
func (run *imapRunning) stop(t *testing.T) {
	t.Helper()
	run.cancel()
	select {
	case err, ok := <-run.done:
		if ok && err != nil {
			t.Errorf("Run returned %v", err)
		}
		if ok {
			close(run.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not stop within 10s")
	}
}

func imapCheckpoint(t *testing.T, st *redisstore.Store, box string) redisstore.Checkpoint {
	t.Helper()
	cp, err := st.LoadCheckpoint(context.Background(), box)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// imapWaitCheckpoint waits for the checkpoint to reach last: it is saved
// just after the move that the counters show.
func imapWaitCheckpoint(t *testing.T, st *redisstore.Store, box string, last uint32) redisstore.Checkpoint {
	t.Helper()
	var cp redisstore.Checkpoint
	imapEventually(t, 5*time.Second, fmt.Sprintf("checkpoint of %s at %d", box, last), func() bool {
		cp = imapCheckpoint(t, st, box)
		return cp.LastUID == last
	})
	return cp
}

func imapDeliverAll(t *testing.T, srv *imapTestServer, mails ...[]byte) {
	t.Helper()
	for _, m := range mails {
		srv.deliver(t, m)
	}
}

// Messages are handled in UID order and moved as the handler says, never
// marked \Seen; the checkpoint follows, and a new reader carries on after
// it without handling anything twice.
func TestIMAPReaderHandlesInOrder(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		side := imapLogin(t, srv)
		imapDeliverAll(t, srv, imapMail("m1", ""), imapMail("m2", "X-Test: quarantine\r\n"),
			imapMail("m3", ""), imapMail("m4", ""))
		inbox, uv := imapBox(t, side, "INBOX")
		if len(inbox) != 4 {
			t.Fatalf("INBOX holds %v", imapIDs(inbox))
		}

		// The handler looks, over another connection, at the message it
		// is given: it must not be \Seen yet.
		var flagMu sync.Mutex
		var flagProblems []string
		look := imapLogin(t, srv)
		h := &imapRecorder{check: func(m imapreader.FetchedMessage) {
			flagMu.Lock()
			defer flagMu.Unlock()
			msgs, _, err := imapBoxErr(look, "INBOX")
			if err != nil {
				flagProblems = append(flagProblems, err.Error())
				return
			}
			for _, x := range msgs {
				if uint32(x.uid) == m.UID && slices.Contains(x.flags, imap.FlagSeen) {
					flagProblems = append(flagProblems, fmt.Sprintf("uid %d is \\Seen when handled", m.UID))
				}
			}
		}}
		run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
		imapEventually(t, 10*time.Second, "4 messages handled and a pass over", func() bool {
			s := run.r.State()
			return s.Processed+s.Quarantined == 4 && !s.LastSuccess.IsZero()
		})

		if got, want := h.ids(), []string{"m1", "m2", "m3", "m4"}; !slices.Equal(got, want) {
			t.Fatalf("handled %v, want %v", got, want)
		}
		for i, m := range h.got() {
			if m.UID != uint32(inbox[i].uid) || m.UIDValidity != uv || m.TooLarge || m.InternalDate.IsZero() || m.Size != int64(len(m.Raw)) {
				t.Errorf("message %d: uid %d uidvalidity %d size %d (raw %d) date %v, want uid %d uidvalidity %d",
					i, m.UID, m.UIDValidity, m.Size, len(m.Raw), m.InternalDate, inbox[i].uid, uv)
			}
			if srv.exactRaw && !bytes.Equal(m.Raw, imapMail(imapMsgID(m.Raw), map[int]string{1: "X-Test: quarantine\r\n"}[i])) {
				t.Errorf("message %d: raw differs from what was delivered", i)
			}
		}
		flagMu.Lock()
		if len(flagProblems) > 0 {
			t.Errorf("flags: %v", flagProblems)
		}
		flagMu.Unlock()

		if msgs, _ := imapBox(t, side, "INBOX"); len(msgs) != 0 {
			t.Errorf("INBOX still holds %v", imapIDs(msgs))
		}
		processed, _ := imapBox(t, side, "Processed")
		quarantined, _ := imapBox(t, side, "Quarantine")
		if got := imapIDs(processed); !slices.Equal(got, []string{"m1", "m3", "m4"}) {
			t.Errorf("Processed holds %v", got)
		}
		if got := imapIDs(quarantined); !slices.Equal(got, []string{"m2"}) {
			t.Errorf("Quarantine holds %v", got)
		}
		imapNoSeen(t, "Processed", processed)
		imapNoSeen(t, "Quarantine", quarantined)

		cp := imapWaitCheckpoint(t, st, "INBOX", uint32(inbox[3].uid))
		if cp.UIDValidity != uv || cp.Fence <= 0 {
			t.Errorf("checkpoint %+v, want uidvalidity %d last %d", cp, uv, inbox[3].uid)
		}
		s := run.r.State()
		if !s.Connected || !s.LeaseHeld || s.LastSuccess.IsZero() || s.LastError != "" ||
			s.Processed != 3 || s.Quarantined != 1 || s.Retried != 0 {
			t.Errorf("state %+v", s)
		}
		if holder, _, _ := st.LeaseHolder(context.Background(), "imap:INBOX"); holder != "r1" {
			t.Errorf("lease holder %q", holder)
		}

		run.stop(t)
		if s := run.r.State(); s.Connected || s.LeaseHeld {
			t.Errorf("state after stop %+v", s)
		}
		if holder, _, _ := st.LeaseHolder(context.Background(), "imap:INBOX"); holder != "" {
			t.Errorf("lease still held by %q after stop", holder)
		}

		// A new reader (a restart) handles only what came since.
		srv.deliver(t, imapMail("m5", ""))
		h2 := &imapRecorder{}
		run2 := imapStart(t, imapConfig(t, srv, "r2"), st, st, h2)
		imapEventually(t, 10*time.Second, "m5 handled after a restart", func() bool { return run2.r.State().Processed == 1 })
		// A few more passes: still nothing handled twice.
		imapEventually(t, 5*time.Second, "more passes", func() bool {
			return time.Since(run2.r.State().LastSuccess) < 100*time.Millisecond && len(h2.got()) == 1
		})
		time.Sleep(700 * time.Millisecond)
		if got := h2.ids(); !slices.Equal(got, []string{"m5"}) {
			t.Errorf("after a restart, handled %v, want [m5]", got)
		}
	})
}

// A message at or below the checkpoint is never handled again, even when
// it is still in the mailbox.
func TestIMAPReaderStartsAfterCheckpoint(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		side := imapLogin(t, srv)
		imapDeliverAll(t, srv, imapMail("old1", ""), imapMail("old2", ""), imapMail("new3", ""))
		inbox, uv := imapBox(t, side, "INBOX")

		ctx := context.Background()
		lease := redisstore.CheckpointLease("INBOX")
		fence, ok, err := st.AcquireLease(ctx, lease, "earlier-run", time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if err := st.SaveMailboxCheckpoint(ctx, "INBOX", uv, uint32(inbox[1].uid), fence); err != nil {
			t.Fatal(err)
		}
		if err := st.ReleaseLease(ctx, lease, "earlier-run", fence); err != nil {
			t.Fatal(err)
		}

		h := &imapRecorder{}
		run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
		imapEventually(t, 10*time.Second, "new3 handled", func() bool { return run.r.State().Processed == 1 })
		time.Sleep(700 * time.Millisecond) // a few more passes
		if got := h.ids(); !slices.Equal(got, []string{"new3"}) {
			t.Errorf("handled %v, want [new3]", got)
		}
		left, _ := imapBox(t, side, "INBOX")
		if got := imapIDs(left); !slices.Equal(got, []string{"old1", "old2"}) {
			t.Errorf("INBOX holds %v", got)
		}
		imapNoSeen(t, "INBOX", left)
		if cp := imapCheckpoint(t, st, "INBOX"); cp.LastUID != uint32(inbox[2].uid) || cp.Fence <= fence {
			t.Errorf("checkpoint %+v", cp)
		}
	})
}

// A retried message stays, holds the checkpoint back without holding the
// others back, and is handled again on the next pass.
func TestIMAPReaderRetry(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		side := imapLogin(t, srv)
		imapDeliverAll(t, srv, imapMail("a", ""), imapMail("b", "X-Test: retry-once\r\n"), imapMail("c", ""))
		inbox, _ := imapBox(t, side, "INBOX")

		// A long poll interval: the first pass runs alone, then the test
		// looks, then asks for the next pass by delivering a mail.
		cfg := imapConfig(t, srv, "r1")
		cfg.PollInterval = time.Minute
		cfg.IDLE = true
		h := &imapRecorder{}
		run := imapStart(t, cfg, st, st, h)
		imapEventually(t, 10*time.Second, "first pass", func() bool { return run.r.State().Processed == 2 })

		if got := h.ids(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("first pass handled %v", got)
		}
		left, _ := imapBox(t, side, "INBOX")
		if got := imapIDs(left); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("INBOX holds %v, want [b]", got)
		}
		imapNoSeen(t, "INBOX", left)
		if cp := imapCheckpoint(t, st, "INBOX"); cp.LastUID != uint32(inbox[0].uid) {
			t.Fatalf("checkpoint at %d after a retry of uid %d, want %d", cp.LastUID, inbox[1].uid, inbox[0].uid)
		}
		if s := run.r.State(); s.Retried != 1 {
			t.Errorf("state %+v", s)
		}

		srv.deliver(t, imapMail("d", ""))
		imapEventually(t, 10*time.Second, "second pass", func() bool { return run.r.State().Processed == 4 })
		if got := h.ids(); !slices.Equal(got, []string{"a", "b", "c", "b", "d"}) {
			t.Errorf("handled %v", got)
		}
		imapEventually(t, 5*time.Second, "the checkpoint past d", func() bool {
			left, _ := imapBox(t, side, "INBOX")
			return len(left) == 0 && imapCheckpoint(t, st, "INBOX").LastUID > uint32(inbox[2].uid)
		})
	})
}

// A message over MaxMessageBytes is handed over TooLarge, without its body
// and without being downloaded.
func TestIMAPReaderTooLarge(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		big := imapMail("big", "X-Padding: "+strings.Repeat("x", 900)+"\r\n")
		big = append(big, bytes.Repeat([]byte("0123456789abcdef\r\n"), 600)...)
		imapDeliverAll(t, srv, imapMail("small1", ""), big, imapMail("small2", ""))

		cfg := imapConfig(t, srv, "r1")
		cfg.MaxMessageBytes = 4096
		h := &imapRecorder{}
		run := imapStart(t, cfg, st, st, h)
		imapEventually(t, 10*time.Second, "3 messages handled", func() bool {
			s := run.r.State()
			return s.Processed == 2 && s.Quarantined == 1
		})
		got := h.got()
		if len(got) != 3 {
			t.Fatalf("handled %v", h.ids())
		}
		if !got[1].TooLarge || got[1].Raw != nil || got[1].Size < int64(len(big)) {
			t.Errorf("big message: TooLarge %v, %d raw bytes, size %d", got[1].TooLarge, len(got[1].Raw), got[1].Size)
		}
		for _, i := range []int{0, 2} {
			if got[i].TooLarge || len(got[i].Raw) == 0 || !bytes.Contains(got[i].Raw, []byte("voici la réponse")) {
				t.Errorf("message %d: TooLarge %v, %d bytes", i, got[i].TooLarge, len(got[i].Raw))
			}
		}
		side := imapLogin(t, srv)
		if q, _ := imapBox(t, side, "Quarantine"); !slices.Equal(imapIDs(q), []string{"big"}) {
			t.Errorf("Quarantine holds %v", imapIDs(q))
		}
	})
}

// When the mailbox is deleted and created again (a new UIDVALIDITY), the
// reader reads it from the start, even UIDs below its checkpoint.
func TestIMAPReaderUIDValidityChange(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		side := imapLogin(t, srv)
		const box = "Desk"
		if err := side.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		imapAppend(t, side, box, imapMail("first1", ""))
		imapAppend(t, side, box, imapMail("first2", ""))
		_, uv1 := imapBox(t, side, box)

		cfg := imapConfig(t, srv, "r1")
		cfg.Mailbox = box
		cfg.IDLE = true // idle on the old mailbox: the poll is the safety net
		cfg.PollInterval = 500 * time.Millisecond
		h := &imapRecorder{}
		run := imapStart(t, cfg, st, st, h)
		imapEventually(t, 10*time.Second, "the first two handled", func() bool { return run.r.State().Processed == 2 })
		first := h.got()
		cp := imapWaitCheckpoint(t, st, box, first[1].UID)
		if cp.UIDValidity != uv1 {
			t.Fatalf("checkpoint %+v, want uidvalidity %d", cp, uv1)
		}

		// Recreated until its UIDVALIDITY really changes (a server may
		// derive it from the clock).
		var uv2 uint32
		for uv2 = uv1; uv2 == uv1; {
			if err := side.Unselect().Wait(); err != nil {
				var ie *imap.Error
				if !errors.As(err, &ie) {
					t.Fatal(err)
				}
			}
			if err := side.Delete(box).Wait(); err != nil {
				t.Fatalf("delete %s: %v", box, err)
			}
			if err := side.Create(box, nil).Wait(); err != nil {
				t.Fatalf("create %s: %v", box, err)
			}
			sd, err := side.Status(box, &imap.StatusOptions{UIDValidity: true}).Wait()
			if err != nil {
				t.Fatal(err)
			}
			uv2 = sd.UIDValidity
			if uv2 == uv1 {
				time.Sleep(time.Second)
			}
		}
		imapAppend(t, side, box, imapMail("second1", ""))
		imapAppend(t, side, box, imapMail("second2", ""))
		// The point of the test: the new UIDs are not above the old
		// checkpoint, so only the UIDVALIDITY tells them apart.
		if msgs, _ := imapBox(t, side, box); len(msgs) != 2 || uint32(msgs[1].uid) > cp.LastUID {
			t.Fatalf("new messages %v, old checkpoint %d", msgs, cp.LastUID)
		}

		imapEventually(t, 15*time.Second, "the recreated mailbox read", func() bool { return run.r.State().Processed == 4 })
		if got := h.ids(); !slices.Equal(got, []string{"first1", "first2", "second1", "second2"}) {
			t.Errorf("handled %v", got)
		}
		for _, m := range h.got()[2:] {
			if m.UIDValidity != uv2 {
				t.Errorf("uid %d handled under uidvalidity %d, want %d", m.UID, m.UIDValidity, uv2)
			}
		}
		if cp := imapWaitCheckpoint(t, st, box, h.got()[3].UID); cp.UIDValidity != uv2 {
			t.Errorf("checkpoint %+v, want uidvalidity %d", cp, uv2)
		}
	})
}

// With IDLE, a mail is handled as soon as it arrives, not at the next poll.
func TestIMAPReaderIdle(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		cfg := imapConfig(t, srv, "r1")
		cfg.IDLE = true
		cfg.PollInterval = time.Minute
		h := &imapRecorder{}
		run := imapStart(t, cfg, st, st, h)
		for i, id := range []string{"idle1", "idle2", "idle3"} {
			imapEventually(t, 10*time.Second, "idle", func() bool { return run.r.State().Idle })
			start := time.Now()
			srv.deliver(t, imapMail(id, ""))
			imapEventually(t, 5*time.Second, id+" handled", func() bool { return run.r.State().Processed == uint64(i+1) })
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s handled %v after delivery, want within 2s", id, d)
			}
		}
		if got := h.ids(); !slices.Equal(got, []string{"idle1", "idle2", "idle3"}) {
			t.Errorf("handled %v", got)
		}
	})
}

// imapMortalLeaser dies like a process: once dead, it releases nothing, so
// its lease stays until it expires.
type imapMortalLeaser struct {
	imapreader.Leaser
	dead atomic.Bool
}

func (l *imapMortalLeaser) ReleaseLease(ctx context.Context, name, holder string, fence int64) error {
	if l.dead.Load() {
		return errors.New("process gone")
	}
	return l.Leaser.ReleaseLease(ctx, name, holder, fence)
}

// One reader at a time: a second one waits, and takes over when the first
// stops (its lease released) or dies (its lease expired).
func TestIMAPReaderLeaseTakeover(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, m := imapRedis(t)
		ctx := context.Background()
		ha, hb, hc := &imapRecorder{}, &imapRecorder{}, &imapRecorder{}
		cfgA := imapConfig(t, srv, "a")
		cfgA.IDLE = true
		a := imapStart(t, cfgA, st, st, ha)
		imapEventually(t, 10*time.Second, "a connected", func() bool { return a.r.State().Connected })
		_, fenceA, _ := st.LeaseHolder(ctx, "imap:INBOX")

		cfgB := imapConfig(t, srv, "b")
		cfgB.IDLE = true
		b := imapStart(t, cfgB, st, st, hb)
		srv.deliver(t, imapMail("m1", ""))
		imapEventually(t, 10*time.Second, "m1 handled by a", func() bool { return a.r.State().Processed == 1 })
		time.Sleep(time.Second) // b tries the lease twice meanwhile
		if len(hb.got()) != 0 || b.r.State().LeaseHeld || b.r.State().Connected {
			t.Fatalf("b worked while a held the lease: %v %+v", hb.ids(), b.r.State())
		}

		a.stop(t)
		imapEventually(t, 5*time.Second, "b takes the lease over", func() bool { return b.r.State().Connected })
		holder, fenceB, _ := st.LeaseHolder(ctx, "imap:INBOX")
		if holder != "b" || fenceB <= fenceA {
			t.Errorf("lease held by %q under fence %d (a had %d)", holder, fenceB, fenceA)
		}
		srv.deliver(t, imapMail("m2", ""))
		imapEventually(t, 10*time.Second, "m2 handled by b", func() bool { return b.r.State().Processed == 1 })

		// b dies without releasing its lease; c waits for it to expire.
		b.stop(t)
		mortal := &imapMortalLeaser{Leaser: st}
		cfgB2 := imapConfig(t, srv, "b2")
		cfgB2.IDLE = true
		b2 := imapStart(t, cfgB2, mortal, st, hb)
		imapEventually(t, 5*time.Second, "b2 connected", func() bool { return b2.r.State().Connected })
		mortal.dead.Store(true)
		b2.stop(t)
		holder, fenceB2, _ := st.LeaseHolder(ctx, "imap:INBOX")
		if holder != "b2" {
			t.Fatalf("lease held by %q after b2 died, want b2 still", holder)
		}

		cfgC := imapConfig(t, srv, "c")
		cfgC.IDLE = true
		c := imapStart(t, cfgC, st, st, hc)
		srv.deliver(t, imapMail("m3", ""))
		time.Sleep(time.Second)
		if len(hc.got()) != 0 || c.r.State().LeaseHeld {
			t.Fatalf("c worked while b2's lease ran: %v", hc.ids())
		}
		m.FastForward(cfgC.LeaseTTL)
		imapEventually(t, 5*time.Second, "m3 handled by c after b2's lease expired", func() bool { return c.r.State().Processed == 1 })
		if holder, fenceC, _ := st.LeaseHolder(ctx, "imap:INBOX"); holder != "c" || fenceC <= fenceB2 {
			t.Errorf("lease held by %q under fence %d (b2 had %d)", holder, fenceC, fenceB2)
		}
		if got := slices.Concat(ha.ids(), hb.ids(), hc.ids()); !slices.Equal(got, []string{"m1", "m2", "m3"}) {
			t.Errorf("handled %v", got)
		}
	})
}

// A reader that loses its lease (taken away while it worked) drops its
// connection and stops handling mail, until it gets the lease back.
func TestIMAPReaderLeaseLost(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, m := imapRedis(t)
		ctx := context.Background()
		cfg := imapConfig(t, srv, "a")
		cfg.IDLE = true
		h := &imapRecorder{}
		run := imapStart(t, cfg, st, st, h)
		imapEventually(t, 10*time.Second, "connected", func() bool { return run.r.State().Connected })

		// The lease vanishes (as after a failover that lost it) and
		// someone else takes it.
		lease := redisstore.CheckpointLease("INBOX")
		keys := m.Keys()
		for _, k := range keys {
			if strings.HasSuffix(k, "}:lease") {
				m.Del(k)
			}
		}
		fence, ok, err := st.AcquireLease(ctx, lease, "thief", time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		imapEventually(t, 5*time.Second, "the reader notices", func() bool {
			s := run.r.State()
			return !s.LeaseHeld && !s.Connected
		})
		srv.deliver(t, imapMail("m1", ""))
		time.Sleep(time.Second)
		if len(h.got()) != 0 {
			t.Fatalf("handled %v without the lease", h.ids())
		}
		if err := st.ReleaseLease(ctx, lease, "thief", fence); err != nil {
			t.Fatal(err)
		}
		imapEventually(t, 10*time.Second, "m1 handled once the lease is back", func() bool { return run.r.State().Processed == 1 })
		// The error is forgotten once the pass is over.
		imapEventually(t, 5*time.Second, "a clean state", func() bool {
			s := run.r.State()
			return s.LeaseHeld && s.Connected && s.LastError == ""
		})
	})
}

// A transient handler error stops the pass with nothing moved, and the
// message is handled again later; errors retrying cannot fix, panics and
// verdicts without a disposition send the message to quarantine, and the
// others go on.
func TestIMAPReaderHandlerErrors(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		imapDeliverAll(t, srv,
			imapMail("flaky", "X-Test: transient-once\r\n"),
			imapMail("perm", "X-Test: permanent\r\n"),
			imapMail("domain", "X-Test: domain-error\r\n"),
			imapMail("boom", "X-Test: panic\r\n"),
			imapMail("zero", "X-Test: zero\r\n"),
			imapMail("fine", ""))
		h := &imapRecorder{}
		run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
		imapEventually(t, 15*time.Second, "all handled", func() bool {
			s := run.r.State()
			return s.Processed == 2 && s.Quarantined == 4
		})
		want := []string{"flaky", "flaky", "perm", "domain", "boom", "zero", "fine"}
		if got := h.ids(); !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
		side := imapLogin(t, srv)
		q, _ := imapBox(t, side, "Quarantine")
		p, _ := imapBox(t, side, "Processed")
		if !slices.Equal(imapIDs(q), []string{"perm", "domain", "boom", "zero"}) || !slices.Equal(imapIDs(p), []string{"flaky", "fine"}) {
			t.Errorf("Quarantine %v, Processed %v", imapIDs(q), imapIDs(p))
		}
	})
}

// Against a server without MOVE (IMAP4rev1 only), messages are moved by
// COPY + STORE \Deleted + EXPUNGE (UID EXPUNGE with UIDPLUS).
func TestIMAPReaderWithoutMove(t *testing.T) {
	for _, tt := range []struct {
		name        string
		caps        imap.CapSet
		wantExpunge string // a command line of the client
	}{
		{"rev1", imap.CapSet{imap.CapIMAP4rev1: {}}, `(?m)^[A-Za-z0-9]+ EXPUNGE\r$`},
		{"rev1+uidplus", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}, `(?m)^[A-Za-z0-9]+ UID EXPUNGE \d+\r$`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			traffic := &imapTraffic{}
			srv := imapStartMem(t, imapMemOpts{caps: tt.caps, debug: traffic})
			st, _ := imapRedis(t)
			imapDeliverAll(t, srv, imapMail("m1", ""), imapMail("m2", "X-Test: quarantine\r\n"))
			h := &imapRecorder{}
			run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
			imapEventually(t, 10*time.Second, "both handled", func() bool {
				s := run.r.State()
				return s.Processed == 1 && s.Quarantined == 1
			})
			srv.deliver(t, imapMail("m3", ""))
			imapEventually(t, 5*time.Second, "m3 handled", func() bool { return run.r.State().Processed == 2 })
			side := imapLogin(t, srv)
			in, _ := imapBox(t, side, "INBOX")
			p, _ := imapBox(t, side, "Processed")
			q, _ := imapBox(t, side, "Quarantine")
			if len(in) != 0 || !slices.Equal(imapIDs(p), []string{"m1", "m3"}) || !slices.Equal(imapIDs(q), []string{"m2"}) {
				t.Errorf("INBOX %v, Processed %v, Quarantine %v", imapIDs(in), imapIDs(p), imapIDs(q))
			}
			imapNoSeen(t, "Processed", p)
			raw := traffic.String()
			if strings.Contains(raw, " MOVE ") || !strings.Contains(raw, " UID COPY ") ||
				!strings.Contains(raw, " UID STORE ") || !regexp.MustCompile(tt.wantExpunge).MatchString(raw) {
				t.Errorf("no COPY + STORE + %s fallback seen in the traffic:\n%s", tt.wantExpunge, raw)
			}
		})
	}
}

// A message the server refuses to give out goes to quarantine without
// holding back those after it; bodies are only ever fetched with PEEK, and
// not at all when too large.
func TestIMAPReaderUnfetchableMessage(t *testing.T) {
	var mu sync.Mutex
	var fetches []string
	srv := imapStartMem(t, imapMemOpts{badUID: 2, fetches: &fetches, mu: &mu})
	st, _ := imapRedis(t)
	big := append(imapMail("big", ""), bytes.Repeat([]byte("x"), 5000)...)
	imapDeliverAll(t, srv, imapMail("m1", ""), imapMail("broken", ""), imapMail("m3", ""), big)
	cfg := imapConfig(t, srv, "r1")
	cfg.MaxMessageBytes = 2048
	h := &imapRecorder{}
	run := imapStart(t, cfg, st, st, h)
	imapEventually(t, 10*time.Second, "all dealt with", func() bool {
		s := run.r.State()
		return s.Processed == 2 && s.Quarantined == 2
	})
	if got := h.ids(); !slices.Equal(got, []string{"m1", "m3", "too-large"}) {
		t.Errorf("handled %v", got)
	}
	side := imapLogin(t, srv)
	q, _ := imapBox(t, side, "Quarantine")
	if !slices.Equal(imapIDs(q), []string{"broken", "big"}) {
		t.Errorf("Quarantine holds %v", imapIDs(q))
	}
	imapWaitCheckpoint(t, st, "INBOX", 4)
	mu.Lock()
	defer mu.Unlock()
	for _, f := range fetches {
		if strings.Contains(f, "peek=false") {
			t.Errorf("a FETCH without PEEK: %q", f)
		}
	}
	if len(fetches) == 0 {
		t.Error("no FETCH recorded")
	}
}

func TestIMAPReaderTLS(t *testing.T) {
	srvTLS, pool := mailtest.SelfSignedCert(t)
	for _, tt := range []struct {
		name     string
		mode     string
		implicit bool
		serveTLS bool
		pool     *x509.CertPool
		wantErr  string // in State().LastError; "" = works
	}{
		{"implicit", "implicit", true, true, pool, ""},
		{"starttls", "starttls", false, true, pool, ""},
		{"none", "none", false, false, nil, ""},
		{"implicit, unknown CA", "implicit", true, true, x509.NewCertPool(), "certificate"},
		{"starttls, unknown CA", "starttls", false, true, x509.NewCertPool(), "certificate"},
		{"starttls, not offered", "starttls", false, false, pool, "starttls"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := imapMemOpts{implicit: tt.implicit}
			if tt.serveTLS {
				o.tls = srvTLS
			}
			srv := imapStartMem(t, o)
			if tt.serveTLS && tt.implicit {
				// the test's own client speaks TLS too
				addr := srv.addr
				srv.deliver = func(t *testing.T, raw []byte) {
					c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool}})
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					if err := c.Login("bob", "pw").Wait(); err != nil {
						t.Fatal(err)
					}
					imapAppend(t, c, "INBOX", raw)
				}
			}
			srv.deliver(t, imapMail("m1", ""))
			st, _ := imapRedis(t)
			cfg := imapConfig(t, srv, "r1")
			cfg.TLS, cfg.RootCAs = tt.mode, tt.pool
			h := &imapRecorder{}
			run := imapStart(t, cfg, st, st, h)
			if tt.wantErr == "" {
				imapEventually(t, 10*time.Second, "m1 handled", func() bool { return run.r.State().Processed == 1 })
				return
			}
			imapEventually(t, 10*time.Second, "an error reported", func() bool {
				return strings.Contains(strings.ToLower(run.r.State().LastError), tt.wantErr)
			})
			if len(h.got()) != 0 || run.r.State().Connected {
				t.Errorf("worked over a connection it should refuse: %+v", run.r.State())
			}
		})
	}
}

// Without AUTH=PLAIN on offer, the reader logs in with LOGIN; with it,
// AUTHENTICATE PLAIN.
func TestIMAPReaderLoginMethods(t *testing.T) {
	for _, tt := range []struct {
		name   string
		noSASL bool
		want   string // the client's command
	}{
		{"login", true, `(?m)^[A-Za-z0-9]+ LOGIN `},
		{"authenticate plain", false, `(?m)^[A-Za-z0-9]+ AUTHENTICATE PLAIN`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			traffic := &imapTraffic{}
			srv := imapStartMem(t, imapMemOpts{noSASL: tt.noSASL, debug: traffic})
			srv.deliver(t, imapMail("m1", ""))
			st, _ := imapRedis(t)
			h := &imapRecorder{}
			run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
			imapEventually(t, 10*time.Second, "m1 handled", func() bool { return run.r.State().Processed == 1 })
			run.stop(t)
			// The test's own clients use LOGIN: look at the reader's
			// connection, the one that issued CREATE.
			raw := traffic.String()
			loc := regexp.MustCompile(` CREATE "?Processed`).FindStringIndex(raw)
			if loc == nil {
				t.Fatalf("no CREATE in the traffic:\n%s", raw)
			}
			i := loc[0]
			start := max(strings.LastIndex(raw[:i], "* OK "), 0)
			if !regexp.MustCompile(tt.want).MatchString(raw[start:i]) {
				t.Errorf("the reader did not log in with %s:\n%s", tt.want, raw[start:i])
			}
		})
	}
}

func TestIMAPReaderConfigErrors(t *testing.T) {
	st, _ := imapRedis(t)
	h := &imapRecorder{}
	for _, tt := range []struct {
		name string
		cfg  imapreader.Config
		want string
	}{
		{"no address", imapreader.Config{}, "address"},
		{"tls mode", imapreader.Config{Addr: "127.0.0.1:1", TLS: "ssl"}, "tls mode"},
		{"same mailbox", imapreader.Config{Addr: "127.0.0.1:1", Mailbox: "inbox", ProcessedMailbox: "INBOX"}, "differ"},
		{"lease ttl", imapreader.Config{Addr: "127.0.0.1:1", LeaseTTL: time.Millisecond}, "lease ttl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := imapreader.NewIMAPReader(tt.cfg, st, st, h)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := r.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error about %q", err, tt.want)
			}
		})
	}
	r := imapreader.NewIMAPReader(imapreader.Config{Addr: "127.0.0.1:1"}, nil, st, h)
	if err := r.Run(context.Background()); err == nil {
		t.Error("Run without a leaser worked")
	}
}

// Redis down: the reader neither reads nor crashes, and starts once Redis
// is back.
func TestIMAPReaderRedisDown(t *testing.T) {
	srv := imapStartMem(t, imapMemOpts{})
	st, m := imapRedis(t)
	srv.deliver(t, imapMail("m1", ""))
	m.SetError("LOADING Redis is loading the dataset in memory")
	h := &imapRecorder{}
	run := imapStart(t, imapConfig(t, srv, "r1"), st, st, h)
	imapEventually(t, 5*time.Second, "the failure reported", func() bool { return strings.Contains(run.r.State().LastError, "lease") })
	if len(h.got()) != 0 {
		t.Fatal("read without a lease")
	}
	m.SetError("")
	imapEventually(t, 10*time.Second, "m1 handled once Redis is back", func() bool { return run.r.State().Processed == 1 })
}

func TestDispositionString(t *testing.T) {
	for d, want := range map[imapreader.Disposition]string{
		imapreader.DispositionProcessed: "processed", imapreader.DispositionQuarantine: "quarantine",
		imapreader.DispositionRetry: "retry", 0: "Disposition(0)",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d: %q, want %q", int(d), got, want)
		}
	}
}

// With several workers, messages for one ticket are still applied in UID
// order, and a transient failure on one holds back the later ones of the
// same ticket (they are applied after it on the next pass), not the others.
func TestIMAPReaderConcurrentOrder(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		const n = 24
		var mails [][]byte
		for i := range n {
			extra := fmt.Sprintf("X-Ticket: t%d\r\n", i%3)
			if i == 7 { // ticket t1
				extra += "X-Test: transient-once\r\n"
			}
			mails = append(mails, imapMail(fmt.Sprintf("m%02d", i), extra))
		}
		imapDeliverAll(t, srv, mails...)
		ticketRe := regexp.MustCompile(`(?m)^X-Ticket: (t[0-9]+)`)

		var mu sync.Mutex
		applied := map[string][]string{} // ticket -> message ids, in the order applied
		inFlight, most := 0, 0
		failedOnce := false
		handle := imapSteps{
			route: func(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Route, error) {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
				defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
				// Uneven work before the turn, so that the workers
				// overtake one another.
				time.Sleep(time.Duration(len(imapMsgID(m.Raw))*int(m.UID)%5) * time.Millisecond)
				return imapreader.Route{Key: string(ticketRe.FindSubmatch(m.Raw)[1])}, nil
			},
			apply: func(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error) {
				mu.Lock()
				defer mu.Unlock()
				if strings.Contains(string(m.Raw), "transient-once") && !failedOnce {
					failedOnce = true
					return imapreader.Verdict{}, errors.New("redis: connection refused")
				}
				applied[rt.Key] = append(applied[rt.Key], imapMsgID(m.Raw))
				return imapreader.Verdict{Disposition: imapreader.DispositionProcessed}, nil
			},
		}
		cfg := imapConfig(t, srv, "r1")
		cfg.Workers = 8
		cfg.BatchSize = 10
		run := imapStart(t, cfg, st, st, handle)
		imapEventually(t, 20*time.Second, "every message processed", func() bool { return run.r.State().Processed == n })

		mu.Lock()
		defer mu.Unlock()
		total := 0
		for key, ids := range applied {
			total += len(ids)
			if !slices.IsSorted(ids) {
				t.Errorf("ticket %s applied in order %v", key, ids)
			}
			if len(ids) != len(slices.Compact(slices.Clone(ids))) {
				t.Errorf("ticket %s applied twice: %v", key, ids)
			}
		}
		if total != n {
			t.Errorf("%d applied, want %d: %v", total, n, applied)
		}
		if most < 2 {
			t.Errorf("at most %d handler(s) at once: not concurrent", most)
		}
		side := imapLogin(t, srv)
		if left, _ := imapBox(t, side, "INBOX"); len(left) != 0 {
			t.Errorf("INBOX still holds %v", imapIDs(left))
		}
	})
}

// imapSteps is a MessageHandler made of two functions.
type imapSteps struct {
	route func(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Route, error)
	apply func(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error)
}

func (h imapSteps) Route(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Route, error) {
	return h.route(ctx, m)
}

func (h imapSteps) Apply(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error) {
	return h.apply(ctx, m, rt)
}

// A barrier teaches what the messages after it are routed by: each of them
// is applied with the route it teaches, even when it was routed before the
// barrier was applied (it is routed again); a barrier that fails holds the
// messages after it back until it is applied on the next pass.
func TestIMAPReaderBarriers(t *testing.T) {
	imapServers(t, func(t *testing.T, srv *imapTestServer) {
		st, _ := imapRedis(t)
		const n = 40
		var mails [][]byte
		for i := range n {
			var extra string
			switch {
			case i == 3:
				extra = "X-Teach: r1=t1\r\nX-Ticket: t0\r\n"
			case i == 17:
				extra = "X-Teach: r2=t2\r\nX-Ticket: t0\r\nX-Test: transient-once\r\n"
			case i > 17 && i%2 == 0:
				extra = "X-Ref: r2\r\n"
			case i > 3 && i%2 == 0:
				extra = "X-Ref: r1\r\n"
			default:
				extra = fmt.Sprintf("X-Ticket: t%d\r\n", 3+i%3)
			}
			mails = append(mails, imapMail(fmt.Sprintf("m%02d", i), extra))
		}
		imapDeliverAll(t, srv, mails...)
		header := func(raw []byte, name string) string {
			sub := regexp.MustCompile(`(?m)^` + name + `: ([a-z0-9=]+)`).FindSubmatch(raw)
			if sub == nil {
				return ""
			}
			return string(sub[1])
		}

		var mu sync.Mutex
		refs := map[string]string{}      // taught by the barriers
		applied := map[string][]string{} // ticket -> message ids, in the order applied
		routes := map[string]int{}       // message id -> Route calls
		failedOnce := false
		handle := imapSteps{
			route: func(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Route, error) {
				id := imapMsgID(m.Raw)
				time.Sleep(time.Duration(int(m.UID)*7%5) * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				routes[id]++
				if ref := header(m.Raw, "X-Ref"); ref != "" {
					return imapreader.Route{Key: refs[ref]}, nil
				}
				return imapreader.Route{Key: header(m.Raw, "X-Ticket"), Barrier: header(m.Raw, "X-Teach") != ""}, nil
			},
			apply: func(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error) {
				time.Sleep(time.Duration(int(m.UID)*3%4) * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				if rt.Key == "" {
					return imapreader.Verdict{Disposition: imapreader.DispositionQuarantine, Reason: "no ticket"}, nil
				}
				if strings.Contains(string(m.Raw), "transient-once") && !failedOnce {
					failedOnce = true
					return imapreader.Verdict{}, errors.New("redis: connection refused")
				}
				if teach := header(m.Raw, "X-Teach"); teach != "" {
					ref, ticket, _ := strings.Cut(teach, "=")
					refs[ref] = ticket
				}
				applied[rt.Key] = append(applied[rt.Key], imapMsgID(m.Raw))
				return imapreader.Verdict{Disposition: imapreader.DispositionProcessed}, nil
			},
		}
		cfg := imapConfig(t, srv, "r1")
		cfg.Workers = 8
		cfg.BatchSize = 25
		run := imapStart(t, cfg, st, st, handle)
		imapEventually(t, 20*time.Second, "every message processed", func() bool { return run.r.State().Processed == n })

		mu.Lock()
		defer mu.Unlock()
		if q := run.r.State().Quarantined; q != 0 {
			t.Errorf("%d quarantined: a message was applied with a route from before its barrier", q)
		}
		for key, ids := range applied {
			if !slices.IsSorted(ids) {
				t.Errorf("ticket %s applied in order %v", key, ids)
			}
		}
		for i := range n {
			id := fmt.Sprintf("m%02d", i)
			var want string
			switch {
			case i > 17 && i%2 == 0:
				want = "t2"
			case i > 3 && i%2 == 0 && i != 17:
				want = "t1"
			default:
				continue
			}
			if !slices.Contains(applied[want], id) {
				t.Errorf("%s not applied to %s: %v", id, want, applied)
			}
		}
		again := 0
		for _, c := range routes {
			if c > 1 {
				again++
			}
		}
		t.Logf("%d message(s) routed more than once", again)
	})
}
