package imapreader

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"supportbridge/bridge"
)

// Disposition is what becomes of a message once handled.
type Disposition int

// The dispositions. The zero value is none of them: a verdict without one
// sends the message to quarantine, where someone will look at it.
const (
	// DispositionProcessed moves the message to the processed mailbox:
	// its effect is committed.
	DispositionProcessed Disposition = iota + 1
	// DispositionQuarantine moves it to the quarantine mailbox: it could
	// not be parsed or matched, and a human should look at it.
	DispositionQuarantine
	// DispositionRetry leaves it where it is, to be handled again on the
	// next pass; the checkpoint does not move past it.
	DispositionRetry
)

func (d Disposition) String() string {
	switch d {
	case DispositionProcessed:
		return "processed"
	case DispositionQuarantine:
		return "quarantine"
	case DispositionRetry:
		return "retry"
	}
	return "Disposition(" + strconv.Itoa(int(d)) + ")"
}

// Verdict is a handler's decision on a message. Reason says why, for the
// log, on a quarantine or a retry; it must not quote the mail.
type Verdict struct {
	Disposition Disposition
	Reason      string
}

// FetchedMessage is a message of the watched mailbox, as the handler gets
// it. Nothing has marked it \Seen.
type FetchedMessage struct {
	UID         uint32
	UIDValidity uint32
	Size        int64  // RFC822.SIZE
	Raw         []byte // the whole message; nil when TooLarge
	// TooLarge is set when the message exceeds MaxMessageBytes: it was not
	// downloaded.
	TooLarge     bool
	InternalDate time.Time
}

// MessageHandler handles the messages of the watched mailbox in two steps,
// which the reader calls for several messages of a batch at once while
// keeping in arrival (UID) order what must be:
//
//   - Route reads a message and tells where it goes: the key its effect is
//     ordered by (a ticket), and whether applying it teaches something the
//     later messages are routed by (a barrier). Route must change nothing:
//     the reader calls it again when a barrier before the message was
//     applied after Route began, since what the barrier taught may change
//     the route.
//   - Apply carries the message's effect out with the route Route gave, and
//     tells what becomes of the message. The reader calls it once every
//     earlier barrier of the batch and every earlier message with the same
//     key have been applied. When one of those was not committed (an error,
//     a retry), the message is not applied: it is left for a later pass,
//     with it.
//
// An error from either step means the handler could not decide for now
// (Redis down, a timeout): the pass stops, nothing is moved, and the
// message is handled again after a reconnection. An error that retrying
// cannot fix — wrapped with bridge.Permanent, or a *bridge.Error with a code
// other than bridge.CodeUnavailable — sends the message to quarantine
// instead, and the pass goes on; so does a panic in the handler.
type MessageHandler interface {
	Route(ctx context.Context, m FetchedMessage) (Route, error)
	Apply(ctx context.Context, m FetchedMessage, rt Route) (Verdict, error)
}

// Route is where a message goes, as MessageHandler.Route tells it.
type Route struct {
	// Key orders the message's effect: messages with the same key are
	// applied in UID order. "" when the message touches no ticket: it
	// waits only for the barriers before it.
	Key string
	// Barrier is set when applying the message teaches something later
	// messages are routed by (a desk number learned from an
	// acknowledgement): they are routed after it is applied.
	Barrier bool
	// Data is the handler's own: what Route computed, for Apply.
	Data any
}

// Leaser hands out the lease that lets one replica at a time read a
// mailbox (*redisstore.Store is one). Fences grow at every acquisition.
type Leaser interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (fence int64, ok bool, err error)
	RenewLease(ctx context.Context, name, holder string, fence int64, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string, fence int64) error
}

// Checkpointer keeps how far the reader got in a mailbox
// (*redisstore.Store is one). A save under a fence that is no longer the
// lease's must fail.
type Checkpointer interface {
	LoadMailboxCheckpoint(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, fence int64, err error)
	SaveMailboxCheckpoint(ctx context.Context, mailbox string, uidValidity, lastUID uint32, fence int64) error
}

// Config configures a Reader. Zero values take the defaults given.
type Config struct {
	Addr string // host:port
	// TLS is "implicit" (the default), "starttls" or "none".
	TLS                string
	Username, Password string
	Mailbox            string // watched; default INBOX
	ProcessedMailbox   string // default Processed
	QuarantineMailbox  string // default Quarantine
	// RootCAs verifies the server's certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// PollInterval is the wait between passes without IDLE, and the
	// safety-net pass with it; default 30s.
	PollInterval time.Duration
	// IDLE waits for new mail with IDLE when the server has it.
	IDLE bool
	// MaxMessageBytes: bigger messages are handed over TooLarge, without
	// their body; default 40 MiB.
	MaxMessageBytes int64
	// BatchSize is how many messages a FETCH asks for, and are moved
	// with one UID MOVE; default 200. Bodies are still fetched in chunks
	// of at most 8 MiB (or one message), so it does not bound memory.
	BatchSize int
	// Workers is how many messages are handled at once; default 32. The
	// handler mostly waits on Redis, and the store carries the calls of
	// concurrent handlers in shared pipelines: more of them at once means
	// fewer round trips per mail. Per-ticket order is kept (see
	// MessageHandler).
	Workers int
	// LeaseTTL is the life of the reading lease, renewed every third of
	// it; default 30s.
	LeaseTTL time.Duration
	// Holder names this replica in the lease; default host-pid-random.
	Holder string
	Logger *slog.Logger // default: discard
	// DialTimeout bounds the connection, TLS and login; default 30s.
	DialTimeout time.Duration
}

