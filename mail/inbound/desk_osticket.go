package inbound

import (
	"regexp"
	"strings"
)

// deskOsTicket is osTicket's mail (1.10 to 1.18), as class.mailer.php and
// the stock templates send it. Every mail carries "X-Mailer: osTicket
// Mailer" and a Message-ID of the "B" format (<B{sysid}-{rand}-{tag}-
// {sender}>); the number is the "[#482913]" tag, at the END of a reply's
// subject ("Re: %{ticket.subject} [#N]"), so the tag, which FreeScout and
// Freshdesk write too, never recognises the product alone.
//
// With strip_quoted_reply on (the default) the mail OPENS with the "-- reply
// above this line --" separator (hidden div in the HTML, html2text in the
// text part), and the agent's words follow it: between the template's
// greeting (an <h3>, upper-cased by html2text) and its team line ("Your
// %{company.name} Team,"), after which come the signature, an <hr> and the
// footer, or a "Ticket Thread" when the template includes it. The new
// ticket autoresponse ("Support Ticket Opened [#N]") and the auto-close
// notice ("… [#N] Closed") carry the autoreply headers; agent replies carry
// none, so MarksAllAutomatic stays false.
func deskOsTicket() *DeskProduct {
	p := &DeskProduct{
		Name: "osticket",
		HeaderValues: []HeaderPattern{
			{Name: "X-Mailer", Pattern: mustRe(`^osTicket Mailer$`)},
			// getMessageId() format "B": B + 6-char system id, 5 random
			// characters, the base64 thread tag, the sender's address.
			{Name: "Message-ID", Pattern: mustRe(`^<B[0-9A-Za-z]{6}-[0-9A-Za-z]{5}-[0-9A-Za-z+/_=-]{16,}-[^\s@<>]+@[^\s@<>]+>$`)},
		},
		SubjectTag: mustRe(`\[#(\d+)\]`),
		// reply_separator's default; older versions put it at the top of
		// the text too.
		Separators: res(`^-- reply above this line --$`),
		// The template greeting: an <h3> that html2text upper-cases in
		// the text part ("DEAR ASSISTANCE ENT,", the French templates'
		// "BONJOUR …,"), so that it never takes the agent's own "Dear
		// Claire," or "Bonjour," that follows it.
		Preamble: res(`^(?:DEAR|BONJOUR) [^a-z]{1,80},$`),
		History: res(
			// The template's team line, before the signature and footer.
			`^Your .{1,80} Team,$`,
			`^L['’]équipe .{1,80},$`,
			// %{ticket.thread} (heading upper-cased in the text part).
			`^(?:TICKET THREAD|Ticket Thread)$`,
			// The <hr> before the footer, and the Ref-Mid line that ends
			// the text part.
			`^-{70,}$`,
			`^Ref-Mid: \S+@\S+$`,
		),
		AckSubjects: res(`^Support Ticket Opened \[#\d+\]$`),
		AckBody:     res(`^A request for support has been created and assigned #\d+\b`),
		// ticket.autoclose.yaml: "… [#N] Closed"; osTicket has no resolved
		// notice of its own.
		ClosedSubjects: res(`\[#\d+\] Closed$`),
		ClosedBody:     res(`^This message is to confirm that we have resolved and closed your ticket\b`),
	}
	// The auto-close notice is template from greeting to footer: its team
	// line follows the preamble at once, where the generic reading, which
	// only cuts history below some text, would keep the footer.
	p.Layout = deskBoilerplateOnly(p,
		// The same template seen through its HTML (the synthetic
		// HTML-only notice): the greeting in the template's case, and
		// ticket.autoclose.yaml's sentences, which no agent writes.
		mustRe(`^Dear [^,]{1,80},$`),
		mustRe(`^Thank you for contacting the .{1,80}\.$`),
		mustRe(`^This message is to confirm that we have resolved and closed your ticket\b`),
	)
	return p
}

// deskBoilerplateOnly returns a Layout for a product whose notices can be
// nothing but template: when the text, once its separators and preamble
// are skipped, opens straight on a history line, the mail carries no
// words of the agent ("", true); otherwise the generic reading runs. skip
// are further lines to pass over (a generic "reply above" hint).
func deskBoilerplateOnly(p *DeskProduct, skip ...*regexp.Regexp) func(string) (string, bool) {
	return func(text string) (string, bool) {
		for _, line := range strings.Split(text, "\n") {
			l := strings.TrimSpace(line)
			switch {
			case l == "" || p.isSeparator(l) || p.isPreamble(l) || anyMatch(skip, l):
				continue
			case p.isHistory(l, true):
				return "", true
			}
			return "", false
		}
		return "", false
	}
}
