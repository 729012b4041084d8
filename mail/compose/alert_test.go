package compose

import (
	"bytes"
	"io"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

func TestAlert(t *testing.T) {
	c := &AlertComposer{
		From:     &netmail.Address{Name: "Assistance ENT", Address: "assistance@ent.example"},
		Identity: "supportbridge@ent.example",
		Domain:   "ent.example",
		Now:      func() time.Time { return time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC) },
	}
	out, err := c.Alert(AlertInput{
		To:      []*netmail.Address{{Name: "Exploitation", Address: "ops@ent.example"}, {Address: "astreinte@ent.example"}},
		Subject: "supportbridge : rappels en échec\r\nBcc: victim@evil.example",
		Lines:   []string{"Job cb-1 (callback), ticket 42: HTTP 503", "Rejouer : supportbridge jobs replay"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out.To, ","); got != "ops@ent.example,astreinte@ent.example" {
		t.Errorf("envelope to %s", got)
	}
	if out.From != "assistance@ent.example" || !strings.HasPrefix(out.MessageID, "alert.") || !strings.HasSuffix(out.MessageID, "@ent.example") {
		t.Errorf("from %s, message-id %s", out.From, out.MessageID)
	}
	r, err := gomail.CreateReader(bytes.NewReader(out.Raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := r.Header.Subject()
	if subject != "supportbridge : rappels en échec Bcc: victim@evil.example" {
		t.Errorf("subject %q", subject)
	}
	if r.Header.Get("Bcc") != "" || r.Header.Get("Auto-Submitted") != "auto-generated" || r.Header.Get("X-Loop") != "supportbridge@ent.example" {
		t.Errorf("headers %v", r.Header.Map())
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(p.Body)
	want := "Job cb-1 (callback), ticket 42: HTTP 503\r\nRejouer : supportbridge jobs replay\r\n"
	if string(body) != want {
		t.Errorf("body %q", body)
	}
}

func TestAlertRefusesBadAddresses(t *testing.T) {
	from := &netmail.Address{Address: "assistance@ent.example"}
	for name, c := range map[string]struct {
		c  AlertComposer
		to []*netmail.Address
	}{
		"no from":      {AlertComposer{}, []*netmail.Address{{Address: "ops@ent.example"}}},
		"no recipient": {AlertComposer{From: from}, nil},
		"bad rcpt":     {AlertComposer{From: from}, []*netmail.Address{{Address: "ops@ent.example\r\nRCPT TO:<x@y>"}}},
	} {
		if _, err := c.c.Alert(AlertInput{To: c.to, Subject: "s"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
