package bridge

import "strings"

// Lang is a language the daemon writes its texts in (mails to the desk,
// digests, notifications, operator alerts). Each catalogue of texts is a
// map from Lang to that language's texts, with an entry for every Lang.
type Lang string

// The languages.
const (
	French  Lang = "fr"
	English Lang = "en"
)

// LangOf is the one rule from a locale (a ticket's, a referent's, the
// configured default) to a Lang: "en", "en-…" or "en_…" (any case) is
// English, anything else French, the ENT's language.
func LangOf(locale string) Lang {
	l := strings.ToLower(strings.TrimSpace(locale))
	if l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_") {
		return English
	}
	return French
}
