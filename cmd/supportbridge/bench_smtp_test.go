package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/mail/mailtest"
)

// smtpSourceRate runs Postfix's smtp-source against addr: n messages of
// about size bytes over sessions parallel sessions, and returns mails/s.
func smtpSourceRate(b *testing.B, addr string, n, sessions, size int) float64 {
	bin := redistest.NeedBinary(b, "smtp-source")
	start := time.Now()
	out, err := exec.Command(bin, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(size),
		"-f", "assistance@ent.example", "-t", "support@desk.example", addr).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkEscalationSend measures escalations per second from the request
// to the desk's server accepting the mail (compose with a screenshot, the
// ledger, SMTP to Postfix's smtp-sink, the ticket update), with the job
// queue's concurrency, then Postfix's smtp-source against the same sink
// with as many sessions and the same mail size. Reports mails/s,
// smtp-source mails/s and their ratio.
func BenchmarkEscalationSend(b *testing.B) {
	const sessions = 16
	sink := mailtest.StartSMTPSink(b)
	srv := redistest.Start(b)
	cfg := config.Default()
	cfg.Redis.Addrs = []string{srv.Addr}
	cfg.Redis.KeyPrefix = "bench:"
	cfg.ENT.WebhookSecrets = []config.Secret{testSecret}
	cfg.ENT.APITokens = []config.Secret{testToken}
	cfg.Desk.Address = "support@desk.example"
	cfg.Desk.From = "Assistance ENT <assistance@ent.example>"
	cfg.Desk.ReplyTo = "assistance@ent.example"
	cfg.Desk.SigningKey = "0123456789abcdef-signing"
	cfg.SMTP.Addr = sink.Addr
	cfg.SMTP.TLS = config.TLSNone
	cfg.Jobs.Concurrency = sessions
	d, err := newDaemon(&cfg, slog.New(slog.DiscardHandler), func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	var sent atomic.Int64
	d.afterJob = func(e bridge.Effect, err error) {
		if e.Kind == bridge.EffectEscalate && err == nil {
			sent.Add(1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := d.svc.Apply(ctx, bridge.Event{ID: "st", Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A", EscalationEnabled: true}}); err != nil {
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
	if sent.Load() < int64(b.N) {
		b.Fatalf("only %d of %d escalations sent", sent.Load(), b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "mails/s")
	if b.N >= 200 {
		base := smtpSourceRate(b, sink.Addr, b.N, sessions, 6000)
		b.ReportMetric(base, "smtp-source-mails/s")
		b.ReportMetric(rate/base, "ratio")
	}
}
