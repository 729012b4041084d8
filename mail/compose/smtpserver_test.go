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

// smtpTestBackend is an in-process desk for TestDigestMailer: it records what
// it receives and fails on demand. It is a trimmed copy of the one in
// smtpclient's tests (same names), kept to what the mailer tests here use.
type smtpTestBackend struct {
	mu       sync.Mutex
	received []smtpTestMail

	failRcpt error
	failData error
}

type smtpTestMail struct {
	from string
	to   []string
	data []byte
}

func (be *smtpTestBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpTestSession{be: be}, nil
}

func (be *smtpTestBackend) mails() []smtpTestMail {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]smtpTestMail(nil), be.received...)
}

type smtpTestSession struct {
	be   *smtpTestBackend
	mail smtpTestMail
}

func (s *smtpTestSession) Mail(from string, _ *smtp.MailOptions) error {
	s.mail = smtpTestMail{from: from}
	return nil
}

func (s *smtpTestSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.failRcpt != nil {
		return s.be.failRcpt
	}
	s.mail.to = append(s.mail.to, to)
	return nil
}

func (s *smtpTestSession) Data(r io.Reader) error {
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

func (s *smtpTestSession) Reset()        { s.mail = smtpTestMail{} }
func (s *smtpTestSession) Logout() error { return nil }

type smtpServerOpts struct{}

func smtpStartServer(t *testing.T, be *smtpTestBackend, _ smtpServerOpts) string {
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
