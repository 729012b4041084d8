package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/config"
	"supportbridge/mail"
)

// Digests: the referents' summaries by mail, on the cron schedules of the
// configuration (digest.daily, digest.weekly).
//
// A period is the local date (daily) or ISO week (weekly) of a scheduled
// time, in the schedule's zone (CRON_TZ=, else Europe/Paris); its window is
// [the schedule's previous time, the scheduled time): a weekday schedule's
// Monday run covers the weekend. Several schedule times in one day (or
// week) make one period: the later ones find it done.
//
// Once per referent and period, across restarts and replicas: a lease per
// kind of period keeps replicas from running the same digests side by side,
// and each referent's digest is claimed in Redis before it is sent
// (redisstore.ClaimDigest), marked sent after, released when the send
// failed. A period whose run ended with every digest sent or empty is
// marked done. A claim left pending by a run that died between the claim
// and the mark is never sent again (the mail may have gone): it is
// reported, and keeps its period from being marked done.
//
// At start, the last scheduled time of each schedule is run when its
// period is not done (the daemon was down then); at each tick the previous
// period is tried again first when it is not done (a failed send, a replica
// that died mid-run). The digest command runs the last scheduled period
// now, which is the same catch-up.

// digStore is what the digests need from Redis.
type digStore interface {
	bridge.DigestStore
	ClaimDigest(ctx context.Context, referentID, period, periodKey string) (bool, error)
	MarkDigestSent(ctx context.Context, referentID, period, periodKey string) error
	ReleaseDigest(ctx context.Context, referentID, period, periodKey string) error
	DigestState(ctx context.Context, referentID, period, periodKey string) (state string, since time.Time, err error)
	DigestRunDone(ctx context.Context, period, periodKey string) (bool, error)
	MarkDigestRunDone(ctx context.Context, period, periodKey string) error
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (fence int64, ok bool, err error)
	RenewLease(ctx context.Context, name, holder string, fence int64, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string, fence int64) error
}

var _ digStore = (*redisstore.Store)(nil)

// digSender sends a composed mail (*mail.Sender).
type digSender interface {
	Send(ctx context.Context, msg mail.Outgoing) error
}

// Digester builds and sends the digests of a period: the job cron runs and
// the digest command.
type Digester struct {
	Store     digStore
	Composer  *mail.DigestComposer
	Sender    digSender
	Schedules map[bridge.Digest]cron.Schedule
	// Location is the zone of schedules without CRON_TZ; nil means
	// Europe/Paris.
	Location *time.Location
	// Holder names this replica in the lease.
	Holder string
	Log    *slog.Logger
	Now    func() time.Time
	// LeaseTTL bounds how long a dead replica keeps the others waiting
	// (renewed after each referent); LeaseWait is how long a run waits for
	// another replica's to end, polling every LeasePoll.
	LeaseTTL, LeaseWait, LeasePoll time.Duration
	// OnRun, if set, is told of each scheduled run's end (metrics).
	OnRun func(rep digestReport, err error)
}

const (
	digDefaultLeaseTTL  = 5 * time.Minute
	digDefaultLeaseWait = 15 * time.Minute
	digDefaultLeasePoll = 2 * time.Second
	digReleaseTimeout   = 10 * time.Second
	// digStalePending is the age from which a pending claim is reported
	// as left by a run that died: far beyond any send.
	digStalePending = time.Hour
	digSeedTimeout  = 30 * time.Second
)

// digestReport says what a run did.
type digestReport struct {
	Period bridge.Digest
	Key    string
	Window bridge.DigestWindow
	// AlreadyDone: the period was done before; Busy: another replica kept
	// the lease for longer than LeaseWait; Interrupted: ctx ended mid-run.
	AlreadyDone, Busy, Interrupted bool
	// Per referent of the period: sent now; empty (no mail); sent before;
	// pending (another run is sending it, or died doing so: never sent
	// twice); without an address; failed (released: a later run tries
	// again).
	Sent, Empty, AlreadySent, Pending, NoAddress, Failed int
}

