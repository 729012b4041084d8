package inbound

// deskFreeScout is FreeScout's mail, as app/Misc/Mail.php and its
// customer templates send it. A reply to the customer carries
// "X-FreeScout-Mail-Type: customer.message" and a Message-ID
// "<reply-{threadId}-{md5}@{domain}>", an auto-reply "<autoreply-…>".
// FreeScout puts no number in the subject; the "Ticket Number" module
// puts "[#1873]" first, a tag osTicket and Freshdesk write too: the
// product is recognised by its headers, or by the tag with its own
// separator line.
//
// The text part OPENS with "-- Please reply above this line --"
// (REPLY_SEPARATOR_TEXT, never translated) and a rule of dashes, and the
// agent's words follow, then the mailbox signature ("-- "); older threads
// come below a rule, each under "## {name}, on {M j @ H:i} ({tz}):". The
// HTML part has no visible separator (table#fsReplyAbove): each thread
// opens with "{first name} replied" or "… sent a message" and its date.
// FreeScout sends no solved or closed notice to customers.
func deskFreeScout() *DeskProduct {
	return &DeskProduct{
		Name:    "freescout",
		Headers: []string{"X-FreeScout-Mail-Type"},
		HeaderValues: []HeaderPattern{
			{Name: "Message-ID", Pattern: mustRe(`^<(?:reply|autoreply)-\d+-[0-9a-f]{32}@[^\s@<>]+>$`)},
		},
		SubjectTag: mustRe(`\[#(\d+)\]`),
		Separators: res(`^-- Please reply above this line --$`),
		Preamble: res(
			// The HTML thread heading and its date ("Dec 7, 10:05").
			freescoutHeading,
			`^[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2}$`,
		),
		History: res(
			// The rule above each older thread (text part), 59 dashes.
			`^-{50,}$`,
			// An older thread's heading: "## Name, on Dec 7 @ 16:02
			// (Europe/Paris):" (text), "Name replied" (HTML).
			`^## .{1,80}, on [A-Z][a-z]{2} \d{1,2} @ \d{1,2}:\d{2} \([^()]{1,60}\):$`,
			freescoutHeading,
		),
		// The mailbox's auto-reply; its wording is the mailbox's own, these
		// are the usual ones, naming the conversation number.
		AckBody: res(
			`^Nous avons bien reçu votre (?:demande|message)\b.*#\d+`,
			`^(?:We have received your (?:request|message)|Thank you for contacting us)\b.*#\d+`,
		),
	}
}

// freescoutHeading is a thread's heading in the HTML part: the author's
// first name (one or two words) and "replied", or "sent a message" for
// the oldest thread.
const freescoutHeading = `^\p{Lu}[\p{L}'’.-]{0,30}(?: \p{L}[\p{L}'’.-]{0,30})? (?:replied|sent a message)$`