// State is what the reader is doing, for /readyz, metrics and the status
// page.
type State = bridge.MailboxState

const (
	tlsImplicit = "implicit"
	tlsStartTLS = "starttls"
	tlsNone     = "none"

	defaultPoll      = 30 * time.Second
	defaultMaxBytes  = 40 << 20
	defaultBatch     = 200
	defaultWorkers   = 32
	defaultLeaseTTL  = 30 * time.Second
	defaultDial      = 30 * time.Second
	minLeaseTTL      = 30 * time.Millisecond
	backoffMin       = time.Second
	backoffMax       = time.Minute
	releaseTimeout   = 5 * time.Second
	chunkBudgetBytes = 8 << 20 // body bytes one FETCH may bring in memory
	// RFC 2177: clients should re-issue IDLE at least every 29 minutes, or
	// the server may log them out as inactive.
	idleMax = 25 * time.Minute
)

// errIMAPLeaseLost ends a session whose lease could not be renewed.
var errIMAPLeaseLost = errors.New("imap: reading lease lost")

// Reader reads a mailbox: it hands each new message to a handler, in
// UID order, then moves it as the handler says, and records a checkpoint.
// Only the replica that holds the mailbox's lease reads.
type Reader struct {
	cfg     Config
	lease   Leaser
	cp      Checkpointer
	handler MessageHandler
	log     *slog.Logger
	cfgErr  error

	mu    sync.Mutex
	state State
}

// NewIMAPReader returns a reader; Run starts it. Configuration errors are
// reported by Run.
func NewIMAPReader(cfg Config, lease Leaser, cp Checkpointer, handler MessageHandler) *Reader {
	r := &Reader{lease: lease, cp: cp, handler: handler}
	r.cfg, r.cfgErr = defaults(cfg)
	r.log = r.cfg.Logger.With("mailbox", r.cfg.Mailbox)
	if lease == nil || cp == nil || handler == nil {
		r.cfgErr = errors.Join(r.cfgErr, errors.New("imap: a leaser, a checkpointer and a handler are required"))
	}
	return r
}

func defaults(cfg Config) (Config, error) {
	var errs []error
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = tlsImplicit
	}
	if cfg.TLS != tlsImplicit && cfg.TLS != tlsStartTLS && cfg.TLS != tlsNone {
		errs = append(errs, fmt.Errorf("imap: unknown tls mode %q", cfg.TLS))
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		errs = append(errs, fmt.Errorf("imap: address %q: %w", cfg.Addr, err))
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.ProcessedMailbox == "" {
		cfg.ProcessedMailbox = "Processed"
	}
	if cfg.QuarantineMailbox == "" {
		cfg.QuarantineMailbox = "Quarantine"
	}
	same := func(a, b string) bool {
		if strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX") {
			return true
		}
		return a == b
	}
	if same(cfg.Mailbox, cfg.ProcessedMailbox) || same(cfg.Mailbox, cfg.QuarantineMailbox) {
		errs = append(errs, errors.New("imap: the processed and quarantine mailboxes must differ from the watched one"))
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPoll
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = defaultMaxBytes
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultBatch
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = defaultLeaseTTL
	}
	if cfg.LeaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("imap: lease ttl %v is below %v", cfg.LeaseTTL, minLeaseTTL))
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDial
	}
	if cfg.Holder == "" {
		cfg.Holder = defaultHolder()
	}
	return cfg, errors.Join(errs...)
}

// defaultHolder names this process uniquely, and recognisably in
// ops/status output.
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// State returns a snapshot of what the reader is doing.
func (r *Reader) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *Reader) update(f func(s *State)) {
	r.mu.Lock()
	f(&r.state)
	r.mu.Unlock()
}

func (r *Reader) leaseName() string { return "imap:" + r.cfg.Mailbox }

