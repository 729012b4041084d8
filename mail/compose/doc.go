// Package compose builds the mails the bridge sends: the escalation mail and
// the follow-ups to the desk, the referents' digests and the operators'
// alerts (go-message; signed Message-IDs and reply tokens, loop headers,
// CR/LF-safe headers), and the mailers that compose and send them over
// smtpclient.
//
// It imports bridge, mail and mail/smtpclient.
package compose
