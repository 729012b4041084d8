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