// done reports whether the period can be marked done: every digest is
// sent or empty. A pending one may still fail and be released, so its run
// (or a later one) decides.
func (r digestReport) done() bool { return r.Failed == 0 && r.Pending == 0 && !r.Interrupted }

// result names the run's outcome for the metrics: done, already_done,
// busy (another replica ran it), incomplete (sends failed or pending, or
// interrupted: a later run finishes it) or error (Redis).
func (r digestReport) result(err error) string {
	switch {
	case err != nil:
		return "error"
	case r.AlreadyDone:
		return "already_done"
	case r.Busy:
		return "busy"
	case r.done():
		return "done"
	}
	return "incomplete"
}

func (r digestReport) String() string {
	head := fmt.Sprintf("digest %s %s", r.Period, r.Key)
	switch {
	case r.AlreadyDone:
		return head + ": already done"
	case r.Busy:
		return head + ": another replica is running it"
	}
	s := fmt.Sprintf("%s (%s – %s): %d sent, %d empty, %d sent before, %d pending, %d without address, %d failed",
		head, r.Window.From.Format(time.RFC3339), r.Window.To.Format(time.RFC3339),
		r.Sent, r.Empty, r.AlreadySent, r.Pending, r.NoAddress, r.Failed)
	if r.Interrupted {
		s += ", interrupted"
	}
	return s
}

func (d *Digester) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Digester) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Digester) defaultLocation() *time.Location {
	if d.Location != nil {
		return d.Location
	}
	return digParis()
}

func digParis() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return time.UTC
	}
	return loc
}

// location is the zone of a schedule: its CRON_TZ, else the default one
// (cron runs the bare specs in it, see startScheduler).
func (d *Digester) location(s cron.Schedule) *time.Location {
	if ss, ok := s.(*cron.SpecSchedule); ok && ss.Location != time.Local {
		return ss.Location
	}
	return d.defaultLocation()
}

func digDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// digLastOccurrence is the last time of s at or before now. cron schedules
// only go forward: step back ever further until a time turns up.
func digLastOccurrence(s cron.Schedule, now time.Time) (time.Time, bool) {
	const maxLookBack = 800 * 24 * time.Hour // a yearly spec, or 29 February
	const maxSteps = 100000
	for back := time.Minute; back <= maxLookBack; back *= 2 {
		var last time.Time
		found := false
		t := now.Add(-back)
		for i := 0; i < maxSteps; i++ {
			n := s.Next(t)
			if n.IsZero() || n.After(now) {
				break
			}
			last, found, t = n, true, n
		}
		if found {
			return last, true
		}
	}
	return time.Time{}, false
}

// digPrevOccurrence is the last time of s strictly before at.
func digPrevOccurrence(s cron.Schedule, at time.Time) (time.Time, bool) {
	return digLastOccurrence(s, at.Add(-time.Nanosecond))
}

// digPeriodKey names the period of a scheduled time (in its zone): the
// date, or the ISO week.
func digPeriodKey(period bridge.Digest, at time.Time) string {
	if period == bridge.DigestWeekly {
		y, w := at.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	}
	return at.Format("2006-01-02")
}

