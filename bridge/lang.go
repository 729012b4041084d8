package bridge

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
)

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

// texts/<lang>.json hold the words the domain writes itself (the
// notifications' titles), one file a language, as mail/compose's texts/
// hold the mails'.
//
//go:embed texts/*.json
var textFiles embed.FS

// domainTexts is one language's file.
type domainTexts struct {
	NotificationTitles map[NotificationType]string `json:"notification_titles"`
}

// titles holds the notifications' titles, one set a language.
var titles = map[Lang]map[NotificationType]string{}

func init() {
	for _, lang := range []Lang{French, English} {
		t, err := readTexts(lang)
		if err != nil {
			panic(err) // built in: the package's tests catch it first
		}
		titles[lang] = t.NotificationTitles
	}
}

// readTexts reads one language's file strictly: an unknown key is a typo.
func readTexts(lang Lang) (domainTexts, error) {
	var t domainTexts
	raw, err := textFiles.ReadFile("texts/" + string(lang) + ".json")
	if err != nil {
		return t, fmt.Errorf("bridge texts %s: %w", lang, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("bridge texts %s: %w", lang, err)
	}
	return t, nil
}