// Run reads the mailbox until ctx ends, then releases the lease and returns
// nil. Failures (server, network, Redis) are logged and retried with
// backoff; only an invalid configuration makes Run return an error.
func (r *Reader) Run(ctx context.Context) error {
	if r.cfgErr != nil {
		return r.cfgErr
	}
	backoff := backoffMin
	waiting := false // for the lease, held elsewhere: said once
	for ctx.Err() == nil {
		fence, ok, err := r.lease.AcquireLease(ctx, r.leaseName(), r.cfg.Holder, r.cfg.LeaseTTL)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			r.failed(fmt.Errorf("imap: acquire lease: %w", err))
			sleepCtx(ctx, jitter(backoff))
			backoff = nextBackoff(backoff)
			continue
		}
		if !ok {
			if !waiting {
				r.log.Info("imap: another replica reads the mailbox; waiting for its lease", "instance", r.cfg.Holder)
				waiting = true
			}
			sleepCtx(ctx, jitter(r.cfg.LeaseTTL/3))
			continue
		}
		waiting = false
		r.update(func(s *State) { s.LeaseHeld = true })
		r.log.Info("imap: lease acquired", "holder", r.cfg.Holder, "fence", fence)

		progressed, err := r.serve(ctx, fence)

		r.update(func(s *State) { s.LeaseHeld, s.Connected, s.Idle = false, false, false })
		if !errors.Is(err, errIMAPLeaseLost) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			if rerr := r.lease.ReleaseLease(rctx, r.leaseName(), r.cfg.Holder, fence); rerr != nil {
				r.log.Warn("imap: release lease", "err", rerr)
			}
			cancel()
		}
		if ctx.Err() != nil {
			break
		}
		if progressed {
			backoff = backoffMin
		}
		r.failed(err)
		sleepCtx(ctx, jitter(backoff))
		backoff = nextBackoff(backoff)
	}
	r.log.Info("imap: reader stopped")
	return nil
}

func (r *Reader) failed(err error) {
	if err == nil {
		return
	}
	r.log.Warn("imap: reader failed; will retry", "err", err)
	r.update(func(s *State) { s.LastError = err.Error() })
}

func nextBackoff(d time.Duration) time.Duration {
	return min(2*d, backoffMax)
}

// jitter spreads d over [d/2, d], so replicas that failed together do
// not come back together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + mrand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// serve holds the lease under fence: it keeps it renewed and reads the
// mailbox over one connection until something fails or ctx ends. It tells
// whether a pass went through.
func (r *Reader) serve(ctx context.Context, fence int64) (progressed bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.keepLease(sctx, cancel, fence)
	}()
	s := &session{fence: fence, wake: make(chan struct{}, 1)}
	err = r.session(sctx, s)
	cancel(nil)
	<-done
	if cause := context.Cause(sctx); errors.Is(cause, errIMAPLeaseLost) {
		r.log.Warn("imap: lease lost; connection dropped", "fence", fence)
		return s.progressed, cause
	}
	return s.progressed, err
}

// keepLease renews the lease every third of its life. When it is refused,
// or cannot be renewed before it runs out, the session is cancelled: from
// then on another replica may read the mailbox.
func (r *Reader) keepLease(ctx context.Context, cancel context.CancelCauseFunc, fence int64) {
	ttl := r.cfg.LeaseTTL
	every := ttl / 3
	last := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, every)
		ok, err := r.lease.RenewLease(rctx, r.leaseName(), r.cfg.Holder, fence, ttl)
		rcancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ok:
			last = time.Now()
			continue
		case err == nil:
			cancel(errIMAPLeaseLost)
			return
		}
		r.log.Warn("imap: renew lease", "err", err)
		// One more failure and the lease may run out before the next try.
		if time.Since(last)+every >= ttl {
			cancel(errIMAPLeaseLost)
			return
		}
	}
}

// session is one connection's worth of reading.
type session struct {
	c           *imapclient.Client
	fence       int64
	idle        bool          // the server has IDLE and the config wants it
	wake        chan struct{} // new mail announced (EXISTS)
	uidValidity uint32        // of the checkpoint
	last        uint32        // checkpoint: every UID up to it is done
	progressed  bool
}

func (r *Reader) session(ctx context.Context, s *session) error {
	uv, last, _, err := r.cp.LoadMailboxCheckpoint(ctx, r.cfg.Mailbox)
	if err != nil {
		return fmt.Errorf("imap: load checkpoint: %w", err)
	}
	s.uidValidity, s.last = uv, last

	c, err := r.connect(ctx, s.wake)
	if err != nil {
		return err
	}
	s.c = c
	// The library has no context: closing the connection is what
	// interrupts a command in flight, or IDLE.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer func() {
		stop()
		_ = c.Close()
	}()

	for _, box := range []string{r.cfg.ProcessedMailbox, r.cfg.QuarantineMailbox} {
		if err := ensureMailbox(c, box); err != nil {
			return err
		}
	}
	s.idle = r.cfg.IDLE && c.Caps().Has(imap.CapIdle)
	if r.cfg.IDLE && !s.idle {
		r.log.Info("imap: the server lacks IDLE; polling", "every", r.cfg.PollInterval)
	}
	r.update(func(st *State) { st.Connected = true })
	r.log.Info("imap: connected", "addr", r.cfg.Addr, "idle", s.idle, "checkpoint_uid", s.last, "uidvalidity", s.uidValidity)

	for {
		if err := r.pass(ctx, s); err != nil {
			return ctxErr(ctx, err)
		}
		s.progressed = true
		r.update(func(st *State) { st.LastSuccess, st.LastError = time.Now(), "" })
		if err := r.wait(ctx, s); err != nil {
			return ctxErr(ctx, err)
		}
	}
}

