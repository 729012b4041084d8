package httpapi

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"supportbridge/bridge"
)

// The rules of the contract's fields, one function each: ids, dates,
// texts, addresses, people, categories, locales, digests and statuses.

// The reasons that take a number, worded once.
var (
	idReason         = fmt.Sprintf("must be 1 to %d characters of %s", maxIDChars, bridge.IDChars)
	optionalIDReason = fmt.Sprintf("must be empty or 1 to %d characters of %s", maxIDChars, bridge.IDChars)
	shortReason      = fmt.Sprintf("at most %d characters", maxShortChars)
	longReason       = fmt.Sprintf("at most %d characters", maxTextChars)
	subjectReason    = fmt.Sprintf("must be 1 to %d characters, white space aside", maxSubjectChars)
)

// checked returns the text at path when valid accepts it, and reports
// reason otherwise. An optional text that is absent, null or empty is "",
// unchecked; a required one is checked even when empty.
func (c *checker) checked(path string, v *jvalue, required bool, valid func(string) bool, reason string) string {
	s, ok := c.text(path, v, required)
	if !ok || s == "" && !required {
		return ""
	}
	if !valid(s) {
		c.fail(path, reason)
		return ""
	}
	return s
}

// orDefault is s, or def when s is empty: an optional text left out, or
// one already reported.
func orDefault[S ~string](s, def S) S {
	if s == "" {
		return def
	}
	return s
}

func (c *checker) eventType(v *jvalue) (bridge.EventType, bool) {
	if isAbsent(v) {
		c.fail("type", "required")
		return "", false
	}
	if v.kind != kindString {
		c.fail("type", "must be a string")
		return "", false
	}
	if v.str == "" {
		c.fail("type", "required")
		return "", false
	}
	return bridge.EventType(v.str), true
}

func (c *checker) id(path string, v *jvalue) string {
	return c.checked(path, v, true, bridge.ValidID, idReason)
}

// optionalID accepts an absent, null or empty id.
func (c *checker) optionalID(path string, v *jvalue) string {
	return c.checked(path, v, false, bridge.ValidID, optionalIDReason)
}

func (c *checker) timestamp(path string, v *jvalue) time.Time {
	s, ok := c.text(path, v, true)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		c.fail(path, "must be an RFC 3339 date-time")
		return time.Time{}
	}
	return t
}

func (c *checker) boolean(path string, v *jvalue) bool {
	if isAbsent(v) {
		c.fail(path, "required")
		return false
	}
	if v.kind != kindBool {
		c.fail(path, "must be true or false")
		return false
	}
	return v.b
}

// shortText is a name or label: when required, not blank.
func (c *checker) shortText(path string, v *jvalue, required bool) string {
	s, ok := c.text(path, v, required)
	switch {
	case !ok:
	case required && strings.TrimSpace(s) == "":
		c.fail(path, "must not be blank")
	case utf8.RuneCountInString(s) > maxShortChars:
		c.fail(path, shortReason)
	default:
		return s
	}
	return ""
}

func (c *checker) subject(path string, v *jvalue) string {
	return c.checked(path, v, true, func(s string) bool {
		n := utf8.RuneCountInString(strings.TrimSpace(s))
		return n > 0 && n <= maxSubjectChars
	}, subjectReason)
}

// longText is a description or a comment body: may be empty.
func (c *checker) longText(path string, v *jvalue, required bool) string {
	return c.checked(path, v, required, func(s string) bool {
		return utf8.RuneCountInString(s) <= maxTextChars
	}, longReason)
}

// email accepts a bare address ("a@b.example"), not a name with one.
func (c *checker) email(path string, v *jvalue, required bool) string {
	return c.checked(path, v, required, func(s string) bool {
		a, err := mail.ParseAddress(s)
		return err == nil && a.Name == "" && a.Address == s && len(s) <= maxEmailBytes
	}, "must be a bare email address")
}

// person decodes an owner, actor or author; every one has the same shape.
func (c *checker) person(path string, v *jvalue, nameRequired bool) bridge.Person {
	m := c.requiredObject(path, v, "id", "display_name", "email", "profile")
	if m == nil {
		return bridge.Person{}
	}
	return bridge.Person{
		ID:          c.id(join(path, "id"), m["id"]),
		DisplayName: c.shortText(join(path, "display_name"), m["display_name"], nameRequired),
		Email:       c.email(join(path, "email"), m["email"], false),
		Profile:     c.shortText(join(path, "profile"), m["profile"], false),
	}
}

func (c *checker) category(path string, v *jvalue) bridge.Category {
	m := c.requiredObject(path, v, "app", "label")
	if m == nil {
		return bridge.Category{}
	}
	return bridge.Category{
		App:   c.shortText(join(path, "app"), m["app"], true),
		Label: c.shortText(join(path, "label"), m["label"], false),
	}
}

// locale is a ticket's language: absent, null or empty means French.
func (c *checker) locale(path string, v *jvalue) string {
	return orDefault(c.checked(path, v, false, validLocale, `must look like "fr" or "fr-FR"`), defaultLocale)
}

// validLocale matches ^[a-z]{2}(-[A-Z]{2})?$.
func validLocale(s string) bool {
	lower := func(b byte) bool { return b >= 'a' && b <= 'z' }
	upper := func(b byte) bool { return b >= 'A' && b <= 'Z' }
	switch len(s) {
	case 2:
		return lower(s[0]) && lower(s[1])
	case 5:
		return lower(s[0]) && lower(s[1]) && s[2] == '-' && upper(s[3]) && upper(s[4])
	}
	return false
}

// referentLocale is the language of a referent's digests: fr or en; left
// empty when absent so that the digest applies its own default.
func (c *checker) referentLocale(path string, v *jvalue) string {
	return c.checked(path, v, false, func(s string) bool { return s == "fr" || s == "en" }, `must be "fr" or "en"`)
}

// digest is absent, null or empty for daily.
func (c *checker) digest(path string, v *jvalue) bridge.Digest {
	d := c.checked(path, v, false, func(s string) bool { return bridge.Digest(s).Valid() }, "must be daily, weekly or never")
	return bridge.Digest(d).OrDefault()
}

func (c *checker) status(path string, v *jvalue) bridge.Status {
	return bridge.Status(c.checked(path, v, true, func(s string) bool { return bridge.Status(s).Valid() },
		"must be new, opened, waiting, resolved or closed"))
}
