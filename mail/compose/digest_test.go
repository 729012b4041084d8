package compose

import (
	"bytes"
	"context"
	"errors"
	"io"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"supportbridge/bridge"
	"supportbridge/mail"
	"supportbridge/mail/mailtest"
	"supportbridge/mail/smtpclient"
)

func digestGolden(t *testing.T, name, got string) {
	t.Helper()
	golden(t, "digest", name, got)
}

func digestComposer() *DigestComposer {
	return &DigestComposer{
		From:     &netmail.Address{Name: "Assistance ENT", Address: "assistance@ent.example"},
		Identity: "supportbridge@ent.example",
		Domain:   "ent.example",
		LinkBase: "https://ent.example/assistance/#/demande/",
		Now:      func() time.Time { return time.Date(2025, 3, 4, 7, 0, 5, 0, time.UTC) },
	}
}

// paris returns a time given in Paris local time (UTC+1 in March 2025).
func parisTime(day, hour, min int) time.Time {
	return time.Date(2025, 3, day, hour-1, min, 0, 0, time.UTC)
}

// digestSample is a daily digest for Tuesday 4 March 2025, 08:00, with every
// kind of item, two structures and some hostile text.
func digestSample(locale string) bridge.ReferentDigest {
	owner := bridge.Person{ID: "u1", DisplayName: "Léa Dupont"}
	return bridge.ReferentDigest{
		Referent: bridge.Referent{ID: "u-ref1", DisplayName: "Mme Martin", Email: "martin@school.example",
			Digest: bridge.DigestDaily, Locale: locale},
		Period: bridge.DigestDaily,
		Window: bridge.DigestWindow{From: parisTime(3, 8, 0), To: parisTime(4, 8, 0)},
		Structures: []bridge.StructureDigest{
			{
				Structure: bridge.Structure{ID: "s2", Name: "Collège Jean Moulin", UAI: "0750002B"},
				New: []bridge.DigestItem{{TicketID: "57", Subject: "Pas d'accès\r\nBcc: x@evil.example", Owner: owner,
					Category: bridge.Category{App: "mail", Label: "Messagerie"}, Status: bridge.StatusNew, At: parisTime(3, 16, 42)}},
				Waiting: []bridge.DigestItem{{TicketID: "57", Subject: "Pas d'accès\r\nBcc: x@evil.example", Owner: owner,
					Status: bridge.StatusNew, At: parisTime(3, 16, 42)}},
			},
			{
				Structure: bridge.Structure{ID: "s1", Name: "Lycée Victor Hugo", UAI: "0750001A"},
				New: []bridge.DigestItem{
					{TicketID: "42", Subject: "Écran blanc sur <Pronote>", Owner: owner,
						Category: bridge.Category{App: "pronote", Label: "Pronote"}, Status: bridge.StatusNew, At: parisTime(3, 9, 15)},
					{TicketID: "43", Subject: "", Owner: bridge.Person{ID: "u2"}, Status: bridge.StatusNew, At: parisTime(3, 10, 5)},
				},
				Waiting: []bridge.DigestItem{
					{TicketID: "12", Subject: "Imprimante du CDI", Status: bridge.StatusOpened, At: parisTime(1, 11, 0)},
					{TicketID: "42", Subject: "Écran blanc sur <Pronote>", Status: bridge.StatusNew, At: parisTime(3, 9, 15)},
				},
				DeskReplies: []bridge.DigestItem{
					{TicketID: "12", Subject: "Imprimante du CDI", Status: bridge.StatusOpened, At: parisTime(3, 14, 30), Replies: 2},
					{TicketID: "30", Subject: "Mot de passe", Status: bridge.StatusResolved, At: parisTime(3, 17, 0), Replies: 1},
				},
				FailedEscalations: []bridge.DigestItem{
					{TicketID: "31", Subject: "Cahier de textes", Status: bridge.StatusOpened, At: parisTime(4, 7, 55),
						Reason: "smtp: rcpt (permanent): 550 5.1.1 no such user"},
				},
			},
		},
	}
}

