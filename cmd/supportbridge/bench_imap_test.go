package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/config"
	"supportbridge/mail/mailtest"
)

// benchDaemon is a daemon on a real redis-server reading a real Dovecot.
func benchDaemon(b *testing.B, dc *mailtest.Dovecot) *daemon {
	srv := redistest.Start(b)
	cfg := benchConfig(srv.Addr, "bench:")
	cfg.Desk.ReplyTo = "assistance@ent.example"
	cfg.Desk.AllowedSenders = []string{"*@desk.example"}
	cfg.Desk.SigningKey = "0123456789abcdef-signing"
	cfg.IMAP.Addr = dc.IMAPAddr
	cfg.IMAP.TLS = config.TLSNone
	cfg.IMAP.Username = dc.User
	cfg.IMAP.Password = config.Secret(dc.Password)
	cfg.IMAP.PollInterval = time.Second
	d := quietDaemon(b, &cfg)
	if _, err := d.svc.Apply(context.Background(), bridge.Event{ID: "st", Type: bridge.EventStructureUpserted,
		Structure: &bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo"}}); err != nil {
		b.Fatal(err)
	}
	return d
}

func benchTicket(b *testing.B, d *daemon, id string) {
	if _, err := d.svc.Apply(context.Background(), bridge.Event{ID: "c-" + id, Type: bridge.EventTicketCreated,
		NewTicket: &bridge.NewTicket{ID: id, StructureID: "s1", Owner: bridge.Person{ID: "u1", DisplayName: "Léa"},
			Subject: "Écran blanc", CreatedAt: time.Now()}}); err != nil {
		b.Fatal(err)
	}
}

func deskExchanges(b *testing.B, d *daemon, id string) int {
	v, err := d.svc.Ticket(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	return len(v.Exchanges)
}

// bareFetchBatch is the reader's default FETCH batch, so that the baseline
// asks for the messages the way the reader does.
const bareFetchBatch = 200

// bareFetch is the baseline: a plain go-imap v2 client that selects the
// mailbox, finds its UIDs and streams the full bodies (BODY.PEEK[]) in UID
// FETCH batches, reading every byte and doing nothing else with them.
func bareFetch(b *testing.B, dc *mailtest.Dovecot, n int) time.Duration {
	d, bytes := plainFetch(b, dc, "INBOX", "", n)
	b.Logf("bare fetch: %d messages, %d bytes, UID FETCH BODY.PEEK[] in batches of %d, streamed, one connection: %v",
		n, bytes, bareFetchBatch, d)
	return d
}

// plainFetch streams the bodies of the n messages of box in batches of
// bareFetchBatch, and, when moveTo is set, moves each batch there with one
// UID MOVE once it is read — what the reader must do on the IMAP side at
// the least, with nothing done with the bytes. It returns the time taken
// and the bytes read.
func plainFetch(b *testing.B, dc *mailtest.Dovecot, box, moveTo string, n int) (time.Duration, int64) {
	start := time.Now()
	c, err := imapclient.DialInsecure(dc.IMAPAddr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(dc.User, dc.Password).Wait(); err != nil {
		b.Fatal(err)
	}
	if moveTo != "" {
		// Created beforehand, as the reader's mailboxes are.
		if err := c.Create(moveTo, nil).Wait(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.Select(box, &imap.SelectOptions{ReadOnly: moveTo == ""}).Wait(); err != nil {
		b.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	uids := sd.AllUIDs()
	sec := &imap.FetchItemBodySection{Peek: true}
	got, bytes := 0, int64(0)
	for i := 0; i < len(uids); i += bareFetchBatch {
		set := imap.UIDSetNum(uids[i:min(i+bareFetchBatch, len(uids))]...)
		cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if body, ok := item.(imapclient.FetchItemDataBodySection); ok && body.Literal != nil {
					k, err := io.Copy(io.Discard, body.Literal)
					if err != nil {
						b.Fatal(err)
					}
					bytes += k
					got++
				}
			}
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if moveTo != "" {
			if _, err := c.Move(set, moveTo).Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if got != n {
		b.Fatalf("fetch of %s got %d messages, want %d", box, got, n)
	}
	return time.Since(start), bytes
}

// BenchmarkIMAPImport delivers N desk replies into a real Dovecot, times a
// bare fetch of that mailbox, then times the bridge importing them all
// (fetch, parse, classify, thread, extract, apply in Redis, move to
// Processed). Reports replies/s, the bare fetch's messages/s and the ratio.
//
// It then measures the floor under the ratio: the same messages fetched
// the same way and moved in batches, as the reader must move them once
// handled, by a client that does nothing else (no parsing, no Redis).
// floor-ratio is that client's rate over the bare fetch's: no reader that
// moves what it handled can do better on this server.
func BenchmarkIMAPImport(b *testing.B) {
	dc := mailtest.StartDovecot(b)
	d := benchDaemon(b, dc)
	const tickets = 50
	for i := range tickets {
		benchTicket(b, d, fmt.Sprintf("I%d", i))
	}
	for i := range b.N {
		dc.Deliver(b, deskReply("Julie <julie@desk.example>", fmt.Sprintf("RE: [ENT-I%d] Écran blanc", i%tickets), "",
			fmt.Sprintf("Réponse numéro %d : nous regardons.", i)))
	}
	bare := bareFetch(b, dc, b.N)

	cmdsBefore := redisCommands(context.Background(), b, d)
	statsBefore := commandStats(context.Background(), b, d)
	redisCPUBefore := redisCPU(context.Background(), b, d)
	ownCPUBefore := processCPU(b)
	stopProfile := windowProfile(b, "reply")
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = d.reader.Run(ctx); close(done) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st := d.reader.State()
		if int(st.Processed) >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("imported %d of %d (%s)", st.Processed, b.N, st.LastError)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	// Where the CPU goes, per reply (Dovecot's own is not counted).
	ownCPU := processCPU(b) - ownCPUBefore
	cmds := redisCommands(context.Background(), b, d) - cmdsBefore
	rCPU := redisCPU(context.Background(), b, d) - redisCPUBefore
	b.ReportMetric(float64(cmds)/float64(b.N), "redis-cmds/reply")
	logCommandBudget(b, "reply", statsBefore, commandStats(context.Background(), b, d), b.N)
	b.ReportMetric(float64(ownCPU.Microseconds())/float64(b.N), "daemon-cpu-µs/reply")
	b.ReportMetric(float64(rCPU.Microseconds())/float64(b.N), "redis-cpu-µs/reply")
	total := 0
	for i := range tickets {
		total += deskExchanges(b, d, fmt.Sprintf("I%d", i))
	}
	if total != b.N {
		b.Fatalf("%d exchanges for %d replies", total, b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	bareRate := float64(b.N) / bare.Seconds()
	b.ReportMetric(rate, "replies/s")
	b.ReportMetric(bareRate, "bare-fetch-msgs/s")
	b.ReportMetric(rate/bareRate, "ratio")

	cancel()
	<-done
	stopped = true
	busyBefore := machineBusy(b)
	floor, _ := plainFetch(b, dc, d.cfg.IMAP.ProcessedMailbox, "Floor", b.N)
	busy := machineBusy(b) - busyBefore
	floorRate := float64(b.N) / floor.Seconds()
	b.Logf("fetch and move alone: %d messages from %s to Floor in batches of %d: %v (%.0f msgs/s, %.3f of the bare fetch); the machine's CPU (client and Dovecot) %.0f µs per message",
		b.N, d.cfg.IMAP.ProcessedMailbox, bareFetchBatch, floor, floorRate, floorRate/bareRate, float64(busy.Microseconds())/float64(b.N))
	b.ReportMetric(float64(busy.Microseconds())/float64(b.N), "fetch-move-machine-cpu-µs/msg")
	b.ReportMetric(floorRate, "fetch-move-msgs/s")
	b.ReportMetric(floorRate/bareRate, "floor-ratio")
}

// BenchmarkReplyLatency delivers desk replies into a real Dovecot one at a
// time, with the reader waiting in IDLE, and measures the time until each
// is an exchange on its ticket. Reports the median and p99 in ms.
func BenchmarkReplyLatency(b *testing.B) {
	dc := mailtest.StartDovecot(b)
	d := benchDaemon(b, dc)
	benchTicket(b, d, "LAT")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.reader.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for !d.reader.State().Idle {
		time.Sleep(5 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		dc.Deliver(b, deskReply("julie@desk.example", "RE: [ENT-LAT] x", "", fmt.Sprintf("Réponse %d.", i)))
		for deskExchanges(b, d, "LAT") < i+1 {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("reply %d never arrived", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
}
