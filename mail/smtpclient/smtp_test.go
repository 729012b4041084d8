package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"supportbridge/mail"
	"supportbridge/mail/mailtest"
)

// testMessage is a real escalation, so that the bytes on the wire are
// what production sends: the composer's French test escalation with its
// first two attachments, written once to testdata/escalation_fr.eml (the
// composer is in package compose, which imports this one).
func testMessage(t *testing.T) mail.Outgoing {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "escalation_fr.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return mail.Outgoing{
		MessageID: "sb.esc.gqza.hywn3mkcwhwlvwbd.uevtm7o6rxwoycpz@ent.example",
		From:      "assistance@ent.example",
		To:        []string{"support@desk.example"},
		Raw:       raw,
	}
}

func wantSendError(t *testing.T, err error, temporary bool, code int, stage string) *SendError {
	t.Helper()
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T); want a *SendError", err, err)
	}
	if se.Temporary != temporary || se.Code != code || se.Stage != stage {
		t.Errorf("SendError{Temporary: %v, Code: %d, Stage: %q} (%v); want %v, %d, %q",
			se.Temporary, se.Code, se.Stage, se.Err, temporary, code, stage)
	}
	if IsTemporary(err) != temporary {
		t.Errorf("IsTemporary(%v) = %v", err, !temporary)
	}
	return se
}

func TestSendSuccess(t *testing.T) {
	be := mailtest.StartSMTP(t)
	addr := be.Addr
	msg := testMessage(t)
	s := &Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second, HeloName: "bridge.ent.example"}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	got := be.Messages()
	if len(got) != 1 {
		t.Fatalf("%d mails received", len(got))
	}
	m := got[0]
	if m.From != msg.From || strings.Join(m.To, ",") != strings.Join(msg.To, ",") {
		t.Errorf("envelope %q → %q; want %q → %q", m.From, m.To, msg.From, msg.To)
	}
	if !bytes.Equal(m.Data, msg.Raw) {
		t.Errorf("message altered in transit: %d bytes received, %d sent", len(m.Data), len(msg.Raw))
	}
	if m.User != "" {
		t.Error("authenticated without a username")
	}
	if be.Helos()[0] != "bridge.ent.example" {
		t.Errorf("EHLO %q", be.Helos()[0])
	}
}

func TestSendDotStuffing(t *testing.T) {
	be := mailtest.StartSMTP(t)
	addr := be.Addr
	raw := []byte("Subject: x\r\n\r\n.\r\n..\r\n.leading dot\r\nend\r\n")
	err := (&Sender{Addr: addr, TLS: "none"}).Send(context.Background(), mail.Outgoing{From: "a@b.test", To: []string{"c@d.test"}, Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	if got := be.Messages(); len(got) != 1 || !bytes.Equal(got[0].Data, raw) {
		t.Errorf("received %+v", got)
	}
}

func TestSendAuth(t *testing.T) {
	tests := []struct {
		name      string
		mechs     []string
		user      string
		pass      string
		wantErr   bool
		temporary bool
		code      int
	}{
		{name: "plain", mechs: []string{"PLAIN", "LOGIN"}, user: "bridge", pass: "s3cret"},
		{name: "login only", mechs: []string{"LOGIN"}, user: "bridge", pass: "s3cret"},
		{name: "wrong password", mechs: []string{"PLAIN"}, user: "bridge", pass: "nope", wantErr: true, code: 535},
		{name: "wrong password login", mechs: []string{"LOGIN"}, user: "bridge", pass: "nope", wantErr: true, code: 535},
		{name: "no mechanism offered", mechs: nil, user: "bridge", pass: "s3cret", wantErr: true, temporary: true},
		{name: "no mechanism we know", mechs: []string{"XOAUTH2"}, user: "bridge", pass: "s3cret", wantErr: true, temporary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := mailtest.StartSMTP(t, mailtest.WithAuth("bridge", "s3cret"), mailtest.WithAuthMechanisms(tt.mechs...),
				mailtest.WithInsecureAuth())
			addr := be.Addr
			s := &Sender{Addr: addr, TLS: "none", Username: tt.user, Password: tt.pass, Timeout: 5 * time.Second}
			err := s.Send(context.Background(), testMessage(t))
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if got := be.Messages(); len(got) != 1 || got[0].User != "bridge" {
					t.Errorf("received %+v", got)
				}
				return
			}
			se := wantSendError(t, err, tt.temporary, tt.code, StageAuth)
			if strings.Contains(se.Error(), tt.pass) {
				t.Error("password in the error")
			}
			if len(be.Messages()) != 0 {
				t.Error("mail accepted")
			}
		})
	}
	// Without a username the bridge does not authenticate, and a server
	// that wants it says so permanently at MAIL.
	be := mailtest.StartSMTP(t, mailtest.WithAuth("bridge", "s3cret"), mailtest.WithAuthMechanisms("PLAIN"),
		mailtest.WithInsecureAuth())
	err := (&Sender{Addr: be.Addr, TLS: "none"}).Send(context.Background(), testMessage(t))
	wantSendError(t, err, false, 502, StageMail)
}

