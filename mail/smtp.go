package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Sender submits composed mail to an SMTP server, one connection a mail.
type Sender struct {
	Addr string // host:port
	// TLS is "starttls" (the default when empty), "implicit" (port 465) or
	// "none".
	TLS                string
	Username, Password string // AUTH only when Username is set
	// RootCAs verifies the server's certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// Timeout bounds the dial, the TLS handshake and each command; zero
	// means 30 s. The wait for the server's answer to the message itself is
	// at least 5 minutes: giving up while the server is accepting the mail
	// would make the retry a duplicate.
	Timeout time.Duration
	// HeloName is the name given in EHLO; empty means "localhost".
	HeloName string
}

// The stages of a send, as SendError.Stage reports them.
const (
	StageDial = "dial" // connect, greeting, EHLO
	StageTLS  = "tls"
	StageAuth = "auth"
	StageMail = "mail"
	StageRcpt = "rcpt"
	StageData = "data"
	StageQuit = "quit"
)

// SendError is the error Send returns: where it failed, the SMTP reply code
// when the server gave one, and whether trying again later can help.
type SendError struct {
	Temporary bool
	Code      int // SMTP reply code; 0 when the server gave none
	Stage     string
	Err       error
}

func (e *SendError) Error() string {
	kind := "temporary"
	if !e.Temporary {
		kind = "permanent"
	}
	return fmt.Sprintf("smtp: %s (%s): %v", e.Stage, kind, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// IsTemporary reports whether a failed send may succeed later. Only a
// permanent SMTP reply (5xx) or a SendError saying so is permanent; 4xx
// replies, network errors, timeouts, dropped connections and anything
// unknown are temporary. A nil error is not temporary.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Temporary
	}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr.Code/100 != 5
	}
	return true
}

const (
	smtpDefaultTimeout   = 30 * time.Second
	smtpMinSubmitTimeout = 5 * time.Minute
	smtpDefaultHeloName  = "localhost"
	smtpTLSStartTLS      = "starttls"
	smtpTLSImplicit      = "implicit"
	smtpTLSNone          = "none"
)

func (s *Sender) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return smtpDefaultTimeout
}

// Send delivers msg: dial, TLS as configured, AUTH when a username is set,
// MAIL, RCPT for each recipient, DATA. It returns nil once the server has
// accepted the message, even if QUIT then fails. Any failure is a
// *SendError. Cancelling ctx closes the connection at once.
func (s *Sender) Send(ctx context.Context, msg Outgoing) error {
	if err := smtpCheck(msg); err != nil {
		return err
	}
	mode := strings.ToLower(strings.TrimSpace(s.TLS))
	if mode == "" {
		mode = smtpTLSStartTLS
	}
	if mode != smtpTLSStartTLS && mode != smtpTLSImplicit && mode != smtpTLSNone {
		return &SendError{Stage: StageDial, Err: fmt.Errorf("unknown tls mode %q", s.TLS)}
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return &SendError{Stage: StageDial, Err: fmt.Errorf("address %q: %w", s.Addr, err)}
	}
	timeout := s.timeout()

	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return smtpFail(ctx, StageDial, err)
	}
	defer conn.Close()
	// go-smtp knows no context: closing the connection is what interrupts a
	// command in flight.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, stage, err := s.open(ctx, conn, mode, host, timeout)
	if err != nil {
		return smtpFail(ctx, stage, err)
	}
	defer c.Close()

	if s.Username != "" {
		if err := s.auth(c); err != nil {
			return smtpFail(ctx, StageAuth, err)
		}
	}

	opts := &smtp.MailOptions{Size: int64(len(msg.Raw))}
	if !smtpASCII(msg.From) || !smtpASCII(msg.To...) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return &SendError{Stage: StageMail, Err: errors.New("non-ASCII address and the server lacks SMTPUTF8")}
		}
		opts.UTF8 = true
	}
	if max, ok := c.MaxMessageSize(); ok && max > 0 && len(msg.Raw) > max {
		return &SendError{Stage: StageMail, Err: fmt.Errorf("message of %d bytes, server takes at most %d", len(msg.Raw), max)}
	}
	if err := c.Mail(msg.From, opts); err != nil {
		return smtpFail(ctx, StageMail, err)
	}
	for _, to := range msg.To {
		if err := c.Rcpt(to, nil); err != nil {
			return smtpFail(ctx, StageRcpt, fmt.Errorf("<%s>: %w", to, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpFail(ctx, StageData, err)
	}
	// Writing the body has no deadline of its own in go-smtp: a server
	// that stops reading would block it.
	_ = conn.SetWriteDeadline(time.Now().Add(max(timeout, smtpMinSubmitTimeout)))
	if _, err := w.Write(msg.Raw); err != nil {
		return smtpFail(ctx, StageData, err)
	}
	if err := w.Close(); err != nil {
		return smtpFail(ctx, StageData, err)
	}
	// The server took the mail: a failed QUIT changes nothing, and
	// reporting it would get the mail sent twice.
	_ = c.Quit()
	return nil
}

// open makes the SMTP session up to a successful EHLO, over TLS when asked.
// It returns the stage that failed.
func (s *Sender) open(ctx context.Context, conn net.Conn, mode, host string, timeout time.Duration) (*smtp.Client, string, error) {
	helo := s.HeloName
	if helo == "" {
		helo = smtpDefaultHeloName
	}
	cfg := &tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}

	var c *smtp.Client
	stage := StageDial
	switch mode {
	case smtpTLSImplicit:
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return nil, StageTLS, err
		}
		c = smtp.NewClient(tc)
	case smtpTLSStartTLS:
		// NewClientStartTLS reads the greeting, says EHLO and STARTTLS
		// before the client's timeouts can be set: bound that phase here.
		pctx, cancel := context.WithTimeout(ctx, timeout)
		stopPhase := context.AfterFunc(pctx, func() { conn.Close() })
		var err error
		c, err = smtp.NewClientStartTLS(conn, cfg)
		stopped := stopPhase()
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err != nil && timedOut:
			return nil, StageTLS, fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		case err != nil:
			return nil, StageTLS, err
		case !stopped:
			// The phase timer fired just as STARTTLS succeeded: the
			// connection is closed.
			c.Close()
			return nil, StageTLS, context.DeadlineExceeded
		}
		// The handshake itself runs with the next command, EHLO.
		stage = StageTLS
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = timeout
	c.SubmissionTimeout = max(timeout, smtpMinSubmitTimeout)
	if err := c.Hello(helo); err != nil {
		c.Close()
		return nil, stage, err
	}
	return c, stage, nil
}