// digestParsed is a digest mail read back.
type digestParsed struct {
	header     gomail.Header
	text, html string
	types      []string
}

func digestParse(t *testing.T, raw []byte) digestParsed {
	t.Helper()
	// The wire form: CRLF everywhere, no line over RFC 5322's 998 octets.
	if n, crlf := bytes.Count(raw, []byte("\n")), bytes.Count(raw, []byte("\r\n")); n != crlf {
		t.Errorf("%d bare LF", n-crlf)
	}
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d is %d octets", i+1, len(line))
		}
	}
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p := digestParsed{header: mr.Header}
	if ct, _, _ := mr.Header.ContentType(); ct != "multipart/alternative" {
		t.Errorf("content type %q", ct)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		h, ok := part.Header.(*gomail.InlineHeader)
		if !ok {
			t.Fatalf("unexpected part %T", part.Header)
		}
		ct, params, _ := h.ContentType()
		if params["charset"] != "utf-8" {
			t.Errorf("%s charset %q", ct, params["charset"])
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		p.types = append(p.types, ct)
		// Text travels in canonical form, CRLF; compare with LF.
		body := strings.ReplaceAll(string(b), "\r\n", "\n")
		switch ct {
		case "text/plain":
			p.text = body
		case "text/html":
			p.html = body
		}
	}
	if strings.Join(p.types, " ") != "text/plain text/html" {
		t.Errorf("parts %v, want text then HTML", p.types)
	}
	return p
}

func TestDigestGoldenFrench(t *testing.T) {
	out, err := digestComposer().Digest(DigestInput{MessageID: "dig.fixed@ent.example", Digest: digestSample("")})
	if err != nil {
		t.Fatal(err)
	}
	p := digestParse(t, out.Raw)
	digestGolden(t, "daily_fr.txt.golden", p.text)
	digestGolden(t, "daily_fr.html.golden", p.html)
	subject, _ := p.header.Subject()
	if subject != "Assistance ENT : résumé du mardi 4 mars 2025" {
		t.Errorf("subject %q", subject)
	}
	for _, want := range []string{
		"En bref : 3 nouvelles demandes, 3 demandes en attente d'action, 3 réponses du support, 1 transmission au support en échec.",
		"- n° 42 – Écran blanc sur <Pronote>\n  Léa Dupont · Pronote · créée le lundi 3 mars 2025 à 09:15\n  https://ent.example/assistance/#/demande/42",
		"n° 43 – (sans objet)",
		"Réponses du support (3)",
		"2 réponses, la dernière le lundi 3 mars 2025 à 14:30",
		"échec le mardi 4 mars 2025 à 07:55 : smtp: rcpt (permanent): 550 5.1.1 no such user",
	} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(p.text, "\nBcc:") || strings.Contains(p.html, "\nBcc:") {
		t.Error("a CR/LF in a subject made a line of its own")
	}
	if !strings.Contains(p.html, `<a href="https://ent.example/assistance/#/demande/42">n° 42 – Écran blanc sur &lt;Pronote&gt;</a>`) {
		t.Error("HTML link or escaping wrong")
	}
	// Collège sorts before Lycée: the order given is kept.
	if strings.Index(p.text, "Collège Jean Moulin") > strings.Index(p.text, "Lycée Victor Hugo") {
		t.Error("structure order not kept")
	}
}