// digDefaultSpan is the window of a schedule with no earlier time.
func digDefaultSpan(period bridge.Digest) time.Duration {
	if period == bridge.DigestWeekly {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

func digLeaseName(period bridge.Digest) string { return "digest:" + string(period) }

// runNow runs the period of the last scheduled time (the digest command).
func (d *Digester) runNow(ctx context.Context, period bridge.Digest) (digestReport, error) {
	s, ok := d.Schedules[period]
	if !ok {
		return digestReport{Period: period}, fmt.Errorf("digest: no schedule for %q", period)
	}
	at, ok := digLastOccurrence(s, d.now().In(d.location(s)))
	if !ok {
		return digestReport{Period: period}, fmt.Errorf("digest: the %s schedule has no time in the past", period)
	}
	return d.runDigest(ctx, period, at)
}

// runDigest builds and sends the digests of the period scheduled at at,
// unless that period is done. It returns an error only when the run could
// not go through (Redis); failed sends are counted in the report.
func (d *Digester) runDigest(ctx context.Context, period bridge.Digest, at time.Time) (digestReport, error) {
	rep := digestReport{Period: period}
	s, ok := d.Schedules[period]
	if !ok {
		return rep, fmt.Errorf("digest: no schedule for %q", period)
	}
	at = at.In(d.location(s))
	rep.Key = digPeriodKey(period, at)
	from, ok := digPrevOccurrence(s, at)
	if !ok {
		from = at.Add(-digDefaultSpan(period))
	}
	rep.Window = bridge.DigestWindow{From: from, To: at}
	log := d.log().With(slog.String("period", string(period)), slog.String("period_key", rep.Key))

	if done, err := d.Store.DigestRunDone(ctx, string(period), rep.Key); err != nil || done {
		rep.AlreadyDone = done
		return rep, err
	}
	lease := digLeaseName(period)
	ttl := digDuration(d.LeaseTTL, digDefaultLeaseTTL)
	fence, ok, err := d.acquire(ctx, lease, ttl)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Busy = true
		log.Warn("digest run skipped: another replica holds the lease")
		return rep, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), digReleaseTimeout)
		defer cancel()
		if err := d.Store.ReleaseLease(rctx, lease, d.Holder, fence); err != nil {
			log.Warn("digest lease not released", slog.String("error", err.Error()))
		}
	}()
	// The replica that held the lease may have run this very period.
	if done, err := d.Store.DigestRunDone(ctx, string(period), rep.Key); err != nil || done {
		rep.AlreadyDone = done
		return rep, err
	}

	digests, err := bridge.BuildDigests(ctx, d.Store, period, rep.Window)
	if err != nil {
		return rep, err
	}
	for _, dg := range digests {
		if ctx.Err() != nil {
			rep.Interrupted = true
			break
		}
		switch d.deliver(ctx, log, period, rep.Key, dg) {
		case digSent:
			rep.Sent++
		case digEmpty:
			rep.Empty++
		case digAlreadySent:
			rep.AlreadySent++
		case digPending:
			rep.Pending++
		case digNoAddress:
			rep.NoAddress++
		case digFailed:
			rep.Failed++
		}
		// Claims keep a digest from going twice even when the lease is
		// lost; renewing only spares the other replicas a useless wait.
		if kept, err := d.Store.RenewLease(ctx, lease, d.Holder, fence, ttl); err == nil && !kept {
			log.Warn("digest lease lost during the run")
		}
	}
	if rep.done() {
		if err := d.Store.MarkDigestRunDone(context.WithoutCancel(ctx), string(period), rep.Key); err != nil {
			return rep, err
		}
	}
	log.Info("digest run", slog.Int("sent", rep.Sent), slog.Int("empty", rep.Empty), slog.Int("sent_before", rep.AlreadySent), slog.Int("pending", rep.Pending),
		slog.Int("without_address", rep.NoAddress), slog.Int("failed", rep.Failed), slog.Bool("interrupted", rep.Interrupted))
	return rep, nil
}

// acquire takes the lease of a kind of period, waiting up to LeaseWait for
// another replica to end its run.
func (d *Digester) acquire(ctx context.Context, lease string, ttl time.Duration) (int64, bool, error) {
	deadline := time.Now().Add(digDuration(d.LeaseWait, digDefaultLeaseWait))
	poll := digDuration(d.LeasePoll, digDefaultLeasePoll)
	for {
		fence, ok, err := d.Store.AcquireLease(ctx, lease, d.Holder, ttl)
		if err != nil || ok {
			return fence, ok, err
		}
		if time.Now().Add(poll).After(deadline) {
			return 0, false, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(poll):
		}
	}
}

