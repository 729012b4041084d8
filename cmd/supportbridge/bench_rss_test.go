package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// procMemKiB reads a memory line (VmRSS, VmHWM) of /proc/<pid>/status,
// in KiB.
func procMemKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// rssSampler records the highest resident size of a process while it runs.
type rssSampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if kib, err := procMemKiB(pid, "VmRSS"); err == nil && kib > s.peak.Load() {
				s.peak.Store(kib)
			}
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *rssSampler) end() float64 {
	close(s.stop)
	<-s.done
	return float64(s.peak.Load()) / 1024
}

// rssWait polls the API until cond holds on the ticket.
func rssWait(b *testing.B, d *daemonUnderTest, id string, within time.Duration, cond func(answer) bool) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		a := d.get(b, "/v1/tickets/"+id)
		if a.Status == 200 && cond(a) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("ticket %s: condition not met after %v: %d %s", id, within, a.Status, a.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkRSSLargeMail measures the daemon's resident memory (its own
// process: the test binary re-executed as `serve`) while it imports a
// 30 MB desk reply from a real Dovecot, sampled every 5 ms. Reports the
// resident size before the mail, the peak during the import, and the
// mail's size. Target: peak under 100 MB. Run with -benchtime 1x.
func BenchmarkRSSLargeMail(b *testing.B) {
	dc := mailtest.StartDovecot(b)
	srv := redistest.Start(b)
	sink := mailtest.StartSMTPSink(b)
	child := startChild(b, writeConfig(b, srv.Addr, deskConfig(sink.Addr)+imapConfig(dc)))
	d := child.daemon()
	pid := child.cmd.Process.Pid
	for i := range b.N {
		id := fmt.Sprintf("RSS%d", i)
		if a := d.post(b, nextID(), ticketCreated(id, "s1")); a.Status != 202 {
			b.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if a := d.post(b, nextID(), escalation(id)); a.Status != 202 {
			b.Fatalf("escalate: %d %s", a.Status, a.Raw)
		}
		rssWait(b, d, id, 20*time.Second, func(a answer) bool { return escalationStatus(a) == "successful" })
		raw := bigDeskReply(b, "RE: [ENT-"+id+"] journaux", "")
		time.Sleep(500 * time.Millisecond) // settle after the escalation
		before, err := procMemKiB(pid, "VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		s := sampleRSS(pid)
		dc.Deliver(b, raw)
		rssWait(b, d, id, 60*time.Second, func(a answer) bool { return len(deskBodies(a)) == 1 })
		peak := s.end()
		b.ReportMetric(float64(before)/1024, "rss-before-MiB")
		b.ReportMetric(peak, "rss-peak-MiB")
		b.ReportMetric(float64(len(raw))/(1<<20), "mail-MiB")
	}
}

// BenchmarkRSSManyTickets creates many tickets (100,000 by default;
// SUPPORTBRIDGE_RSS_TICKETS sets another number) through signed webhooks
// on a daemon in its own process on a real redis-server, waits for their
// jobs to drain, and reports the daemon's resident size then, its peak,
// and Redis's memory per ticket. Run with -benchtime 1x.
func BenchmarkRSSManyTickets(b *testing.B) {
	tickets := 100000
	if v := os.Getenv("SUPPORTBRIDGE_RSS_TICKETS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SUPPORTBRIDGE_RSS_TICKETS=%q", v)
		}
		tickets = n
	}
	srv := redistest.Start(b)
	child := startChild(b, writeConfig(b, srv.Addr, "jobs: {concurrency: 16}\n"))
	d := child.daemon()
	pid := child.cmd.Process.Pid
	rdb := redistest.Client(b, srv.Addr)
	usedMemory := func() int64 {
		info, err := rdb.Info(b.Context(), "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO")
		return 0
	}
	startMem := usedMemory()
	before, _ := procMemKiB(pid, "VmRSS")
	s := sampleRSS(pid)
	run := time.Now().UnixNano()
	posted, failed := fanOut(tickets, 16, func(i int) error {
		resp, err := http.DefaultClient.Do(signedRequest(d.base, fmt.Sprintf("many-%d-%d", run, i),
			[]byte(ticketCreated(fmt.Sprintf("M%d-%d", run, i), "s1"))))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 202 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if failed > 0 {
		b.Fatalf("%d of %d webhooks failed", failed, tickets)
	}
	// Let the jobs (notifications) drain, then read the resident size.
	deadline := time.Now().Add(10 * time.Minute)
	queue := jobqueue.New(rdb, jobqueue.Options{Queue: "sb-jobs"}) // key_prefix "sb:"
	for {
		dp, err := queue.Depths()
		if err == nil && dp.Pending+dp.Active == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	after, err := procMemKiB(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	peak := s.end()
	if a := d.get(b, fmt.Sprintf("/v1/tickets/M%d-%d", run, tickets-1)); a.Status != 200 {
		b.Fatalf("last ticket: %d", a.Status)
	}
	b.ReportMetric(float64(tickets), "tickets")
	b.ReportMetric(float64(tickets)/posted.Seconds(), "webhooks/s")
	b.ReportMetric(float64(before)/1024, "rss-before-MiB")
	b.ReportMetric(float64(after)/1024, "rss-after-MiB")
	b.ReportMetric(peak, "rss-peak-MiB")
	b.ReportMetric(float64(usedMemory()-startMem)/float64(tickets), "redis-B/ticket")
}