func TestSendTLS(t *testing.T) {
	serverTLS, pool := mailtest.SelfSignedCert(t)
	_, otherPool := mailtest.SelfSignedCert(t)

	t.Run("starttls with auth", func(t *testing.T) {
		// No insecure auth: AUTH is only offered once TLS is up.
		be := mailtest.StartSMTP(t, mailtest.WithAuth("bridge", "s3cret"), mailtest.WithAuthMechanisms("PLAIN"),
			mailtest.WithSTARTTLS(serverTLS))
		addr := be.Addr
		s := &Sender{Addr: addr, TLS: "starttls", Username: "bridge", Password: "s3cret", RootCAs: pool, Timeout: 5 * time.Second, HeloName: "bridge.test"}
		if err := s.Send(context.Background(), testMessage(t)); err != nil {
			t.Fatal(err)
		}
		if got := be.Messages(); len(got) != 1 || !got[0].TLS || got[0].User != "bridge" {
			t.Errorf("received %+v", got)
		}
	})
	t.Run("default mode is starttls", func(t *testing.T) {
		be := mailtest.StartSMTP(t, mailtest.WithSTARTTLS(serverTLS))
		addr := be.Addr
		if err := (&Sender{Addr: addr, RootCAs: pool}).Send(context.Background(), testMessage(t)); err != nil {
			t.Fatal(err)
		}
		if got := be.Messages(); len(got) != 1 || !got[0].TLS {
			t.Errorf("received %+v", got)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		be := mailtest.StartSMTP(t, mailtest.WithAuth("bridge", "s3cret"), mailtest.WithAuthMechanisms("PLAIN"),
			mailtest.WithImplicitTLS(serverTLS))
		addr := be.Addr
		s := &Sender{Addr: addr, TLS: "implicit", Username: "bridge", Password: "s3cret", RootCAs: pool, Timeout: 5 * time.Second}
		if err := s.Send(context.Background(), testMessage(t)); err != nil {
			t.Fatal(err)
		}
		if got := be.Messages(); len(got) != 1 || !got[0].TLS {
			t.Errorf("received %+v", got)
		}
	})
	t.Run("starttls untrusted certificate", func(t *testing.T) {
		be := mailtest.StartSMTP(t, mailtest.WithSTARTTLS(serverTLS))
		addr := be.Addr
		err := (&Sender{Addr: addr, TLS: "starttls", RootCAs: otherPool, Timeout: 5 * time.Second}).Send(context.Background(), testMessage(t))
		se := wantSendError(t, err, true, 0, StageTLS)
		var uerr x509.UnknownAuthorityError
		if !errors.As(se, &uerr) {
			t.Errorf("error %v; want the certificate verification error", se.Err)
		}
		if len(be.Messages()) != 0 {
			t.Error("mail sent over an unverified connection")
		}
	})
	t.Run("implicit untrusted certificate", func(t *testing.T) {
		addr := mailtest.StartSMTP(t, mailtest.WithImplicitTLS(serverTLS)).Addr
		err := (&Sender{Addr: addr, TLS: "implicit", RootCAs: otherPool, Timeout: 5 * time.Second}).Send(context.Background(), testMessage(t))
		wantSendError(t, err, true, 0, StageTLS)
	})
	t.Run("server without starttls", func(t *testing.T) {
		be := mailtest.StartSMTP(t)
		addr := be.Addr
		err := (&Sender{Addr: addr, TLS: "starttls", RootCAs: pool, Timeout: 5 * time.Second}).Send(context.Background(), testMessage(t))
		wantSendError(t, err, true, 0, StageTLS)
		if len(be.Messages()) != 0 {
			t.Error("mail sent in clear")
		}
	})
}

func TestSendServerReplies(t *testing.T) {
	tests := []struct {
		name      string
		opt       mailtest.SMTPOption
		temporary bool
		code      int
		stage     string
	}{
		{"421 on MAIL", mailtest.FailMail(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}), true, 421, StageMail},
		{"451 on DATA", mailtest.FailData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}), true, 451, StageData},
		{"550 on RCPT", mailtest.FailRcpt(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}), false, 550, StageRcpt},
		{"452 on RCPT", mailtest.FailRcpt(&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}), true, 452, StageRcpt},
		{"554 on DATA", mailtest.FailData(&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}), false, 554, StageData},
		{"dropped after DATA", mailtest.FailData(mailtest.ErrHangUp), true, 0, StageData},
	}
	for _, tt := range tests {
		// With the cache on, a new connection fails the same way, and is
		// not kept.
		for _, maxIdle := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/max idle %d", tt.name, maxIdle), func(t *testing.T) {
				be := mailtest.StartSMTP(t, tt.opt)
				addr := be.Addr
				s := &Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second, MaxIdle: maxIdle}
				defer s.Close()
				err := s.Send(context.Background(), testMessage(t))
				wantSendError(t, err, tt.temporary, tt.code, tt.stage)
				if len(be.Messages()) != 0 {
					t.Error("mail recorded as received")
				}
				if n := idleCount(s); n != 0 {
					t.Errorf("%d connections cached after a failure", n)
				}
				if c := be.Stats(); c.Conns != 1 {
					t.Errorf("%d connections; want 1 (no retry)", c.Conns)
				}
			})
		}
	}
}

