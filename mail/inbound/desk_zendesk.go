package inbound

// deskZendesk is Zendesk's mail, as its mailer and standard triggers send
// it. Every mail carries "X-Mailer: Zendesk Mailer", X-Zendesk-From-
// Account-Id and a Message-ID "<ENCID_<hex>_<hex>_sprut@zendesk.com>", and
// Auto-Submitted: auto-generated with X-Auto-Response-Suppress: All, the
// notifications that carry an agent's comment included (MarksAllAutomatic).
// The subject is the site trigger's: the number stands in the text, "Your
// request (23735) has been updated…" / "Votre demande (#22287) a été …".
//
// The text part opens with "##- Please type your reply above this line -##"
// and a preamble line; then come the public comments, newest first, each
// below a rule of 46 dashes and an author line ("Name (Org), Apr 13, 2021,
// 15:01 PDT"); a rule of 32 dashes opens the footer ("This email is a
// service from <Brand>.", then the "[ENC-ID]"). The agent's words are the
// first comment: the second rule starts the history.
func deskZendesk() *DeskProduct {
	return &DeskProduct{
		Name:    "zendesk",
		Headers: []string{"X-Zendesk-From-Account-Id"},
		HeaderValues: []HeaderPattern{
			{Name: "X-Mailer", Pattern: mustRe(`^Zendesk Mailer$`)},
			{Name: "Message-ID", Pattern: mustRe(`^<[A-Z0-9]{6,}_[0-9a-f_]+_sprut@zendesk\.com>$`)},
		},
		// The preamble line of the standard triggers, EN and FR.
		BodyReferences: res(
			`^(?:Your request|Votre demande) \(#?(\d+)\)`,
			`^You are registered as a CC on this request \(#?(\d+)\)`,
		),
		// The delimiter (a grey div in the HTML part).
		Separators: res(
			`^##- Please type your reply above this line -##$`,
			`^##- Veuillez saisir votre réponse au-dessus de cette ligne -##$`,
		),
		Preamble: res(
			// The standard triggers' preamble lines ({{ticket.id}} with or
			// without "#").
			`^Your request \(#?\d+\) has been updated\. To add additional comments, reply to this email\.$`,
			`^Votre demande \(#?\d+\) a été mise à jour\. Pour ajouter des commentaires, répondez à cet e-mail\.$`,
			`^You are registered as a CC on this request \(#?\d+\)\. Reply to this email to add a comment to the request\.$`,
			`^Your request \(#?\d+\) has been deemed solved\. To reopen it, reply to this email or click the link below:$`,
			`^Votre demande \(#?\d+\) a été considérée comme résolue\. Pour la rouvrir, répondez à cet e-mail ou suivez le lien ci-dessous :$`,
			`^Your request \(#?\d+\) has been received and is being reviewed by our support staff\.$`,
			`^Votre demande \(#?\d+\) a bien été reçue et est en cours d'examen par notre équipe d'assistance\.$`,
			`^To add additional comments, reply to this email\.$`,
			`^Pour ajouter des commentaires, répondez à cet e-mail\.$`,
			// The request's link below the solved preamble.
			`^https://[^\s/]+/hc/(?:[a-z]{2}(?:-[a-z]{2})?/)?requests/\d+$`,
			// The comment's author line: "Name (Org), Nov 3, 2025, 14:12
			// GMT+1", "Name (Org), 3 nov. 2025, 17:05 UTC+1"; some French
			// mails put the name and the date on lines of their own.
			`^\S.{0,120}, [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}(?: [AP]M)? [A-Z]{2,5}(?:[+-]\d{1,2}(?::?\d{2})?)?$`,
			`^\S.{0,120}, \d{1,2} [a-zéû]{3,9}\.? \d{4}, \d{1,2}:\d{2} (?:UTC|GMT)(?:[+-]\d{1,2}(?::?\d{2})?)?$`,
			`^\d{1,2} [a-zéû]{3,9}\.? \d{4}, \d{1,2}:\d{2} (?:UTC|GMT)(?:[+-]\d{1,2}(?::?\d{2})?)?$`,
			`^\p{Lu}[\p{L}'’-]+(?: \p{Lu}[\p{L}'’-]+){1,3} \([^()]{1,80}\)$`,
		),
		History: res(
			// The rule above each older comment, the footer's rule and
			// its line.
			`^-{46}$`,
			`^-{32}$`,
			`^(?:This email is a service from|Cet e-mail provient de) .{1,100}\.$`,
		),
		// "Notify requester and CCs of received request": the comment is
		// left out when the requester opened the ticket by mail.
		AckBody: res(
			`^Your request \(#?\d+\) has been received and is being reviewed by our support staff\.$`,
			`^Votre demande \(#?\d+\) a bien été reçue et est en cours d'examen par notre équipe d'assistance\.$`,
		),
		// "Notify requester of solved request" (Zendesk sends nothing on
		// close unless a site adds it).
		SolvedBody: res(
			`^Your request \(#?\d+\) has been deemed solved\.`,
			`^Votre demande \(#?\d+\) a été considérée comme résolue\.`,
		),
		MarksAllAutomatic: true,
	}
}