// auth authenticates with PLAIN, or LOGIN when the server offers only that.
func (s *Sender) auth(c *smtp.Client) error {
	var a sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		a = sasl.NewPlainClient("", s.Username, s.Password)
	case c.SupportsAuth(sasl.Login):
		a = &smtpLoginClient{username: s.Username, password: s.Password}
	default:
		_, mechs := c.Extension("AUTH")
		return fmt.Errorf("server offers neither AUTH PLAIN nor LOGIN (offers %q)", mechs)
	}
	return c.Auth(a)
}

// smtpLoginClient is SASL LOGIN that answers the prompts by what they ask:
// go-sasl's client requires the exact challenge "Password:", which not every
// server sends.
type smtpLoginClient struct {
	username, password string
	step               int
}

func (a *smtpLoginClient) Start() (string, []byte, error) {
	return sasl.Login, nil, nil
}

func (a *smtpLoginClient) Next(challenge []byte) ([]byte, error) {
	a.step++
	prompt := bytes.ToLower(challenge)
	switch {
	case a.step > 2:
		return nil, errors.New("login: unexpected challenge")
	case bytes.Contains(prompt, []byte("user")):
		return []byte(a.username), nil
	case bytes.Contains(prompt, []byte("pass")):
		return []byte(a.password), nil
	case a.step == 1:
		return []byte(a.username), nil
	default:
		return []byte(a.password), nil
	}
}

// smtpCheck refuses, as permanent, a message that no server could take.
func smtpCheck(msg Outgoing) error {
	if strings.ContainsAny(msg.From, "\r\n<> ") {
		return &SendError{Stage: StageMail, Err: fmt.Errorf("invalid sender %q", msg.From)}
	}
	if len(msg.To) == 0 {
		return &SendError{Stage: StageRcpt, Err: errors.New("no recipient")}
	}
	for _, to := range msg.To {
		if to == "" || strings.ContainsAny(to, "\r\n<> ") {
			return &SendError{Stage: StageRcpt, Err: fmt.Errorf("invalid recipient %q", to)}
		}
	}
	if len(msg.Raw) == 0 {
		return &SendError{Stage: StageData, Err: errors.New("empty message")}
	}
	return nil
}

// smtpFail wraps err into a SendError: a 5xx reply is permanent, anything
// else temporary. When ctx ended, its error is kept in the chain since the
// closed connection is what the caller would otherwise see.
func smtpFail(ctx context.Context, stage string, err error) error {
	se := &SendError{Temporary: true, Stage: stage, Err: err}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		se.Code = smtpErr.Code
		se.Temporary = smtpErr.Code/100 != 5
	} else if cerr := ctx.Err(); cerr != nil {
		se.Err = fmt.Errorf("%w: %w", cerr, err)
	}
	return se
}

func smtpASCII(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}