func TestSendTooLarge(t *testing.T) {
	be := mailtest.StartSMTP(t, mailtest.WithMaxMessageBytes(1000))
	addr := be.Addr
	err := (&Sender{Addr: addr, TLS: "none"}).Send(context.Background(), testMessage(t))
	wantSendError(t, err, false, 0, StageMail)
}

func TestSendUTF8Addresses(t *testing.T) {
	msg := mail.Outgoing{From: "assistance@ent.example", To: []string{"élise@desk.example"}, Raw: []byte("Subject: x\r\n\r\nx\r\n")}
	addr := mailtest.StartSMTP(t).Addr
	err := (&Sender{Addr: addr, TLS: "none"}).Send(context.Background(), msg)
	wantSendError(t, err, false, 0, StageMail)

	be := mailtest.StartSMTP(t, mailtest.WithSMTPUTF8())
	addr = be.Addr
	if err := (&Sender{Addr: addr, TLS: "none"}).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := be.Messages(); len(got) != 1 || got[0].To[0] != "élise@desk.example" {
		t.Errorf("received %+v", got)
	}
}

func TestSendServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = (&Sender{Addr: addr, TLS: "none", Timeout: 2 * time.Second}).Send(context.Background(), testMessage(t))
	wantSendError(t, err, true, 0, StageDial)
}

// hungServer accepts connections and says nothing.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSendContextCancel(t *testing.T) {
	tests := []struct {
		name  string
		tls   string
		addr  func(t *testing.T) string
		stage string
	}{
		{"hung greeting", "none", hungServer, StageDial},
		{"hung greeting before starttls", "starttls", hungServer, StageTLS},
		{"hung after data", "none", func(t *testing.T) string {
			block := make(chan struct{})
			addr := mailtest.StartSMTP(t, mailtest.OnData(func(int, *mailtest.SMTPMessage) error { <-block; return nil })).Addr
			t.Cleanup(func() { close(block) }) // before the server closes
			return addr
		}, StageData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			// The sender's own timeout is long: only the context can stop it.
			err := (&Sender{Addr: addr, TLS: tt.tls, Timeout: time.Minute}).Send(ctx, testMessage(t))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send returned after %v", d)
			}
			wantSendError(t, err, true, 0, tt.stage)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not say the context ended", err)
			}
		})
	}
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := (&Sender{Addr: hungServer(t), TLS: "none"}).Send(ctx, testMessage(t))
		wantSendError(t, err, true, 0, StageDial)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v", err)
		}
	})
}

func TestSendTimeout(t *testing.T) {
	for _, mode := range []string{"none", "starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			err := (&Sender{Addr: hungServer(t), TLS: mode, Timeout: 300 * time.Millisecond}).Send(context.Background(), testMessage(t))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send returned after %v", d)
			}
			if err == nil || !IsTemporary(err) {
				t.Errorf("error %v", err)
			}
		})
	}
}

// scriptedServer answers one session by hand: a normal dialogue up to
// the final 250, then it hangs up when QUIT comes.
func scriptedServer(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 scripted ESMTP\r\n")
		var data bytes.Buffer
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					got <- data.Bytes()
					fmt.Fprint(c, "250 2.0.0 queued as 1234\r\n")
					continue
				}
				data.WriteString(strings.TrimPrefix(line, "."))
				continue
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"):
				fmt.Fprint(c, "250-scripted\r\n250 8BITMIME\r\n")
			case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
				fmt.Fprint(c, "250 ok\r\n")
			case cmd == "DATA":
				inData = true
				fmt.Fprint(c, "354 go on\r\n")
			default: // QUIT and anything else: hang up without a word
				return
			}
		}
	}()
	return ln.Addr().String(), got
}

