package compose

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"supportbridge/bridge"
	"supportbridge/mail"
)

func composeNow() time.Time { return time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC) }

// testSigner is the signer of the tests (the same as in mail's ids_test.go).
func testSigner() mail.Signer {
	return mail.Signer{Key: []byte("0123456789abcdef0123456789abcdef"), Domain: "ent.example"}
}

func testComposer() *Composer {
	return &Composer{
		From:               &netmail.Address{Name: `Assistance "ENT" Académie`, Address: "assistance@ent.example"},
		ReplyTo:            &netmail.Address{Name: "Assistance ENT", Address: "assistance@ent.example"},
		DeskAddress:        &netmail.Address{Name: "Support Éditeur", Address: "support@desk.example"},
		SubjectTag:         "ENT",
		Identity:           "supportbridge@ent.example",
		Signer:             testSigner(),
		PlusToken:          true,
		MaxAttachmentBytes: 1 << 20,
		Now:                composeNow,
	}
}

func composePNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for x := 0; x < 4; x++ {
		img.Set(x, 1, color.RGBA{R: 200, G: 10, B: 10, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// composeSubject is 2,000 characters with an attempt to add a header.
func composeSubject() string {
	s := "Écran blanc après la mise à jour\r\nBcc: evil@x\r\n\x00 " + strings.Repeat("é", 2000)
	return string([]rune(s)[:2000])
}

type composeAttachment struct {
	name, contentType string
	data              []byte
}

func testEscalationInput(t testing.TB, locale string) (EscalationInput, []composeAttachment) {
	t.Helper()
	pngData := composePNG(t)
	pdfData := []byte("%PDF-1.4\n% faux PDF de test\n")
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\n")
	big := bytes.Repeat([]byte{0xAB}, 2<<20)
	referent := bridge.Person{ID: "u-ref1", DisplayName: "Mme Élise \"Lili\" Martin", Email: "martin@school.example", Profile: "Personnel"}
	created := time.Date(2025, 3, 3, 13, 5, 0, 0, time.UTC) // 14:05 in Paris
	in := EscalationInput{
		Ticket: bridge.TicketView{
			Ticket: bridge.Ticket{
				ID:          "42",
				StructureID: "s1",
				Owner:       bridge.Person{ID: "u1", DisplayName: "Jean-Kévin \"JK\" Dupont-Lefèvre", Email: "jk.dupont@school.example", Profile: "Teacher"},
				Category:    bridge.Category{App: "zimbra", Label: "Messagerie"},
				Subject:     composeSubject(),
				Description: "Depuis lundi, l'écran reste blanc à l'ouverture de la messagerie.\r\n\r\nÉtapes :\r\n1. Se connecter\r\n2. Ouvrir « Messagerie »\r\n<script>alert('x')</script> & co\x07",
				Locale:      locale,
				CreatedAt:   created,
				UpdatedAt:   created.Add(time.Hour),
				Status:      bridge.StatusOpened,
				Escalation:  bridge.Escalation{Status: bridge.EscalationInProgress, EscalatedBy: &referent},
			},
			Exchanges: []bridge.Exchange{
				{
					ID: "c2", Origin: bridge.OriginENT, Author: referent,
					Body:      "Bonjour, pouvez-vous préciser le navigateur utilisé ?",
					CreatedAt: created.Add(2 * time.Hour),
				},
				{
					ID: "c1", Origin: bridge.OriginENT, Author: bridge.Person{DisplayName: "Jean-Kévin \"JK\" Dupont-Lefèvre", Email: "jk.dupont@school.example"},
					Body:        "Le problème arrive aussi sur la tablette.",
					CreatedAt:   created.Add(time.Hour),
					Attachments: []bridge.Attachment{{ID: "a3", Filename: "tablette été.png", ContentType: "image/png", Size: 10}},
				},
				{
					ID: "d1", Origin: bridge.OriginDesk, Author: bridge.Person{DisplayName: "Léa (Support)", Email: "lea@desk.example"},
					Body:      "Nous regardons.\n> ancienne citation",
					CreatedAt: created.Add(3 * time.Hour),
				},
			},
		},
		Structure:   bridge.Structure{ID: "s1", Name: "Lycée Victor-Hugo d'Évry", UAI: "0910001A"},
		EscalatedBy: referent,
		Attachments: []bridge.AttachmentData{
			{Attachment: bridge.Attachment{ID: "a1", Filename: "capture d'écran été.png", ContentType: "image/png", Size: int64(len(pngData))}, Content: pngData},
			{Attachment: bridge.Attachment{ID: "a2", Filename: "../../etc/passwd", ContentType: "text/plain", Size: int64(len(passwd))}, Content: passwd},
			{Attachment: bridge.Attachment{ID: "a4", Filename: "vidéo de l'écran.mp4", ContentType: "video/mp4", Size: int64(len(big))}, Content: big},
			{Attachment: bridge.Attachment{ID: "a5", Filename: "C:\\Users\\prof\\rap\x00port\r\n\u202Efdp.exe", ContentType: "multipart/mixed; boundary=x", Size: int64(len(pdfData))}, Content: pdfData},
			{Attachment: bridge.Attachment{ID: "a6", Filename: "..", ContentType: "", Size: int64(len(pdfData))}, Content: pdfData},
		},
	}
	fallback := "piece-jointe-5"
	if locale == "en" {
		fallback = "attachment-5"
	}
	want := []composeAttachment{
		{"capture d'écran été.png", "image/png", pngData},
		{"passwd", "text/plain", passwd},
		{"rap port fdp.exe", "application/pdf", pdfData},
		{fallback, "application/pdf", pdfData},
	}
	return in, want
}

// composeParsed is a composed mail read back with go-message.
type composeParsed struct {
	header      gomail.Header
	text, html  string
	attachments []composeAttachment
}

func composeParse(t *testing.T, raw []byte) composeParsed {
	t.Helper()
	composeCheckRaw(t, raw)
	composeCheckStructure(t, raw)

	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("CreateReader: %v", err)
	}
	p := composeParsed{header: mr.Header}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		switch h := part.Header.(type) {
		case *gomail.InlineHeader:
			ct, params, _ := h.ContentType()
			if params["charset"] != "utf-8" {
				t.Errorf("%s part charset %q", ct, params["charset"])
			}
			if !utf8.Valid(body) {
				t.Errorf("%s part is not valid UTF-8", ct)
			}
			// Text travels in canonical form, CRLF; compare with LF.
			text := strings.ReplaceAll(string(body), "\r\n", "\n")
			switch ct {
			case "text/plain":
				p.text = text
			case "text/html":
				p.html = text
			default:
				t.Errorf("unexpected inline part %s", ct)
			}
		case *gomail.AttachmentHeader:
			name, err := h.Filename()
			if err != nil {
				t.Errorf("attachment filename: %v", err)
			}
			ct, _, _ := h.ContentType()
			p.attachments = append(p.attachments, composeAttachment{name, ct, body})
		}
	}
	return p
}

// composeCheckRaw checks the wire form: CRLF everywhere, no line over 998
// octets, only ASCII in the header.
func composeCheckRaw(t *testing.T, raw []byte) {
	t.Helper()
	if n, crlf := bytes.Count(raw, []byte("\n")), bytes.Count(raw, []byte("\r\n")); n != crlf {
		t.Errorf("%d bare LF", n-crlf)
	}
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d is %d octets", i+1, len(line))
		}
	}
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatal("no end of header")
	}
	for _, b := range raw[:end] {
		if b >= 0x80 || b == 0 {
			t.Fatalf("header byte %#x: header must be ASCII (RFC 2047)", b)
		}
	}
}

