package imapreader_test

import (
	"testing"
	"time"

	"supportbridge/mail/mailtest"
)

// imapStartDovecot starts a private Dovecot (skipped without the binary,
// unless SUPPORTBRIDGE_REQUIRE_SERVERS=1).
func imapStartDovecot(t *testing.T) *imapTestServer {
	t.Helper()
	srv, _ := imapStartDovecotServer(t)
	return srv
}

func imapStartDovecotServer(t *testing.T) (*imapTestServer, *mailtest.Dovecot) {
	t.Helper()
	d := mailtest.StartDovecot(t)
	return &imapTestServer{addr: d.IMAPAddr, user: d.User, password: d.Password,
		deliver: func(t *testing.T, raw []byte) { t.Helper(); d.Deliver(t, raw) }}, d
}

// The server goes down and comes back: the reader reconnects and goes on,
// with its checkpoint.
func TestIMAPReaderDovecotRestart(t *testing.T) {
	srv, d := imapStartDovecotServer(t)
	st, _ := imapRedis(t)
	cfg := imapConfig(t, srv, "r1")
	cfg.IDLE = true
	cfg.PollInterval = time.Minute
	h := &imapRecorder{}
	run := imapStart(t, cfg, st, st, h)
	srv.deliver(t, imapMail("before", ""))
	imapEventually(t, 10*time.Second, "before handled", func() bool { return run.r.State().Processed == 1 })
	imapEventually(t, 5*time.Second, "idle", func() bool { return run.r.State().Idle })

	d.Kill(t)
	imapEventually(t, 5*time.Second, "the reader sees the server gone", func() bool {
		s := run.r.State()
		return !s.Connected && s.LastError != ""
	})
	d.Restart(t)
	srv.deliver(t, imapMail("after", ""))
	imapEventually(t, 15*time.Second, "after handled once the server is back", func() bool { return run.r.State().Processed == 2 })
	if got := h.ids(); len(got) != 2 || got[0] != "before" || got[1] != "after" {
		t.Errorf("handled %v", got)
	}
	imapEventually(t, 5*time.Second, "a clean state", func() bool {
		s := run.r.State()
		return s.Connected && s.LeaseHeld && s.LastError == ""
	})
}