func TestSendQuitFailureIsSuccess(t *testing.T) {
	addr, got := scriptedServer(t)
	msg := testMessage(t)
	if err := (&Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second}).Send(context.Background(), msg); err != nil {
		t.Fatalf("Send: %v; the server had accepted the mail", err)
	}
	if data := <-got; !bytes.Equal(data, msg.Raw) {
		t.Errorf("received %d bytes, sent %d", len(data), len(msg.Raw))
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	good := mail.Outgoing{From: "a@b.test", To: []string{"c@d.test"}, Raw: []byte("Subject: x\r\n\r\nx\r\n")}
	addr := hungServer(t) // never reached: every case fails before
	tests := []struct {
		name   string
		sender *Sender
		edit   func(*mail.Outgoing)
		stage  string
	}{
		{"no recipient", &Sender{Addr: addr, TLS: "none"}, func(o *mail.Outgoing) { o.To = nil }, StageRcpt},
		{"CRLF in recipient", &Sender{Addr: addr, TLS: "none"}, func(o *mail.Outgoing) { o.To = []string{"c@d.test\r\nRCPT TO:<x@y>"} }, StageRcpt},
		{"CRLF in sender", &Sender{Addr: addr, TLS: "none"}, func(o *mail.Outgoing) { o.From = "a@b\r\nRSET" }, StageMail},
		{"empty message", &Sender{Addr: addr, TLS: "none"}, func(o *mail.Outgoing) { o.Raw = nil }, StageData},
		{"unknown tls mode", &Sender{Addr: addr, TLS: "ssl"}, func(*mail.Outgoing) {}, StageDial},
		{"address without port", &Sender{Addr: "127.0.0.1", TLS: "none"}, func(*mail.Outgoing) {}, StageDial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := good
			tt.edit(&msg)
			start := time.Now()
			err := tt.sender.Send(context.Background(), msg)
			wantSendError(t, err, false, 0, tt.stage)
			if time.Since(start) > time.Second {
				t.Error("bad input went to the network")
			}
		})
	}
}

func TestIsTemporary(t *testing.T) {
	var netErr net.Error = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"4xx", &smtp.SMTPError{Code: 450}, true},
		{"5xx", &smtp.SMTPError{Code: 550}, false},
		{"wrapped 5xx", fmt.Errorf("send: %w", &smtp.SMTPError{Code: 554}), false},
		{"odd code", &smtp.SMTPError{Code: 999}, true},
		{"network", netErr, true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"unknown", errors.New("what"), true},
		{"send error temporary", &SendError{Temporary: true, Code: 550}, true},
		{"send error permanent", fmt.Errorf("job: %w", &SendError{Temporary: false, Err: errors.New("x")}), false},
	}
	for _, tt := range tests {
		if got := IsTemporary(tt.err); got != tt.want {
			t.Errorf("%s: IsTemporary = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestSendLoginClientPrompts(t *testing.T) {
	for _, prompts := range [][2]string{{"Username:", "Password:"}, {"username:", "password:"}, {"", ""}, {"VXNlcg==", "UGFzcw=="}} {
		a := &loginClient{username: "u", password: "p"}
		mech, ir, err := a.Start()
		if mech != "LOGIN" || ir != nil || err != nil {
			t.Fatalf("Start = %q %q %v", mech, ir, err)
		}
		r1, err1 := a.Next([]byte(prompts[0]))
		r2, err2 := a.Next([]byte(prompts[1]))
		if string(r1) != "u" || string(r2) != "p" || err1 != nil || err2 != nil {
			t.Errorf("prompts %q: answered %q, %q", prompts, r1, r2)
		}
		if _, err := a.Next([]byte("more?")); err == nil {
			t.Error("third challenge answered")
		}
	}
}

func TestSendPostfixSmtpSink(t *testing.T) {
	msg := testMessage(t)

	t.Run("accepted", func(t *testing.T) {
		sink := mailtest.StartSMTPSink(t, mailtest.WithDump())
		if err := (&Sender{Addr: sink.Addr, TLS: "none", Timeout: 5 * time.Second, HeloName: "bridge.test"}).Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		// smtp-sink drops every CR; the composed mail has none bare.
		want := mailtest.SinkMessage{Helo: "bridge.test", From: msg.From, To: msg.To, Data: msg.Raw}
		if got := sink.Deliveries(t); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("smtp-sink took %.600q; want %.600q", got, want)
		}
	})

	tests := []struct {
		name      string
		opt       mailtest.SinkOption
		temporary bool
		stage     string
		reply     bool // the server answered with a code
	}{
		{"hard reject of RCPT", mailtest.WithHardError("RCPT"), false, StageRcpt, true},
		{"soft reject of the data", mailtest.WithSoftError("."), true, StageData, true},
		{"421 on MAIL", mailtest.WithShutdown("MAIL"), true, StageMail, true},
		{"hang-up after the data", mailtest.WithDisconnect("."), true, StageData, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := mailtest.StartSMTPSink(t, tt.opt)
			err := (&Sender{Addr: sink.Addr, TLS: "none", Timeout: 5 * time.Second}).Send(context.Background(), msg)
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v; want a *SendError", err)
			}
			if se.Temporary != tt.temporary || se.Stage != tt.stage || (se.Code != 0) != tt.reply {
				t.Errorf("%+v; want temporary %v at %s, reply %v", se, tt.temporary, tt.stage, tt.reply)
			}
			if tt.reply && se.Temporary != (se.Code/100 == 4) {
				t.Errorf("code %d classified temporary=%v", se.Code, se.Temporary)
			}
		})
	}
}