// ctxErr prefers the reason the session was cancelled to the broken
// connection it caused.
func ctxErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// connect dials, secures and logs in. The unilateral handler turns EXISTS
// into a wake-up.
func (r *Reader) connect(ctx context.Context, wake chan<- struct{}) (*imapclient.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", r.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("imap: dial %s: %w", r.cfg.Addr, err)
	}
	// Until logged in, the dial timeout bounds everything, whatever the
	// library's own timeouts.
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	c, err := r.login(dctx, conn, wake)
	if !stop() && err == nil {
		_ = c.Close()
		err = fmt.Errorf("imap: connect %s: %w", r.cfg.Addr, context.Cause(dctx))
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

func (r *Reader) login(ctx context.Context, conn net.Conn, wake chan<- struct{}) (*imapclient.Client, error) {
	host, _, _ := net.SplitHostPort(r.cfg.Addr)
	tlsCfg := &tls.Config{ServerName: host, RootCAs: r.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	opts := &imapclient.Options{
		TLSConfig: tlsCfg,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case wake <- struct{}{}:
					default:
					}
				}
			},
			// Expunges (and the memory server's "* 0 EXPUNGE" after a
			// MOVE) need nothing: the reader only speaks in UIDs.
			Expunge: func(uint32) {},
		},
	}
	var c *imapclient.Client
	switch r.cfg.TLS {
	case tlsImplicit:
		implicit := tlsCfg.Clone()
		implicit.NextProtos = []string{"imap"}
		tc := tls.Client(conn, implicit)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("imap: tls %s: %w", r.cfg.Addr, err)
		}
		c = imapclient.New(tc, opts)
	case tlsStartTLS:
		var err error
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			return nil, fmt.Errorf("imap: starttls %s: %w", r.cfg.Addr, err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("imap: greeting %s: %w", r.cfg.Addr, err)
	}
	if c.State() == imap.ConnStateAuthenticated {
		return c, nil // PREAUTH
	}
	caps := c.Caps()
	var err error
	switch {
	case caps.Has(imap.AuthCap(sasl.Plain)):
		err = c.Authenticate(sasl.NewPlainClient("", r.cfg.Username, r.cfg.Password))
	case caps.Has(imap.CapLoginDisabled):
		err = errors.New("the server disables LOGIN and offers no AUTH=PLAIN (TLS needed?)")
	default:
		err = c.Login(r.cfg.Username, r.cfg.Password).Wait()
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("imap: login as %s: %w", r.cfg.Username, err)
	}
	return c, nil
}

// ensureMailbox creates box unless it exists.
func ensureMailbox(c *imapclient.Client, box string) error {
	err := c.Create(box, nil).Wait()
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return fmt.Errorf("imap: create %s: %w", box, err)
	}
	if ie.Code == imap.ResponseCodeAlreadyExists {
		return nil
	}
	// Some servers say NO without ALREADYEXISTS: look for it.
	if l, lerr := c.List("", box, nil).Collect(); lerr == nil && len(l) > 0 {
		return nil
	}
	return fmt.Errorf("imap: create %s: %w", box, err)
}

// msgMeta is what a message's first, cheap FETCH tells.
type msgMeta struct {
	size int64
	date time.Time
}

// fetched is a downloaded message; tooLarge when it turned out bigger than
// announced.
type fetched struct {
	raw      []byte
	tooLarge bool
}

