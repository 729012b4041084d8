package bridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRecipients(t *testing.T) {
	owner := Person{ID: "u-owner"}
	refA := Referent{ID: "u-refA", Locale: "fr"}
	refB := Referent{ID: "u-refB", Locale: "en"}
	escalator := Person{ID: "u-esc"}
	tk := Ticket{ID: "1", Owner: owner, Locale: "fr", Escalation: Escalation{EscalatedBy: &escalator}}
	ids := func(rs []recipient) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name  string
		typ   NotificationType
		refs  []Referent
		actor *Person
		want  string
	}{
		{"created: referents, not the owner who made it", NotifyTicketCreated, []Referent{refA, refB}, &owner, "u-refA,u-refB"},
		{"created by a referent: the others", NotifyTicketCreated, []Referent{refA, refB}, &Person{ID: "u-refA"}, "u-refB"},
		{"updated by the owner: referents", NotifyTicketUpdated, []Referent{refA, refB}, &owner, "u-refA,u-refB"},
		{"updated by a referent: owner and the other referents", NotifyTicketUpdated, []Referent{refA, refB}, &Person{ID: "u-refB"}, "u-owner,u-refA"},
		{"desk replied: owner and referents", NotifyDeskReplied, []Referent{refA}, &Person{ID: "agent@desk.example"}, "u-owner,u-refA"},
		{"resolved by the desk", NotifyTicketResolved, []Referent{refA}, nil, "u-owner,u-refA"},
		{"closed by the desk", NotifyTicketClosed, []Referent{refB}, nil, "u-owner,u-refB"},
		{"escalation failed: whoever escalated and referents, not the owner", NotifyEscalationFailed, []Referent{refA}, nil, "u-esc,u-refA"},
		{"a referent who is also the owner is told once", NotifyDeskReplied, []Referent{{ID: "u-owner"}, refA}, nil, "u-owner,u-refA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(Recipients(tc.typ, tk, tc.refs, tc.actor)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestTitle(t *testing.T) {
	if got := Title("fr", NotifyDeskReplied, "Écran blanc"); got != "Réponse du support : Écran blanc" {
		t.Errorf("fr: %q", got)
	}
	if got := Title("en-GB", NotifyTicketCreated, "Blank screen"); got != "New request: Blank screen" {
		t.Errorf("en: %q", got)
	}
	long := strings.Repeat("très long sujet ", 20)
	got := Title("fr", NotifyTicketUpdated, long+"\r\nBcc: x")
	if !strings.HasSuffix(got, "…") || utf8.RuneCountInString(got) > 90 || strings.ContainsAny(got, "\r\n") {
		t.Errorf("long subject: %q", got)
	}
}
