package main

import (
	"context"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"time"

	"supportbridge/bridge/jobqueue"
	"supportbridge/config"
	"supportbridge/mail"
	"supportbridge/mail/compose"
)

// Housekeeping: the feed retention prune, and the mail that tells the
// operators a job was given up. Both run on every replica and coordinate
// through windows claimed in Redis (ClaimWindow), so that each happens once
// per window across the deployment.

// windowStore claims once-per-window work (*redisstore.Store).
type windowStore interface {
	ClaimWindow(ctx context.Context, name string, ttl time.Duration) (bool, error)
	ReleaseWindow(ctx context.Context, name string) error
}

// pruneStore is what the feed prune needs (*redisstore.Store).
type pruneStore interface {
	windowStore
	PruneFeeds(ctx context.Context, before time.Time) (int, error)
	PruneQuarantine(ctx context.Context, before time.Time) (int, error)
}

const pruneWindow = "prune:feeds"

// feedPruner removes feed entries older than the retention, and the
// quarantine list's entries older than the raw mails' retention (0: kept),
// once per interval across replicas.
type feedPruner struct {
	store     pruneStore
	retention time.Duration
	// quarantineRetention is imap.raw_retention: past it the raw mail is
	// gone and the entry can be neither assigned nor read.
	quarantineRetention time.Duration
	every               time.Duration
	log                 *slog.Logger
	now                 func() time.Time
	onPrune             func(removed int, err error)
}

// once prunes unless another replica did within the interval. ran says
// whether this call did the work.
func (p *feedPruner) once(ctx context.Context) (removed int, ran bool, err error) {
	ok, err := p.store.ClaimWindow(ctx, pruneWindow, p.every)
	if err != nil || !ok {
		return 0, false, err
	}
	removed, err = p.store.PruneFeeds(ctx, p.now().Add(-p.retention))
	if err == nil && p.quarantineRetention > 0 {
		var q int
		q, err = p.store.PruneQuarantine(ctx, p.now().Add(-p.quarantineRetention))
		removed += q
	}
	if err != nil {
		// Let the next tick, of any replica, try again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := p.store.ReleaseWindow(rctx, pruneWindow); rerr != nil {
			p.log.Warn("feed prune window not released", slog.String("error", rerr.Error()))
		}
	}
	return removed, true, err
}

// run prunes until ctx ends. It looks four times per interval, so that the
// prune happens at most a quarter interval late when the replica that
// claimed the last window is gone.
func (p *feedPruner) run(ctx context.Context) {
	t := time.NewTicker(max(p.every/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		p.safeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// safeOnce is once with its outcome logged and a panic kept from ending
// the loop.
func (p *feedPruner) safeOnce(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("feed prune panicked", slog.Any("panic", r))
		}
	}()
	removed, ran, err := p.once(ctx)
	if !ran && err == nil {
		return
	}
	if p.onPrune != nil {
		p.onPrune(removed, err)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Error("feed prune failed", slog.Int("removed", removed), slog.String("error", err.Error()))
	case err == nil:
		p.log.Info("feed prune", slog.Int("removed", removed), slog.Duration("retention", p.retention))
	}
}

// alertSender sends a composed mail (*smtpclient.Sender, shared with the
// daemon, which closes it).
type alertSender interface {
	Send(ctx context.Context, msg mail.Outgoing) error
}

// deadJob is a job given up, as the alert tells it.
type deadJob struct {
	job    jobqueue.Job
	reason string
	at     time.Time
}

// alerter mails the operators when a job is given up: at most one mail per
// kind of job and window across replicas (the dead letters that follow
// are in `jobs list`), sent off the job's goroutine.
type alerter struct {
	store    windowStore
	composer *compose.AlertComposer
	sender   alertSender
	to       []*netmail.Address
	window   time.Duration
	locale   string
	instance string
	log      *slog.Logger
	outcome  func(result string)
	events   chan deadJob
}

const (
	alertWindow      = time.Hour
	alertQueue       = 64
	alertSendTimeout = 30 * time.Second
)

// newAlerter wires the operator alerts to the daemon's desk mailer (its
// composer's sender identity, its SMTP sender and connections); nil (alerts
// off, each method a no-op) without operators or without mail.
func newAlerter(cfg *config.Config, dm *compose.DeskMailer, store windowStore, log *slog.Logger, outcome func(string)) (*alerter, error) {
	if len(cfg.Operators.Emails) == 0 {
		return nil, nil
	}
	if dm == nil || cfg.SMTP.Addr == "" {
		log.Warn("operator alert mails off: no desk mail or SMTP configured")
		return nil, nil
	}
	var to []*netmail.Address
	for i, e := range cfg.Operators.Emails {
		a, err := netmail.ParseAddress(e)
		if err != nil {
			return nil, fmt.Errorf("operators.emails[%d]: %w", i, err)
		}
		to = append(to, a)
	}
	return &alerter{
		store: store,
		composer: &compose.AlertComposer{From: dm.Composer.From, Identity: dm.Composer.Identity,
			Domain: dm.Composer.Signer.Domain},
		sender:   dm.Sender,
		to:       to,
		window:   alertWindow,
		locale:   cfg.Digest.DefaultLocale,
		instance: cfg.InstanceID,
		log:      log,
		outcome:  outcome,
		events:   make(chan deadJob, alertQueue),
	}, nil
}

// deadLetter queues the alert of a job given up; it never blocks the job
// queue: when the alerts are behind, the extra ones are dropped (the jobs
// themselves stay in the dead letters).
func (a *alerter) deadLetter(j jobqueue.Job, err error) {
	if a == nil {
		return
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	select {
	case a.events <- deadJob{job: j, reason: reason, at: time.Now()}:
	default:
		a.count("dropped")
	}
}

// start sends the queued alerts until ctx ends; the channel closes once
// it has stopped.
func (a *alerter) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-a.events:
				a.handle(ctx, ev)
			}
		}
	}()
	return done
}

func (a *alerter) count(result string) {
	if a.outcome != nil {
		a.outcome(result)
	}
}

// handle mails one alert unless one of its kind went out within the
// window; a failed send gives the window back, so the next dead letter
// tries again.
func (a *alerter) handle(ctx context.Context, ev deadJob) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("operator alert panicked", slog.Any("panic", r))
		}
	}()
	window := "alert:" + ev.job.Kind
	ok, err := a.store.ClaimWindow(ctx, window, a.window)
	if err != nil {
		a.log.Error("operator alert not sent", slog.String("kind", ev.job.Kind), slog.String("error", err.Error()))
		a.count("failed")
		return
	}
	if !ok {
		a.count("suppressed")
		return
	}
	msg, err := a.composer.Alert(a.input(ev))
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, alertSendTimeout)
		err = a.sender.Send(sctx, msg)
		cancel()
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = a.store.ReleaseWindow(rctx, window)
		a.log.Error("operator alert not sent", slog.String("kind", ev.job.Kind), slog.String("error", err.Error()))
		a.count("failed")
		return
	}
	a.log.Info("operator alert sent", slog.String("kind", ev.job.Kind), slog.String("job", ev.job.ID),
		slog.Int("recipients", len(a.to)))
	a.count("sent")
}

// input is the alert's text: what was given up and why (the job's last
// error, which never carries a secret, a URL or a mail body).
func (a *alerter) input(ev deadJob) compose.AlertInput {
	return compose.DeadJobAlert(a.locale, a.to, compose.DeadJob{Kind: ev.job.Kind, JobID: ev.job.ID,
		TicketID: ev.job.TicketID, Reason: ev.reason, Instance: a.instance, At: ev.at, Window: a.window})
}
