package bridge

// The grammar of the ids the ENT sends (tickets, comments, structures,
// people, attachments), from the integration contract and api/openapi.yaml:
// 1 to MaxIDLen characters of A-Z a-z 0-9 . _ : @ -. The webhook decoder
// checks every id with ValidID; the mail side reads a ticket id out of a
// subject tag ("[ENT-<id>]") with IDChar and MaxIDLen.

// MaxIDLen is the longest id accepted, in bytes (the grammar is ASCII).
const MaxIDLen = 128

// IDChars describes the characters of an id, for error messages.
const IDChars = "A-Z a-z 0-9 . _ : @ -"

// IDChar reports whether c may appear in an id.
func IDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
}

// ValidID reports whether s is an id: 1 to MaxIDLen characters, each an
// IDChar.
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IDChar(s[i]) {
			return false
		}
	}
	return true
}
