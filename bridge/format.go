package bridge

import "strconv"

// FormatBytes is how the operators' views (the status page, the ops
// commands) show a size: "850 B", "12.3 KiB", "2.5 MiB" (binary units, one
// decimal, MiB at most). The mails to the desk and to users say sizes in
// their reader's language instead (mail's labels).
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// Label is how the operators' views show a person: "Name <email>", or
// the one of the two given, or the id when neither is.
func (p Person) Label() string {
	switch {
	case p.DisplayName != "" && p.Email != "":
		return p.DisplayName + " <" + p.Email + ">"
	case p.DisplayName != "":
		return p.DisplayName
	case p.Email != "":
		return p.Email
	}
	return p.ID
}
