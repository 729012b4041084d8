package bridge

import (
	"strings"
	"testing"
)

func TestLangOf(t *testing.T) {
	for in, want := range map[string]Lang{
		"": French, "fr": French, "fr-FR": French, "de": French, "eng": French, "enx": French,
		"en": English, "EN": English, " en-GB ": English, "en_US": English,
	} {
		if got := LangOf(in); got != want {
			t.Errorf("LangOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTextsComplete: every notification type has a title in every
// language, each with the one %s of the subject.
func TestTextsComplete(t *testing.T) {
	types := []NotificationType{NotifyTicketCreated, NotifyTicketUpdated, NotifyDeskReplied, NotifyTicketResolved,
		NotifyTicketClosed, NotifyEscalationFailed, NotifyDeskSolved, NotifyDeskClosed}
	for _, lang := range []Lang{French, English} {
		tx, err := readTexts(lang)
		if err != nil {
			t.Fatal(err)
		}
		if len(tx.NotificationTitles) != len(types) {
			t.Errorf("%s: %d titles for %d types", lang, len(tx.NotificationTitles), len(types))
		}
		for _, typ := range types {
			if s := tx.NotificationTitles[typ]; strings.Count(s, "%") != 1 || !strings.Contains(s, "%s") {
				t.Errorf("%s: title of %s is %q", lang, typ, s)
			}
		}
	}
}