// pass handles every message above the checkpoint, in UID order.
func (r *Reader) pass(ctx context.Context, s *session) error {
	sel, err := s.c.Select(r.cfg.Mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap: select %s: %w", r.cfg.Mailbox, err)
	}
	if sel.UIDValidity == 0 {
		return fmt.Errorf("imap: select %s: no UIDVALIDITY", r.cfg.Mailbox)
	}
	if sel.UIDValidity != s.uidValidity {
		if s.uidValidity != 0 {
			r.log.Warn("imap: UIDVALIDITY changed; reading the whole mailbox again (the handler dedupes by Message-ID)",
				"old", s.uidValidity, "new", sel.UIDValidity)
		} else {
			r.log.Info("imap: no checkpoint yet; reading the whole mailbox", "uidvalidity", sel.UIDValidity)
		}
		if err := r.cp.SaveMailboxCheckpoint(ctx, r.cfg.Mailbox, sel.UIDValidity, 0, s.fence); err != nil {
			return fmt.Errorf("imap: save checkpoint: %w", err)
		}
		s.uidValidity, s.last = sel.UIDValidity, 0
	}
	if sel.NumMessages == 0 || s.last == math.MaxUint32 {
		return nil
	}
	// UID n:* always matches the highest UID, even below n: filtered out
	// below. \Deleted messages are on their way out (a MOVE fallback that
	// stopped before its EXPUNGE): not handled again.
	crit := &imap.SearchCriteria{
		UID:     []imap.UIDSet{{imap.UIDRange{Start: imap.UID(s.last + 1), Stop: 0}}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}
	sd, err := s.c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap: search: %w", err)
	}
	var uids []imap.UID
	for _, u := range sd.AllUIDs() {
		if uint32(u) > s.last {
			uids = append(uids, u)
		}
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)

	// The checkpoint moves over the finished prefix of uids only: a
	// retried message holds it back, so that it is found again. It is
	// saved once per batch, after the batch's moves: a crash before that
	// hands the applied messages over again, and the apply is idempotent.
	done := 0
	finished := make([]bool, len(uids))
	checkpoint := func() error {
		advanced := false
		for done < len(uids) && finished[done] {
			done++
			advanced = true
		}
		if !advanced {
			return nil
		}
		last := uint32(uids[done-1])
		if err := r.cp.SaveMailboxCheckpoint(ctx, r.cfg.Mailbox, s.uidValidity, last, s.fence); err != nil {
			return fmt.Errorf("imap: save checkpoint at uid %d: %w", last, err)
		}
		s.last = last
		return nil
	}

	for start := 0; start < len(uids); start += r.cfg.BatchSize {
		end := min(start+r.cfg.BatchSize, len(uids))
		err := r.batch(ctx, s, uids[start:end], func(j int) { finished[start+j] = true })
		if err != nil {
			// What was moved before the failure is done: keep it.
			if cerr := checkpoint(); cerr != nil {
				r.log.Warn("imap: save checkpoint after a failed batch", "err", cerr)
			}
			return err
		}
		if err := checkpoint(); err != nil {
			return err
		}
	}
	return nil
}

// message is one message of a batch, from its fetch to its move. The
// batch's messages are one slice, in UID order; while a chunk is handled,
// its messages' state, route, verdict and clocks are guarded by the
// chunk's order.
type message struct {
	msg   FetchedMessage // its Raw is dropped once its chunk is handled
	state msgState
	// routed tells that route is the handler's final one: set with
	// msgRouted, and kept when the message is then decided or left.
	routed  bool
	route   Route
	verdict Verdict
	err     error // why it was left, when the pass must stop
	// routeStart is the chunk's clock when Route was last begun, doneAt
	// when the message was decided or left: a barrier done after a later
	// message's Route began makes that one be routed again.
	routeStart, doneAt uint64
}

// msgState is where a message of a batch is.
type msgState int

const (
	// msgWaiting: not routed yet (or Route is running).
	msgWaiting msgState = iota
	// msgRouted: its route is known; Apply has not returned.
	msgRouted
	// msgDecided: its verdict (processed or quarantine) awaits the move.
	msgDecided
	// msgLeft: left for a later pass, its effect not committed: an
	// error, a retry verdict, an earlier message it follows left, or the
	// pass stopped before it.
	msgLeft
	// msgGone: expunged since the search; nothing to do.
	msgGone
	// moved: moved where its verdict says; finished.
	moved
)

// flush moves what the batch decided: the processed messages in one UID
// MOVE, the quarantined ones in another. Only then are they finished.
func (r *Reader) flush(s *session, msgs []message, finish func(j int)) error {
	var processed, quarantined []imap.UID
	for k := range msgs {
		if m := &msgs[k]; m.state == msgDecided {
			if m.verdict.Disposition == DispositionProcessed {
				processed = append(processed, imap.UID(m.msg.UID))
			} else {
				quarantined = append(quarantined, imap.UID(m.msg.UID))
			}
		}
	}
	if len(processed) > 0 {
		if err := move(s.c, processed, r.cfg.ProcessedMailbox); err != nil {
			return err
		}
		n := uint64(len(processed))
		r.log.Debug("imap: messages processed", "count", n)
		r.update(func(st *State) { st.Processed += n })
	}
	if len(quarantined) > 0 {
		if err := move(s.c, quarantined, r.cfg.QuarantineMailbox); err != nil {
			return err
		}
		for k := range msgs {
			if m := &msgs[k]; m.state == msgDecided && m.verdict.Disposition != DispositionProcessed {
				r.log.Warn("imap: message quarantined", "uid", m.msg.UID, "reason", m.verdict.Reason)
			}
		}
		n := uint64(len(quarantined))
		r.update(func(st *State) { st.Quarantined += n })
	}
	for k := range msgs {
		switch m := &msgs[k]; m.state {
		case msgDecided:
			m.state = moved
			finish(k)
		case msgGone:
			finish(k)
		}
	}
	return nil
}

// move moves uids with one command: MOVE, or COPY + STORE \Deleted +
// (UID) EXPUNGE where the server lacks it (the library picks).
func move(c *imapclient.Client, uids []imap.UID, box string) error {
	if _, err := c.Move(imap.UIDSetNum(uids...), box).Wait(); err != nil {
		return fmt.Errorf("imap: move %d messages to %s: %w", len(uids), box, err)
	}
	return nil
}

