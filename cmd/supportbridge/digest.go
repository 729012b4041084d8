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
	"supportbridge/mail/compose"
	"supportbridge/mail/smtpclient"
)

// Digests: the referents' summaries by mail, on the cron schedules of the
// configuration (digest.daily, digest.weekly). The run (periods, claims,
// lease, catch-up) is bridge.DigestRun's; here are its wiring, the cron
// scheduler that runs it and the digest command.

// digestSeedTimeout bounds the digest command's storing of the configured
// structures.
const digestSeedTimeout = 30 * time.Second

// cronLogger sends cron's logs to slog; its chatter goes to debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("digest cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("digest cron: "+msg, append([]any{slog.String("error", err.Error())}, kv...)...)
}

// digestScheduler runs a bridge.DigestRun on its schedules.
type digestScheduler struct {
	cron *cron.Cron
	wg   sync.WaitGroup
}

// startDigestScheduler starts the cron jobs (run.Tick) and the catch-up
// (run.CatchUp); stop ends them. Each job skips a tick while it still runs
// and survives a panic (logged), keeping its schedule; a per-kind lock
// makes the catch-up and a tick wait for each other rather than skip.
func startDigestScheduler(ctx context.Context, run *bridge.DigestRun, log *slog.Logger) *digestScheduler {
	l := cronLogger{log}
	c := cron.New(cron.WithLocation(bridge.DefaultDigestLocation()), cron.WithLogger(l),
		cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))
	s := &digestScheduler{cron: c}
	catchUp := cron.NewChain(cron.Recover(l))
	for _, period := range []bridge.Digest{bridge.DigestDaily, bridge.DigestWeekly} {
		sched, ok := run.Schedules[period]
		if !ok {
			continue
		}
		mu := &sync.Mutex{}
		c.Schedule(sched.Schedule, cron.FuncJob(func() {
			mu.Lock()
			defer mu.Unlock()
			run.Tick(ctx, period)
		}))
		job := catchUp.Then(cron.FuncJob(func() {
			mu.Lock()
			defer mu.Unlock()
			run.CatchUp(ctx, period)
		}))
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
func (s *digestScheduler) stop() {
	<-s.cron.Stop().Done()
	s.wg.Wait()
}

// parseDigestSchedule parses a cron spec (CRON_TZ= allowed): the periods
// are in its zone, else in the default one, where cron runs the bare specs
// (see startDigestScheduler).
func parseDigestSchedule(spec string) (bridge.DigestSchedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return bridge.DigestSchedule{}, err
	}
	ds := bridge.DigestSchedule{Schedule: s}
	if ss, ok := s.(*cron.SpecSchedule); ok && ss.Location != time.Local {
		ds.Location = ss.Location
	}
	return ds, nil
}

// digestsConfigured reports whether digests can be mailed: the desk mail
// (its from address, signing key) and SMTP are set up.
func digestsConfigured(cfg *config.Config) bool {
	return cfg.Desk.MailEnabled() && cfg.SMTP.Addr != ""
}

// newDigestRun wires a bridge.DigestRun from the configuration, with the
// SMTP sender it uses: the caller closes it (it keeps connections for
// reuse).
func newDigestRun(cfg *config.Config, store bridge.DigestRunStore, log *slog.Logger) (*bridge.DigestRun, *smtpclient.Sender, error) {
	dm, err := newDeskMailer(cfg)
	if err != nil {
		return nil, nil, err
	}
	if dm == nil || cfg.SMTP.Addr == "" {
		return nil, nil, errors.New("digest: no mail configured (desk.address, smtp.addr)")
	}
	scheds := map[bridge.Digest]bridge.DigestSchedule{}
	for _, p := range []struct {
		period bridge.Digest
		key    string
		spec   string
	}{{bridge.DigestDaily, "digest.daily", cfg.Digest.Daily}, {bridge.DigestWeekly, "digest.weekly", cfg.Digest.Weekly}} {
		if strings.TrimSpace(p.spec) == "" {
			continue
		}
		s, err := parseDigestSchedule(p.spec)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.key, err)
		}
		scheds[p.period] = s
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix) // never fails on supported platforms
	return &bridge.DigestRun{
		Store: store,
		Mailer: &compose.DigestMailer{
			Composer: &compose.DigestComposer{
				From:          dm.Composer.From,
				Identity:      dm.Composer.Identity,
				Domain:        dm.Composer.Signer.Domain,
				LinkBase:      cfg.ENT.LinkBase,
				DefaultLocale: cfg.Digest.DefaultLocale,
			},
			Sender: dm.Sender,
		},
		Schedules: scheds,
		LeaseTTL:  cfg.Digest.LeaseTTL,
		LeaseWait: cfg.Digest.LeaseWait,
		Holder:    cfg.InstanceID + "/" + hex.EncodeToString(suffix),
		Log:       log,
	}, dm.Sender, nil
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
	run, sender, err := newDigestRun(d.cfg, d.store, d.log)
	if err != nil {
		d.log.Error("digests off", slog.String("error", err.Error()))
		close(done)
		return done
	}
	go func() {
		defer close(done)
		defer sender.Close()
		// The catch-up must see the configured structures: on a fresh
		// Redis it could otherwise find no referent and mark the period
		// done. Seeding again is harmless.
		d.seedStructures(ctx)
		if ctx.Err() != nil {
			return
		}
		run.OnRun = func(rep bridge.DigestReport, err error) {
			d.metrics.digestRuns.WithLabelValues(string(rep.Period), rep.Result(err)).Inc()
		}
		s := startDigestScheduler(ctx, run, d.log)
		<-ctx.Done()
		s.stop()
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
	routeRedisLogs(log)
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := redisstore.New(rdb, storeOptions(cfg))
	// The configured structures, as the daemon stores them at start, so
	// that the command works before the daemon ever ran.
	sctx, cancel := context.WithTimeout(ctx, digestSeedTimeout)
	storeConfiguredStructures(sctx, bridge.NewService(store, bridge.WithLogger(log)), cfg, log)
	cancel()
	run, sender, err := newDigestRun(cfg, store, log)
	if err != nil {
		fmt.Fprintf(stderr, "supportbridge digest: %v\n", err)
		return exitError{1}
	}
	defer sender.Close()
	rep, err := run.RunLast(ctx, period)
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
