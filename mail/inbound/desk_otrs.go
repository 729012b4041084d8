package inbound

// deskOTRS is OTRS's mail, and its forks' (Znuny, OTOBO), as
// Kernel/System/Email.pm sends it: "X-Mailer: {Product} Mail Service
// ({Version})" and "X-Powered-By: OTRS (https://otrs.com/)" unless
// Secure::DisableBanner is set; no X-OTRS-* header (those are incoming
// filter headers). The number is the "[Ticket#2026120410000012]" hook,
// left of the subject by default.
//
// OTRS writes no "reply above this line" separator: an agent's reply is
// the salutation, text and signature the agent edits, then "{date} -
// {name} wrote:" and the quoted article (Ticket::Frontend::ResponseFormat).
// Auto-responses and customer notifications are sent with Loop => 1
// (X-Loop: yes, Precedence: bulk, Auto-Submitted: auto-generated), agent
// replies without: MarksAllAutomatic stays false. The "new ticket"
// auto-response ("Thanks for your email. A new ticket has been created.")
// is the ack; a closed notice exists only as an admin-configured customer
// notification on a state change, all of it template.
func deskOTRS() *DeskProduct {
	p := &DeskProduct{
		Name: "otrs",
		HeaderValues: []HeaderPattern{
			{Name: "X-Mailer", Pattern: mustRe(`^(?:OTRS|Znuny|OTOBO) Mail Service\b`)},
			{Name: "X-Powered-By", Pattern: mustRe(`^(?:OTRS|Znuny|OTOBO)\b.*\(https?://(?:www\.)?(?:otrs\.com|znuny\.org|otobo\.(?:de|io))/?\)$`)},
		},
		SubjectTag: mustRe(`\[Ticket#(\d+)\]`),
		History: res(
			// ResponseFormat's quote header: "04.12.2026 09:12 - Name a
			// écrit :", "12/07/2026 16:02 - Name wrote:".
			`^\d{1,2}[./]\d{1,2}[./]\d{4} \d{1,2}:\d{2} - .{1,120} (?:wrote|a écrit) ?:$`,
		),
		// The default "new ticket" auto-response, and its French
		// translation.
		AckBody: res(
			`^Thanks for your e-?mail\. A new ticket has been created\.`,
			`^Merci pour votre (?:message|e-?mail|courriel)\. Un nouveau ticket a été créé\.`,
		),
		// A customer notification on TicketStateUpdate: "… est maintenant
		// à l'état : clôturé avec succès." (state "closed successful").
		ClosedBody: res(otrsClosedState...),
	}
	// An auto-response or a customer notification is the admin's template
	// from end to end, no agent writes in it: it carries no text.
	p.Layout = templateOnlyLayout(6, otrsNotice)
	return p
}

// otrsClosedState are the state lines of a closed notification.
var otrsClosedState = []string{
	`(?:^|\s)(?:à|a) l['’]état\s*:\s*(?:clôturé|fermé) (?:avec|sans) succès\.?$`,
	`(?:^|\s)(?:state|status)\s*:?\s*closed (?:successful|unsuccessful)\.?$`,
}

// otrsNotice matches the lines of OTRS's own automatic mails: the "new
// ticket" auto-response and a state notification.
var otrsNotice = res(append([]string{
	`^Thanks for your e-?mail\. A new ticket has been created\.`,
	`^Merci pour votre (?:message|e-?mail|courriel)\. Un nouveau ticket a été créé\.`,
}, otrsClosedState...)...)
