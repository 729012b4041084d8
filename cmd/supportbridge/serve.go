package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	netmail "net/mail"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/netutil"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/config"
	"supportbridge/mail"
	"supportbridge/mail/compose"
	"supportbridge/mail/imapreader"
	"supportbridge/mail/inbound"
	"supportbridge/mail/smtpclient"
	"supportbridge/webhook"
	"supportbridge/webhook/httpapi"
	"supportbridge/webhook/statuspage"
)

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: readableDuration}))
}

// readableDuration writes durations as people read them ("2160h0m0s",
// "1.2ms"), not as the nanoseconds slog's JSON gives.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// newRedis returns a universal client: one address is a standalone server,
// several a Cluster, a master name a Sentinel group.
func newRedis(c config.Redis) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:                 c.Addrs,
		MasterName:            c.MasterName,
		Username:              c.Username,
		Password:              c.Password.Reveal(),
		DB:                    c.DB,
		DialTimeout:           c.DialTimeout,
		ReadTimeout:           c.ReadTimeout,
		WriteTimeout:          c.WriteTimeout,
		ContextTimeoutEnabled: true,
	}
	if len(c.Addrs) > 1 && c.MasterName == "" {
		// A Cluster: commands must not be routed to a db other than 0.
		opts.DB = 0
	}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		pool, err := config.LoadCAFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis ca_file: %w", err)
		}
		tc.RootCAs = pool
		opts.TLSConfig = tc
	}
	return redis.NewUniversalClient(opts), nil
}

// daemon is everything serve runs, wired.
type daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	rdb     redis.UniversalClient
	store   *redisstore.Store
	queue   *jobqueue.Queue
	svc     *bridge.Service
	worker  *bridge.Worker
	mailer  *compose.DeskMailer // nil without a desk
	handler http.Handler
	metrics *metrics
	reader  *imapreader.Reader // nil without imap.addr
	alerts  *alerter           // nil without operators or mail
	pruner  *feedPruner
	started time.Time
	// seeded is set once the configuration's structures are stored:
	// until then a demand for one of them would get unknown_structure,
	// so the replica says it is not ready.
	seeded atomic.Bool
	// afterJob, when set, runs after each job (tests: crash points).
	afterJob func(bridge.Effect, error)
	// closers close what newDaemon opened (see onClose).
	closers []func()
}

// newDeskMailer wires the composer and the SMTP sender, or returns nil
// when no desk is configured.
func newDeskMailer(cfg *config.Config) (*compose.DeskMailer, error) {
	if !cfg.Desk.MailEnabled() {
		return nil, nil
	}
	from, err := netmail.ParseAddress(cfg.Desk.From)
	if err != nil {
		return nil, fmt.Errorf("desk.from: %w", err)
	}
	replyTo, err := netmail.ParseAddress(cfg.Desk.ReplyTo)
	if err != nil {
		return nil, fmt.Errorf("desk.reply_to: %w", err)
	}
	desk, err := netmail.ParseAddress(cfg.Desk.Address)
	if err != nil {
		return nil, fmt.Errorf("desk.address: %w", err)
	}
	cas, err := config.LoadCAFile(cfg.SMTP.CAFile)
	if err != nil {
		return nil, fmt.Errorf("smtp.ca_file: %w", err)
	}
	_, domain, _ := strings.Cut(replyTo.Address, "@")
	loc := bridge.ParisLocation()
	return &compose.DeskMailer{
		Composer: &compose.Composer{
			From: from, ReplyTo: replyTo, DeskAddress: desk,
			SubjectTag: cfg.Desk.SubjectTag, Identity: cfg.Desk.Identity,
			Signer:             deskSigner(cfg, domain),
			PlusToken:          cfg.Desk.PlusToken,
			MaxAttachmentBytes: int64(cfg.Desk.MaxAttachmentBytes),
			Location:           loc,
		},
		Sender: &smtpclient.Sender{Addr: cfg.SMTP.Addr, TLS: string(cfg.SMTP.TLS), Username: cfg.SMTP.Username,
			Password: cfg.SMTP.Password.Reveal(), RootCAs: cas, Timeout: cfg.SMTP.Timeout, HeloName: cfg.SMTP.HELO, MaxIdle: cfg.Jobs.Concurrency},
	}, nil
}

// wiringHook, when set, may change a daemon's wiring before it is built:
// the worker's options and the IMAP reader's message handler (nil without
// imap.addr). Only the tests set it, to arm their failpoints
// (failpoints_test.go); the built binary has none.
var wiringHook func(wo *bridge.WorkerOptions, handler *imapreader.MessageHandler)

