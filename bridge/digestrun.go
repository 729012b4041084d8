package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Digest runs: sending the digests of a period (digest.go builds them).
//
// A period is the local date (daily) or ISO week (weekly) of a scheduled
// time, in the schedule's zone (CRON_TZ=, else Europe/Paris); its window is
// [the schedule's previous time, the scheduled time): a weekday schedule's
// Monday run covers the weekend. Several schedule times in one day (or
// week) make one period: the later ones find it done.
//
// Once per referent and period, across restarts and replicas: a lease per
// kind of period keeps replicas from running the same digests side by side,
// and each referent's digest is claimed in the store before it is sent
// (DigestRunStore.ClaimDigest), marked sent after, released when the send
// failed. A period whose run ended with every digest sent or empty is
// marked done. A claim left pending by a run that died between the claim
// and the mark is never sent again (the mail may have gone): it is
// reported, and keeps its period from being marked done.
//
// At start, the last scheduled time of each schedule is run when its
// period is not done (the daemon was down then: CatchUp); at each tick the
// previous period is tried again first when it is not done (a failed send,
// a replica that died mid-run: Tick). The digest command runs the last
// scheduled period now (RunLast), which is the same catch-up.

// The states of a referent's digest for a period (DigestRunStore.DigestState).
const (
	DigestStateNone    = ""
	DigestStatePending = "pending"
	DigestStateSent    = "sent"
)

// DigestRunStore is what a digest run needs from the store: what digests
// read, the claims of each referent's digest, the marks of the periods done,
// and a lease per kind of period.
type DigestRunStore interface {
	DigestStore
	// ClaimDigest takes the right to send a referent's digest for a
	// period: true for the first caller only; false while another claim
	// is pending and once the digest is sent.
	ClaimDigest(ctx context.Context, referentID, period, periodKey string) (bool, error)
	// MarkDigestSent records that the server accepted the digest.
	MarkDigestSent(ctx context.Context, referentID, period, periodKey string) error
	// ReleaseDigest gives a pending claim up (a failed send); a digest
	// marked sent stays so.
	ReleaseDigest(ctx context.Context, referentID, period, periodKey string) error
	// DigestState tells where a referent's digest stands: none, pending
	// (since when) or sent.
	DigestState(ctx context.Context, referentID, period, periodKey string) (state string, since time.Time, err error)
	DigestRunDone(ctx context.Context, period, periodKey string) (bool, error)
	MarkDigestRunDone(ctx context.Context, period, periodKey string) error
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (fence int64, ok bool, err error)
	RenewLease(ctx context.Context, name, holder string, fence int64, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string, fence int64) error
}

// DigestMailer composes and sends the digests.
type DigestMailer interface {
	// ComposeDigest composes a referent's digest (never an empty one).
	ComposeDigest(ReferentDigest) (OutgoingMail, error)
	// Send returns nil once the server accepted the mail; an error
	// wrapped with Permanent when retrying cannot help.
	Send(ctx context.Context, m OutgoingMail) error
}

// Schedule is a cron schedule: the first time after t (cron.Schedule).
type Schedule interface {
	Next(t time.Time) time.Time
}

// DigestSchedule is when a kind of digest runs.
type DigestSchedule struct {
	Schedule Schedule
	// Location is the zone of the schedule's periods (its CRON_TZ); nil
	// means DefaultDigestLocation.
	Location *time.Location
}

// DefaultDigestLocation is the zone of the schedules that name none:
// ParisLocation.
func DefaultDigestLocation() *time.Location { return ParisLocation() }

func (s DigestSchedule) location() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	return DefaultDigestLocation()
}

// DigestRun builds and sends the digests of a period: the jobs a scheduler
// runs (CatchUp, Tick) and the digest command (RunLast).
type DigestRun struct {
	Store     DigestRunStore
	Mailer    DigestMailer
	Schedules map[Digest]DigestSchedule
	// Holder names this replica in the lease.
	Holder string
	Log    *slog.Logger
	// Now is the clock of the scheduled times; nil means time.Now.
	Now func() time.Time
	// LeaseTTL bounds how long a dead replica keeps the others waiting
	// (renewed after each referent); LeaseWait is how long a run waits for
	// another replica's to end, polling every LeasePoll.
	LeaseTTL, LeaseWait, LeasePoll time.Duration
	// OnRun, if set, is told of each scheduled run's end (metrics).
	OnRun func(rep DigestReport, err error)
}

const (
	defaultDigestLeaseTTL  = 5 * time.Minute
	defaultDigestLeaseWait = 15 * time.Minute
	defaultDigestLeasePoll = 2 * time.Second
	digestReleaseTimeout   = 10 * time.Second
	// digestStalePending is the age from which a pending claim is
	// reported as left by a run that died: far beyond any send.
	digestStalePending = time.Hour
)

