package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPServer is an in-process SMTP server (go-smtp) on 127.0.0.1 for
// tests: it keeps every mail it accepted, fails the stages it is told to,
// and counts connections and commands. Unlike smtp-sink it needs no binary,
// speaks AUTH and TLS, and lets a test decide each answer in Go.
type SMTPServer struct {
	// Addr is "127.0.0.1:<port>".
	Addr string

	cfg smtpConfig

	mu       sync.Mutex
	srv      *smtp.Server
	received []SMTPMessage
	helos    []string
	stats    SMTPStats
	live     []net.Conn
}

// SMTPMessage is one mail the server accepted (a 250 after DATA), or, in an
// OnData hook, the one being decided.
type SMTPMessage struct {
	// From is the MAIL FROM address, To the RCPT TO addresses in order.
	From string
	To   []string
	// Data is the message as received, dot-stuffing undone.
	Data []byte
	// User is who authenticated, "" without AUTH.
	User string
	// TLS says whether the session ran over TLS (STARTTLS or implicit).
	TLS bool
	// At is when the data was received.
	At time.Time
}

// SMTPStats counts across every session. Connections are counted where
// they are accepted, so a session upgraded by STARTTLS is still one.
type SMTPStats struct {
	Conns  int // connections accepted
	Closed int // of those, closed by either side
	Mails  int // MAIL commands that reached the OnMail hook
	Datas  int // messages received in full, before the OnData hook
}

// ErrHangUp, returned by an OnData hook, makes the server close the
// connection without answering the data: the client cannot know whether the
// mail was taken.
var ErrHangUp = errors.New("mailtest: hang up")

// SMTPOption configures StartSMTP.
type SMTPOption func(*smtpConfig)

type smtpConfig struct {
	domain       string
	user, pass   string
	mechs        []string
	requireAuth  bool
	insecureAuth bool
	startTLS     *tls.Config
	implicitTLS  *tls.Config
	maxBytes     int64
	utf8         bool
	readTimeout  time.Duration
	onMail       func(n int, from string) error
	onRcpt       func(to string) error
	onData       func(n int, m *SMTPMessage) error
}

// WithDomain sets the name the server greets with (default "desk.test").
func WithDomain(name string) SMTPOption { return func(c *smtpConfig) { c.domain = name } }

// WithAuth makes the server accept only user and pass, offer PLAIN and LOGIN
// (see WithAuthMechanisms), and refuse MAIL before AUTH with 502. go-smtp
// offers AUTH only over TLS unless WithInsecureAuth.
func WithAuth(user, pass string) SMTPOption {
	return func(c *smtpConfig) {
		c.user, c.pass, c.requireAuth = user, pass, true
		if c.mechs == nil {
			c.mechs = []string{sasl.Plain, sasl.Login}
		}
	}
}

// WithAuthMechanisms sets the AUTH mechanisms offered, among PLAIN and
// LOGIN; none at all is a server that wants AUTH but offers nothing.
func WithAuthMechanisms(mechs ...string) SMTPOption {
	return func(c *smtpConfig) { c.mechs = append([]string{}, mechs...) }
}

// WithInsecureAuth offers AUTH without TLS.
func WithInsecureAuth() SMTPOption { return func(c *smtpConfig) { c.insecureAuth = true } }

// WithSTARTTLS offers STARTTLS with cfg (see SelfSignedCert).
func WithSTARTTLS(cfg *tls.Config) SMTPOption { return func(c *smtpConfig) { c.startTLS = cfg } }

// WithImplicitTLS makes the listener speak TLS from the first byte.
func WithImplicitTLS(cfg *tls.Config) SMTPOption { return func(c *smtpConfig) { c.implicitTLS = cfg } }

// WithMaxMessageBytes announces SIZE n and refuses larger mails.
func WithMaxMessageBytes(n int64) SMTPOption { return func(c *smtpConfig) { c.maxBytes = n } }

// WithSMTPUTF8 announces SMTPUTF8, so that UTF-8 addresses are accepted.
func WithSMTPUTF8() SMTPOption { return func(c *smtpConfig) { c.utf8 = true } }

// WithReadTimeout is how long the server waits for a command (default
// 10 s); then it says "421 Idle timeout" and hangs up.
func WithReadTimeout(d time.Duration) SMTPOption { return func(c *smtpConfig) { c.readTimeout = d } }

// OnMail runs at each MAIL command with its number across all sessions
// (from 1); a non-nil error is the answer.
func OnMail(f func(n int, from string) error) SMTPOption {
	return func(c *smtpConfig) { c.onMail = f }
}

// OnRcpt runs at each RCPT command; a non-nil error is the answer.
func OnRcpt(f func(to string) error) SMTPOption { return func(c *smtpConfig) { c.onRcpt = f } }

// OnData runs once a message is received in full, with its number across
// all sessions (from 1); nil accepts it, an error (an *smtp.SMTPError for a
// chosen reply) refuses it, ErrHangUp drops the connection. It may block
// (the client then waits for the answer): a test that makes it wait must
// let it go in a t.Cleanup registered after StartSMTP, which runs before
// the server is closed.
func OnData(f func(n int, m *SMTPMessage) error) SMTPOption {
	return func(c *smtpConfig) { c.onData = f }
}