// batch handles uids (ascending): sizes and dates first, then the bodies
// of those not too large, a memory budget's worth at a time. The handler
// runs in UID order; the moves are gathered and done once for the batch.
func (r *Reader) batch(ctx context.Context, s *session, uids []imap.UID, finish func(j int)) (err error) {
	meta, err := fetchMeta(s.c, uids)
	if err != nil {
		return err
	}
	msgs := make([]message, len(uids))
	for k, uid := range uids {
		mm, ok := meta[uid]
		msgs[k].msg = FetchedMessage{UID: uint32(uid), UIDValidity: s.uidValidity, Size: mm.size,
			TooLarge: mm.size > r.cfg.MaxMessageBytes, InternalDate: mm.date}
		if !ok {
			msgs[k].state = msgGone // expunged since the search
		}
	}
	// Whatever stops the batch, what was decided is carried out: one bad
	// message, or a Redis outage half-way, does not hold back the others.
	defer func() {
		if ferr := r.flush(s, msgs, finish); ferr != nil && err == nil {
			err = ferr
		}
	}()
	budget := max(int64(chunkBudgetBytes), r.cfg.MaxMessageBytes)
	bodies := map[imap.UID]fetched{}
	for j := 0; j < len(msgs); {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A chunk: the next messages whose bodies fit in the budget (at
		// least one), downloaded in one streamed UID FETCH.
		end := j
		var chunk []imap.UID
		var total int64
		for ; end < len(msgs); end++ {
			m := &msgs[end]
			if m.state == msgGone || m.msg.TooLarge {
				continue
			}
			if len(chunk) > 0 && total+m.msg.Size > budget {
				break
			}
			chunk = append(chunk, imap.UID(m.msg.UID))
			total += m.msg.Size
		}
		clear(bodies)
		if err := r.fetchBodies(s.c, chunk, bodies); err != nil {
			return err
		}
		for k := j; k < end; k++ {
			m := &msgs[k]
			if m.state == msgGone || m.msg.TooLarge {
				continue
			}
			b, ok := bodies[imap.UID(m.msg.UID)]
			switch {
			case !ok:
				m.state = msgGone // expunged meanwhile
			case b.raw == nil && !b.tooLarge:
				// The server would not give this one out; the others
				// must not wait for it.
				m.state, m.verdict = msgDecided, Verdict{Disposition: DispositionQuarantine, Reason: "the server refused to fetch it"}
			default:
				m.msg.Raw, m.msg.TooLarge = b.raw, b.tooLarge
			}
		}
		err := r.handleChunk(ctx, msgs[j:end])
		for k := j; k < end; k++ {
			msgs[k].msg.Raw = nil // the budget is per chunk
		}
		if err != nil {
			return err
		}
		j = end
	}
	return nil
}

// handleChunk routes and applies the waiting messages of msgs (in UID
// order) with a few workers: the handler mostly waits on Redis, so several
// in flight hide the round trips; an order keeps what must stay in
// arrival order in order. The first error, in UID order, is returned once
// every started message is done.
func (r *Reader) handleChunk(ctx context.Context, msgs []message) error {
	o := newIMAPOrder(msgs)
	next := make(chan int, len(msgs))
	for i := range msgs {
		if msgs[i].state == msgWaiting {
			next <- i // in order: an earlier message always has a worker first
		}
	}
	close(next)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(next)) {
		wg.Go(func() {
			for i := range next {
				r.handleOne(ctx, o, i)
			}
		})
	}
	wg.Wait()
	for i := range msgs {
		if msgs[i].err != nil {
			return msgs[i].err
		}
	}
	return nil
}

// handleOne takes message i of o through the handler: Route; once every
// earlier message is routed and the barriers among them applied, Route
// again if one of those was applied after Route began; once the earlier
// messages of its key are applied, Apply.
func (r *Reader) handleOne(ctx context.Context, o *order, i int) {
	m := o.msgs[i].msg // Raw and the rest are not written while handled
	start, ok := o.begin(i)
	if !ok {
		// An earlier message failed: the pass ends; this one waits for
		// the next.
		o.leave(i, nil)
		return
	}
	rt, q, err := r.route(ctx, m)
	if err == nil && q == nil {
		var again bool
		if again, err = o.waitBarriers(i, start); err != nil {
			err = fmt.Errorf("imap: uid %d: %w", m.UID, err)
		} else if again {
			// What a barrier taught may change the route.
			rt, q, err = r.route(ctx, m)
		}
	}
	switch {
	case err != nil:
		o.leave(i, err)
		return
	case q != nil:
		o.decide(i, *q)
		return
	}
	o.publish(i, rt)
	if rt.Key != "" {
		if err := o.waitTurn(i, rt.Key); err != nil {
			o.leave(i, fmt.Errorf("imap: uid %d: %w", m.UID, err))
			return
		}
	}
	v, err := r.apply(ctx, m, rt)
	switch {
	case err != nil:
		o.leave(i, err)
	case v.Disposition == DispositionRetry:
		r.log.Info("imap: message left for a later pass", "uid", m.UID, "reason", v.Reason)
		r.update(func(st *State) { st.Retried++ })
		o.leave(i, nil)
	case v.Disposition == DispositionProcessed, v.Disposition == DispositionQuarantine:
		o.decide(i, v)
	default:
		o.decide(i, Verdict{Disposition: DispositionQuarantine,
			Reason: fmt.Sprintf("unknown disposition %d (%s)", int(v.Disposition), v.Reason)})
	}
}