type digOutcome int

const (
	digSent digOutcome = iota
	digEmpty
	digAlreadySent
	digPending
	digNoAddress
	digFailed
)

// deliver sends one referent's digest at most once: claim, compose, send,
// mark sent; a failed compose or send releases the claim. Nothing of the
// mail (nor the address) is logged, only the referent's id.
func (d *Digester) deliver(ctx context.Context, log *slog.Logger, period bridge.Digest, key string, dg bridge.ReferentDigest) digOutcome {
	if dg.Empty() {
		return digEmpty
	}
	log = log.With(slog.String("referent", dg.Referent.ID))
	if strings.TrimSpace(dg.Referent.Email) == "" {
		log.Warn("digest not sent: the referent has no address")
		return digNoAddress
	}
	claimed, err := d.Store.ClaimDigest(ctx, dg.Referent.ID, string(period), key)
	if err != nil {
		log.Error("digest not claimed", slog.String("error", err.Error()))
		return digFailed
	}
	if !claimed {
		return d.claimedBefore(ctx, log, period, key, dg.Referent.ID)
	}
	// From here on the claim is ours: the calls that end it must run even
	// when ctx ends (shutdown), or the claim would stay pending.
	bg := context.WithoutCancel(ctx)
	release := func() {
		if err := d.Store.ReleaseDigest(bg, dg.Referent.ID, string(period), key); err != nil {
			log.Error("digest claim not released: not retried for this period", slog.String("error", err.Error()))
		}
	}
	sending := false
	defer func() {
		// A panic before the mail left lets a later run try again; one
		// during or after the send keeps the claim: never twice.
		if r := recover(); r != nil {
			if !sending {
				release()
			}
			panic(r)
		}
	}()
	out, err := d.Composer.Digest(mail.DigestInput{Digest: dg})
	if err != nil {
		log.Error("digest not composed", slog.String("error", err.Error()))
		release()
		return digFailed
	}
	sending = true
	// A send in flight is finished even on shutdown: cut off after the
	// server took the mail, it would be sent again.
	if err := d.Sender.Send(bg, out); err != nil {
		log.Warn("digest not sent, a later run tries again", slog.String("error", err.Error()),
			slog.Bool("temporary", mail.IsTemporary(err)))
		release()
		return digFailed
	}
	if err := d.Store.MarkDigestSent(bg, dg.Referent.ID, string(period), key); err != nil {
		// The pending claim stays: the digest is not sent again.
		log.Error("digest sent but not marked sent", slog.String("error", err.Error()))
	}
	log.Info("digest sent", slog.String("message_id", out.MessageID))
	return digSent
}

// closeSender closes the SMTP connections the sender keeps for reuse.
func (d *Digester) closeSender() {
	if c, ok := d.Sender.(io.Closer); ok {
		_ = c.Close()
	}
}

// claimedBefore tells a digest sent before from one being sent, and
// reports claims left pending by a run that died.
func (d *Digester) claimedBefore(ctx context.Context, log *slog.Logger, period bridge.Digest, key, referentID string) digOutcome {
	state, since, err := d.Store.DigestState(ctx, referentID, string(period), key)
	switch {
	case err != nil:
		log.Error("digest state unknown", slog.String("error", err.Error()))
		return digPending
	case state == redisstore.DigestStateSent:
		return digAlreadySent
	case state == redisstore.DigestStateNone:
		// Released since the claim was refused: a later run sends it.
		return digPending
	}
	if age := time.Since(since); age > digStalePending {
		log.Warn("digest claim left pending by a run that stopped: not sent again",
			slog.Duration("age", age.Round(time.Second)))
	}
	return digPending
}

// digCronLogger sends cron's logs to slog; its chatter goes to debug.
type digCronLogger struct{ log *slog.Logger }

func (l digCronLogger) Info(msg string, kv ...any) { l.log.Debug("digest cron: "+msg, kv...) }

func (l digCronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("digest cron: "+msg, append([]any{slog.String("error", err.Error())}, kv...)...)
}

