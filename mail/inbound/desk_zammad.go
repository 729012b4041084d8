package inbound

// deskZammad is Zammad's mail, as Channel::EmailBuild and the default
// triggers send it. Every mail carries "X-Mailer: Zammad Mail Service" and
// "X-Powered-By: Zammad - Helpdesk/Support (…)"; only the System sender's
// mails (triggers, notifications) add X-Loop, Precedence: bulk,
// Auto-Submitted and X-Auto-Response-Suppress, an agent's reply does not,
// so those headers keep their meaning (not MarksAllAutomatic). The ticket
// hook "[Ticket#31057]" stands in the subject, at its end by default
// ("RE: <title> [Ticket#31057]"), at its start in older installs.
//
// An agent's reply is the article alone (its text part made by html2text),
// with the group signature below a "--" line and, with full quote on, the
// quoted article below "On … wrote:" / "Le … a écrit :": the generic
// reading serves. Triggers are templates with no agent's words: the auto
// reply on new tickets ("Thanks for your inquiry (<title>)", "Your request
// (Ticket#N) has been received …") and the "closed" trigger a site adds
// (Zammad ships none; its wording follows the auto reply's).
func deskZammad() *DeskProduct {
	// The triggers' lines: "Your request <b>(#{config.ticket_hook}
	// #{ticket.number})</b> has been received …" (db/seeds/triggers.rb;
	// html2text makes the <b> "*…*"), and the French a site writes.
	ack := res(
		`^Your request \*?\([^()\s]{1,40}#\d+\)\*? has been received and will be reviewed by our support staff\.$`,
		`^Votre demande \*?\([^()\s]{1,40}#\d+\)\*? a (?:bien )?été reçue\b.*\.$`,
	)
	// A site's "closed" trigger, in the auto reply's shape.
	closed := res(
		`^Your request \*?\([^()\s]{1,40}#\d+\)\*? .{0,200}has been closed\.$`,
		`^Votre demande \*?\([^()\s]{1,40}#\d+\)\*? .{0,200}a été (?:clôturée|fermée)\.$`,
	)
	return &DeskProduct{
		Name: "zammad",
		HeaderValues: []HeaderPattern{
			{Name: "X-Mailer", Pattern: mustRe(`^Zammad Mail Service$`)},
			{Name: "X-Powered-By", Pattern: mustRe(`^Zammad - Helpdesk/Support\b`)},
		},
		SubjectTag: mustRe(`\[Ticket#(\d+)\]`),
		// The default trigger "auto reply (on new tickets)" and its
		// inactive follow-up twin.
		AckSubjects: res(
			`^Thanks for your inquiry \(.*\)`,
			`^Thanks for your follow up \(.*\)`,
		),
		AckBody:        ack,
		ClosedSubjects: res(`^Your request has been closed \(.*\)`, `^Votre demande a été (?:clôturée|fermée) \(.*\)`),
		ClosedBody:     closed,
		// A trigger's mail is the template alone: no agent's words.
		Layout: templateOnlyLayout(5, ack, closed),
	}
}
