package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"supportbridge/bridge/redisstore/redistest"
	"supportbridge/mail/mailtest"
)

// rtDesk is how the SMTP server in front of Request Tracker answers: each
// mail the bridge sends is handed to RT through rt-mailgate, as an MTA
// would.
func rtDesk(rt *mailtest.RT) mailtest.SMTPOption {
	return mailtest.OnData(func(_ int, m *mailtest.SMTPMessage) error {
		if err := rt.Submit(m.Data); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "rt-mailgate: " + err.Error()}
		}
		return nil
	})
}

// relayRT delivers what RT sends into the bridge's Dovecot mailbox until
// the test ends, as the desk's MTA would.
func relayRT(t *testing.T, rt *mailtest.RT, dc *mailtest.Dovecot) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, raw := range rt.TakeOutgoing() {
				if err := dc.TryDeliver(raw); err != nil {
					t.Errorf("deliver RT's mail to dovecot: %v", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// TestRequestTrackerAsTheDesk runs the whole loop against a real Request
// Tracker 5: the escalation mail opens an RT ticket; RT's autoreply comes
// back and teaches the bridge RT's number without posting an exchange; an
// agent's correspondence (RT's REST 2 API) lands on the ENT ticket as
// exactly the agent's text; a later ENT comment reaches the same RT ticket;
// resolving it in RT records desk_status (the ENT's status untouched) and
// calls the ENT back.
func TestRequestTrackerAsTheDesk(t *testing.T) {
	rt := mailtest.StartRT(t, mailtest.RTOptions{})
	dc := mailtest.StartDovecot(t)
	srv := redistest.Start(t)
	desk := mailtest.StartSMTP(t, mailtest.WithDomain("desk.example"), rtDesk(rt))
	smtpAddr := desk.Addr
	relayRT(t, rt, dc)
	ent := &cbRecorder{byID: map[string]string{}, data: map[string][]byte{}}
	hs := httptest.NewServer(ent)
	t.Cleanup(hs.Close)
	cfg := opsConfig(t, srv.Addr, fmt.Sprintf("  callback_url: %q\n  callback_secret: %q", hs.URL+"/cb", testSecret),
		deskConfig(smtpAddr)+imapConfig(dc))
	d := startDaemon(t, cfg)
	defer d.stop(t)

	if a := d.post(t, nextID(), ticketCreated("RT1", "s1")); a.Status != 202 {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := d.post(t, nextID(), escalation("RT1")); a.Status != 202 {
		t.Fatalf("escalate: %d %s", a.Status, a.Raw)
	}

	// The escalation opens one RT ticket; RT's autoreply teaches its
	// number, and nothing is posted on the ENT ticket.
	a := waitTicket(t, d, "RT1", func(a answer) bool {
		esc, _ := a.Body["escalation"].(map[string]any)
		return esc["desk_reference"] != ""
	})
	ids := rt.TicketIDs(t)
	if len(ids) != 1 {
		t.Fatalf("RT tickets %v, want one", ids)
	}
	rtID := ids[0]
	esc := a.Body["escalation"].(map[string]any)
	if esc["desk_reference"] != fmt.Sprint(rtID) || esc["status"] != "successful" {
		t.Errorf("escalation %v, want RT's number %d", esc, rtID)
	}
	if got := deskBodies(a); len(got) != 0 {
		t.Errorf("RT's autoreply posted %q", got)
	}
	if subj, _ := rt.Ticket(t, rtID)["Subject"].(string); !strings.Contains(subj, "[ENT-RT1]") {
		t.Errorf("RT ticket subject %q", subj)
	}

	// An agent answers in RT: the exchange is exactly the agent's text.
	agentText := "Bonjour Madame Martin,\n\nLe service d'export a été relancé : l'écran blanc venait d'un certificat expiré.\nPouvez-vous réessayer ?\n\nSophie, support niveau 2"
	rt.Correspond(t, rtID, agentText)
	a = waitTicket(t, d, "RT1", func(a answer) bool { return len(deskBodies(a)) == 1 })
	if got := deskBodies(a)[0]; got != agentText {
		t.Errorf("exchange\n%q\nwant\n%q", got, agentText)
	}

	// The requester comments in the ENT: the follow-up joins the same RT
	// ticket (RT threads on its subject tag, which the bridge echoes).
	if a := d.post(t, nextID(), comment("RT1", "c-rt-1", "u-owner")); a.Status != 202 {
		t.Fatalf("comment: %d %s", a.Status, a.Raw)
	}
	waitOps(t, "the follow-up handed to RT", 20*time.Second, func() bool {
		return len(desk.Messages()) >= 2
	})
	if ids := rt.TicketIDs(t); len(ids) != 1 {
		t.Fatalf("the follow-up opened another RT ticket: %v", ids)
	}
	waitOps(t, "the comment in RT's history", 20*time.Second, func() bool {
		return strings.Contains(rt.History(t, rtID), "Une précision.")
	})

	// Resolved in RT: desk_status recorded, the ENT's status untouched,
	// the ENT called back, and still no exchange from the notice.
	before := a.Body["status"]
	rt.SetStatus(t, rtID, "resolved")
	a = waitTicket(t, d, "RT1", func(a answer) bool {
		esc, _ := a.Body["escalation"].(map[string]any)
		return esc["desk_status"] != nil
	})
	ds := a.Body["escalation"].(map[string]any)["desk_status"].(map[string]any)
	if ds["status"] != "solved" || ds["at"] == "" {
		t.Errorf("desk_status %v", ds)
	}
	if a.Body["status"] != before {
		t.Errorf("the ENT's status went %v → %v on a desk notice", before, a.Body["status"])
	}
	if got := deskBodies(a); len(got) != 1 {
		t.Errorf("desk exchanges %q, want only the agent's reply", got)
	}
	waitOps(t, "the ticket.desk_status_changed callback", 20*time.Second, func() bool {
		ids, _ := ent.ofType("ticket.desk_status_changed")
		return len(ids) == 1
	})
	_, data := ent.ofType("ticket.desk_status_changed")
	var cb struct {
		TicketID   string `json:"ticket_id"`
		DeskStatus struct {
			Status string `json:"status"`
		} `json:"desk_status"`
		DeskReference string `json:"desk_reference"`
	}
	if err := json.Unmarshal(data[0], &cb); err != nil || cb.TicketID != "RT1" || cb.DeskStatus.Status != "solved" ||
		cb.DeskReference != fmt.Sprint(rtID) {
		t.Errorf("callback %s (%v)", data[0], err)
	}
	ent.checkContract(t)
}
