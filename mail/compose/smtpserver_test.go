package compose

import (
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testBackend is an in-process desk for TestDigestMailer: it records what
// it receives and fails on demand. It is a trimmed copy of the one in
// smtpclient's tests (same names), kept to what the mailer tests here use.
type testBackend struct {
	mu       sync.Mutex
	received []testMail

	failRcpt error
	failData error
}

type testMail struct {
	from string
	to   []string
	data []byte
}

func (be *testBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &testSession{be: be}, nil
}

func (be *testBackend) mails() []testMail {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]testMail(nil), be.received...)
}

type testSession struct {
	be   *testBackend
	mail testMail
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	s.mail = testMail{from: from}
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.failRcpt != nil {
		return s.be.failRcpt
	}
	s.mail.to = append(s.mail.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.be.failData != nil {
		return s.be.failData
	}
	s.mail.data = data
	s.be.mu.Lock()
	s.be.received = append(s.be.received, s.mail)
	s.be.mu.Unlock()
	return nil
}

func (s *testSession) Reset()        { s.mail = testMail{} }
func (s *testSession) Logout() error { return nil }

type serverOpts struct{}

func startServer(t *testing.T, be *testBackend, _ serverOpts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(be)
	srv.Domain = "desk.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
