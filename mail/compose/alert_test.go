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
func TestDeadJobAlertInEachLanguage(t *testing.T) {
	to := []*netmail.Address{{Address: "ops@example.org"}}
	j := DeadJob{Kind: "callback", JobID: "cb:1", TicketID: "T-1", Reason: "ENT answered 410",
		Instance: "replica-a", At: time.Date(2026, 3, 4, 9, 30, 0, 0, time.FixedZone("x", 3600)), Window: time.Hour}
	for _, tc := range []struct {
		locale, subject string
		lines           []string
	}{
		{"fr", "supportbridge : une tâche callback a été abandonnée, action requise",
			[]string{"Tâche : cb:1", "Demande : T-1", "Raison : ENT answered 410", "Instance : replica-a",
				"Heure : 2026-03-04T08:30:00Z", "  supportbridge jobs replay --config FICHIER --all"}},
		{"en-GB", "supportbridge: a callback job was given up, action needed",
			[]string{"Job: cb:1", "Ticket: T-1", "Reason: ENT answered 410", "Replica: replica-a",
				"At: 2026-03-04T08:30:00Z", "No other mail will be sent for callback jobs given up within 1h0m0s. List them with:",
				"  supportbridge jobs list --dead --config FILE"}},
	} {
		in := DeadJobAlert(tc.locale, to, j)
		if in.Subject != tc.subject || len(in.To) != 1 {
			t.Errorf("%s: subject %q, to %v", tc.locale, in.Subject, in.To)
		}
		all := strings.Join(in.Lines, "\n")
		for _, l := range tc.lines {
			if !strings.Contains(all, l+"\n") && !strings.HasSuffix(all, l) {
				t.Errorf("%s: no line %q in\n%s", tc.locale, l, all)
			}
		}
	}
}