// composeCheckStructure checks multipart/mixed > multipart/alternative
// (text/plain, text/html) followed by the attachments.
func composeCheckStructure(t *testing.T, raw []byte) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("message.Read: %v", err)
	}
	var shape []string
	var walk func(e *message.Entity, depth int)
	walk = func(e *message.Entity, depth int) {
		ct, _, _ := e.Header.ContentType()
		shape = append(shape, strings.Repeat(">", depth)+ct)
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("NextPart: %v", err)
				}
				walk(p, depth+1)
			}
		}
	}
	walk(e, 0)
	got := strings.Join(shape, " ")
	if !strings.HasPrefix(got, "multipart/mixed >multipart/alternative >>text/plain >>text/html") {
		t.Errorf("structure %q", got)
	}
}

func composeGolden(t *testing.T, name, got string) {
	t.Helper()
	golden(t, "compose", name, got)
}

func composeAddr(t *testing.T, h gomail.Header, key string) *netmail.Address {
	t.Helper()
	l, err := h.AddressList(key)
	if err != nil || len(l) != 1 {
		t.Fatalf("%s: %v, %v (raw %q)", key, l, err, h.Get(key))
	}
	return l[0]
}

func TestComposeEscalationFrench(t *testing.T) {
	c := testComposer()
	in, wantFiles := testEscalationInput(t, "fr")
	out, err := c.Escalation(in)
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	h := p.header

	// Envelope.
	if out.From != "assistance@ent.example" || len(out.To) != 1 || out.To[0] != "support@desk.example" {
		t.Errorf("envelope %q → %q", out.From, out.To)
	}

	// Only the headers we set, once each: the subject's CR/LF made none.
	allowed := map[string]bool{
		"Date": true, "From": true, "To": true, "Reply-To": true, "Subject": true, "Message-Id": true,
		"X-Loop": true, "X-Auto-Response-Suppress": true, "X-Supportbridge-Ticket": true,
		"Mime-Version": true, "Content-Type": true,
	}
	seen := map[string]int{}
	fields := h.Fields()
	for fields.Next() {
		k := fields.Key()
		seen[k]++
		if !allowed[k] {
			t.Errorf("unexpected header %q: %q", k, fields.Value())
		}
	}
	for k := range allowed {
		if seen[k] != 1 {
			t.Errorf("header %s present %d times", k, seen[k])
		}
	}
	// An independent parser must agree.
	nm, err := netmail.ReadMessage(bytes.NewReader(out.Raw))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	for _, k := range []string{"Bcc", "Auto-Submitted", "In-Reply-To", "References", "Precedence"} {
		if v := nm.Header.Get(k); v != "" {
			t.Errorf("header %s = %q", k, v)
		}
	}

	subject, err := h.Subject()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(subject, "[ENT-42] Écran blanc après la mise à jour Bcc: evil@x é") {
		t.Errorf("subject %q", subject)
	}
	if n := utf8.RuneCountInString(subject); n != 200 || !strings.HasSuffix(subject, "…") {
		t.Errorf("subject of %d runes, ending %q: want 200 ending with …", n, subject[len(subject)-6:])
	}
	if strings.ContainsAny(subject, "\r\n\x00") {
		t.Errorf("control characters left in subject %q", subject)
	}

	from := composeAddr(t, h, "From")
	if from.Name != `Assistance "ENT" Académie` || from.Address != "assistance@ent.example" {
		t.Errorf("From %+v", from)
	}
	to := composeAddr(t, h, "To")
	if to.Name != "Support Éditeur" || to.Address != "support@desk.example" {
		t.Errorf("To %+v", to)
	}
	rt := composeAddr(t, h, "Reply-To")
	base, tok := mail.SplitPlusAddress(rt.Address)
	if base != "assistance@ent.example" {
		t.Errorf("Reply-To %q", rt.Address)
	}
	if id, ok := c.Signer.ParseReplyToken(tok); !ok || id != "42" {
		t.Errorf("Reply-To token %q: %q, %v", tok, id, ok)
	}

	mid, err := h.MessageID()
	if err != nil || mid != out.MessageID {
		t.Errorf("Message-ID %q (%v), Outgoing says %q", mid, err, out.MessageID)
	}
	if id, kind, ok := c.Signer.ParseMessageID(mid); !ok || id != "42" || kind != "esc" {
		t.Errorf("Message-ID %q: %q %q %v", mid, id, kind, ok)
	}
	if d, err := h.Date(); err != nil || !d.Equal(composeNow()) {
		t.Errorf("Date %v, %v", d, err)
	}
	for k, want := range map[string]string{
		"X-Loop":                   "supportbridge@ent.example",
		"X-Auto-Response-Suppress": "All",
		"X-SupportBridge-Ticket":   "42",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}

	// Bodies.
	for _, want := range []string{
		"Merci de répondre au-dessus de ce message et de conserver [ENT-42] dans l'objet.",
		"Lycée Victor-Hugo d'Évry (UAI 0910001A)",
		"Messagerie (zimbra)",
		"Jean-Kévin \"JK\" Dupont-Lefèvre <jk.dupont@school.example> (Enseignant)",
		"Mme Élise \"Lili\" Martin <martin@school.example> (Personnel)",
		"Numéro de la demande : 42",
		"lundi 3 mars 2025 à 14:05",
		"Ouverte",
		"Étapes :\n1. Se connecter",
		"<script>alert('x')</script> & co",
		"[ENT] Jean-Kévin \"JK\" Dupont-Lefèvre",
		"[Support] Léa (Support) <lea@desk.example> — lundi 3 mars 2025 à 17:05",
		"Le problème arrive aussi sur la tablette.",
		"Pièces jointes : tablette été.png",
		"- capture d'écran été.png (",
		"- passwd (",
		"Non jointes (trop volumineuses)",
		"- vidéo de l'écran.mp4 (2,0 Mo)",
	} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q", want)
		}
	}
	if strings.ContainsAny(p.text, "\r\x00\x07") {
		t.Error("control characters in the text part")
	}
	// History in time order, whatever the input order.
	if i, j := strings.Index(p.text, "aussi sur la tablette"), strings.Index(p.text, "préciser le navigateur"); i < 0 || j < 0 || i > j {
		t.Error("exchanges not in time order")
	}

	for _, want := range []string{
		`<html lang="fr">`,
		"Lycée Victor-Hugo d&#39;Évry",
		"0910001A",
		"Jean-Kévin &#34;JK&#34; Dupont-Lefèvre &lt;jk.dupont@school.example&gt;",
		"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co",
		"lundi 3 mars 2025 à 14:05",
		"Nous regardons.\n&gt; ancienne citation",
		"vidéo de l&#39;écran.mp4 (2,0 Mo)",
		"[ENT-42]",
	} {
		if !strings.Contains(p.html, want) {
			t.Errorf("html part lacks %q", want)
		}
	}
	if strings.Contains(p.html, "<script>") {
		t.Error("user content not escaped in the HTML part")
	}

	// Attachments: all but the oversize one, bytes intact.
	if len(p.attachments) != len(wantFiles) {
		t.Fatalf("%d attachments; want %d", len(p.attachments), len(wantFiles))
	}
	for i, want := range wantFiles {
		got := p.attachments[i]
		if got.name != want.name || got.contentType != want.contentType || !bytes.Equal(got.data, want.data) {
			t.Errorf("attachment %d: %q %s (%d bytes); want %q %s (%d bytes)",
				i, got.name, got.contentType, len(got.data), want.name, want.contentType, len(want.data))
		}
	}

	composeGolden(t, "escalation_fr.golden", p.text)
}

