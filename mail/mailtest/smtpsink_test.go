package mailtest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func send(t *testing.T, addr, from string, to []string, raw []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout = 10 * time.Second
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func TestSMTPSinkDumpReadsBackWhatWasSent(t *testing.T) {
	s := StartSMTPSink(t, WithDump())
	first := sampleMail("one")
	second := []byte("From: b@ent.example\r\nSubject: two\r\n\r\n..two dots\r\n\tindented\r\n")
	if err := send(t, s.Addr, "assistance@ent.example", []string{"support@desk.example", "cc@desk.example"}, first); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := send(t, s.Addr, "", []string{"support@desk.example"}, second); err != nil {
		t.Fatalf("send: %v", err)
	}

	got := s.Deliveries(t)
	want := []SinkMessage{
		{Helo: "localhost", From: "assistance@ent.example", To: []string{"support@desk.example", "cc@desk.example"}, Data: first},
		{Helo: "localhost", From: "", To: []string{"support@desk.example"}, Data: second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deliveries:\n got %q\nwant %q", got, want)
	}
	msgs := s.Messages(t)
	if len(msgs) != 2 || !bytes.Equal(msgs[0], first) || !bytes.Equal(msgs[1], second) {
		t.Fatalf("messages = %q", msgs)
	}
}

func TestSMTPSinkErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     []SinkOption
		wantCode int // 0: a network error, not an SMTP reply
	}{
		{name: "hard error on RCPT", opts: []SinkOption{WithHardError("RCPT")}, wantCode: 500},
		{name: "hard error at end of data", opts: []SinkOption{WithHardError(".")}, wantCode: 500},
		{name: "soft error on MAIL", opts: []SinkOption{WithSoftError("mail")}, wantCode: 450},
		{name: "soft error on DATA", opts: []SinkOption{WithSoftError("data")}, wantCode: 450},
		{name: "dropped after DATA", opts: []SinkOption{WithDisconnect("data")}, wantCode: 0},
		{name: "shutdown on MAIL", opts: []SinkOption{WithShutdown("MAIL")}, wantCode: 421},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartSMTPSink(t, tt.opts...)
			err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("x"))
			if err == nil {
				t.Fatal("send succeeded")
			}
			var smtpErr *smtp.SMTPError
			isSMTP := errors.As(err, &smtpErr)
			switch {
			case tt.wantCode == 0 && isSMTP:
				t.Fatalf("got SMTP reply %v, want a network error", err)
			case tt.wantCode != 0 && !isSMTP:
				t.Fatalf("got %T %v, want *smtp.SMTPError", err, err)
			case tt.wantCode != 0 && smtpErr.Code != tt.wantCode:
				t.Fatalf("code %d, want %d", smtpErr.Code, tt.wantCode)
			case tt.wantCode != 0 && smtpErr.Temporary() != (tt.wantCode/100 == 4):
				t.Fatalf("Temporary() = %v for %d", smtpErr.Temporary(), smtpErr.Code)
			}
		})
	}
}

func TestSMTPSinkRefusingConnections(t *testing.T) {
	tests := []struct {
		name     string
		opt      SinkOption
		wantCode int // 0: a network error
	}{
		{name: "temporary", opt: WithSoftError("connect"), wantCode: 450},
		{name: "permanent", opt: WithHardError("CONNECT"), wantCode: 500},
		{name: "dropped", opt: WithDisconnect("connect"), wantCode: 0},
		{name: "shutdown", opt: WithShutdown("connect"), wantCode: 421},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartSMTPSink(t, tt.opt)
			err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("c"))
			var smtpErr *smtp.SMTPError
			switch {
			case err == nil:
				t.Fatal("send succeeded")
			case tt.wantCode == 0 && errors.As(err, &smtpErr):
				t.Fatalf("got SMTP reply %v, want a network error", err)
			case tt.wantCode != 0 && (!errors.As(err, &smtpErr) || smtpErr.Code != tt.wantCode):
				t.Fatalf("send: %v, want SMTP code %d", err, tt.wantCode)
			}
		})
	}
}

