package inbound

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExtractReplyCorpus parses every mail of testdata/replies, written the
// way real clients write them, and checks the extracted reply against its
// .want file exactly.
func TestExtractReplyCorpus(t *testing.T) {
	emls, err := filepath.Glob(filepath.Join("testdata", "replies", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(emls) < 40 {
		t.Fatalf("corpus has %d mails, want at least 40", len(emls))
	}
	shared := NewReplyExtractor()
	for _, path := range emls {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wantRaw, err := os.ReadFile(strings.TrimSuffix(path, ".eml") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSuffix(string(wantRaw), "\n")
			in, err := ParseMessage(raw, DefaultParseLimits())
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			got := ExtractReply(in.Text, in.HTML)
			if again := shared.Extract(in.Text, in.HTML); again != got {
				t.Errorf("a reused ReplyExtractor gives %q, ExtractReply %q", again, got)
			}
			if got != want {
				t.Errorf("ExtractReply mismatch\n--- got ---\n%s\n--- want ---\n%s\n--- problems: %q", got, want, in.Problems)
			}
		})
	}
}

func TestExtractReplyCases(t *testing.T) {
	const outlookPL = `<div>Dzień dobry, sprawdzamy.</div><div id="appendonsend"></div>` +
		`<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg"><b>Od:</b> Assistance ENT<br><b>Wysłane:</b> poniedziałek<br><b>Temat:</b> [ENT-42]</div><div>stary tekst</div>`
	tests := []struct {
		name, text, html, want string
	}{
		{"empty", "", "", ""},
		{"no quote at all", "Merci,\r\nc'est réglé.  \r\n\r\n", "", "Merci,\nc'est réglé."},
		{"signature only", "Merci\n-- \nKarim\n01 23 45 67 89", "", "Merci"},
		{"nothing but a signature", "-- \nKarim", "", "--\nKarim"},
		{"only a quote keeps the whole", "> ancien\n> texte", "", "> ancien\n> texte"},
		{"attribution over three lines", "Oui.\n\nOn Mon, Nov 3, 2025 at 10:02 AM Assistance ENT -\nLycée Victor Hugo <assistance@ent.example>\nwrote:\n> x", "", "Oui."},
		{"attribution with no blank line above", "Vu.\nLe 03/11/2025 à 10:02, X a écrit :\n> y", "", "Vu."},
		{"bare wrote line before a quote", "OK pour moi.\n\nAssistance ENT <assistance@ent.example> wrote:\n\n> y", "", "OK pour moi."},
		{"our own reply-above line closes the reply", "Réponse courte.\n\nMerci de répondre au-dessus de ce message et de conserver [ENT-42] dans l'objet.\n\nDemande d'assistance [ENT-42]", "", "Réponse courte."},
		{"a mobile phrase in a long text is kept", "Sent from my desk phone, the call failed.\nThen\nwe\ntried\nagain\nand\nagain.", "", "Sent from my desk phone, the call failed.\nThen\nwe\ntried\nagain\nand\nagain."},
		{"a sentence starting with Le is not an attribution", "Le serveur a redémarré.\nLe cache a été vidé.\nMerci.", "", "Le serveur a redémarré.\nLe cache a été vidé.\nMerci."},
		{"From line in prose is not a header block", "From: the logs, nothing.\nWe keep looking.", "", "From: the logs, nothing.\nWe keep looking."},
		{"outlook header without blank lines", "Fait.\nDe : A <a@x>\nEnvoyé : lundi\nÀ : B\nObjet : y\nold", "", "Fait."},
		{"html only: gmail_quote", "", `<div dir="ltr">Nouveau</div><div class="gmail_quote">Le ... :<blockquote>vieux</blockquote></div>`, "Nouveau"},
		{"html only: blockquote type=cite", "", `<p>Nouveau</p><blockquote type="cite">vieux</blockquote>`, "Nouveau"},
		{"html only: outlook in Polish", "", outlookPL, "Dzień dobry, sprawdzamy."},
		{"html only: zimbra", "", `<div>Nouveau</div><hr id="zwchr"><div><b>Od: </b>x</div>`, "Nouveau"},
		{"html only: yahoo", "", `<div>Nouveau</div><div id="yahoo_quoted_123" class="yahoo_quoted">Em ... escreveu: vieux</div>`, "Nouveau"},
		{"html only: thunderbird", "", `<p>Nouveau</p><div class="moz-cite-prefix">W dniu 3.11.2025 o 10:02, X pisze:</div><div>vieux</div>`, "Nouveau"},
		{"html only: outlook mac", "", `<div>Nouveau</div><div id="OLK_SRC_BODY_SECTION">vieux</div>`, "Nouveau"},
		{"text without a mark, html with one", "Dzień dobry, sprawdzamy.\n\nOd: Assistance ENT\nWysłane: poniedziałek\nTemat: [ENT-42]\n\nstary tekst", outlookPL, "Dzień dobry, sprawdzamy."},
		{"text that is only a quote, html with the reply", "> vieux texte", `<p>Le vrai texte</p><blockquote type="cite">vieux texte</blockquote>`, "Le vrai texte"},
		{"html without a mark and a text without one", "Texte seul.", `<p>Texte seul.</p>`, "Texte seul."},
		{"html cut leaves nothing: whole text", "Le 3 nov., X a écrit :\n> a", `<blockquote type="cite">a</blockquote>`, "Le 3 nov., X a écrit :\n> a"},
		{"notification opening with reply-above", "##- Please type your reply above this line -##\n\nAgent: done.", "", "Agent: done."},
		{"interleaved without attribution", "> q1\nr1\n> q2\nr2", "", "r1\nr2"},
		{"quote then footer is not interleaved", "Top.\n\n> q\n\nList footer", "", "Top."},
	}
	var zero ReplyExtractor
	var nilX *ReplyExtractor
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExtractReply(tc.text, tc.html); got != tc.want {
				t.Errorf("ExtractReply = %q, want %q", got, tc.want)
			}
			if got := zero.Extract(tc.text, tc.html); got != tc.want {
				t.Errorf("zero ReplyExtractor = %q, want %q", got, tc.want)
			}
			if got := nilX.Extract(tc.text, tc.html); got != tc.want {
				t.Errorf("nil ReplyExtractor = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{"entities and spaces", "<p>caf&eacute;   &amp;\n\t cr&egrave;me&nbsp;!</p>", "café & crème !"},
		{"paragraphs and breaks", "<p>un</p><p>deux<br>trois<br><br>quatre</p>", "un\n\ndeux\ntrois\n\nquatre"},
		{"divs are lines", "<div>un</div><div>deux</div><div><br></div><div>trois</div>", "un\ndeux\n\ntrois"},
		{"lists", "<ul><li>a</li><li>b</li></ul><ol><li>x</li><li>y</li></ol>", "- a\n- b\n1. x\n2. y"},
		{"links", `<a href="https://a.example/x">la page</a> <a href="https://b.example/">https://b.example</a> <a href="mailto:k@x.example">k@x.example</a> <a href="#top">haut</a> <a href="javascript:x()">js</a>`, "la page (https://a.example/x) https://b.example k@x.example haut js"},
		{"empty link", `avant<a href="https://a.example/"><img src="x.png"></a>après`, "avantaprès"},
		{"dropped elements", "<html><head><title>T</title><style>p{color:red}</style></head><body><script>var x;</script><p>vu</p><noscript>non</noscript></body></html>", "vu"},
		{"pre", "<pre>  a  b\n    c</pre><p>d   e</p>", "a  b\n    c\n\nd e"},
		{"table", "<table><tr><td>Nom</td><td>Classe</td></tr><tr><td>Dupont</td><td>2nde B</td></tr></table>", "Nom Classe\nDupont 2nde B"},
		{"blockquote", "<p>réponse</p><blockquote><p>cité</p><blockquote>plus ancien</blockquote></blockquote>", "réponse\n\n> cité\n>\n> > plus ancien"},
		{"outlook paragraphs", `<p class="MsoNormal">un<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p><p class="MsoNormal">deux</p>`, "un\n\ndeux"},
		{"invisible characters", "<p>\ufeffa\u200bb</p>", "ab"},
		{"not html at all", "juste du texte", "juste du texte"},
		{"broken html", "<p>ouvert <b>gras <i>italique</p> fin", "ouvert gras italique\n\nfin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HTMLToText(tc.html); got != tc.want {
				t.Errorf("HTMLToText = %q, want %q", got, tc.want)
			}
		})
	}
	// Absurd nesting falls back to the tokenizer instead of failing.
	deep := strings.Repeat("<div>", 2000) + "fond" + strings.Repeat("</div>", 2000)
	if got := HTMLToText(deep); got != "fond" {
		t.Errorf("deep nesting: %q", got)
	}
}
