package smtpclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"supportbridge/mail"
)

// Sender submits composed mail to an SMTP server. By default each mail has
// a connection of its own; with MaxIdle set, a connection whose mail was
// accepted is kept and reused for later mails, as Postfix's SMTP connection
// cache does. Send is safe for concurrent use; a Sender must not be copied
// once used.
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

	// MaxIdle is how many idle connections are kept for reuse; zero (the
	// default) closes each connection after its mail.
	MaxIdle int
	// IdleTimeout is how long an idle connection is kept; zero means 2 s,
	// Postfix's smtp_connection_cache_time_limit. Servers drop idle
	// sessions after a while (Postfix after 300 s, some much sooner): a
	// short cache life keeps most reuses ahead of that.
	IdleTimeout time.Duration
	// ReuseLimit is how many mails one connection carries before it is
	// closed; zero means 100, Postfix's smtp_connection_reuse_count_limit.
	// It spreads the load again when the server is behind a balancer.
	ReuseLimit int

	mu      sync.Mutex
	idle    []*cachedConn // most recently used last
	closed  bool
	closing sync.WaitGroup // idle sessions being ended, by their timer or Close
}

// cachedConn is an open SMTP session, ready for MAIL FROM.
type cachedConn struct {
	conn  net.Conn // the TCP connection under any TLS
	c     *smtp.Client
	born  time.Time
	uses  int         // mails accepted over it
	timer *time.Timer // closes it once idle too long; set while idle
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
	defaultTimeout   = 30 * time.Second
	minSubmitTimeout = 5 * time.Minute
	defaultHeloName  = "localhost"
	tlsStartTLS      = "starttls"
	tlsImplicit      = "implicit"
	tlsNone          = "none"
	defaultIdleLife  = 2 * time.Second
	defaultReuse     = 100
	// A connection is not reused once this old, whatever its count:
	// Postfix's smtp_connection_reuse_time_limit.
	reuseTimeLimit = 300 * time.Second
	// The QUIT that closes an idle connection waits no longer than this:
	// nothing depends on its answer.
	quitTimeout = 5 * time.Second
)

func (s *Sender) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return defaultTimeout
}

// Send delivers msg: dial, TLS as configured, AUTH when a username is set,
// MAIL, RCPT for each recipient, DATA — or, when a cached connection is
// idle, MAIL, RCPT and DATA over it. It returns nil once the server has
// accepted the message, even if QUIT then fails. Any failure is a
// *SendError. Cancelling ctx closes the connection at once.
//
// A mail is tried twice at most, and only when a second try cannot make a
// duplicate: when the first command on a cached connection gets no answer
// or a 421, the server had dropped the session while it was idle and had
// taken nothing on it, so the mail goes again over a new connection. A
// failure at or after DATA is returned, never retried here. A connection
// that saw any failure is closed, never cached.
func (s *Sender) Send(ctx context.Context, msg mail.Outgoing) error {
	if err := checkOutgoing(msg); err != nil {
		return err
	}
	mode := strings.ToLower(strings.TrimSpace(s.TLS))
	if mode == "" {
		mode = tlsStartTLS
	}
	if mode != tlsStartTLS && mode != tlsImplicit && mode != tlsNone {
		return &SendError{Stage: StageDial, Err: fmt.Errorf("unknown tls mode %q", s.TLS)}
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return &SendError{Stage: StageDial, Err: fmt.Errorf("address %q: %w", s.Addr, err)}
	}
	if sc := s.takeIdle(); sc != nil {
		retry, err := s.deliver(ctx, sc, msg, true)
		if !retry {
			return err
		}
	}
	sc, err := s.connect(ctx, mode, host)
	if err != nil {
		return err
	}
	_, err = s.deliver(ctx, sc, msg, false)
	return err
}