// storeOptions is how the configuration sets up the store, for the daemon
// and the commands alike.
func storeOptions(cfg *config.Config) redisstore.Options {
	return redisstore.Options{
		Prefix:              cfg.Redis.KeyPrefix,
		StructureDedupeTTL:  cfg.ENT.DedupeTTL,
		AttachmentRetention: cfg.Attachments.Retention,
		WaitReplicas:        cfg.Redis.WaitReplicas,
		WaitTimeout:         cfg.Redis.WaitTimeout,
	}
}

// queueOptions is how the configuration sets up the job queue, for the
// daemon and the commands alike (the daemon adds its hooks).
func queueOptions(cfg *config.Config, log *slog.Logger) jobqueue.Options {
	return jobqueue.Options{
		Queue:        strings.TrimSuffix(cfg.Redis.KeyPrefix, ":") + "-jobs",
		RetryInitial: cfg.SMTP.RetryInitial,
		RetryMax:     cfg.SMTP.RetryMax,
		Schedules:    map[bridge.EffectKind][]time.Duration{bridge.EffectCallback: cfg.ENT.CallbackRetrySchedule},
		Concurrency:  cfg.Jobs.Concurrency,
		PollInterval: cfg.Jobs.PollInterval,
		Retention:    cfg.Jobs.Retention,
		Logger:       log,
	}
}

// serviceOptions is how the configuration sets up the service that
// applies events, its effects handed to dispatcher, for the daemon and the
// commands alike.
func serviceOptions(cfg *config.Config, log *slog.Logger, dispatcher bridge.Dispatcher) []bridge.ServiceOption {
	return []bridge.ServiceOption{bridge.WithLogger(log), bridge.WithDispatcher(dispatcher),
		bridge.WithCallbacks(cfg.ENT.CallbackURL != ""), bridge.WithTrustActorRoles(cfg.ENT.TrustActorRoles)}
}

// newDaemon wires the daemon. Each resource it opens is added to the
// daemon's closers as soon as it is open, so that an error on any path
// closes what was opened so far, and close closes all of it.
func newDaemon(cfg *config.Config, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	routeRedisLogs(log)
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return nil, err
	}
	d.rdb = rdb
	d.onClose(func() { rdb.Close() })
	keys, err := cfg.WebhookKeys()
	if err != nil {
		return nil, err
	}
	met := newMetrics()
	d.metrics = met
	sopts := storeOptions(cfg)
	sopts.OnNotReplicated = met.notReplicated.Inc
	store := redisstore.New(rdb, sopts)
	d.store = store
	mailer, err := newDeskMailer(cfg)
	if err != nil {
		return nil, err
	}
	if mailer != nil {
		d.mailer = mailer
		// The cached SMTP sessions say QUIT rather than linger until the
		// server drops them.
		d.onClose(func() { mailer.Sender.Close() })
	}
	alerts, err := newAlerter(cfg, mailer, store, log, func(r string) { met.operatorAlerts.WithLabelValues(r).Inc() })
	if err != nil {
		return nil, err
	}
	d.alerts = alerts
	qopts := queueOptions(cfg, log)
	qopts.OnDone = met.jobDone
	qopts.OnDead = func(j jobqueue.Job, err error) {
		met.deadLetters.WithLabelValues(j.Kind).Inc()
		log.Error("job dead-lettered: an operator must look", slog.String("job", j.ID),
			slog.String("kind", j.Kind), slog.String("ticket", j.TicketID), slog.String("error", err.Error()))
		alerts.deadLetter(j, err)
	}
	queue := jobqueue.New(rdb, qopts)
	d.queue = queue
	d.onClose(func() { queue.Close() })
	met.reg.MustRegister(newQueueCollector(queue))
	svc := bridge.NewService(store, append(serviceOptions(cfg, log, queue),
		bridge.WithNoReferentHook(func(string, string) { met.noReferent.Inc() }))...)
	d.svc = svc
	wo := bridge.WorkerOptions{Ledger: store, Feed: store, Dispatcher: queue, Lifetime: cfg.SMTP.Lifetime,
		DefaultLocale: cfg.Digest.DefaultLocale}
	wo.OnAccepted = func(_ bridge.Effect, rec bridge.MailRecord) { met.mailsAccepted.WithLabelValues(rec.Kind).Inc() }
	if mailer != nil {
		wo.Mailer = mailer
	}
	if cfg.ENT.CallbackURL != "" {
		key, err := cfg.CallbackKey()
		if err != nil {
			return nil, err
		}
		extra, err := cfg.CallbackExtraKeys()
		if err != nil {
			return nil, err
		}
		// During a rotation every callback carries one signature per
		// secret, so the ENT may verify with either.
		cb := webhook.NewCallbackClient(cfg.ENT.CallbackURL, key, cfg.ENT.CallbackTimeout)
		cb.ExtraKeys = extra
		wo.Callbacks = cb
	}
	var handler imapreader.MessageHandler
	if cfg.IMAP.Enabled() {
		onOutcome := func(o string) { met.inbound.WithLabelValues(o).Inc() }
		if handler, err = newInboundProcessor(cfg, log, svc, store, onOutcome); err != nil {
			return nil, err
		}
	}
	if wiringHook != nil {
		wiringHook(&wo, &handler)
	}
	d.worker = bridge.NewWorker(svc, store, wo)
	d.pruner = &feedPruner{store: store, retention: cfg.Notifications.Retention, every: cfg.Notifications.PruneInterval,
		quarantineRetention: cfg.IMAP.RawRetention, log: log, now: time.Now, onPrune: met.feedPruned}
	if handler != nil {
		if d.reader, err = newIMAPReader(cfg, log, store, met, handler); err != nil {
			return nil, err
		}
	}
	tokens := make([]string, 0, len(cfg.ENT.APITokens))
	for _, t := range cfg.ENT.APITokens {
		tokens = append(tokens, t.Reveal())
	}
	d.handler = httpapi.NewServer(svc, httpapi.Options{
		Verifier:      &webhook.Verifier{Keys: keys, Tolerance: cfg.ENT.WebhookTolerance, Now: time.Now},
		Limits:        httpapi.DecodeLimits{MaxAttachmentBytes: int64(cfg.Attachments.MaxBytes), MaxAttachments: cfg.Attachments.MaxCount},
		MaxBody:       int64(cfg.ENT.WebhookMaxBody),
		APITokens:     tokens,
		MetricsTokens: revealAll(cfg.Operators.MetricsTokens),
		Logger:        log,
		Ready:         d.ready,
		Feed:          store,
		Metrics:       met.handler(),
		Observe:       met.observeWebhook,
		StatusPage: statuspage.Handler(statusPageSource{d}, statuspage.Options{Tokens: tokens, Logger: log,
			RequestID: httpapi.RequestID}),
	})
	return d, nil
}