// digScheduler runs a Digester on its schedules.
type digScheduler struct {
	d    *Digester
	ctx  context.Context
	cron *cron.Cron
	wg   sync.WaitGroup
}

// startScheduler starts the cron jobs and the catch-up; stop ends them.
// Each job skips a tick while it still runs and survives a panic (logged),
// keeping its schedule; a per-kind lock makes the catch-up and a tick wait
// for each other rather than skip.
func (d *Digester) startScheduler(ctx context.Context) *digScheduler {
	l := digCronLogger{d.log()}
	c := cron.New(cron.WithLocation(d.defaultLocation()), cron.WithLogger(l),
		cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))
	s := &digScheduler{d: d, ctx: ctx, cron: c}
	catchUp := cron.NewChain(cron.Recover(l))
	for _, period := range []bridge.Digest{bridge.DigestDaily, bridge.DigestWeekly} {
		sched, ok := d.Schedules[period]
		if !ok {
			continue
		}
		mu := &sync.Mutex{}
		c.Schedule(sched, cron.FuncJob(func() { s.tick(mu, period, sched) }))
		job := catchUp.Then(cron.FuncJob(func() { s.catchUp(mu, period, sched) }))
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			job.Run()
		}()
	}
	c.Start()
	return s
}

// stop stops the schedules and waits for the running jobs.
func (s *digScheduler) stop() {
	<-s.cron.Stop().Done()
	s.wg.Wait()
}

// catchUp runs the last scheduled period if it is not done.
func (s *digScheduler) catchUp(mu *sync.Mutex, period bridge.Digest, sched cron.Schedule) {
	mu.Lock()
	defer mu.Unlock()
	at, ok := digLastOccurrence(sched, s.d.now().In(s.d.location(sched)))
	if !ok {
		return
	}
	s.run(period, at)
}

// tick runs the period that just began, after the previous one if that is
// not done.
func (s *digScheduler) tick(mu *sync.Mutex, period bridge.Digest, sched cron.Schedule) {
	mu.Lock()
	defer mu.Unlock()
	at, ok := digLastOccurrence(sched, s.d.now().In(s.d.location(sched)))
	if !ok {
		return
	}
	if prev, ok := digPrevOccurrence(sched, at); ok {
		s.run(period, prev)
	}
	s.run(period, at)
}

func (s *digScheduler) run(period bridge.Digest, at time.Time) {
	if s.ctx.Err() != nil {
		return
	}
	rep, err := s.d.runDigest(s.ctx, period, at)
	if s.d.OnRun != nil {
		s.d.OnRun(rep, err)
	}
	if err != nil {
		s.d.log().Error("digest run failed", slog.String("period", string(period)),
			slog.String("period_key", digPeriodKey(period, at.In(s.d.location(s.d.Schedules[period])))),
			slog.String("error", err.Error()))
	}
}

// digestsConfigured reports whether digests can be mailed: the desk mail
// (its from address, signing key) and SMTP are set up.
func digestsConfigured(cfg *config.Config) bool {
	return cfg.Desk.MailEnabled() && cfg.SMTP.Addr != ""
}

