package inbound

// deskRT is Request Tracker's mail (RT 4.4 and 5), as its stock templates
// and scrips send it: every mail carries X-RT-Loop-Prevention and
// X-RT-Ticket ("RT-" without "X-" before 4.4) and Precedence: bulk, an
// agent's correspondence included; the subject opens with [<rtname> #<id>].
// The autoreply ("AutoReply:", Auto-Submitted: auto-replied) quotes the
// request below a rule; "Resolved:" tells the ticket was resolved (RT sends
// no notice on close). A correspondence mail is the agent's text alone,
// with the history, when a site adds it, quoted below "On … wrote:".
func deskRT() *DeskProduct {
	return &DeskProduct{
		Name:    "rt",
		Headers: []string{"X-RT-Loop-Prevention", "X-RT-Ticket", "RT-Ticket", "RT-Loop-Prevention"},
		HeaderValues: []HeaderPattern{
			{Name: "X-Managed-By", Pattern: mustRe(`^RT \d`)},
			{Name: "Managed-By", Pattern: mustRe(`^RT \d`)},
		},
		SubjectTag: mustRe(`\[[^\]\s#]+ #(\d+)\]`),
		ReferenceHeaders: []HeaderPattern{
			{Name: "X-RT-Ticket", Pattern: mustRe(`#\s*(\d+)\s*$`)},
			{Name: "RT-Ticket", Pattern: mustRe(`#\s*(\d+)\s*$`)},
		},
		// The rules RT's autoreply template draws above the request it
		// quotes (dashes before 5.0, "━" since).
		Separators: res(`^-{70,}$`, `^━{20,}$`),
		Preamble: res(
			`^According to our records, your request has been resolved\.`,
			`^further questions or concerns, please respond to this message\.$`,
			`^If you have any further questions or concerns, please respond to this message\.$`,
		),
		AckSubjects:       res(`(?i)(?:^|\]\s*)AutoReply:`),
		AckBody:           res(`^This message has been automatically generated in response to the`),
		SolvedSubjects:    res(`(?i)(?:^|\]\s*)Resolved:`),
		SolvedBody:        res(`^According to our records, your request has been resolved\.`),
		MarksAllAutomatic: true,
	}
}