// FailMail answers every MAIL with err.
func FailMail(err error) SMTPOption {
	return OnMail(func(int, string) error { return err })
}

// FailRcpt answers every RCPT with err.
func FailRcpt(err error) SMTPOption { return OnRcpt(func(string) error { return err }) }

// FailData answers every message with err (ErrHangUp: no answer at all).
func FailData(err error) SMTPOption {
	return OnData(func(int, *SMTPMessage) error { return err })
}

// StartSMTP starts an SMTPServer on 127.0.0.1 and a free port; it is closed,
// with every connection, when the test ends.
func StartSMTP(t testing.TB, opts ...SMTPOption) *SMTPServer {
	t.Helper()
	s := &SMTPServer{cfg: smtpConfig{domain: "desk.test", readTimeout: 10 * time.Second}}
	for _, o := range opts {
		o(&s.cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp server: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *SMTPServer) serve(ln net.Listener) {
	ln = countingListener{Listener: ln, s: s}
	if s.cfg.implicitTLS != nil {
		ln = tls.NewListener(ln, s.cfg.implicitTLS)
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.cfg.domain
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = s.cfg.readTimeout
	srv.WriteTimeout = 10 * time.Second
	srv.TLSConfig = s.cfg.startTLS
	srv.AllowInsecureAuth = s.cfg.insecureAuth
	srv.MaxMessageBytes = s.cfg.maxBytes
	srv.EnableSMTPUTF8 = s.cfg.utf8
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every connection, as a server that went
// away: clients then fail to connect. Resume listens again.
func (s *SMTPServer) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Resume listens again on the same address after Stop, with the same
// options, keeping what was received and counted.
func (s *SMTPServer) Resume() error {
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("smtp server back on %s: %w", s.Addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		ln.Close()
		return nil
	}
	s.serve(ln)
	return nil
}

// Messages returns the mails accepted so far, in the order they were.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.received...)
}

// Helos returns the names the clients gave in EHLO/HELO, one a session.
func (s *SMTPServer) Helos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.helos...)
}

// Stats returns the counts so far.
func (s *SMTPServer) Stats() SMTPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// DropAll closes every connection without a word, as a server that drops
// idle clients does; the server keeps listening.
func (s *SMTPServer) DropAll() {
	s.mu.Lock()
	live := append([]net.Conn(nil), s.live...)
	s.mu.Unlock()
	for _, c := range live {
		c.Close()
	}
}

// WaitClosed waits until n connections have been closed, or fails the test
// after 5 s.
func (s *SMTPServer) WaitClosed(t testing.TB, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Closed < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections closed; want %d", s.Stats().Closed, n)
		}
	}
}

// countingListener counts the connections it accepts, and their close by
// either side.
type countingListener struct {
	net.Listener
	s *SMTPServer
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.stats.Conns++
	l.s.live = append(l.s.live, c)
	return &countedConn{Conn: c, s: l.s}, nil
}

type countedConn struct {
	net.Conn
	s    *SMTPServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.stats.Closed++
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

type backend struct{ s *SMTPServer }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.helos = append(b.s.helos, c.Hostname())
	b.s.mu.Unlock()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *SMTPServer
	conn *smtp.Conn
	user string
	mail SMTPMessage
}

func (ss *session) AuthMechanisms() []string { return ss.s.cfg.mechs }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if ss.s.cfg.user == "" || user != ss.s.cfg.user || pass != ss.s.cfg.pass {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.cfg.requireAuth && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.s.mu.Lock()
	ss.s.stats.Mails++
	n := ss.s.stats.Mails
	ss.s.mu.Unlock()
	if f := ss.s.cfg.onMail; f != nil {
		if err := f(n, from); err != nil {
			return err
		}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.mail = SMTPMessage{From: from, User: ss.user, TLS: isTLS}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := ss.s.cfg.onRcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.mail.To = append(ss.mail.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := ss.mail
	m.To = append([]string(nil), m.To...)
	m.Data, m.At = data, time.Now()
	ss.s.mu.Lock()
	ss.s.stats.Datas++
	n := ss.s.stats.Datas
	ss.s.mu.Unlock()
	if f := ss.s.cfg.onData; f != nil {
		if err := f(n, &m); err != nil {
			if errors.Is(err, ErrHangUp) {
				ss.conn.Conn().Close()
			}
			return err
		}
	}
	ss.s.mu.Lock()
	ss.s.received = append(ss.s.received, m)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.mail = SMTPMessage{} }
func (ss *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN (go-sasl has only the
// client), with the usual "Username:" / "Password:" prompts.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	a.step++
	switch a.step {
	case 1:
		if len(response) > 0 { // initial response: the user name
			a.user = string(response)
			a.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		a.user = string(response)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, a.check(a.user, string(response))
	}
	return nil, false, errors.New("unexpected response")
}

// SelfSignedCert returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1 and localhost, and the pool that trusts it.
func SelfSignedCert(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "desk.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}
