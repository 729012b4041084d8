package mailtest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestSMTPServerKeepsWhatItAccepted(t *testing.T) {
	s := StartSMTP(t)
	first := sampleMail("one")
	second := []byte("Subject: two\r\n\r\n.\r\n..two dots\r\n")
	if err := send(t, s.Addr, "assistance@ent.example", []string{"support@desk.example", "cc@desk.example"}, first); err != nil {
		t.Fatal(err)
	}
	if err := send(t, s.Addr, "", []string{"support@desk.example"}, second); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	for i, want := range []SMTPMessage{
		{From: "assistance@ent.example", To: []string{"support@desk.example", "cc@desk.example"}, Data: first},
		{From: "", To: []string{"support@desk.example"}, Data: second},
	} {
		m := got[i]
		if m.From != want.From || !reflect.DeepEqual(m.To, want.To) || !bytes.Equal(m.Data, want.Data) || m.User != "" || m.TLS || m.At.IsZero() {
			t.Errorf("message %d: %+v; want %+v", i, m, want)
		}
	}
	if h := s.Helos(); len(h) != 2 || h[0] != "localhost" {
		t.Errorf("helos %q", h)
	}
	s.WaitClosed(t, 2)
	if st := s.Stats(); st != (SMTPStats{Conns: 2, Closed: 2, Mails: 2, Datas: 2}) {
		t.Errorf("stats %+v", st)
	}
}

func TestSMTPServerFailures(t *testing.T) {
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	perm := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	tests := []struct {
		name     string
		opt      SMTPOption
		wantCode int // 0: the connection dropped
	}{
		{"MAIL", FailMail(temp), 451},
		{"RCPT", FailRcpt(perm), 550},
		{"DATA", FailData(perm), 550},
		{"hang-up after DATA", FailData(ErrHangUp), 0},
		{"second DATA only", OnData(func(n int, m *SMTPMessage) error {
			if n == 2 {
				return temp
			}
			return nil
		}), 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartSMTP(t, tt.opt)
			var err error
			for range 2 {
				if err = send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("x")); err != nil {
					break
				}
			}
			var se *smtp.SMTPError
			switch {
			case tt.wantCode == 0 && err == nil, tt.wantCode == 0 && errors.As(err, &se):
				t.Fatalf("error %v; want a dropped connection", err)
			case tt.wantCode != 0 && (!errors.As(err, &se) || se.Code != tt.wantCode):
				t.Fatalf("error %v; want %d", err, tt.wantCode)
			}
			if n := len(s.Messages()); n > 1 || (n == 1) != (tt.name == "second DATA only") {
				t.Errorf("%d messages kept", n)
			}
		})
	}
}

func TestSMTPServerAuthAndTLS(t *testing.T) {
	serverTLS, pool := SelfSignedCert(t)
	s := StartSMTP(t, WithAuth("bridge", "s3cret"), WithSTARTTLS(serverTLS))
	clear, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer clear.Close()
	if err := clear.Hello("localhost"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := clear.Extension("AUTH"); ok {
		t.Error("AUTH offered in clear")
	}
	c, err := smtp.DialStartTLS(s.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@ent.example", nil); err == nil {
		t.Error("MAIL accepted before AUTH")
	}
	if err := c.Auth(sasl.NewPlainClient("", "bridge", "nope")); err == nil {
		t.Error("wrong password accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "bridge", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@ent.example", []string{"b@desk.example"}, bytes.NewReader(sampleMail("x"))); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages(); len(got) != 1 || got[0].User != "bridge" || !got[0].TLS {
		t.Errorf("received %+v", got)
	}
	if st := s.Stats(); st.Conns != 2 {
		t.Errorf("%d connections counted; want 2, one of them upgraded by STARTTLS", st.Conns)
	}
}

func TestSMTPServerStopResume(t *testing.T) {
	s := StartSMTP(t, WithReadTimeout(time.Minute))
	idle, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// Its greeting read: the server has accepted it (else Stop could
	// close the listener with the connection still in the backlog).
	if _, err := bufio.NewReader(idle).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("x")); err == nil {
		t.Fatal("sent to a stopped server")
	}
	s.WaitClosed(t, 1) // the idle connection went with it
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := send(t, s.Addr, "a@ent.example", []string{"b@desk.example"}, sampleMail("x")); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages", n)
	}
	s.DropAll()
	s.WaitClosed(t, 2)
}