func TestComposeEscalationEnglish(t *testing.T) {
	c := testComposer()
	in, wantFiles := testEscalationInput(t, "en")
	in.Ticket.Subject = "Blank screen"
	out, err := c.Escalation(in)
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	if s, _ := p.header.Subject(); s != "[ENT-42] Blank screen" {
		t.Errorf("subject %q", s)
	}
	for _, want := range []string{
		"Please reply above this message and keep [ENT-42] in the subject.",
		"School: Lycée Victor-Hugo d'Évry (UAI 0910001A)",
		"Requester: Jean-Kévin \"JK\" Dupont-Lefèvre <jk.dupont@school.example> (Teacher)",
		"Escalated by: Mme Élise \"Lili\" Martin",
		"Created on: Monday 3 March 2025 at 14:05",
		"Status: Open",
		"[Desk] Léa (Support)",
		"Left out (too large)",
		"- vidéo de l'écran.mp4 (2.0 MB)",
	} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q", want)
		}
	}
	if !strings.Contains(p.html, `<html lang="en">`) {
		t.Error("html lang")
	}
	if len(p.attachments) != len(wantFiles) || p.attachments[3].name != "attachment-5" {
		t.Errorf("attachments %d, fallback name %q", len(p.attachments), p.attachments[len(p.attachments)-1].name)
	}
	composeGolden(t, "escalation_en.golden", p.text)
}

