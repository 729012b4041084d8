package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/mail/mailtest"
)

// smtpSourceRate runs Postfix's smtp-source against addr: n messages of
// size bytes of payload over sessions parallel sessions, and returns
// mails/s. With reuse (-d), each session carries its messages one after
// the other over one connection, as our sender's connection cache does.
func smtpSourceRate(b *testing.B, addr string, n, sessions, size int, reuse bool) float64 {
	return float64(n) / runSMTPSource(b, addr, n, sessions, size, reuse).Seconds()
}

// runSMTPSource runs smtp-source as smtpSourceRate does and returns how long
// it took: until the server at addr had answered every message.
func runSMTPSource(b *testing.B, addr string, n, sessions, size int, reuse bool) time.Duration {
	bin := redistest.NeedBinary(b, "smtp-source")
	args := []string{"-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(size),
		"-f", "assistance@ent.example", "-t", "support@desk.example"}
	if reuse {
		args = append([]string{"-d"}, args...)
	}
	start := time.Now()
	out, err := exec.Command(bin, append(args, addr)...).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	return time.Since(start)
}

// relayRate measures the relay baseline: smtp-source sends n messages of
// size bytes of payload to relay over sessions sessions, connections
// reused, and relay passes them on through its queue on disk to sink, which
// counts them. It returns mails/s from smtp-source's start until sink has
// received the n-th message, with the machine's CPU per mail over that
// time (smtp-source, every Postfix process, the sink) and how long
// smtp-source took (until the relay had accepted, queued on disk, every
// message).
func relayRate(b *testing.B, relay *mailtest.PostfixRelay, sink *mailtest.SMTPSink, n, sessions, size int) (rate float64, cpu, accepted time.Duration) {
	// Warm-up: one message per session first, so that the relay's workers
	// (smtpd, cleanup, smtp) are already started, as in a relay that has
	// been running, and its connections to the sink are open.
	before := sink.Received(b)
	runSMTPSource(b, relay.Addr, sessions, sessions, size, true)
	waitReceived(b, sink, before+sessions, time.Minute)

	before = sink.Received(b)
	busyBefore := machineBusy(b)
	start := time.Now()
	accepted = runSMTPSource(b, relay.Addr, n, sessions, size, true)
	waitReceived(b, sink, before+n, 10*time.Minute+time.Duration(n)*10*time.Millisecond)
	elapsed := time.Since(start)
	cpu = (machineBusy(b) - busyBefore) / time.Duration(n)
	// Each message once: nothing more arrives, nothing stays queued.
	time.Sleep(100 * time.Millisecond)
	if got := sink.Received(b) - before; got != n {
		b.Fatalf("the sink received %d messages through the relay, want %d", got, n)
	}
	if q := relay.Queued(b); q != 0 {
		b.Fatalf("%d messages still in the relay's queue", q)
	}
	return float64(n) / elapsed.Seconds(), cpu, accepted
}

