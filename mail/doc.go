// Package mail holds what both sides of the bridge's mail adapter share: the
// signed Message-IDs and reply tokens (Signer) and a composed mail
// (Outgoing). The adapter itself is in its sub-packages:
//
//   - compose: the escalation mail, the follow-ups, the digests and the
//     operators' alerts (go-message; loop headers, CR/LF-safe headers), and
//     the mailers that compose and send them;
//   - smtpclient: the SMTP client (go-smtp) with a connection cache; every
//     error says whether retrying can help;
//   - imapreader: the desk's mailbox over IMAP (go-imap v2: IDLE or polling,
//     one reader at a time under a fenced lease, checkpoints, batches);
//   - inbound: each mail parsed (MIME, charsets, size limits), classified
//     (our own mail looping back, a bounce, an automatic answer, a help-desk
//     product's acknowledgement or solved/closed notice, a reply), threaded
//     onto its ticket, reduced to the new text (quotes, signatures and a
//     product's layout removed; a forwarded message kept) and handed to the
//     domain; what it cannot apply goes to quarantine;
//   - mailtest: the real servers of the tests.
//
// It imports nothing of the project; the sub-packages import bridge and
// this package (inbound also imapreader, compose also smtpclient).
package mail