func TestSMTPSinkKillRestart(t *testing.T) {
	s := StartSMTPSink(t, WithDump())
	s.Kill()
	if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("port still accepts after Kill")
	}
	s.Restart(t)
	if err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("r")); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	if n := len(s.Messages(t)); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func TestSMTPSinkMessagesNeedsDump(t *testing.T) {
	s := StartSMTPSink(t)
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Messages(ft)
	}()
	<-done
	if !ft.failed {
		t.Fatal("Messages without WithDump did not fail")
	}
}

func TestParseSinkDump(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    SinkMessage
		wantErr bool
	}{
		{
			name: "full",
			file: "full.dump",
			want: SinkMessage{
				Helo: "localhost",
				From: "a@ent.example",
				To:   []string{"b@desk.example", "c@desk.example"},
				Data: []byte("Subject: hi\r\n\r\nline\r\n\tindented body line\r\n.dot\r\n"),
			},
		},
		{name: "truncated header", file: "truncated.dump", wantErr: true},
		{name: "no end of data", file: "unterminated.dump", wantErr: true},
		{name: "not a capture", file: "garbage.dump", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseSinkDump(data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// fatalTB records a Fatal instead of failing the real test; like the
// testing package it stops the calling goroutine.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(...any) { f.failed = true; runtime.Goexit() }

func (f *fatalTB) Fatalf(string, ...any) { f.failed = true; runtime.Goexit() }

func TestParseSinkDumps(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "two.dump"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSinkDumps(data, "SEP-1")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	want := []SinkMessage{
		{
			Helo: "localhost",
			From: "a@ent.example",
			To:   []string{"b@desk.example", "c@desk.example"},
			Data: []byte("Subject: hi\r\n\r\nline\r\n\tindented body line\r\n.dot\r\n"),
		},
		{
			From: "",
			To:   []string{"d@desk.example"},
			Data: []byte("\tfirst line starts with a tab\r\nX-Client-Addr: not a new capture\r\n"),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if _, err := parseSinkDumps(data, "OTHER"); err == nil {
		t.Fatal("a dump with another separator parsed")
	}
}

// waitReceived polls s.Received until it reaches want (smtp-sink writes its
// counter around its answer to the final ".", so it may trail the client
// by a moment), and fails after a few seconds.
func waitReceived(t *testing.T, s *SMTPSink, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.Received(t)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("Received = %d, want %d", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSMTPSinkCount(t *testing.T) {
	s := StartSMTPSink(t, WithCount())
	if n := s.Received(t); n != 0 {
		t.Fatalf("Received before any mail = %d", n)
	}
	for i := range 3 {
		if err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example", "c@desk.example"}, sampleMail(strconv.Itoa(i))); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	waitReceived(t, s, 3) // messages, not recipients nor sessions
	// A restart counts from 0 again.
	s.Restart(t)
	if err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("after")); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitReceived(t, s, 1)
}

func TestSMTPSinkReceivedNeedsCount(t *testing.T) {
	s := StartSMTPSink(t)
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Received(ft)
	}()
	<-done
	if !ft.failed {
		t.Fatal("Received without WithCount did not fail")
	}
}

func TestLastCounter(t *testing.T) {
	tests := []struct {
		log  string
		want int
	}{
		{"", 0},
		{"sess=0 quit=0 mesg=1\r", 1},
		{"sess=0 quit=0 mesg=1\rsess=0 quit=0 mesg=12\r", 12},
		// A counter caught half written: the one before is complete.
		{"sess=0 quit=0 mesg=9\rsess=0 quit=0 mesg=1", 9},
		{"sess=0 quit=0 mesg=9\rsess=0 quit=0 mesg=", 9},
		// After a restart, the log goes on with the new run's counters.
		{"sess=4 quit=4 mesg=400\rsmtp-sink: warning: something\nsess=0 quit=0 mesg=2\r", 2},
		{"sess=4 quit=4 mesg=400\rsmtp-sink: warning: something\n", 400},
	}
	for _, tt := range tests {
		if got := lastCounter([]byte(tt.log)); got != tt.want {
			t.Errorf("lastCounter(%q) = %d, want %d", tt.log, got, tt.want)
		}
	}
}