// waitReceived polls sink's message count until it reaches want.
func waitReceived(b *testing.B, sink *mailtest.SMTPSink, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for sink.Received(b) < want {
		if time.Now().After(deadline) {
			b.Fatalf("after %s the sink has received %d messages, want %d", timeout, sink.Received(b), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkEscalationSend measures escalations per second from the request
// to the desk's server accepting the mail (compose with a screenshot, the
// ledger, SMTP to Postfix's smtp-sink, the ticket update), with the job
// queue's concurrency, then Postfix's smtp-source against the same sink
// with as many sessions and the same mail size. Reports mails/s,
// smtp-source mails/s and their ratio, then the floor under that ratio:
// our SMTP client alone sending the same mail as many times. Then the
// second baseline, what an operator would otherwise put between a program
// and the desk: a private Postfix relaying smtp-source's mails of the same
// size to the same sink through its queue on disk (relay-mails/s, until the
// sink has them all), and our ratio to it.
func BenchmarkEscalationSend(b *testing.B) { benchEscalationSend(b) }

// BenchmarkEscalationSendDurable is BenchmarkEscalationSend with Redis
// writing its append-only file and syncing it after every write, as the
// Postfix relay syncs each mail to disk before it answers 250: the
// comparison with the relay with our guarantees kept (an acknowledged
// webhook, a ledger entry, an acceptance survive a power cut).
func BenchmarkEscalationSendDurable(b *testing.B) { benchEscalationSend(b, redistest.WithAOF()) }

func benchEscalationSend(b *testing.B, redisOpts ...redistest.Option) {
	const sessions = 16
	// The sink counts what it receives, for the relay baseline; it does so
	// for every measurement here, ours included.
	sink := mailtest.StartSMTPSink(b, mailtest.WithCount())
	srv := redistest.Start(b, redisOpts...)
	cfg := benchConfig(srv.Addr, "bench:")
	cfg.Desk.Address = "support@desk.example"
	cfg.Desk.From = "Assistance ENT <assistance@ent.example>"
	cfg.Desk.ReplyTo = "assistance@ent.example"
	cfg.Desk.SigningKey = "0123456789abcdef-signing"
	cfg.SMTP.Addr = sink.Addr
	cfg.SMTP.TLS = config.TLSNone
	cfg.Jobs.Concurrency = sessions
	d := quietDaemon(b, &cfg)
	var sent atomic.Int64
	d.afterJob = func(e bridge.Effect, err error) {
		if e.Kind == bridge.EffectEscalate && err == nil {
			sent.Add(1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := d.svc.Apply(ctx, bridge.Event{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: true,
		Referents: []bridge.Referent{{ID: "u-ref1", DisplayName: "Mme Martin", Digest: bridge.DigestNever}}}}); err != nil {
		b.Fatal(err)
	}
	run := time.Now().UnixNano()
	png := make([]byte, 3000)
	for i := range b.N {
		id := fmt.Sprintf("m%d-%d", run, i)
		if _, err := d.svc.Apply(ctx, bridge.Event{ID: "c" + id, Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
			ID: id, StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa Dupont", Email: "lea@school.example"},
			Category: bridge.Category{App: "pronote", Label: "Pronote"}, Subject: "Écran blanc dans Pronote",
			Description: "Depuis ce matin, la page reste blanche.", Locale: "fr", CreatedAt: time.Now(),
			Attachments: []bridge.AttachmentData{{Attachment: bridge.Attachment{ID: "a" + id, Filename: "capture.png",
				ContentType: "image/png"}, Content: png}}}}); err != nil {
			b.Fatal(err)
		}
	}
	// The creations' own jobs (the referent's notification) run before the
	// clock: they are not the escalation's work.
	drainJobs(ctx, b, d)
	// The escalations are requested (their jobs queued) before the workers
	// start: what is timed is the mail pipeline alone — load, compose with
	// the screenshot, ledger, SMTP, ticket update — as smtp-source times
	// SMTP alone.
	for i := range b.N {
		id := fmt.Sprintf("m%d-%d", run, i)
		if _, err := d.svc.Apply(ctx, bridge.Event{ID: "e" + id, Type: bridge.EventEscalationRequested, TicketID: id,
			Actor: bridge.Person{ID: "u-ref1", DisplayName: "Mme Martin"}}); err != nil {
			b.Fatal(err)
		}
	}
	cmdsBefore := redisCommands(ctx, b, d)
	statsBefore := commandStats(ctx, b, d)
	redisCPUBefore := redisCPU(ctx, b, d)
	ownCPUBefore := processCPU(b)
	stopProfile := windowProfile(b, "escalation")
	b.ResetTimer()
	start := time.Now()
	jobsCtx, stopJobs := context.WithCancel(ctx)
	jobsDone := make(chan struct{})
	go func() { _ = d.runJobs(jobsCtx); close(jobsDone) }()
	// The job queue stops before the Redis client closes.
	defer func() { stopJobs(); <-jobsDone }()
	deadline := time.Now().Add(10*time.Minute + time.Duration(b.N)*10*time.Millisecond)
	for sent.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	if sent.Load() < int64(b.N) {
		b.Fatalf("only %d of %d escalations sent", sent.Load(), b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "mails/s")
	// Redis commands run per mail while timed (queue and bridge together;
	// a pipeline counts each of its commands; INFO itself is one).
	b.ReportMetric(float64(redisCommands(ctx, b, d)-cmdsBefore)/float64(b.N), "redis-cmds/mail")
	logCommandBudget(b, "mail", statsBefore, commandStats(ctx, b, d), b.N)
	// Where the CPU goes (2 cores shared by the daemon, redis-server and
	// smtp-sink): this process's, and redis-server's, per mail.
	b.ReportMetric(float64((processCPU(b)-ownCPUBefore).Microseconds())/float64(b.N), "daemon-cpu-µs/mail")
	b.ReportMetric(float64((redisCPU(ctx, b, d)-redisCPUBefore).Microseconds())/float64(b.N), "redis-cpu-µs/mail")
	// Each escalation reached the sink once (its counter may trail the
	// answers our client got by a moment).
	waitReceived(b, sink, b.N, 10*time.Second)
	if n := sink.Received(b); n != b.N {
		b.Fatalf("the sink received %d mails, want %d", n, b.N)
	}
	// Like for like: as many mails, as many parallel sessions as our job
	// slots, connections reused as our sender reuses them, and as many
	// bytes per mail as our escalation mail (smtp-source adds its own few
	// headers on top of that payload).
	out := escalationMail(ctx, b, d, fmt.Sprintf("m%d-0", run))
	size := len(out.Raw)
	if b.N >= 200 {
		base := smtpSourceRate(b, sink.Addr, b.N, sessions, size, true)
		b.Logf("N=%d sessions=%d mail=%d bytes: ours %.0f mails/s, smtp-source -d %.0f mails/s, ratio %.3f",
			b.N, sessions, size, rate, base, rate/base)
		b.ReportMetric(base, "smtp-source-mails/s")
		b.ReportMetric(rate/base, "ratio")
		b.ReportMetric(float64(size), "mail-bytes")
		// The floor under the ratio: our SMTP client alone (go-smtp, the
		// daemon's connection cache) sending that composed mail b.N times
		// over as many sessions — no queue, no compose, no Redis.
		busyBefore := machineBusy(b)
		floor := senderRate(b, d, out, b.N, sessions)
		busy := machineBusy(b) - busyBefore
		b.Logf("SMTP client alone: %.0f mails/s, %.3f of smtp-source; the machine's CPU (client and sink) %.0f µs per mail",
			floor, floor/base, float64(busy.Microseconds())/float64(b.N))
		b.ReportMetric(float64(busy.Microseconds())/float64(b.N), "client-alone-machine-cpu-µs/mail")
		b.ReportMetric(floor, "client-alone-mails/s")
		b.ReportMetric(floor/base, "floor-ratio")
	}
	// The relay baseline, also in a smoke run (not in the first round of
	// one mail that go test runs before the real one).
	if b.N > 1 {
		if err := mailtest.PostfixRelayAvailable(); err != nil && !redistest.Required() {
			b.Logf("no Postfix relay baseline: %v", err)
			return
		}
		// As many deliveries to the desk at once as our sessions.
		relay := mailtest.StartPostfixRelay(b, sink.Addr,
			mailtest.WithPostfixParam("default_destination_concurrency_limit", strconv.Itoa(sessions)))
		relayed, cpu, accepted := relayRate(b, relay, sink, b.N, sessions, size)
		relay.Stop()
		b.Logf("Postfix relay (smtp-source -d -s %d -l %d → postfix → smtp-sink): %.0f mails/s to the sink (all queued after %s), ours %.3f of it; the machine's CPU %.0f µs per mail",
			sessions, size, relayed, accepted.Round(time.Millisecond), rate/relayed, float64(cpu.Microseconds()))
		b.ReportMetric(relayed, "relay-mails/s")
		b.ReportMetric(rate/relayed, "relay-ratio")
		b.ReportMetric(float64(cpu.Microseconds()), "relay-machine-cpu-µs/mail")
	}
}

// senderRate sends out n times from sessions goroutines through a Sender
// configured as the daemon's, and returns mails/s.
func senderRate(b *testing.B, d *daemon, out bridge.OutgoingMail, n, sessions int) float64 {
	mailer, err := newDeskMailer(d.cfg)
	if err != nil || mailer == nil {
		b.Fatalf("desk mailer: %v", err)
	}
	defer mailer.Sender.Close()
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range sessions {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := mailer.Send(context.Background(), out); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// escalationMail composes the escalation mail of a ticket as the daemon
// sends it.
func escalationMail(ctx context.Context, b *testing.B, d *daemon, ticketID string) bridge.OutgoingMail {
	mailer, err := newDeskMailer(d.cfg)
	if err != nil || mailer == nil {
		b.Fatalf("desk mailer: %v", err)
	}
	view, err := d.store.TicketView(ctx, ticketID)
	if err != nil {
		b.Fatal(err)
	}
	st, err := d.store.Structure(ctx, view.StructureID)
	if err != nil {
		b.Fatal(err)
	}
	var atts []bridge.AttachmentData
	for _, a := range view.Attachments {
		ad, err := d.store.Attachment(ctx, a.ID)
		if err != nil {
			b.Fatal(err)
		}
		ad.Attachment = a
		atts = append(atts, ad)
	}
	var by bridge.Person
	if view.Escalation.EscalatedBy != nil {
		by = *view.Escalation.EscalatedBy
	}
	m, err := mailer.ComposeEscalation(bridge.EscalationMail{MessageID: mailer.NewMessageID(ticketID, "esc"),
		Ticket: view, Structure: st, EscalatedBy: by, Attachments: atts})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// drainJobs runs the daemon's jobs until its queue has none left to run,
// then stops the workers.
func drainJobs(ctx context.Context, b *testing.B, d *daemon) {
	jobsCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.runJobs(jobsCtx); close(done) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		dp, err := d.queue.Depths()
		if err != nil {
			b.Fatal(err)
		}
		if dp.Pending+dp.Active+dp.Retry == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("the jobs before the clock did not finish")
}

// redisCommands returns how many commands the Redis server has run.
func redisCommands(ctx context.Context, b *testing.B, d *daemon) int64 {
	info, err := d.rdb.Info(ctx, "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("redis INFO stats: no total_commands_processed")
	return 0
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy returns the CPU time all the machine's processes have used
// (every core, from /proc/stat): the floors compare it to the time two
// cores offer.
func machineBusy(b *testing.B) time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Skipf("no /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: %q", line)
	}
	var ticks int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// redisCPU returns the CPU time the Redis server has used.
func redisCPU(ctx context.Context, b *testing.B, d *daemon) time.Duration {
	info, err := d.rdb.Info(ctx, "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		for _, key := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), key); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}