// DigestReport says what a run did.
type DigestReport struct {
	Period Digest
	Key    string
	Window DigestWindow
	// AlreadyDone: the period was done before; Busy: another replica kept
	// the lease for longer than LeaseWait; Interrupted: ctx ended mid-run.
	AlreadyDone, Busy, Interrupted bool
	// Per referent of the period: sent now; empty (no mail); sent before;
	// pending (another run is sending it, or died doing so: never sent
	// twice); without an address; failed (released: a later run tries
	// again).
	Sent, Empty, AlreadySent, Pending, NoAddress, Failed int
}

// Done reports whether the period can be marked done: every digest is
// sent or empty. A pending one may still fail and be released, so its run
// (or a later one) decides.
func (r DigestReport) Done() bool { return r.Failed == 0 && r.Pending == 0 && !r.Interrupted }

// Result names the run's outcome (the metrics): done, already_done, busy
// (another replica ran it), incomplete (sends failed or pending, or
// interrupted: a later run finishes it) or error (the store).
func (r DigestReport) Result(err error) string {
	switch {
	case err != nil:
		return "error"
	case r.AlreadyDone:
		return "already_done"
	case r.Busy:
		return "busy"
	case r.Done():
		return "done"
	}
	return "incomplete"
}

func (r DigestReport) String() string {
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

func (d *DigestRun) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *DigestRun) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func durationOr(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// lastOccurrence is the last time of s at or before now. cron schedules
// only go forward: step back ever further until a time turns up.
func lastOccurrence(s Schedule, now time.Time) (time.Time, bool) {
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

// prevOccurrence is the last time of s strictly before at.
func prevOccurrence(s Schedule, at time.Time) (time.Time, bool) {
	return lastOccurrence(s, at.Add(-time.Nanosecond))
}

// digestPeriodKey names the period of a scheduled time (in its zone): the
// date, or the ISO week.
func digestPeriodKey(period Digest, at time.Time) string {
	if period == DigestWeekly {
		y, w := at.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	}
	return at.Format("2006-01-02")
}

// defaultDigestSpan is the window of a schedule with no earlier time.
func defaultDigestSpan(period Digest) time.Duration {
	if period == DigestWeekly {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

func digestLeaseName(period Digest) string { return "digest:" + string(period) }

// RunLast runs the period of the last scheduled time (the digest command).
func (d *DigestRun) RunLast(ctx context.Context, period Digest) (DigestReport, error) {
	s, ok := d.Schedules[period]
	if !ok {
		return DigestReport{Period: period}, fmt.Errorf("digest: no schedule for %q", period)
	}
	at, ok := lastOccurrence(s.Schedule, d.now().In(s.location()))
	if !ok {
		return DigestReport{Period: period}, fmt.Errorf("digest: the %s schedule has no time in the past", period)
	}
	return d.Run(ctx, period, at)
}

// Run builds and sends the digests of the period scheduled at at, unless
// that period is done. It returns an error only when the run could not go
// through (the store); failed sends are counted in the report.
func (d *DigestRun) Run(ctx context.Context, period Digest, at time.Time) (DigestReport, error) {
	rep := DigestReport{Period: period}
	s, ok := d.Schedules[period]
	if !ok {
		return rep, fmt.Errorf("digest: no schedule for %q", period)
	}
	at = at.In(s.location())
	rep.Key = digestPeriodKey(period, at)
	from, ok := prevOccurrence(s.Schedule, at)
	if !ok {
		from = at.Add(-defaultDigestSpan(period))
	}
	rep.Window = DigestWindow{From: from, To: at}
	log := d.log().With(slog.String("period", string(period)), slog.String("period_key", rep.Key))

	if done, err := d.Store.DigestRunDone(ctx, string(period), rep.Key); err != nil || done {
		rep.AlreadyDone = done
		return rep, err
	}
	lease := digestLeaseName(period)
	ttl := durationOr(d.LeaseTTL, defaultDigestLeaseTTL)
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
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), digestReleaseTimeout)
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

	digests, err := BuildDigests(ctx, d.Store, period, rep.Window)
	if err != nil {
		return rep, err
	}
	for _, dg := range digests {
		if ctx.Err() != nil {
			rep.Interrupted = true
			break
		}
		switch d.deliver(ctx, log, period, rep.Key, dg) {
		case outcomeSent:
			rep.Sent++
		case outcomeEmpty:
			rep.Empty++
		case outcomeAlreadySent:
			rep.AlreadySent++
		case outcomePending:
			rep.Pending++
		case outcomeNoAddress:
			rep.NoAddress++
		case outcomeFailed:
			rep.Failed++
		}
		// Claims keep a digest from going twice even when the lease is
		// lost; renewing only spares the other replicas a useless wait.
		if kept, err := d.Store.RenewLease(ctx, lease, d.Holder, fence, ttl); err == nil && !kept {
			log.Warn("digest lease lost during the run")
		}
	}
	if rep.Done() {
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
func (d *DigestRun) acquire(ctx context.Context, lease string, ttl time.Duration) (int64, bool, error) {
	deadline := time.Now().Add(durationOr(d.LeaseWait, defaultDigestLeaseWait))
	poll := durationOr(d.LeasePoll, defaultDigestLeasePoll)
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

// deliveryOutcome is what became of one referent's digest in a run.
type deliveryOutcome int

const (
	outcomeSent deliveryOutcome = iota
	outcomeEmpty
	outcomeAlreadySent
	outcomePending
	outcomeNoAddress
	outcomeFailed
)

// deliver sends one referent's digest at most once: claim, compose, send,
// mark sent; a failed compose or send releases the claim. Nothing of the
// mail (nor the address) is logged, only the referent's id.
func (d *DigestRun) deliver(ctx context.Context, log *slog.Logger, period Digest, key string, dg ReferentDigest) deliveryOutcome {
	if dg.Empty() {
		return outcomeEmpty
	}
	log = log.With(slog.String("referent", dg.Referent.ID))
	if strings.TrimSpace(dg.Referent.Email) == "" {
		log.Warn("digest not sent: the referent has no address")
		return outcomeNoAddress
	}
	claimed, err := d.Store.ClaimDigest(ctx, dg.Referent.ID, string(period), key)
	if err != nil {
		log.Error("digest not claimed", slog.String("error", err.Error()))
		return outcomeFailed
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
	out, err := d.Mailer.ComposeDigest(dg)
	if err != nil {
		log.Error("digest not composed", slog.String("error", err.Error()))
		release()
		return outcomeFailed
	}
	sending = true
	// A send in flight is finished even on shutdown: cut off after the
	// server took the mail, it would be sent again.
	if err := d.Mailer.Send(bg, out); err != nil {
		log.Warn("digest not sent, a later run tries again", slog.String("error", err.Error()),
			slog.Bool("temporary", !IsPermanent(err)))
		release()
		return outcomeFailed
	}
	if err := d.Store.MarkDigestSent(bg, dg.Referent.ID, string(period), key); err != nil {
		// The pending claim stays: the digest is not sent again.
		log.Error("digest sent but not marked sent", slog.String("error", err.Error()))
	}
	log.Info("digest sent", slog.String("message_id", out.MessageID))
	return outcomeSent
}

// claimedBefore tells a digest sent before from one being sent, and
// reports claims left pending by a run that died.
func (d *DigestRun) claimedBefore(ctx context.Context, log *slog.Logger, period Digest, key, referentID string) deliveryOutcome {
	state, since, err := d.Store.DigestState(ctx, referentID, string(period), key)
	switch {
	case err != nil:
		log.Error("digest state unknown", slog.String("error", err.Error()))
		return outcomePending
	case state == DigestStateSent:
		return outcomeAlreadySent
	case state == DigestStateNone:
		// Released since the claim was refused: a later run sends it.
		return outcomePending
	}
	if age := time.Since(since); age > digestStalePending {
		log.Warn("digest claim left pending by a run that stopped: not sent again",
			slog.Duration("age", age.Round(time.Second)))
	}
	return outcomePending
}

// CatchUp runs the last scheduled period of a kind if it is not done (the
// daemon was down then). A scheduler runs it at start.
func (d *DigestRun) CatchUp(ctx context.Context, period Digest) {
	if _, at, ok := d.lastScheduled(period); ok {
		d.scheduled(ctx, period, at)
	}
}

// lastScheduled is the schedule of a kind of period and its latest time
// not after now.
func (d *DigestRun) lastScheduled(period Digest) (DigestSchedule, time.Time, bool) {
	s, ok := d.Schedules[period]
	if !ok {
		return s, time.Time{}, false
	}
	at, ok := lastOccurrence(s.Schedule, d.now().In(s.location()))
	return s, at, ok
}

// Tick runs the period that just began, after the previous one if that is
// not done (a failed send, a replica that died mid-run). A scheduler runs
// it at each of the schedule's times.
func (d *DigestRun) Tick(ctx context.Context, period Digest) {
	s, at, ok := d.lastScheduled(period)
	if !ok {
		return
	}
	if prev, ok := prevOccurrence(s.Schedule, at); ok {
		d.scheduled(ctx, period, prev)
	}
	d.scheduled(ctx, period, at)
}

// scheduled is a run of CatchUp or Tick: told to OnRun, its error logged.
func (d *DigestRun) scheduled(ctx context.Context, period Digest, at time.Time) {
	if ctx.Err() != nil {
		return
	}
	rep, err := d.Run(ctx, period, at)
	if d.OnRun != nil {
		d.OnRun(rep, err)
	}
	if err != nil {
		d.log().Error("digest run failed", slog.String("period", string(period)),
			slog.String("period_key", digestPeriodKey(period, at.In(d.Schedules[period].location()))),
			slog.String("error", err.Error()))
	}
}