// idleCount is how many connections s keeps idle.
func idleCount(s *Sender) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.idle)
}

// numbered returns n copies of msg told apart by a header, so that a
// mail delivered twice, lost or mixed up shows.
func numbered(msg mail.Outgoing, n int) []mail.Outgoing {
	out := make([]mail.Outgoing, n)
	for i := range out {
		out[i] = msg
		out[i].Raw = append([]byte(fmt.Sprintf("X-Test-Seq: %d\r\n", i)), msg.Raw...)
	}
	return out
}

// wantDelivered checks that the server took exactly msgs, each once,
// in any order.
func wantDelivered(t *testing.T, got []mailtest.SMTPMessage, msgs []mail.Outgoing) {
	t.Helper()
	seen := make(map[string]int)
	for _, m := range got {
		seen[string(m.Data)]++
	}
	for i, m := range msgs {
		if n := seen[string(m.Raw)]; n != 1 {
			t.Errorf("mail %d delivered %d times", i, n)
		}
	}
	if len(got) != len(msgs) {
		t.Errorf("%d mails delivered; want %d", len(got), len(msgs))
	}
}

func TestSendCacheReusesConnection(t *testing.T) {
	serverTLS, pool := mailtest.SelfSignedCert(t)
	tests := []struct {
		name   string
		tls    mailtest.SMTPOption // nil: none
		sender Sender
	}{
		{"plain", nil, Sender{TLS: "none"}},
		{"starttls with auth", mailtest.WithSTARTTLS(serverTLS), Sender{TLS: "starttls", RootCAs: pool, Username: "bridge", Password: "s3cret"}},
		{"implicit tls with auth", mailtest.WithImplicitTLS(serverTLS), Sender{TLS: "implicit", RootCAs: pool, Username: "bridge", Password: "s3cret"}},
	}
	for i := range tests {
		tt := &tests[i]
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := []mailtest.SMTPOption{mailtest.WithAuthMechanisms("PLAIN")}
			if tt.tls != nil {
				opts = append(opts, tt.tls)
			}
			if tt.sender.Username != "" {
				opts = append(opts, mailtest.WithAuth("bridge", "s3cret"))
			}
			be := mailtest.StartSMTP(t, opts...)
			s := &tt.sender
			s.Addr = be.Addr
			s.Timeout = time.Second
			s.MaxIdle = 2
			s.IdleTimeout = time.Minute
			defer s.Close()
			msgs := numbered(testMessage(t), 5)
			for i, m := range msgs {
				if i == 2 {
					// Idle for longer than a command may take: the
					// deadlines of the last use must not carry over.
					time.Sleep(s.Timeout + 200*time.Millisecond)
				}
				if err := s.Send(context.Background(), m); err != nil {
					t.Fatalf("mail %d: %v", i, err)
				}
			}
			wantDelivered(t, be.Messages(), msgs)
			for _, m := range be.Messages() {
				if m.TLS != (s.TLS != "none") || m.User != s.Username {
					t.Errorf("mail delivered with tls %v, user %q", m.TLS, m.User)
				}
			}
			if c := be.Stats(); c.Conns != 1 || c.Closed != 0 {
				t.Errorf("%d connections, %d ended; want 1 still open", c.Conns, c.Closed)
			}
			if n := idleCount(s); n != 1 {
				t.Errorf("%d idle connections; want 1", n)
			}
			s.Close()
			be.WaitClosed(t, 1)
			if n := idleCount(s); n != 0 {
				t.Errorf("%d idle connections after Close", n)
			}
		})
	}
}

func TestSendCacheOffByDefault(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second}
	msgs := numbered(testMessage(t), 3)
	for _, m := range msgs {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	wantDelivered(t, be.Messages(), msgs)
	// Each session ended with QUIT before Send returned.
	if c := be.Stats(); c.Conns != 3 {
		t.Errorf("%d connections; want one a mail", c.Conns)
	}
	be.WaitClosed(t, 3)
	if n := idleCount(s); n != 0 {
		t.Errorf("%d idle connections without MaxIdle", n)
	}
}