// newInboundProcessor wires what turns a desk mail into its effect.
// onOutcome, when set, is told each mail's outcome (metrics).
func newInboundProcessor(cfg *config.Config, log *slog.Logger, svc *bridge.Service, store *redisstore.Store,
	onOutcome func(string)) (*inbound.Processor, error) {
	ref, err := cfg.Desk.ReferenceRegexp()
	if err != nil {
		return nil, fmt.Errorf("desk.reference_pattern: %w", err)
	}
	replyTo := cfg.Desk.ReplyTo
	if a, err := netmail.ParseAddress(replyTo); err == nil {
		replyTo = a.Address
	}
	_, domain, _ := strings.Cut(replyTo, "@")
	own := []string{replyTo}
	if a, err := netmail.ParseAddress(cfg.Desk.From); err == nil {
		own = append(own, a.Address)
	}
	products, product := inbound.DeskProductFor(cfg.Desk.Product)
	return inbound.NewInboundProcessor(svc, store, inbound.Options{
		Signer:        deskSigner(cfg, domain),
		ReplyTo:       replyTo,
		OwnAddresses:  own,
		SubjectTag:    cfg.Desk.SubjectTag,
		SenderAllowed: cfg.Desk.SenderAllowed,
		SenderAuth:    inbound.SenderAuth{AuthServID: cfg.Desk.AuthServID, RequirePass: cfg.Desk.RequireDMARCPass},
		Classify: inbound.ClassifyOptions{Identity: cfg.Desk.Identity, OwnDomains: []string{domain},
			RefPattern: ref, Products: products, Product: product},
		StatusMarkers: map[string][]string{"resolved": cfg.Desk.StatusMarkers.Resolved,
			"closed": cfg.Desk.StatusMarkers.Closed, "waiting": cfg.Desk.StatusMarkers.Waiting},
		Limits: inbound.ParseLimits{MaxBytes: int64(cfg.IMAP.MaxMessageBytes),
			MaxAttachmentBytes: int64(cfg.Attachments.MaxBytes), MaxAttachments: cfg.Attachments.MaxCount},
		MaxAttachments: cfg.Attachments.MaxCount,
		RawRetention:   cfg.IMAP.RawRetention,
		Mailbox:        cfg.IMAP.Mailbox,
		Logger:         log,
		OnOutcome:      onOutcome,
	}), nil
}