// connect opens a new session, authenticated when a username is set.
func (s *Sender) connect(ctx context.Context, mode, host string) (*cachedConn, error) {
	timeout := s.timeout()
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, sendFailure(ctx, StageDial, err)
	}
	// go-smtp knows no context: closing the connection is what interrupts a
	// command in flight.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, stage, err := s.open(ctx, conn, mode, host, timeout)
	if err != nil {
		conn.Close()
		return nil, sendFailure(ctx, stage, err)
	}
	if s.Username != "" {
		if err := s.auth(c); err != nil {
			conn.Close()
			return nil, sendFailure(ctx, StageAuth, err)
		}
	}
	return &cachedConn{conn: conn, c: c, born: time.Now()}, nil
}

// deliver runs one mail transaction over sc, which it then caches or
// closes. retry reports a failure of the first command on a cached
// connection (reused) that means the server had closed the session: the
// mail may go again on a new connection.
func (s *Sender) deliver(ctx context.Context, sc *cachedConn, msg mail.Outgoing, reused bool) (retry bool, err error) {
	stop := context.AfterFunc(ctx, func() { sc.conn.Close() })
	fail := func(stage string, err error) error {
		stop()
		// The TCP connection itself: closing the TLS layer first would
		// try a close_notify on a connection that may not be writable.
		sc.conn.Close()
		return sendFailure(ctx, stage, err)
	}
	// go-smtp sets a deadline for each command and clears it after; clear
	// here too, so that nothing from the last use of a cached connection
	// (the write deadline of the data) can outlive it.
	_ = sc.conn.SetDeadline(time.Time{})
	c := sc.c
	timeout := s.timeout()

	opts := &smtp.MailOptions{Size: int64(len(msg.Raw))}
	if !allASCII(msg.From) || !allASCII(msg.To...) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			stop()
			sc.conn.Close()
			return false, &SendError{Stage: StageMail, Err: errors.New("non-ASCII address and the server lacks SMTPUTF8")}
		}
		opts.UTF8 = true
	}
	if max, ok := c.MaxMessageSize(); ok && max > 0 && len(msg.Raw) > max {
		stop()
		sc.conn.Close()
		return false, &SendError{Stage: StageMail, Err: fmt.Errorf("message of %d bytes, server takes at most %d", len(msg.Raw), max)}
	}
	// A cached connection needs no RSET: only sessions whose last
	// transaction ended with the server taking the mail are cached, and
	// the session is then ready for the next MAIL FROM.
	if err := c.Mail(msg.From, opts); err != nil {
		return reused && ctx.Err() == nil && dropped(err), fail(StageMail, err)
	}
	for _, to := range msg.To {
		if err := c.Rcpt(to, nil); err != nil {
			return false, fail(StageRcpt, fmt.Errorf("<%s>: %w", to, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return false, fail(StageData, err)
	}
	// Writing the body has no deadline of its own in go-smtp: a server
	// that stops reading would block it.
	_ = sc.conn.SetWriteDeadline(time.Now().Add(max(timeout, minSubmitTimeout)))
	if _, err := w.Write(msg.Raw); err != nil {
		return false, fail(StageData, err)
	}
	if err := w.Close(); err != nil {
		return false, fail(StageData, err)
	}
	// The server took the mail: from here on nothing is an error, since
	// reporting one would get the mail sent twice.
	sc.uses++
	if s.MaxIdle > 0 && stop() {
		// stop() true: ctx did not close the connection, it is ours.
		if !s.putIdle(sc) {
			s.goodbye(sc)
		}
		return false, nil
	}
	_ = c.Quit()
	stop()
	c.Close()
	return false, nil
}

// dropped reports whether err, on the first command of a cached
// connection, says that the server had ended the session while it was
// idle: the connection was closed or reset, or the server answered 421
// (closing). A timeout is not such a sign: the server is there but slow,
// and waiting for it a second time would not help.
func dropped(err error) bool {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr.Code == 421
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return !netErr.Timeout()
	}
	// A reset or a broken pipe comes as a *net.OpError, a net.Error.
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (s *Sender) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return defaultIdleLife
}

func (s *Sender) reuseLimit() int {
	if s.ReuseLimit > 0 {
		return s.ReuseLimit
	}
	return defaultReuse
}

// takeIdle returns the most recently used idle connection, or nil.
func (s *Sender) takeIdle() *cachedConn {
	if s.MaxIdle <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.idle)
	if n == 0 {
		return nil
	}
	sc := s.idle[n-1]
	s.idle[n-1] = nil
	s.idle = s.idle[:n-1]
	// If the timer fired already, its expire finds sc gone and leaves it.
	sc.timer.Stop()
	return sc
}

