package inbound

// deskJira is Jira Service Management's customer notifications (Cloud and
// Data Center), as its stock templates send them. Every mail carries
// X-JIRA-FingerPrint and a Message-ID "<JIRA.{issueId}.{created}…
// @Atlassian.JIRA>", and Auto-Submitted: auto-generated with Precedence:
// bulk, the notifications that carry an agent's comment included
// (MarksAllAutomatic). The subject is "{KEY} {summary}".
//
// The text opens with the "—-—-—-—" marker and "Reply above this line.";
// the activities follow ("{Agent} commented:" then the comment, "{Agent}
// resolved this as {Resolution}."), batched and parted by a rule of
// underscores (an <hr> in HTML), then the footer ("View request: …").
// Jira sends no separate closed notice; "Request created" is the ack.
func deskJira() *DeskProduct {
	p := &DeskProduct{
		Name:    "jira",
		Headers: []string{"X-JIRA-FingerPrint"},
		HeaderValues: []HeaderPattern{
			{Name: "Message-ID", Pattern: mustRe(`^<JIRA\.\d+\.\d+(?:\.\d+)*@Atlassian\.JIRA>$`)},
		},
		// The key opens the subject, after any reply prefix. KEY-123 is
		// broad ("[ENT-42]"), so Jira has neither separators nor body
		// markers: tag plus body never recognise it, only its headers do.
		SubjectTag: mustRe(`^(?:(?i:re|aw|fwd?|tr|wg)\s*:\s*)*([A-Z][A-Z0-9_]{1,19}-\d+)\b`),
		Preamble: res(
			// The reply marker (text part and div.jsd-reply-marker): a
			// preamble line, not a separator, for the reason above; the
			// "Reply above this line." hint below it is the generic
			// reply-above mark, which makes the rest a notification.
			`^—-—-—-—$`,
			`^\S.{0,80} commented:$`,
			// A resolution batched before a comment, or alone.
			`^\S.{0,80} resolved this as [^.]{1,60}\.$`,
		),
		History: res(
			// The rule between batched activities (text part).
			`^_{20,}$`,
			// A customised template's history heading.
			`^Previous activity$`,
			// The footer: "View request: URL" (text), "View request (URL)
			// · Turn off … (URL)" (HTML), then "This is shared with …"
			// should a long link push the first past the line limit.
			`^View request(?::\s*https?://\S+|\s*\(https?://[^\s)]+\)(?:\s*·.*)?)$`,
			`^Turn off this request's notifications(?::\s*https?://\S+|\s*\(https?://[^\s)]+\))$`,
			`^This is shared with .{1,200}\.$`,
		),
		// "Request created": its subject is a reply's, and its default
		// wording was not found (NOTES-B.md): these lines are assumed.
		AckBody: res(
			`^Thanks for contacting .{1,80}\. We have received your request\b`,
			`^Your request reference is [A-Z][A-Z0-9_]{1,19}-\d+\.$`,
		),
		// "Request resolved": "{Agent} resolved this as {Resolution}."
		SolvedBody:        res(`^\S.{0,80} resolved this as [^.]{1,60}\.$`),
		MarksAllAutomatic: true,
	}
	p.Layout = deskBoilerplateOnly(p, mustRe(`^Reply above this line\.$`))
	return p
}
