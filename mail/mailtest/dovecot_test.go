package mailtest

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func sampleMail(id string) []byte {
	return []byte("From: Agent Desk <agent@desk.example>\r\n" +
		"To: assistance@ent.example\r\n" +
		"Subject: Re: [ENT-42] Écran blanc\r\n" +
		"Message-ID: <" + id + "@desk.example>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Bonjour,\r\n" +
		".a line that starts with a dot\r\n" +
		"Cordialement\r\n")
}

func login(t *testing.T, d *Dovecot, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.IMAPAddr, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", d.IMAPAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(d.User, d.Password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// fetchAll returns the full text of every message of mailbox, by UID.
func fetchAll(t *testing.T, c *imapclient.Client, mailbox string) (map[imap.UID][]byte, *imap.SelectData) {
	t.Helper()
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	out := map[imap.UID][]byte{}
	if sel.NumMessages == 0 {
		return out, sel
	}
	sec := &imap.FetchItemBodySection{Peek: true}
	all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}} // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", mailbox, err)
	}
	for _, m := range msgs {
		out[m.UID] = m.FindBodySection(sec)
	}
	return out, sel
}

func TestDovecotDeliverAndFetch(t *testing.T) {
	d := StartDovecot(t)
	c := login(t, d, nil)

	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	for _, want := range []string{"INBOX", ProcessedMailbox, QuarantineMailbox} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("mailboxes %v lack %s", names, want)
		}
	}

	raw := sampleMail("m1")
	d.Deliver(t, raw)
	got, sel := fetchAll(t, c, "INBOX")
	if sel.NumMessages != 1 || len(got) != 1 {
		t.Fatalf("INBOX has %d messages (%d fetched), want 1", sel.NumMessages, len(got))
	}
	for _, text := range got {
		// Delivery adds trace headers on top; the message itself is intact,
		// dot line included.
		if !bytes.HasSuffix(text, raw) {
			t.Fatalf("stored message does not end with the delivered one:\n%s", text)
		}
		for _, h := range []string{"Return-Path: <agent@desk.example>", "Delivered-To: " + d.User} {
			if !bytes.Contains(text, []byte(h)) {
				t.Errorf("stored message lacks %q:\n%s", h, text)
			}
		}
	}

	// The other mailboxes really exist: MOVE into one works.
	if _, err := c.Move(imap.SeqSetNum(1), ProcessedMailbox).Wait(); err != nil {
		t.Fatalf("move to %s: %v", ProcessedMailbox, err)
	}
	if moved, _ := fetchAll(t, c, ProcessedMailbox); len(moved) != 1 {
		t.Fatalf("%s has %d messages after MOVE, want 1", ProcessedMailbox, len(moved))
	}
}

func TestDovecotDeliverFromNullSender(t *testing.T) {
	d := StartDovecot(t)
	d.DeliverFrom(t, "", sampleMail("bounce"))
	got, _ := fetchAll(t, login(t, d, nil), "INBOX")
	for _, text := range got {
		if !bytes.Contains(text, []byte("Return-Path: <>")) {
			t.Fatalf("null sender not recorded:\n%s", text)
		}
		return
	}
	t.Fatal("nothing delivered")
}

func TestDovecotRejectsWrongPassword(t *testing.T) {
	d := StartDovecot(t)
	c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(d.User, d.Password+"x").Wait(); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
}

func TestDovecotIdleSeesDelivery(t *testing.T) {
	d := StartDovecot(t)
	exists := make(chan uint32, 16)
	c := login(t, d, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select: %v", err)
	}
	// Drain what SELECT itself reported.
	for len(exists) > 0 {
		<-exists
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	d.Deliver(t, sampleMail("idle"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE within 10s of the delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("idle close: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("idle: %v", err)
	}
}

func TestDovecotKillRestartKeepsMail(t *testing.T) {
	d := StartDovecot(t)
	d.Deliver(t, sampleMail("before-crash"))
	c := login(t, d, nil)
	before, sel := fetchAll(t, c, "INBOX")
	if len(before) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(before))
	}

	d.Kill(t)
	if err := c.Noop().Wait(); err == nil {
		t.Error("connection still answers after Kill")
	}
	if conn, err := net.DialTimeout("tcp", d.IMAPAddr, time.Second); err == nil {
		conn.Close()
		t.Fatal("IMAP port still accepts after Kill")
	}

	d.Restart(t)
	d.Deliver(t, sampleMail("after-restart"))
	after, sel2 := fetchAll(t, login(t, d, nil), "INBOX")
	if sel2.UIDValidity != sel.UIDValidity {
		t.Errorf("UIDVALIDITY changed across restart: %d → %d", sel.UIDValidity, sel2.UIDValidity)
	}
	if len(after) != 2 {
		t.Fatalf("INBOX has %d messages after restart, want 2", len(after))
	}
	for uid, text := range before {
		if !bytes.Equal(after[uid], text) {
			t.Fatalf("message uid %d changed across restart", uid)
		}
	}
}

func TestDovecotInstancesAreIndependent(t *testing.T) {
	a, b := StartDovecot(t), StartDovecot(t)
	if a.IMAPAddr == b.IMAPAddr || a.Dir == b.Dir {
		t.Fatalf("two instances share %s / %s", a.IMAPAddr, a.Dir)
	}
	for i := 0; i < 3; i++ {
		a.Deliver(t, sampleMail(fmt.Sprint("a", i)))
	}
	if got, _ := fetchAll(t, login(t, b, nil), "INBOX"); len(got) != 0 {
		t.Fatalf("b sees %d messages delivered to a", len(got))
	}
	if got, _ := fetchAll(t, login(t, a, nil), "INBOX"); len(got) != 3 {
		t.Fatalf("a has %d messages, want 3", len(got))
	}
}

func TestEnvelopeSender(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"from header", "From: A <a@x.example>\r\n\r\nbody", "a@x.example"},
		{"bare address", "From: b@y.example\r\n\r\n", "b@y.example"},
		{"no from", "Subject: hi\r\n\r\n", "mailtest@localhost"},
		{"garbage", "not a mail", "mailtest@localhost"},
		{"bad address", "From: <<<\r\n\r\n", "mailtest@localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envelopeSender([]byte(tt.raw)); got != tt.want {
				t.Fatalf("envelopeSender = %q, want %q", got, tt.want)
			}
		})
	}
}