func TestSendCacheReuseLimit(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
		MaxIdle: 1, IdleTimeout: time.Minute, ReuseLimit: 2}
	defer s.Close()
	msgs := numbered(testMessage(t), 5)
	for _, m := range msgs {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	wantDelivered(t, be.Messages(), msgs)
	// 2 + 2 + 1 mails: the first two sessions end once full.
	if c := be.Stats(); c.Conns != 3 {
		t.Errorf("%d connections; want 3", c.Conns)
	}
	be.WaitClosed(t, 2)
}

// A cached connection that the server dropped while idle costs nothing:
// the mail goes over a new connection, once.
func TestSendCacheServerDroppedIdle(t *testing.T) {
	tests := []struct {
		name string
		opts []mailtest.SMTPOption
		drop func(t *testing.T, be *mailtest.SMTPServer)
	}{
		{
			// go-smtp's server says "421 Idle timeout" before it hangs up.
			name: "421 idle timeout",
			opts: []mailtest.SMTPOption{mailtest.WithReadTimeout(400 * time.Millisecond)},
			drop: func(t *testing.T, be *mailtest.SMTPServer) { be.WaitClosed(t, 1) },
		},
		{
			name: "closed without a word",
			drop: func(t *testing.T, be *mailtest.SMTPServer) { be.DropAll(); be.WaitClosed(t, 1) },
		},
		{
			name: "421 at MAIL",
			opts: []mailtest.SMTPOption{mailtest.OnMail(func(n int, _ string) error {
				if n == 2 {
					return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}
				}
				return nil
			})},
			drop: func(*testing.T, *mailtest.SMTPServer) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := mailtest.StartSMTP(t, tt.opts...)
			s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
				MaxIdle: 1, IdleTimeout: time.Minute}
			defer s.Close()
			msgs := numbered(testMessage(t), 2)
			if err := s.Send(context.Background(), msgs[0]); err != nil {
				t.Fatal(err)
			}
			tt.drop(t, be)
			if n := idleCount(s); n != 1 {
				t.Fatalf("%d idle connections; the test needs the dropped one cached", n)
			}
			if err := s.Send(context.Background(), msgs[1]); err != nil {
				t.Fatalf("send after the server dropped the cached connection: %v", err)
			}
			wantDelivered(t, be.Messages(), msgs)
			if c := be.Stats(); c.Conns != 2 || c.Datas != 2 {
				t.Errorf("%d connections, %d DATA; want 2, 2", c.Conns, c.Datas)
			}
			if n := idleCount(s); n != 1 {
				t.Errorf("%d idle connections; want the new one", n)
			}
		})
	}
}

// Only a dropped session at the first command is retried: any other
// failure on a cached connection is returned, as on a new one, and the
// connection is not used again.
func TestSendCacheFailureOnReusedConnection(t *testing.T) {
	// The second MAIL or the second message fails.
	mailSecond := func(err error) mailtest.SMTPOption {
		return mailtest.OnMail(func(n int, _ string) error {
			if n == 2 {
				return err
			}
			return nil
		})
	}
	dataSecond := func(err error) mailtest.SMTPOption {
		return mailtest.OnData(func(n int, _ *mailtest.SMTPMessage) error {
			if n == 2 {
				return err
			}
			return nil
		})
	}
	tests := []struct {
		name      string
		opt       mailtest.SMTPOption
		temporary bool
		code      int
		stage     string
		mailCmds  int // MAIL commands the server saw, all sends together
	}{
		{name: "451 at MAIL", opt: mailSecond(&smtp.SMTPError{Code: 451, Message: "later"}),
			temporary: true, code: 451, stage: StageMail, mailCmds: 3},
		{name: "550 at MAIL", opt: mailSecond(&smtp.SMTPError{Code: 550, Message: "no"}),
			code: 550, stage: StageMail, mailCmds: 3},
		{name: "451 after the data", opt: dataSecond(&smtp.SMTPError{Code: 451, Message: "later"}),
			temporary: true, code: 451, stage: StageData, mailCmds: 3},
		{name: "554 after the data", opt: dataSecond(&smtp.SMTPError{Code: 554, Message: "spam"}),
			code: 554, stage: StageData, mailCmds: 3},
		// The server may or may not have taken this one: never again.
		{name: "hang-up after the data", opt: dataSecond(mailtest.ErrHangUp),
			temporary: true, stage: StageData, mailCmds: 3},
		{name: "421 after the data", opt: dataSecond(&smtp.SMTPError{Code: 421, Message: "closing"}),
			temporary: true, code: 421, stage: StageData, mailCmds: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := mailtest.StartSMTP(t, tt.opt)
			s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
				MaxIdle: 1, IdleTimeout: time.Minute}
			defer s.Close()
			msgs := numbered(testMessage(t), 3)
			if err := s.Send(context.Background(), msgs[0]); err != nil {
				t.Fatal(err)
			}
			err := s.Send(context.Background(), msgs[1])
			wantSendError(t, err, tt.temporary, tt.code, tt.stage)
			if n := idleCount(s); n != 0 {
				t.Errorf("%d idle connections: the failed one was kept", n)
			}
			if c := be.Stats(); c.Conns != 1 {
				t.Errorf("%d connections after the failure: it was retried", c.Conns)
			}
			if err := s.Send(context.Background(), msgs[2]); err != nil {
				t.Fatal(err)
			}
			wantDelivered(t, be.Messages(), []mail.Outgoing{msgs[0], msgs[2]})
			c := be.Stats()
			if c.Conns != 2 || c.Mails != tt.mailCmds {
				t.Errorf("%d connections, %d MAIL; want 2, %d", c.Conns, c.Mails, tt.mailCmds)
			}
			be.WaitClosed(t, 1) // the failed session was closed
		})
	}
}

