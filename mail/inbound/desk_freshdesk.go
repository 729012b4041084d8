package inbound

import (
	"regexp"
)

// deskFreshdesk is Freshdesk's mail, as its ticket notifier and default
// email notifications send it. Every mail, an agent's reply included,
// carries Auto-Submitted and X-Auto-Response-Suppress (MarksAllAutomatic);
// Freshdesk sets no header of its own, its Message-IDs are in the
// account's freshdesk.com domain. The number is the "[#1847]" tag
// ("Re: [#1847] <subject>", "Ticket Received - [#1847] <subject>"), which
// osTicket and FreeScout write too: with it, only the notifications'
// own lines recognise the product.
//
// A reply is the agent's HTML, the signature, then the quoted history in
// div.freshdesk_quote ("On <date>, Name <addr> wrote:"): the generic
// reading serves. The notifications (ticket received, resolved, closed)
// are templates with no agent's words.
func deskFreshdesk() *DeskProduct {
	ack := res(
		`^We would like to acknowledge that we have received your request and a ticket has been created with Ticket ID - \d+\.$`,
	)
	solved := res(
		`^Our Support Rep has indicated that your Ticket \(#\d+\) has been Resolved\.`,
		// A site's French translation of the template.
		`^Notre équipe d'assistance a indiqué que votre ticket \(#\d+\) a été résolu\.`,
	)
	closed := res(
		`^Your Ticket #\d+ - .{0,300} has been closed\.$`,
		`^Votre ticket #\d+ - .{0,300} a été (?:fermé|clôturé)\.$`,
	)
	return &DeskProduct{
		Name: "freshdesk",
		HeaderValues: []HeaderPattern{
			{Name: "Message-ID", Pattern: mustRe(`^<[^<>\s@]+@[a-z0-9-]+\.freshdesk\.com>$`)},
		},
		SubjectTag:  mustRe(`\[#(\d+)\]`),
		BodyMarkers: append(append(append([]*regexp.Regexp{}, ack...), solved...), closed...),
		// The default notifications' subjects ("Ticket Received - [#N]
		// …"), and their French translations.
		AckSubjects:       res(`^Ticket (?:Received|reçu) - \[#\d+\]`),
		SolvedSubjects:    res(`^Ticket (?:Resolved|résolu) - \[#\d+\]`),
		ClosedSubjects:    res(`^Ticket (?:Closed|fermé|clôturé) - \[#\d+\]`),
		AckBody:           ack,
		SolvedBody:        solved,
		ClosedBody:        closed,
		MarksAllAutomatic: true,
		// A notification whose text is the template alone ("Dear <name>,"
		// then one of its lines) carries no agent's words.
		Layout: templateOnlyLayout(5, ack, solved, closed),
	}
}