// putIdle caches sc, unless it has carried enough mail, the cache is full
// or closed. It reports whether it kept sc.
func (s *Sender) putIdle(sc *cachedConn) bool {
	if sc.uses >= s.reuseLimit() || time.Since(sc.born) >= reuseTimeLimit {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.idle) >= s.MaxIdle {
		return false
	}
	if sc.timer == nil {
		sc.timer = time.AfterFunc(s.idleTimeout(), func() { s.expire(sc) })
	} else {
		sc.timer.Reset(s.idleTimeout())
	}
	s.idle = append(s.idle, sc)
	return true
}

// expire closes sc if it is still idle. Whoever removes a connection from
// the idle list, under the lock, owns it: a Send that took sc first keeps
// it.
func (s *Sender) expire(sc *cachedConn) {
	s.mu.Lock()
	i := slices.Index(s.idle, sc)
	if i < 0 {
		s.mu.Unlock()
		return
	}
	s.idle = slices.Delete(s.idle, i, i+1)
	s.closing.Add(1)
	s.mu.Unlock()
	defer s.closing.Done()
	s.goodbye(sc)
}

// goodbye ends an idle session politely: QUIT, with a short wait, then
// close.
func (s *Sender) goodbye(sc *cachedConn) {
	sc.c.CommandTimeout = min(s.timeout(), quitTimeout)
	_ = sc.c.Quit()
	sc.c.Close()
}

// Close closes the idle connections and stops caching: a Send after it
// still works, over a connection of its own. A connection in use by a
// Send is closed when that Send ends. Close waits for the sessions it
// ends to say QUIT (a few seconds at most).
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	for _, sc := range idle {
		sc.timer.Stop()
	}
	s.closing.Add(len(idle))
	s.mu.Unlock()
	for _, sc := range idle {
		go func() {
			defer s.closing.Done()
			s.goodbye(sc)
		}()
	}
	s.closing.Wait()
	return nil
}

// open makes the SMTP session up to a successful EHLO, over TLS when asked.
// It returns the stage that failed.
func (s *Sender) open(ctx context.Context, conn net.Conn, mode, host string, timeout time.Duration) (*smtp.Client, string, error) {
	helo := s.HeloName
	if helo == "" {
		helo = defaultHeloName
	}
	cfg := &tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}

	var c *smtp.Client
	stage := StageDial
	switch mode {
	case tlsImplicit:
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return nil, StageTLS, err
		}
		c = smtp.NewClient(tc)
	case tlsStartTLS:
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
	c.SubmissionTimeout = max(timeout, minSubmitTimeout)
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
		a = &loginClient{username: s.Username, password: s.Password}
	default:
		_, mechs := c.Extension("AUTH")
		return fmt.Errorf("server offers neither AUTH PLAIN nor LOGIN (offers %q)", mechs)
	}
	return c.Auth(a)
}

// loginClient is SASL LOGIN that answers the prompts by what they ask:
// go-sasl's client requires the exact challenge "Password:", which not every
// server sends.
type loginClient struct {
	username, password string
	step               int
}

func (a *loginClient) Start() (string, []byte, error) {
	return sasl.Login, nil, nil
}

func (a *loginClient) Next(challenge []byte) ([]byte, error) {
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

// checkOutgoing refuses, as permanent, a message that no server could take.
func checkOutgoing(msg mail.Outgoing) error {
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

// sendFailure wraps err into a SendError: a 5xx reply is permanent, anything
// else temporary. When ctx ended, its error is kept in the chain since the
// closed connection is what the caller would otherwise see.
func sendFailure(ctx context.Context, stage string, err error) error {
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

func allASCII(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}