func TestSendCacheConcurrent(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 10 * time.Second,
		MaxIdle: 4, IdleTimeout: time.Minute}
	msgs := numbered(testMessage(t), 50)
	errs := make(chan error, len(msgs))
	// 50 goroutines, 8 sending at a time as a job queue would: sends take
	// and return cached connections while others dial.
	inFlight := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() {
			inFlight <- struct{}{}
			defer func() { <-inFlight }()
			errs <- s.Send(context.Background(), m)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	wantDelivered(t, be.Messages(), msgs)
	c := be.Stats()
	idle := idleCount(s)
	if idle < 1 || idle > 4 {
		t.Errorf("%d idle connections; want 1 to 4", idle)
	}
	// Every connection beyond those kept was closed.
	be.WaitClosed(t, c.Conns-idle)
	t.Logf("%d connections for %d mails", c.Conns, len(msgs))
	if c.Conns >= len(msgs) {
		t.Errorf("%d connections for %d mails: none reused", c.Conns, len(msgs))
	}
	// Another round reuses what was kept.
	for _, m := range numbered(msgs[0], 3) {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if after := be.Stats().Conns; after != c.Conns {
		t.Errorf("%d new connections for sequential mails with %d idle", after-c.Conns, idle)
	}
	s.Close()
	be.WaitClosed(t, c.Conns)
}

func TestSendCacheIdleTimeout(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
		MaxIdle: 2, IdleTimeout: 150 * time.Millisecond}
	defer s.Close()
	msgs := numbered(testMessage(t), 3)
	for _, m := range msgs[:2] {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// One connection, or two if the machine stalled between the sends for
	// longer than the idle timeout: either way the cache ends every
	// session itself once idle too long.
	before := be.Stats().Conns
	start := time.Now()
	be.WaitClosed(t, before)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle connections closed after %v", d)
	}
	if n := idleCount(s); n != 0 {
		t.Errorf("%d idle connections after the timeout", n)
	}
	if err := s.Send(context.Background(), msgs[2]); err != nil {
		t.Fatal(err)
	}
	wantDelivered(t, be.Messages(), msgs)
	if c := be.Stats(); c.Conns != before+1 {
		t.Errorf("%d connections; want a new one after the timeout", c.Conns-before)
	}
}