// newIMAPReader wires the mailbox reader to its message handler (the
// inbound processor).
func newIMAPReader(cfg *config.Config, log *slog.Logger, store *redisstore.Store, met *metrics, handler imapreader.MessageHandler) (*imapreader.Reader, error) {
	cas, err := config.LoadCAFile(cfg.IMAP.CAFile)
	if err != nil {
		return nil, fmt.Errorf("imap.ca_file: %w", err)
	}
	r := imapreader.NewIMAPReader(imapreader.Config{
		Addr: cfg.IMAP.Addr, TLS: string(cfg.IMAP.TLS), Username: cfg.IMAP.Username, Password: cfg.IMAP.Password.Reveal(),
		Mailbox: cfg.IMAP.Mailbox, ProcessedMailbox: cfg.IMAP.ProcessedMailbox, QuarantineMailbox: cfg.IMAP.QuarantineMailbox,
		RootCAs: cas, PollInterval: cfg.IMAP.PollInterval, IDLE: cfg.IMAP.IDLE,
		MaxMessageBytes: int64(cfg.IMAP.MaxMessageBytes), LeaseTTL: cfg.IMAP.LeaseTTL,
		Holder: cfg.InstanceID, Logger: log,
	}, store, store, handler)
	met.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "supportbridge_imap_connected",
			Help: "1 while this replica holds the mailbox lease and is connected."}, func() float64 {
			return boolGauge(r.State().Connected)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "supportbridge_imap_idle",
			Help: "1 while the IMAP connection waits in IDLE."}, func() float64 { return boolGauge(r.State().Idle) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "supportbridge_imap_last_success_timestamp_seconds",
			Help: "When the mailbox was last read through successfully."}, func() float64 {
			if t := r.State().LastSuccess; !t.IsZero() {
				return float64(t.Unix())
			}
			return 0
		}))
	return r, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *daemon) ready(ctx context.Context) error {
	if err := d.rdb.Ping(ctx).Err(); err != nil {
		return errors.New("redis unreachable")
	}
	if !d.seeded.Load() {
		return errors.New("the configuration's structures are not stored yet")
	}
	if want := d.cfg.Redis.WaitReplicas; want > 0 {
		// Every acknowledgement waits for that many replicas: with fewer
		// online, webhooks get 503 until one is back.
		info, err := d.rdb.Info(ctx, "replication").Result()
		if err != nil {
			return errors.New("redis unreachable")
		}
		if n := onlineReplicas(info); n < want {
			return fmt.Errorf("redis: %d of %d replicas online (redis.wait_replicas): writes cannot be acknowledged", n, want)
		}
	}
	if d.reader != nil {
		// Only the replica holding the mailbox lease reads it; the others
		// are not to blame for a quiet mailbox.
		st := d.reader.State()
		limit := max(5*d.cfg.IMAP.PollInterval, 2*time.Minute)
		since := st.LastSuccess
		if since.IsZero() {
			since = d.started
		}
		if st.LeaseHeld && time.Since(since) > limit {
			return fmt.Errorf("mailbox not read successfully for %s", time.Since(since).Round(time.Second))
		}
	}
	return nil
}

// onlineReplicas counts the replicas an INFO replication answer lists as
// online ("slave0:ip=…,port=…,state=online,…").
func onlineReplicas(info string) int {
	n := 0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && strings.HasPrefix(k, "slave") && strings.Contains(","+v+",", ",state=online,") {
			n++
		}
	}
	return n
}

// onClose adds f to what close runs.
func (d *daemon) onClose(f func()) { d.closers = append(d.closers, f) }

// close closes what newDaemon opened, the last opened first.
func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// runJobs works the job queue until ctx ends, and moves into it the jobs
// an older version left in asynq.
func (d *daemon) runJobs(ctx context.Context) error {
	go d.migrateAsynq(ctx)
	return d.queue.Run(ctx, func(ctx context.Context, e bridge.Effect) error {
		err := d.worker.Handle(ctx, e)
		if d.afterJob != nil {
			d.afterJob(e, err)
		}
		return err
	})
}

// asynqCheckEvery is how often a replica looks for jobs left in asynq by
// an older version still running (one SMEMBERS when there are none).
const asynqCheckEvery = time.Minute