// fetchMeta asks for sizes and dates: nothing is downloaded yet.
func fetchMeta(c *imapclient.Client, uids []imap.UID) (map[imap.UID]msgMeta, error) {
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("imap: fetch sizes: %w", err)
	}
	meta := make(map[imap.UID]msgMeta, len(bufs))
	for _, b := range bufs {
		if b.UID != 0 {
			meta[b.UID] = msgMeta{size: b.RFC822Size, date: b.InternalDate}
		}
	}
	return meta, nil
}

// fetchBodies downloads the messages of chunk with BODY.PEEK[], which
// leaves \Seen alone. When the server refuses the FETCH (a NO, not a broken
// connection), each message is tried alone, and those still refused are
// recorded with no body.
func (r *Reader) fetchBodies(c *imapclient.Client, chunk []imap.UID, out map[imap.UID]fetched) error {
	if len(chunk) == 0 {
		return nil // an empty UID set would get the connection closed
	}
	err := r.fetchBodiesOnce(c, chunk, out)
	var ie *imap.Error
	if err == nil || !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || temporaryCode(ie.Code) {
		return err
	}
	if len(chunk) == 1 {
		r.log.Warn("imap: the server refuses to fetch a message", "uid", chunk[0], "err", err)
		out[chunk[0]] = fetched{}
		return nil
	}
	for _, uid := range chunk {
		if _, ok := out[uid]; ok {
			continue
		}
		if err := r.fetchBodies(c, []imap.UID{uid}, out); err != nil {
			return err
		}
	}
	return nil
}

// temporaryCode tells the NO answers that may go away by themselves.
func temporaryCode(code imap.ResponseCode) bool {
	switch code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeLimit,
		imap.ResponseCodeOverQuota, imap.ResponseCode("EXPUNGEISSUED"):
		return true
	}
	return false
}

func (r *Reader) fetchBodiesOnce(c *imapclient.Client, chunk []imap.UID, out map[imap.UID]fetched) error {
	sec := &imap.FetchItemBodySection{Peek: true}
	cmd := c.Fetch(imap.UIDSetNum(chunk...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}})
	var readErr error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		var body fetched
		got := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				got = true
				// RFC822.SIZE was checked; the literal is checked again
				// in case the server's size was off. What is not read is
				// discarded by the library.
				if it.Literal.Size() > r.cfg.MaxMessageBytes {
					body.tooLarge = true
					continue
				}
				// The literal's size is known: one buffer of that size,
				// rather than io.ReadAll's doublings (a 30 MB mail would
				// briefly need twice its size).
				raw := make([]byte, it.Literal.Size())
				if _, err := io.ReadFull(it.Literal, raw); err != nil {
					readErr = err
					continue
				}
				body.raw = raw
			}
		}
		if uid == 0 || !slices.Contains(chunk, uid) {
			continue
		}
		// A response without the body (NIL) still says the message is
		// there: recorded bodiless, it goes to quarantine rather than
		// being taken for expunged and left behind.
		if _, seen := out[uid]; got || !seen {
			out[uid] = body
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap: fetch: %w", err)
	}
	if readErr != nil {
		return fmt.Errorf("imap: fetch: %w", readErr)
	}
	return nil
}

// route runs the handler's Route, apply its Apply. A transient error comes
// back as an error; a permanent one, or a panic, as a quarantine verdict.
func (r *Reader) route(ctx context.Context, m FetchedMessage) (rt Route, q *Verdict, err error) {
	q, err = r.guard(ctx, m.UID, "route", func() (err error) {
		rt, err = r.handler.Route(ctx, m)
		return err
	})
	return rt, q, err
}

func (r *Reader) apply(ctx context.Context, m FetchedMessage, rt Route) (v Verdict, err error) {
	q, err := r.guard(ctx, m.UID, "apply", func() (err error) {
		v, err = r.handler.Apply(ctx, m, rt)
		return err
	})
	if q != nil {
		return *q, err
	}
	return v, err
}

func (r *Reader) guard(ctx context.Context, uid uint32, step string, f func() error) (q *Verdict, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("imap: the handler panicked; quarantining the message", "uid", uid, "step", step, "panic", fmt.Sprint(p))
			q, err = &Verdict{Disposition: DispositionQuarantine, Reason: "handler panicked"}, nil
		}
	}()
	err = f()
	if err == nil {
		return nil, nil
	}
	if ctx.Err() != nil || !permanent(err) {
		return nil, fmt.Errorf("imap: handle uid %d: %w", uid, err)
	}
	return &Verdict{Disposition: DispositionQuarantine, Reason: "handler: " + err.Error()}, nil
}

