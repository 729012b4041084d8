// Package mail is the bridge's mail adapter, both ways.
//
// Outbound: it composes the escalation mail, the follow-ups and the
// digests (go-message; signed Message-IDs and reply tokens, loop headers,
// CR/LF-safe headers) and sends them over SMTP (go-smtp) with a connection
// cache; every error says whether retrying can help.
//
// Inbound: it reads the desk's mailbox over IMAP (go-imap v2: IDLE or
// polling, one reader at a time under a fenced lease, checkpoints), parses
// each mail (MIME, charsets, size limits), classifies it (our own mail
// looping back, a bounce, an automatic answer, a help-desk product's
// acknowledgement or solved/closed notice, a reply), threads it onto its
// ticket, keeps only the new text (quotes, signatures and a product's
// layout removed; a forwarded message kept) and hands the result to the
// domain; what it cannot apply goes to quarantine.
//
// It imports bridge (the domain's types and the interfaces it declares) and
// nothing else of the project.
package mail
