package inbound

import "testing"

// TestExtractForward: a message forwarded below the sender's words is kept
// (its separator, header lines and body), without its own quotes; our own
// mail forwarded back is not; a quoted header block is a forward only in a
// mail whose subject says so.
func TestExtractForward(t *testing.T) {
	own := []string{"assistance@ent.example"}
	tests := []struct {
		name, subject, text, html, want string
	}{
		{"gmail text forward", "Re: [ENT-42] Export des notes",
			"Voici la réponse de l'éditeur, à transmettre à l'enseignant :\n\n" +
				"---------- Forwarded message ---------\n" +
				"From: Support Éditeur <support@editeur.example>\n" +
				"Date: Wed, Dec 3, 2026 at 4:20 PM\n" +
				"Subject: Re: Export des notes\n" +
				"To: Karim Benali <karim@desk.example>\n\n" +
				"Bonjour,\n\nLe correctif sera livré le 10 décembre.\n\n" +
				"Le mer. 3 déc. 2026 à 10:02, Karim Benali <karim@desk.example> a écrit :\n" +
				"> Bonjour, un établissement signale...\n" +
				"> [ENT-42]\n",
			"",
			"Voici la réponse de l'éditeur, à transmettre à l'enseignant :\n\n" +
				"---------- Forwarded message ---------\n" +
				"From: Support Éditeur <support@editeur.example>\n" +
				"Date: Wed, Dec 3, 2026 at 4:20 PM\n" +
				"Subject: Re: Export des notes\n" +
				"To: Karim Benali <karim@desk.example>\n\n" +
				"Bonjour,\n\nLe correctif sera livré le 10 décembre."},
		{"outlook forward by subject", "TR: RE: Export des notes [ENT-42]",
			"Voici la réponse de l'éditeur.\n\nKarim\n\n________________________________\n" +
				"De : Support Éditeur <support@editeur.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"À : Karim Benali <karim@desk.example>\n" +
				"Objet : RE: Export des notes\n\n" +
				"Le correctif sera livré le 10 décembre.\n\n" +
				"________________________________\n" +
				"De : Karim Benali <karim@desk.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 10:02\n" +
				"Objet : Export des notes\n\nun établissement signale...\n",
			"",
			"Voici la réponse de l'éditeur.\n\nKarim\n\n" +
				"________________________________\n" +
				"De : Support Éditeur <support@editeur.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"À : Karim Benali <karim@desk.example>\n" +
				"Objet : RE: Export des notes\n\n" +
				"Le correctif sera livré le 10 décembre."},
		{"outlook forward of another conversation in a reply", "RE: [ENT-42] Export des notes",
			"Voici la réponse de l'éditeur.\n\n________________________________\n" +
				"De : Support Éditeur <support@editeur.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"Objet : RE: Export LSU\n\nCorrigé.\n",
			"",
			"Voici la réponse de l'éditeur.\n\n________________________________\n" +
				"De : Support Éditeur <support@editeur.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"Objet : RE: Export LSU\n\nCorrigé."},
		{"outlook reply block of this conversation is a quote", "RE: [ENT-42] Export des notes",
			"C'est corrigé.\n\n________________________________\n" +
				"De : Julie (support) <julie@desk.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"Objet : RE: [ENT-42] Export des notes\n\nancien texte\n",
			"", "C'est corrigé."},
		{"outlook reply block of our own mail is a quote", "RE: Export des notes [ENT-42]",
			"C'est corrigé.\n\n________________________________\n" +
				"De : Assistance ENT <assistance@ent.example>\n" +
				"Envoyé : mercredi 3 décembre 2026 16:20\n" +
				"Objet : Export des notes\n\nancien texte\n",
			"", "C'est corrigé."},
		{"apple mail forward cited whole", "Re: [ENT-42] Export",
			"À transmettre.\n\n> Début du message réexpédié :\n>\n> De: Éditeur <support@editeur.example>\n" +
				"> Objet: Export\n> Date: 3 décembre 2026 à 16:20:00 UTC+1\n>\n> Corrigé en version 4.2.\n>> ancien\n",
			"", "À transmettre.\n\nDébut du message réexpédié :\n" +
				"De: Éditeur <support@editeur.example>\nObjet: Export\nDate: 3 décembre 2026 à 16:20:00 UTC+1\n\n" +
				"Corrigé en version 4.2."},
		{"our own mail forwarded back is a quote", "TR: [ENT-42] Export des notes",
			"Pour info.\n\n-------- Message transféré --------\n" +
				"Sujet : [ENT-42] Export des notes\n" +
				"De : Assistance ENT <assistance@ent.example>\n" +
				"Date : 3 déc. 2026 09:00\n\nLe texte de l'escalade.\n",
			"", "Pour info."},
		{"apple mail forward, French", "Re: [ENT-42] Export",
			"À transmettre.\n\nDébut du message réexpédié :\n\n" +
				"De: Éditeur <support@editeur.example>\n" +
				"Objet: Export\n" +
				"Date: 3 décembre 2026 à 16:20:00 UTC+1\n" +
				"À: Karim <karim@desk.example>\n\n" +
				"Corrigé en version 4.2.\n-- \nÉditeur SA\n01 02 03 04 05\n",
			"", "À transmettre.\n\nDébut du message réexpédié :\n" +
				"De: Éditeur <support@editeur.example>\n" +
				"Objet: Export\n" +
				"Date: 3 décembre 2026 à 16:20:00 UTC+1\n" +
				"À: Karim <karim@desk.example>\n\n" +
				"Corrigé en version 4.2."},
		{"gmail html-only forward inside gmail_quote", "Fwd: Export",
			"",
			`<div dir="ltr">Voici la réponse de l'éditeur.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>From: <strong class="gmail_sendername">Éditeur</strong> <span>&lt;support@editeur.example&gt;</span><br>Date: Wed, Dec 3, 2026 at 4:20 PM<br>Subject: Export<br>To: &lt;karim@desk.example&gt;<br></div><br><br><div dir="ltr">Corrigé en version 4.2.</div></div>`,
			"Voici la réponse de l'éditeur.\n\n---------- Forwarded message ---------\n" +
				"From: Éditeur <support@editeur.example>\n" +
				"Date: Wed, Dec 3, 2026 at 4:20 PM\n" +
				"Subject: Export\n" +
				"To: <karim@desk.example>\n\n" +
				"Corrigé en version 4.2."},
		{"a plain gmail quote is still cut", "Re: [ENT-42] Export",
			"",
			`<div dir="ltr">Merci, c'est réglé.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">Le mer. 3 déc. 2026 à 10:02, Assistance ENT &lt;assistance@ent.example&gt; a écrit :<br></div><blockquote class="gmail_quote">ancien</blockquote></div>`,
			"Merci, c'est réglé."},
	}
	x := NewReplyExtractor()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if text == "" && tc.html != "" {
				text = HTMLToText(tc.html)
			}
			got := x.ExtractFor(text, tc.html, ReplyContext{Subject: tc.subject, OwnAddresses: own, KeepForwards: true})
			if got != tc.want {
				t.Errorf("got\n%s\n--- want ---\n%s", got, tc.want)
			}
		})
	}
}