// newDigester wires a Digester from the configuration.
func newDigester(cfg *config.Config, store digStore, log *slog.Logger) (*Digester, error) {
	dm, err := newDeskMailer(cfg)
	if err != nil {
		return nil, err
	}
	if dm == nil || cfg.SMTP.Addr == "" {
		return nil, errors.New("digest: no mail configured (desk.address, smtp.addr)")
	}
	scheds := map[bridge.Digest]cron.Schedule{}
	for _, p := range []struct {
		period bridge.Digest
		key    string
		spec   string
	}{{bridge.DigestDaily, "digest.daily", cfg.Digest.Daily}, {bridge.DigestWeekly, "digest.weekly", cfg.Digest.Weekly}} {
		if strings.TrimSpace(p.spec) == "" {
			continue
		}
		s, err := cron.ParseStandard(p.spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.key, err)
		}
		scheds[p.period] = s
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix) // never fails on supported platforms
	return &Digester{
		Store: store,
		Composer: &mail.DigestComposer{
			From:          dm.Composer.From,
			Identity:      dm.Composer.Identity,
			Domain:        dm.Composer.Signer.Domain,
			LinkBase:      cfg.ENT.LinkBase,
			DefaultLocale: cfg.Digest.DefaultLocale,
		},
		Sender:    dm.Sender,
		Schedules: scheds,
		Location:  digParis(),
		LeaseTTL:  cfg.Digest.LeaseTTL,
		LeaseWait: cfg.Digest.LeaseWait,
		Holder:    cfg.InstanceID + "/" + hex.EncodeToString(suffix),
		Log:       log,
	}, nil
}

// startDigests runs the digest schedules until ctx ends; the channel closes
// once they have stopped. Without mail configured, digests are off.
func (d *daemon) startDigests(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if !digestsConfigured(d.cfg) {
		d.log.Info("digests off: no desk mail or SMTP configured")
		close(done)
		return done
	}
	dg, err := newDigester(d.cfg, d.store, d.log)
	if err != nil {
		d.log.Error("digests off", slog.String("error", err.Error()))
		close(done)
		return done
	}
	go func() {
		defer close(done)
		// The catch-up must see the configured structures: on a fresh
		// Redis it could otherwise find no referent and mark the period
		// done. Seeding again is harmless.
		d.seedStructures(ctx)
		if ctx.Err() != nil {
			return
		}
		dg.OnRun = func(rep digestReport, err error) {
			d.metrics.digestRuns.WithLabelValues(string(rep.Period), rep.result(err)).Inc()
		}
		s := dg.startScheduler(ctx)
		<-ctx.Done()
		s.stop()
		dg.closeSender()
	}()
	return done
}

// cmdDigest is `supportbridge digest --config FILE [--period daily|weekly]`:
// build and send the digests of the period's last scheduled time now, the
// ones not sent yet.
func cmdDigest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("digest", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	periodFlag := fs.String("period", string(bridge.DigestDaily), "daily or weekly")
	if err := parseFlags(fs, args, false, stderr); err != nil {
		return err
	}
	period := bridge.Digest(*periodFlag)
	if period != bridge.DigestDaily && period != bridge.DigestWeekly {
		fmt.Fprintf(stderr, "supportbridge digest: --period must be daily or weekly (not %q)\n", *periodFlag)
		return exitError{2}
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "supportbridge digest: --config FILE is required, and nothing else")
		return exitError{2}
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		printConfigError(stderr, err)
		return exitError{1}
	}
	if !digestsConfigured(cfg) {
		fmt.Fprintln(stderr, "supportbridge digest: no mail configured (desk.address, smtp.addr): nothing sent")
		return exitError{1}
	}
	log := newLogger(stderr, cfg.LogLevel)
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := redisstore.New(rdb, storeOptions(cfg))
	// The configured structures, as the daemon stores them at start, so
	// that the command works before the daemon ever ran.
	seeder := &daemon{cfg: cfg, log: log, svc: bridge.NewService(store, bridge.WithLogger(log))}
	sctx, cancel := context.WithTimeout(ctx, digSeedTimeout)
	seeder.seedStructures(sctx)
	cancel()
	dg, err := newDigester(cfg, store, log)
	if err != nil {
		fmt.Fprintf(stderr, "supportbridge digest: %v\n", err)
		return exitError{1}
	}
	defer dg.closeSender()
	rep, err := dg.runNow(ctx, period)
	if err != nil {
		fmt.Fprintf(stderr, "supportbridge digest: %v\n", err)
		return exitError{1}
	}
	fmt.Fprintln(stdout, rep)
	if rep.Failed > 0 || rep.Busy || rep.Interrupted {
		return exitError{1}
	}
	return nil
}