// migrateAsynq moves the jobs an older version left in asynq into the
// queue: at start, then every asynqCheckEvery, for the replicas of an
// older version stopped after this one started.
func (d *daemon) migrateAsynq(ctx context.Context) {
	for {
		n, err := d.queue.MigrateAsynq(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("job queue: moving the jobs left in asynq", slog.String("error", err.Error()))
		case n > 0:
			d.log.Info("job queue: moved the jobs an older version left in asynq", slog.Int("jobs", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(asynqCheckEvery):
		}
	}
}

// seedStructures stores the structures of the configuration file, retrying
// while Redis is unreachable so that the daemon can start before Redis.
func (d *daemon) seedStructures(ctx context.Context) {
	if storeConfiguredStructures(ctx, d.svc, d.cfg, d.log) {
		d.seeded.Store(true)
	}
}

// configStructures are the structures of the configuration file.
func configStructures(cfg *config.Config) []bridge.Structure {
	sts := make([]bridge.Structure, 0, len(cfg.Structures))
	for _, s := range cfg.Structures {
		st := bridge.Structure{ID: s.ID, Name: s.Name, UAI: s.UAI, ParentID: s.ParentID, EscalationEnabled: s.EscalationEnabled}
		for _, r := range s.Referents {
			st.Referents = append(st.Referents, bridge.Referent{ID: r.ID, DisplayName: r.DisplayName,
				Email: r.Email, Digest: bridge.Digest(r.Digest).OrDefault(), Locale: r.Locale})
		}
		sts = append(sts, st)
	}
	return sts
}

// storeConfiguredStructures stores the structures of the configuration
// file through svc, retrying while Redis is unreachable, until ctx ends. It
// reports whether they are stored (true when there are none).
func storeConfiguredStructures(ctx context.Context, svc *bridge.Service, cfg *config.Config, log *slog.Logger) bool {
	if len(cfg.Structures) == 0 {
		return true
	}
	sts := configStructures(cfg)
	delay := 500 * time.Millisecond
	for {
		err := svc.SeedStructures(ctx, sts)
		if err == nil {
			log.Info("structures from the configuration stored", slog.Int("count", len(sts)))
			return true
		}
		log.Warn("cannot store the configured structures yet", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	d, err := newDaemon(cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	return d.serve(ctx, stdout)
}

// serve listens on the configured address and serves until ctx ends.
func (d *daemon) serve(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
	}
	return d.serveOn(ctx, ln, stdout)
}

// serveOn runs the HTTP server on ln and the background loops until ctx
// ends, then lets in-flight requests finish.
func (d *daemon) serveOn(ctx context.Context, ln net.Listener, stdout io.Writer) error {
	if d.cfg.MaxConnections > 0 {
		// Past the cap a client waits in the kernel's accept queue: the
		// daemon's goroutines and buffers stay bounded under a flood.
		ln = netutil.LimitListener(ln, d.cfg.MaxConnections)
	}
	srv := &http.Server{
		Handler:           d.handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	go d.seedStructures(bg)
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- d.runJobs(bg) }()
	digestsDone := d.startDigests(bg)
	alertsDone := d.alerts.start(bg)
	prunerDone := make(chan struct{})
	go func() {
		defer close(prunerDone)
		d.pruner.run(bg)
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		if d.reader != nil {
			if err := d.reader.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("imap reader stopped", slog.String("error", err.Error()))
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	d.log.Info("listening", slog.String("addr", addr), slog.String("version", versionString()))
	fmt.Fprintf(stdout, "supportbridge listening on http://%s\n", addr)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	d.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cancelBG()
	<-readerDone
	<-digestsDone
	<-alertsDone
	<-prunerDone
	if err := <-jobsDone; err != nil {
		d.log.Error("job queue", slog.String("error", err.Error()))
	}
	d.log.Info("stopped")
	return nil
}

// revealAll returns the secrets' values.
func revealAll(secrets []config.Secret) []string {
	out := make([]string, 0, len(secrets))
	for _, s := range secrets {
		out = append(out, s.Reveal())
	}
	return out
}

// deskSigner signs with desk.signing_key and also accepts the previous
// keys when checking.
func deskSigner(cfg *config.Config, domain string) mail.Signer {
	s := mail.Signer{Key: []byte(cfg.Desk.SigningKey.Reveal()), Domain: domain}
	for _, k := range cfg.Desk.PreviousSigningKeys {
		s.PreviousKeys = append(s.PreviousKeys, []byte(k.Reveal()))
	}
	return s
}