func TestSendCacheClose(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
		MaxIdle: 2, IdleTimeout: time.Minute}
	msgs := numbered(testMessage(t), 2)
	if err := s.Send(context.Background(), msgs[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	be.WaitClosed(t, 1)
	// Still usable, without caching.
	if err := s.Send(context.Background(), msgs[1]); err != nil {
		t.Fatal(err)
	}
	wantDelivered(t, be.Messages(), msgs)
	if n := idleCount(s); n != 0 {
		t.Errorf("%d idle connections after Close", n)
	}
	be.WaitClosed(t, 2)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSendCacheContext(t *testing.T) {
	t.Run("cancelled while the server holds the data", func(t *testing.T) {
		release := make(chan struct{})
		be := mailtest.StartSMTP(t, mailtest.OnData(func(n int, _ *mailtest.SMTPMessage) error {
			if n == 2 {
				<-release
			}
			return nil
		}))
		addr := be.Addr
		t.Cleanup(func() { close(release) }) // before the server closes
		s := &Sender{Addr: addr, TLS: "none", Timeout: time.Minute, MaxIdle: 1, IdleTimeout: time.Minute}
		defer s.Close()
		msgs := numbered(testMessage(t), 2)
		if err := s.Send(context.Background(), msgs[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, msgs[1])
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Send returned after %v", d)
		}
		wantSendError(t, err, true, 0, StageData)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not say the context ended", err)
		}
		if n := idleCount(s); n != 0 {
			t.Errorf("%d idle connections: the interrupted one was kept", n)
		}
		if c := be.Stats(); c.Conns != 1 || c.Datas != 2 {
			t.Errorf("%d connections, %d DATA; want 1, 2 (no retry)", c.Conns, c.Datas)
		}
	})
	t.Run("already cancelled with a cached connection", func(t *testing.T) {
		be := mailtest.StartSMTP(t)
		s := &Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second,
			MaxIdle: 1, IdleTimeout: time.Minute}
		defer s.Close()
		msgs := numbered(testMessage(t), 2)
		if err := s.Send(context.Background(), msgs[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Send(ctx, msgs[1])
		wantSendError(t, err, true, 0, StageMail)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v", err)
		}
		// The closed connection is no sign of a dropped session: no new
		// connection, nothing delivered.
		if c := be.Stats(); c.Conns != 1 {
			t.Errorf("%d connections; want 1", c.Conns)
		}
		wantDelivered(t, be.Messages(), msgs[:1])
		be.WaitClosed(t, 1)
	})
}

// countingProxy relays TCP connections to upstream and counts them.
func countingProxy(t *testing.T, upstream string) (addr string, conns func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	var open []net.Conn
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			n++
			open = append(open, down, up)
			mu.Unlock()
			// When either side ends, both do, as a real hang-up.
			relay := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			wg.Add(2)
			go relay(up, down)
			go relay(down, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func TestSendCachePostfixSmtpSink(t *testing.T) {
	msg := testMessage(t)
	sinkWant := func(t *testing.T, sink *mailtest.SMTPSink, msgs []mail.Outgoing) {
		t.Helper()
		var got []mailtest.SinkMessage
		// smtp-sink writes a capture before it answers the final ".":
		// every accepted mail is there already.
		got = sink.Deliveries(t)
		if len(got) != len(msgs) {
			t.Fatalf("smtp-sink took %d mails; want %d", len(got), len(msgs))
		}
		for i, m := range got {
			// smtp-sink drops every CR; the composed mail has none bare.
			if m.From != msgs[i].From || strings.Join(m.To, ",") != strings.Join(msgs[i].To, ",") || !bytes.Equal(m.Data, msgs[i].Raw) {
				t.Errorf("mail %d: %q → %q, %d bytes; want %q → %q, %d bytes", i, m.From, m.To, len(m.Data),
					msgs[i].From, msgs[i].To, len(msgs[i].Raw))
			}
		}
	}

	t.Run("several mails over one connection", func(t *testing.T) {
		sink := mailtest.StartSMTPSink(t, mailtest.WithDump())
		addr, conns := countingProxy(t, sink.Addr)
		s := &Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second, MaxIdle: 1, IdleTimeout: time.Minute}
		defer s.Close()
		msgs := numbered(msg, 5)
		for i, m := range msgs {
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatalf("mail %d: %v", i, err)
			}
		}
		sinkWant(t, sink, msgs)
		if n := conns(); n != 1 {
			t.Errorf("%d connections for %d mails; want 1", n, len(msgs))
		}
	})

	t.Run("restarted while the connection is idle", func(t *testing.T) {
		sink := mailtest.StartSMTPSink(t, mailtest.WithDump())
		s := &Sender{Addr: sink.Addr, TLS: "none", Timeout: 5 * time.Second, MaxIdle: 1, IdleTimeout: time.Minute}
		defer s.Close()
		msgs := numbered(msg, 3)
		for _, m := range msgs[:2] {
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		sink.Restart(t)
		if n := idleCount(s); n != 1 {
			t.Fatalf("%d idle connections; the test needs the dead one cached", n)
		}
		if err := s.Send(context.Background(), msgs[2]); err != nil {
			t.Fatalf("send after the restart: %v", err)
		}
		sinkWant(t, sink, msgs)
	})

	t.Run("soft reject of the data is not retried", func(t *testing.T) {
		sink := mailtest.StartSMTPSink(t, mailtest.WithDump(), mailtest.WithSoftError("."))
		addr, conns := countingProxy(t, sink.Addr)
		s := &Sender{Addr: addr, TLS: "none", Timeout: 5 * time.Second, MaxIdle: 1, IdleTimeout: time.Minute}
		defer s.Close()
		err := s.Send(context.Background(), msg)
		wantSendError(t, err, true, 450, StageData)
		// smtp-sink captures a mail before answering "." even with an
		// error: one capture means one DATA, no retry.
		if n := len(sink.Deliveries(t)); n != 1 {
			t.Errorf("%d transactions; want 1", n)
		}
		if n := idleCount(s); n != 0 {
			t.Errorf("%d idle connections after a failure", n)
		}
		if n := conns(); n != 1 {
			t.Errorf("%d connections; want 1", n)
		}
	})
}
