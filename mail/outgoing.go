package mail

// Outgoing is a composed mail: its envelope and its RFC 5322 bytes (CRLF line
// endings).
type Outgoing struct {
	// MessageID is the signed Message-ID, without angle brackets.
	MessageID string
	// From is the envelope sender: the Reply-To mailbox (without token)
	// when set, so that bounces reach the mailbox the bridge reads; else
	// From.
	From string
	To   []string
	Raw  []byte
}