// permanent reports whether the handler's error sends the message to
// quarantine rather than leaving it for a later pass: a failure marked
// permanent (bridge.Permanent), or the domain's refusal (a *bridge.Error
// with a code other than bridge.CodeUnavailable), which the message would
// meet again. Any other error is temporary, as bridge's taxonomy has it.
func permanent(err error) bool {
	return bridge.IsPermanent(err) || bridge.ErrorCode(err) != bridge.CodeUnavailable
}

// wait returns when a pass is due: new mail announced, the poll interval
// gone by, or ctx ended. With IDLE, the poll interval is a safety net, and
// IDLE is never kept longer than idleMax.
func (r *Reader) wait(ctx context.Context, s *session) error {
	interval := r.cfg.PollInterval
	var idle *imapclient.IdleCommand
	if s.idle {
		interval = min(interval, idleMax)
		var err error
		if idle, err = s.c.Idle(); err != nil {
			return fmt.Errorf("imap: idle: %w", err)
		}
		r.update(func(st *State) { st.Idle = true })
		defer r.update(func(st *State) { st.Idle = false })
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.c.Closed():
		err = errors.New("imap: connection closed")
	case <-s.wake:
	case <-t.C:
	}
	if idle == nil {
		return err
	}
	if cerr := idle.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("imap: stop idle: %w", cerr)
	}
	if werr := idle.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("imap: idle: %w", werr)
	}
	return err
}

// errIMAPOutOfTurn is why a message is left when an earlier message it
// follows (a barrier, or one with the same key) was left for a later pass:
// applying it would go out of arrival order.
var errIMAPOutOfTurn = errors.New("imap: an earlier message for the same ticket was not handled")

// order keeps the messages of one chunk, which are handled
// concurrently, in arrival (UID) order where it matters: a message's route
// is final only once every earlier message is routed and the barriers
// among them are applied; and it is applied only once the earlier messages
// with the same key are. An earlier message left before it was routed may
// have had any key: the keyed messages after it are left too.
type order struct {
	mu    sync.Mutex
	cond  *sync.Cond
	msgs  []message
	clock uint64 // counts the messages done
	stop  bool   // a message failed: the ones not begun are left
}

func newIMAPOrder(msgs []message) *order {
	o := &order{msgs: msgs}
	o.cond = sync.NewCond(&o.mu)
	return o
}

// begin records that message i is being routed, and returns the clock; not
// ok when the pass is stopping.
func (o *order) begin(i int) (start uint64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs[i].routeStart = o.clock
	return o.clock, !o.stop
}

// waitBarriers returns once every message before i is routed (or done) and
// the barriers among them are done; again when one of those barriers was
// done after start. An earlier barrier left is errIMAPOutOfTurn.
func (o *order) waitBarriers(i int, start uint64) (again bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		wait := false
		again = false
		for j := range i {
			mj := &o.msgs[j]
			switch {
			case mj.state == msgWaiting:
				wait = true
			case !mj.routed || !mj.route.Barrier:
			case mj.state == msgLeft:
				return false, errIMAPOutOfTurn
			case mj.state == msgRouted:
				wait = true
			case mj.doneAt > start:
				again = true
			}
		}
		if !wait {
			return again, nil
		}
		o.cond.Wait()
	}
}

// publish records message i's final route.
func (o *order) publish(i int, rt Route) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := &o.msgs[i]
	m.state, m.routed, m.route = msgRouted, true, rt
	o.cond.Broadcast()
}

// waitTurn returns once every message before i with the same key is done.
// One of them left, or one left before it was routed, is errIMAPOutOfTurn.
func (o *order) waitTurn(i int, key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		wait := false
		for j := range i {
			mj := &o.msgs[j]
			switch {
			case mj.state == msgWaiting:
				wait = true
			case mj.state == msgLeft && (!mj.routed || mj.route.Key == key):
				return errIMAPOutOfTurn
			case mj.state == msgRouted && mj.route.Key == key:
				wait = true
			}
		}
		if !wait {
			return nil
		}
		o.cond.Wait()
	}
}

// decide records message i's verdict, processed or quarantine: its effect
// is committed, and it awaits its move.
func (o *order) decide(i int, v Verdict) {
	o.done(i, msgDecided, v, nil)
}

// leave records that message i is left for a later pass; err, when set,
// stops the pass.
func (o *order) leave(i int, err error) {
	o.done(i, msgLeft, Verdict{}, err)
}

func (o *order) done(i int, st msgState, v Verdict, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clock++
	m := &o.msgs[i]
	m.state, m.verdict, m.err, m.doneAt = st, v, err, o.clock
	if err != nil {
		o.stop = true
	}
	o.cond.Broadcast()
}
