package bridge

import "testing"

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