func TestComposeEscalationMinimal(t *testing.T) {
	// No history, no attachment, no plus token, no Reply-To, no identity.
	c := testComposer()
	c.ReplyTo, c.PlusToken, c.Identity = nil, false, ""
	out, err := c.Escalation(EscalationInput{Ticket: bridge.TicketView{Ticket: bridge.Ticket{ID: "7", Subject: "Test", Locale: "de"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	if out.From != "assistance@ent.example" {
		t.Errorf("envelope sender %q", out.From)
	}
	for _, k := range []string{"Reply-To", "X-Loop"} {
		if v := p.header.Get(k); v != "" {
			t.Errorf("%s = %q", k, v)
		}
	}
	for _, want := range []string{"Aucun échange pour l'instant.", "(pas de description)"} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(p.text, "Pièces jointes") || len(p.attachments) != 0 {
		t.Error("attachments section without attachments")
	}
}

func TestComposeFollowUpComment(t *testing.T) {
	c := testComposer()
	root := c.Signer.NewMessageID("42", "esc")
	prev := c.Signer.NewMessageID("42", "fu")
	pngData := composePNG(t)
	ticket := bridge.Ticket{
		ID: "42", Subject: "Écran blanc", Locale: "fr", Status: bridge.StatusOpened,
		Escalation: bridge.Escalation{Status: bridge.EscalationSuccessful, DeskReference: "Desk #5678", RootMessageID: root},
	}
	in := FollowUpInput{
		Ticket:    ticket,
		Structure: bridge.Structure{Name: "Lycée Victor-Hugo d'Évry", UAI: "0910001A"},
		Exchange: &bridge.Exchange{
			ID: "c9", Origin: bridge.OriginENT,
			Author:    bridge.Person{DisplayName: "Mme Élise \"Lili\" Martin", Email: "martin@school.example"},
			Body:      "Le navigateur est Firefox 128.\r\nMerci d'avance !",
			CreatedAt: time.Date(2025, 7, 14, 8, 0, 0, 0, time.UTC), // summer time: 10:00
		},
		Attachments: []bridge.AttachmentData{
			{Attachment: bridge.Attachment{Filename: "firefox à propos.png", ContentType: "image/png"}, Content: pngData},
		},
		References: []string{"<" + root + ">", prev, "not a msg id", prev},
	}
	out, err := c.FollowUp(in)
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	h := p.header
	if s, _ := h.Subject(); s != "Re: [ENT-42] [Desk #5678] Écran blanc" {
		t.Errorf("subject %q", s)
	}
	if id, kind, ok := c.Signer.ParseMessageID(out.MessageID); !ok || id != "42" || kind != "fu" {
		t.Errorf("Message-ID %q: %q %q %v", out.MessageID, id, kind, ok)
	}
	irt, err := h.MsgIDList("In-Reply-To")
	if err != nil || len(irt) != 1 || irt[0] != prev {
		t.Errorf("In-Reply-To %q, %v; want %q", irt, err, prev)
	}
	refs, err := h.MsgIDList("References")
	if err != nil || strings.Join(refs, " ") != root+" "+prev {
		t.Errorf("References %q, %v", refs, err)
	}
	if h.Get("Auto-Submitted") != "" || h.Get("X-Loop") != "supportbridge@ent.example" {
		t.Error("loop headers")
	}
	for _, want := range []string{
		"Nouveau commentaire sur la demande [ENT-42]",
		"De : Mme Élise \"Lili\" Martin <martin@school.example> (ENT)",
		"Date : lundi 14 juillet 2025 à 10:00",
		"Le navigateur est Firefox 128.\nMerci d'avance !",
		"- firefox à propos.png (",
	} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if !strings.Contains(p.html, "Mme Élise &#34;Lili&#34; Martin") {
		t.Error("html lacks the author")
	}
	if len(p.attachments) != 1 || !bytes.Equal(p.attachments[0].data, pngData) || p.attachments[0].name != "firefox à propos.png" {
		t.Errorf("attachments %+v", p.attachments)
	}
	composeGolden(t, "followup_fr.golden", p.text)
}

func TestComposeFollowUpNote(t *testing.T) {
	c := testComposer()
	ticket := bridge.Ticket{ID: "42", Subject: "Blank screen", Locale: "en", Status: bridge.StatusResolved}
	out, err := c.FollowUp(FollowUpInput{Ticket: ticket, Note: "Status changed to resolved by Mrs Martin.\r\nBcc: x@y"})
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	if s, _ := p.header.Subject(); s != "Re: [ENT-42] Blank screen" {
		t.Errorf("subject %q", s)
	}
	if p.header.Get("In-Reply-To") != "" || p.header.Get("References") != "" {
		t.Error("threading headers without a thread")
	}
	for _, want := range []string{"Update on support request [ENT-42]", "Status: Resolved", "Status changed to resolved by Mrs Martin.\nBcc: x@y"} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if _, err := c.FollowUp(FollowUpInput{Ticket: ticket, Note: " \r\n "}); err == nil {
		t.Error("follow-up with neither exchange nor note accepted")
	}
}

func TestComposeErrors(t *testing.T) {
	good := EscalationInput{Ticket: bridge.TicketView{Ticket: bridge.Ticket{ID: "1", Subject: "x"}}}
	tests := map[string]struct {
		edit func(*Composer, *EscalationInput)
	}{
		"no from":            {func(c *Composer, _ *EscalationInput) { c.From = nil }},
		"no desk":            {func(c *Composer, _ *EscalationInput) { c.DeskAddress = nil }},
		"desk with CRLF":     {func(c *Composer, _ *EscalationInput) { c.DeskAddress.Address = "a@b\r\nBcc: c@d" }},
		"reply-to no domain": {func(c *Composer, _ *EscalationInput) { c.ReplyTo.Address = "assistance" }},
		"no ticket id":       {func(_ *Composer, in *EscalationInput) { in.Ticket.ID = " " }},
		"bytes missing": {func(_ *Composer, in *EscalationInput) {
			in.Attachments = []bridge.AttachmentData{{Attachment: bridge.Attachment{Filename: "a.png", Size: 300}}}
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, in := testComposer(), good
			tt.edit(c, &in)
			if _, err := c.Escalation(in); err == nil {
				t.Error("no error")
			}
		})
	}
	// Past the total cap, the next attachments are listed, not attached.
	c, in := testComposer(), good
	c.MaxTotalAttachmentBytes = 150
	for _, n := range []int{100, 60, 50} {
		in.Attachments = append(in.Attachments, bridge.AttachmentData{
			Attachment: bridge.Attachment{Filename: fmt.Sprintf("f%d.bin", n)}, Content: bytes.Repeat([]byte{1}, n)})
	}
	out, err := c.Escalation(in)
	if err != nil {
		t.Fatal(err)
	}
	p := composeParse(t, out.Raw)
	if len(p.attachments) != 2 || p.attachments[0].name != "f100.bin" || p.attachments[1].name != "f50.bin" {
		t.Errorf("attachments under a total cap: %+v", p.attachments)
	}
	if !strings.Contains(p.text, "Non jointes (trop volumineuses)\n-------------------------------\n- f60.bin (60 octets)") {
		t.Errorf("f60.bin not listed as left out:\n%s", p.text)
	}

	// A declared size above the limit without bytes is only listed.
	c, in = testComposer(), good
	in.Attachments = []bridge.AttachmentData{{Attachment: bridge.Attachment{Filename: "huge.iso", Size: 5 << 30}}}
	out, err = c.Escalation(in)
	if err != nil {
		t.Fatal(err)
	}
	if p := composeParse(t, out.Raw); !strings.Contains(p.text, "- huge.iso (5,0 Go)") || len(p.attachments) != 0 {
		t.Errorf("huge attachment: %d parts, text %q", len(p.attachments), p.text)
	}
}

func TestComposeSubject(t *testing.T) {
	c := testComposer()
	tests := []struct {
		name    string
		ticket  bridge.Ticket
		reply   bool
		subject string
	}{
		{"plain", bridge.Ticket{ID: "42", Subject: "Écran blanc"}, false, "[ENT-42] Écran blanc"},
		{"reply", bridge.Ticket{ID: "42", Subject: "Écran blanc"}, true, "Re: [ENT-42] Écran blanc"},
		{"desk ref bare", bridge.Ticket{ID: "42", Subject: "x", Escalation: bridge.Escalation{DeskReference: "Desk #5678"}}, false, "[ENT-42] [Desk #5678] x"},
		{"desk ref bracketed", bridge.Ticket{ID: "42", Subject: "x", Escalation: bridge.Escalation{DeskReference: "[Ticket#2025031210000011]"}}, false, "[ENT-42] [Ticket#2025031210000011] x"},
		{"desk ref with CRLF", bridge.Ticket{ID: "42", Subject: "x", Escalation: bridge.Escalation{DeskReference: "#5\r\nBcc: a@b"}}, false, "[ENT-42] [#5 Bcc: a@b] x"},
		{"tag already there", bridge.Ticket{ID: "42", Subject: "[ENT-42] déjà"}, false, "[ENT-42] déjà"},
		{"empty subject", bridge.Ticket{ID: "42"}, false, "[ENT-42]"},
		{"folded spaces", bridge.Ticket{ID: "42", Subject: " a \t\t b\u2028c\u202Ed "}, false, "[ENT-42] a b c d"},
	}
	for _, tt := range tests {
		if got := c.subject(tt.ticket, tt.reply); got != tt.subject {
			t.Errorf("%s: %q; want %q", tt.name, got, tt.subject)
		}
	}
	c.SubjectTag = "[Académie ]"
	if got := c.tag("9"); got != "[Académie-9]" {
		t.Errorf("tag %q", got)
	}
}

func TestComposeReferences(t *testing.T) {
	var ids []string
	for i := 0; i < 30; i++ {
		ids = append(ids, "m"+strings.Repeat("x", i)+"@ent.example")
	}
	got := references("root@ent.example", ids)
	if len(got) != maxReferences || got[0] != "root@ent.example" || got[len(got)-1] != ids[29] {
		t.Errorf("capped references: %d, first %q, last %q", len(got), got[0], got[len(got)-1])
	}
	got = references("", []string{"<a@b>", "a@b", "bad", "x y@z", "@z", "q@", "c<d@e", "ok@e"})
	if strings.Join(got, " ") != "a@b ok@e" {
		t.Errorf("filtered references %q", got)
	}
}

func TestComposeFilename(t *testing.T) {
	// The rule itself is bridge.SafeFilename's (tested there); here, that it
	// is the one applied and the mail's own fallback name.
	l := catalog("fr")
	tests := []struct{ in, want string }{
		{"capture écran.png", "capture écran.png"},
		{`C:\Windows\system32\evil.dll`, "evil.dll"},
		{"a\x00b\r\nc.txt", "a b c.txt"},
		{`what?:*"<>|.doc`, "what_______.doc"},
		{"..", "piece-jointe-3"},
		{"", "piece-jointe-3"},
		{"dir/", "piece-jointe-3"},
	}
	for _, tt := range tests {
		if got := filename(tt.in, 3, l); got != tt.want {
			t.Errorf("filename(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if got := filename("", 2, catalog("en")); got == "piece-jointe-2" || !strings.HasSuffix(got, "-2") {
		t.Errorf("english fallback %q", got)
	}
}

func TestComposeContentType(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n0000")
	tests := []struct {
		declared string
		content  []byte
		want     string
	}{
		{"image/png", nil, "image/png"},
		{"IMAGE/PNG; name=x", nil, "image/png"},
		{"", png, "image/png"},
		{"garbage", png, "image/png"},
		{"multipart/mixed; boundary=zz", []byte("--zz\r\n"), "text/plain"},
		{"message/rfc822", []byte{0, 1, 2}, "application/octet-stream"},
	}
	for _, tt := range tests {
		if got := contentType(tt.declared, tt.content); got != tt.want {
			t.Errorf("contentType(%q) = %q; want %q", tt.declared, got, tt.want)
		}
	}
}

func TestComposeSizes(t *testing.T) {
	fr, en := catalog("fr"), catalog("en-GB")
	tests := []struct {
		n      int64
		fr, en string
	}{
		{0, "0 octets", "0 bytes"},
		{1023, "1023 octets", "1023 bytes"},
		{1536, "1,5 Ko", "1.5 KB"},
		{5 << 20, "5,0 Mo", "5.0 MB"},
		{3 << 40, "3072,0 Go", "3072.0 GB"},
	}
	for _, tt := range tests {
		if got := fr.size(tt.n); got != tt.fr {
			t.Errorf("fr size(%d) = %q", tt.n, got)
		}
		if got := en.size(tt.n); got != tt.en {
			t.Errorf("en size(%d) = %q", tt.n, got)
		}
	}
}

// FuzzComposeHeaders feeds arbitrary user values to the header-making code:
// the mail must always be written, parse back, and carry no header but ours.
func FuzzComposeHeaders(f *testing.F) {
	f.Add("Écran\r\nBcc: evil@x", "Jean \"JK\"\r\nX: y", "T-42", "Desk\n#5", "a\x00b.png")
	f.Add("=?utf-8?q?=0D=0ABcc:_x?=", "<a@b>", "id@x", "]", "../..")
	f.Add(strings.Repeat("é ", 400), "", "x", "", "")
	f.Fuzz(func(t *testing.T, subject, name, ticketID, deskRef, filename string) {
		if strings.TrimSpace(ticketID) == "" {
			return
		}
		c := testComposer()
		c.From.Name = name
		in := EscalationInput{
			Ticket: bridge.TicketView{Ticket: bridge.Ticket{
				ID: ticketID, Subject: subject, Owner: bridge.Person{DisplayName: name},
				Escalation: bridge.Escalation{DeskReference: deskRef},
			}},
			Attachments: []bridge.AttachmentData{{Attachment: bridge.Attachment{Filename: filename}, Content: []byte("x")}},
		}
		out, err := c.Escalation(in)
		if err != nil {
			t.Fatalf("Escalation: %v", err)
		}
		nm, err := netmail.ReadMessage(bytes.NewReader(out.Raw))
		if err != nil {
			t.Fatalf("net/mail: %v", err)
		}
		allowed := map[string]bool{
			"Date": true, "From": true, "To": true, "Reply-To": true, "Subject": true, "Message-Id": true,
			"X-Loop": true, "X-Auto-Response-Suppress": true, "X-Supportbridge-Ticket": true,
			"Mime-Version": true, "Content-Type": true,
		}
		for k, v := range nm.Header {
			if !allowed[k] || len(v) != 1 {
				t.Fatalf("header %q = %q", k, v)
			}
		}
		dec := mime.WordDecoder{}
		s, err := dec.DecodeHeader(nm.Header.Get("Subject"))
		if err != nil || utf8.RuneCountInString(s) > maxSubjectRunes || strings.ContainsFunc(s, unicode.IsControl) {
			t.Fatalf("subject %q, %v", s, err)
		}
		if _, err := gomail.CreateReader(bytes.NewReader(out.Raw)); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("go-message: %v", err)
		}
	})
}

// BenchmarkComposeEscalation measures one escalation mail with its history
// and attachments (the escalation send benchmark spends a good part of its
// CPU here).
func BenchmarkComposeEscalation(b *testing.B) {
	c := testComposer()
	c.Location = time.UTC
	in, _ := testEscalationInput(b, "fr")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Escalation(in); err != nil {
			b.Fatal(err)
		}
	}
}