func TestDigestGoldenEnglish(t *testing.T) {
	c := digestComposer()
	c.LinkBase = "" // no links
	d := digestSample("en-GB")
	d.Period = bridge.DigestWeekly
	d.Window = bridge.DigestWindow{From: parisTime(3, 8, 0), To: parisTime(10, 8, 0)}
	out, err := c.Digest(DigestInput{MessageID: "dig.fixed@ent.example", Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	p := digestParse(t, out.Raw)
	digestGolden(t, "weekly_en.txt.golden", p.text)
	digestGolden(t, "weekly_en.html.golden", p.html)
	subject, _ := p.header.Subject()
	if subject != "ENT support: summary of the week of Monday 3 March 2025" {
		t.Errorf("subject %q", subject)
	}
	if strings.Contains(p.text, "http") || strings.Contains(p.html, "<a ") {
		t.Error("links without a link base")
	}
	if !strings.Contains(p.text, "from Monday 3 March 2025 at 08:00 to Monday 10 March 2025 at 08:00") {
		t.Error("window not in the intro")
	}
}

func TestDigestHeaders(t *testing.T) {
	d := digestSample("fr")
	d.Referent.DisplayName = "Mme Martin\r\nBcc: spy@evil.example"
	out, err := digestComposer().Digest(DigestInput{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	p := digestParse(t, out.Raw)
	for key, want := range map[string]string{
		"Auto-Submitted":           "auto-generated",
		"Precedence":               "bulk",
		"X-Auto-Response-Suppress": "All",
		"X-Loop":                   "supportbridge@ent.example",
		"X-Supportbridge-Digest":   "daily",
	} {
		if got := p.header.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if p.header.Get("Bcc") != "" {
		t.Error("a display name injected a header")
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "martin@school.example" {
		t.Errorf("To %v %v", to, err)
	}
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "assistance@ent.example" {
		t.Errorf("From %v %v", from, err)
	}
	id, err := p.header.MessageID()
	if err != nil || id != out.MessageID || !strings.HasSuffix(id, "@ent.example") || !strings.HasPrefix(id, "dig.") {
		t.Errorf("Message-ID %q (%v), outgoing %q", id, err, out.MessageID)
	}
	if _, _, ok := (mail.Signer{Key: []byte("k"), Domain: "ent.example"}).ParseMessageID(id); ok {
		t.Error("a digest's Message-ID parses as a ticket's")
	}
	if date, err := p.header.Date(); err != nil || !date.Equal(time.Date(2025, 3, 4, 7, 0, 5, 0, time.UTC)) {
		t.Errorf("Date %v %v", date, err)
	}
	if out.From != "assistance@ent.example" || len(out.To) != 1 || out.To[0] != "martin@school.example" {
		t.Errorf("envelope %q → %v", out.From, out.To)
	}
	other, err := digestComposer().Digest(DigestInput{Digest: d})
	if err != nil || other.MessageID == out.MessageID {
		t.Errorf("two digests share a Message-ID: %q", other.MessageID)
	}
}

func TestDigestLocale(t *testing.T) {
	tests := []struct{ referent, fallback, want string }{
		{"", "", "Bonjour Mme Martin,"},
		{"", "en", "Hello Mme Martin,"},
		{"fr", "en", "Bonjour Mme Martin,"},
		{"EN", "fr", "Hello Mme Martin,"},
		{"de", "en", "Bonjour Mme Martin,"}, // unknown: French
	}
	for _, tt := range tests {
		c := digestComposer()
		c.DefaultLocale = tt.fallback
		out, err := c.Digest(DigestInput{Digest: digestSample(tt.referent)})
		if err != nil {
			t.Fatal(err)
		}
		if p := digestParse(t, out.Raw); !strings.HasPrefix(p.text, tt.want) {
			t.Errorf("locale %q, default %q: starts %q", tt.referent, tt.fallback, p.text[:20])
		}
	}
}

func TestDigestRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *DigestComposer, d *bridge.ReferentDigest)
		is     error
	}{
		{"empty digest", func(_ *DigestComposer, d *bridge.ReferentDigest) { d.Structures = nil }, ErrEmptyDigest},
		{"no address", func(_ *DigestComposer, d *bridge.ReferentDigest) { d.Referent.Email = "" }, nil},
		{"bad address", func(_ *DigestComposer, d *bridge.ReferentDigest) { d.Referent.Email = "a@b>\r\nBcc: c@d" }, nil},
		{"no from", func(c *DigestComposer, _ *bridge.ReferentDigest) { c.From = nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, d := digestComposer(), digestSample("fr")
			tt.change(c, &d)
			_, err := c.Digest(DigestInput{Digest: d})
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDigestCapsLongSections(t *testing.T) {
	d := digestSample("fr")
	var items []bridge.DigestItem
	for i := 0; i < digestMaxItems+12; i++ {
		items = append(items, bridge.DigestItem{TicketID: "t" + strings.Repeat("x", i%3), Subject: "S", At: parisTime(3, 9, 0)})
	}
	d.Structures = []bridge.StructureDigest{{Structure: bridge.Structure{ID: "s1"}, New: items}}
	out, err := digestComposer().Digest(DigestInput{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	p := digestParse(t, out.Raw)
	if !strings.Contains(p.text, "Nouvelles demandes (62)") || !strings.Contains(p.text, "… et 12 autres demandes") {
		t.Errorf("no cap:\n%s", p.text)
	}
	if n := strings.Count(p.text, "\n- n° "); n != digestMaxItems {
		t.Errorf("%d items listed", n)
	}
	if !strings.Contains(p.text, "\ns1\n--\n") {
		t.Error("a structure without a name is titled by its id")
	}
}

func TestDigestLinksAreEscaped(t *testing.T) {
	c := digestComposer()
	d := digestSample("fr")
	d.Structures[0].New[0].TicketID = "a b/../c?d"
	out, err := c.Digest(DigestInput{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	p := digestParse(t, out.Raw)
	if !strings.Contains(p.text, "https://ent.example/assistance/#/demande/a%20b%2F..%2Fc%3Fd") {
		t.Errorf("ticket id not escaped in its link:\n%s", p.text)
	}
	c.LinkBase = "javascript:alert(1)//"
	out, err = c.Digest(DigestInput{Digest: digestSample("fr")})
	if err != nil {
		t.Fatal(err)
	}
	if p := digestParse(t, out.Raw); strings.Contains(p.html, `href="javascript:`) {
		t.Error("a javascript: link reached the HTML")
	}
}

// TestDigestMailer: the bridge's digest mailer sends what the composer
// composes, and marks the failures retrying cannot fix permanent.
func TestDigestMailer(t *testing.T) {
	be := mailtest.StartSMTP(t)
	s := &smtpclient.Sender{Addr: be.Addr, TLS: "none", Timeout: 5 * time.Second}
	defer s.Close()
	m := &DigestMailer{Composer: digestComposer(), Sender: s}
	out, err := m.ComposeDigest(digestSample("fr"))
	if err != nil {
		t.Fatal(err)
	}
	if out.From != "assistance@ent.example" || len(out.To) != 1 || out.To[0] != "martin@school.example" ||
		!strings.HasPrefix(out.MessageID, "dig.") {
		t.Errorf("composed %s from %s to %v", out.MessageID, out.From, out.To)
	}
	if err := m.Send(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if got := be.Messages(); len(got) != 1 || !bytes.Equal(bytes.ReplaceAll(got[0].Data, []byte("\r\n"), []byte("\n")),
		bytes.ReplaceAll(out.Raw, []byte("\r\n"), []byte("\n"))) {
		t.Errorf("%d mails received, or not the composed one", len(got))
	}
	if _, err := m.ComposeDigest(bridge.ReferentDigest{}); !errors.Is(err, ErrEmptyDigest) {
		t.Errorf("empty digest: %v", err)
	}

	for _, tt := range []struct {
		name      string
		fail      mailtest.SMTPOption
		permanent bool
	}{
		{"451 on DATA", mailtest.FailData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}), false},
		{"550 on RCPT", mailtest.FailRcpt(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &smtpclient.Sender{Addr: mailtest.StartSMTP(t, tt.fail).Addr, TLS: "none", Timeout: 5 * time.Second}
			defer s.Close()
			err := (&DigestMailer{Composer: digestComposer(), Sender: s}).Send(context.Background(), out)
			if err == nil || bridge.IsPermanent(err) != tt.permanent || smtpclient.IsTemporary(err) == tt.permanent {
				t.Errorf("err %v: permanent %v, want %v", err, bridge.IsPermanent(err), tt.permanent)
			}
		})
	}
}
