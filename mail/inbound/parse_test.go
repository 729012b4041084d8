package inbound

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testParse(t *testing.T, raw string, lim ParseLimits) *Inbound {
	t.Helper()
	in, err := ParseMessage([]byte(raw), lim)
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	return in
}

// testProblemKind returns the kind of the first problem whose text holds
// part.
func testProblemKind(in *Inbound, part string) (ProblemKind, bool) {
	for _, p := range in.Problems {
		if strings.Contains(p.Text, part) {
			return p.Kind, true
		}
	}
	return 0, false
}

func testHasProblem(in *Inbound, part string) bool {
	for _, p := range in.Problems {
		if strings.Contains(p.Text, part) {
			return true
		}
	}
	return false
}

func TestParseHeaders(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "replies", "01-gmail-web-fr.eml"))
	if in.Subject != "Re: [ENT-42] Pronote : impossible de se connecter depuis l'ENT" {
		t.Errorf("Subject %q", in.Subject)
	}
	if in.MessageID != "CAJf3Xq0H9a+Kp8v2yZ=4mQ1nVbR7sTgW5eLx@mail.gmail.com" {
		t.Errorf("MessageID %q", in.MessageID)
	}
	if len(in.InReplyTo) != 1 || in.InReplyTo[0] != testOrigID || len(in.References) != 1 || in.References[0] != testOrigID {
		t.Errorf("InReplyTo %q References %q", in.InReplyTo, in.References)
	}
	if in.From == nil || in.From.Address != "k.benali@desk.example" || in.From.Name != "Karim Benali" {
		t.Errorf("From %v", in.From)
	}
	if len(in.To) != 1 || in.To[0].Address != "assistance@ent.example" {
		t.Errorf("To %v", in.To)
	}
	if in.ReturnPath != "k.benali@desk.example" {
		t.Errorf("ReturnPath %q", in.ReturnPath)
	}
	want := time.Date(2025, 11, 3, 9, 41, 2, 0, time.UTC)
	if !in.Date.Equal(want) {
		t.Errorf("Date %v, want %v", in.Date, want)
	}
	if got := len(in.Header.Values("received")); got != 1 {
		t.Errorf("Values(received) has %d", got)
	}
	if in.Header.Get("subject") != in.Subject || !in.Header.Has("MIME-Version") || in.Header.Has("X-Nothing") {
		t.Errorf("Header access broken: %q", in.Header.Get("subject"))
	}
	if len(in.Problems) != 0 {
		t.Errorf("Problems %q", in.Problems)
	}

	in = testParseFile(t, filepath.Join("testdata", "replies", "02-gmail-web-en-wrapped.eml"))
	if len(in.To) != 1 || in.To[0].Name != "Assistance ENT - Lycée Victor Hugo" {
		t.Errorf("To name %v", in.To)
	}
	in = testParseFile(t, filepath.Join("testdata", "replies", "42-gmail-es.eml"))
	if in.From == nil || in.From.Name != "Lucía Gómez" {
		t.Errorf("From name %v", in.From)
	}
	in = testParseFile(t, filepath.Join("testdata", "replies", "08-outlook-desktop-fr-latin1.eml"))
	if in.Subject != "RE : [ENT-42] Pronote : impossible de se connecter depuis l'ENT" {
		t.Errorf("Latin-1 subject with NBSP: %q", in.Subject)
	}
	if len(in.Cc) != 1 || in.Cc[0].Address != "martin@school.example" {
		t.Errorf("Cc %v", in.Cc)
	}
}

func TestParseLenientHeaders(t *testing.T) {
	raw := "From: Karim Benali <k.benali@desk.example> (Support) <broken\r\n" +
		"Reply-To: a@desk.example, B <b@desk.example>\r\n" +
		"Sender: list-bounces@lists.desk.example\r\n" +
		"Return-Path: <>\r\n" +
		"Date: lundi 3 novembre\r\n" +
		"Message-ID: no-brackets@desk.example\r\n" +
		"In-Reply-To: <a@ent.example> (comment) <b@ent.example>\r\n" +
		"References: c@ent.example, d@ent.example\r\n" +
		"X-Custom: =?iso-8859-1?q?=E9t=E9?=\r\n" +
		"X-Custom: second\r\n" +
		"X-Quote: =?iso-8859-1?q?l=92=E9cole?=\r\n" +
		"Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?=\x07\r\n" +
		"\r\n" +
		"Bonjour\r\n"
	in := testParse(t, raw, ParseLimits{})
	if in.From == nil || in.From.Address != "k.benali@desk.example" {
		t.Errorf("From fallback %v", in.From)
	}
	if !testHasProblem(in, "header From: malformed address list") || !testHasProblem(in, "unparseable Date") {
		t.Errorf("Problems %q", in.Problems)
	}
	if len(in.ReplyTo) != 2 || in.ReplyTo[1].Name != "B" {
		t.Errorf("ReplyTo %v", in.ReplyTo)
	}
	if in.Sender != "list-bounces@lists.desk.example" || in.ReturnPath != "" || in.Header.Get("Return-Path") != "<>" {
		t.Errorf("Sender %q ReturnPath %q", in.Sender, in.ReturnPath)
	}
	if !in.Date.IsZero() {
		t.Errorf("Date %v", in.Date)
	}
	if in.MessageID != "no-brackets@desk.example" {
		t.Errorf("MessageID %q", in.MessageID)
	}
	if strings.Join(in.InReplyTo, " ") != "a@ent.example b@ent.example" || strings.Join(in.References, " ") != "c@ent.example d@ent.example" {
		t.Errorf("InReplyTo %q References %q", in.InReplyTo, in.References)
	}
	if got := in.Header.Values("x-custom"); len(got) != 2 || got[0] != "été" || got[1] != "second" {
		t.Errorf("Values %q", got)
	}
	if got := in.Header.Get("X-Quote"); got != "l’école" {
		t.Errorf("Latin-1 word with a Windows-1252 quote: %q", got)
	}
	if in.Subject != "café crème" {
		t.Errorf("Subject %q", in.Subject)
	}
	if in.Text != "Bonjour" {
		t.Errorf("Text %q", in.Text)
	}
}

func TestParseCharsets(t *testing.T) {
	tests := []struct {
		name, charset, cte string
		body               []byte
		want               string
		problem            string
	}{
		{"utf-8 8bit", "utf-8", "8bit", []byte("Élève déjà noté"), "Élève déjà noté", ""},
		{"iso-8859-1 8bit", "ISO-8859-1", "8bit", []byte("\xc9l\xe8ve d\xe9j\xe0 not\xe9"), "Élève déjà noté", ""},
		{"iso-8859-15 euro", "iso-8859-15", "8bit", []byte("10 \xa4 \xbd"), "10 € œ", ""},
		{"windows-1252 quotes", "windows-1252", "8bit", []byte("l\x92\xe9l\x8ave \x80"), "l’élŠve €", ""},
		{"latin-1 label, windows-1252 bytes", "iso-8859-1", "quoted-printable", []byte("l=92=E9l=E8ve =80"), "l’élève €", ""},
		{"quoted-printable latin1", "iso-8859-1", "quoted-printable", []byte("caf=E9 cr=\r\n=E8me"), "café crème", ""},
		{"base64 utf-8", "utf-8", "base64", []byte("w4lsw6h2ZQ=="), "Élève", ""},
		{"unknown charset, latin1 bytes", "x-klingon", "8bit", []byte("r\xe9gl\xe9"), "réglé", "unknown charset"},
		{"unknown charset, utf-8 bytes", "x-klingon", "8bit", []byte("réglé"), "réglé", "unknown charset"},
		{"undeclared 8bit", "", "8bit", []byte("r\xe9gl\xe9"), "réglé", "read as windows-1252"},
		{"sloppy quoted-printable", "utf-8", "quoted-printable", []byte("100=% s=C3=BBr =ZZ fin"), "100=% sûr =ZZ fin", ""},
		{"damaged quoted-printable", "utf-8", "quoted-printable", []byte("s=C3=BBr\x01 =\r\nfin =E9t=C3=A9"), "sûr fin \uFFFDt\u00e9", "damaged quoted-printable"},
		{"control characters dropped", "utf-8", "8bit", []byte("a\x00b\x1bc\td\fe"), "abc\tde", ""},
		{"damaged base64", "utf-8", "base64", []byte("w4ls!!w6h2\r\nZQ=*="), "Élève", "damaged base64"},
		{"unknown transfer encoding", "utf-8", "x-uuencode", []byte("plain"), "plain", "unknown transfer encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := "text/plain"
			if tc.charset != "" {
				ct += "; charset=" + tc.charset
			}
			raw := "From: a@desk.example\r\nContent-Type: " + ct + "\r\nContent-Transfer-Encoding: " + tc.cte + "\r\n\r\n" + string(tc.body)
			in := testParse(t, raw, ParseLimits{})
			if in.Text != tc.want {
				t.Errorf("Text %q, want %q", in.Text, tc.want)
			}
			if tc.problem == "" && len(in.Problems) > 0 {
				t.Errorf("unexpected problems %q", in.Problems)
			}
			if tc.problem != "" && !testHasProblem(in, tc.problem) {
				t.Errorf("problems %q lack %q", in.Problems, tc.problem)
			}
		})
	}
}

func TestParseFlowed(t *testing.T) {
	tests := []struct {
		in    string
		delsp bool
		want  string
	}{
		{"Une ligne \nqui continue.\nFin.", false, "Une ligne qui continue.\nFin."},
		{"coll\u00e9 \nensemble", true, "coll\u00e9ensemble"},
		{"> cit\u00e9 \n> suite\nr\u00e9ponse", false, "> cit\u00e9 suite\nr\u00e9ponse"},
		{" From stuffed", false, "From stuffed"},
		{"-- \nSignature", false, "-- \nSignature"},
		{">> deux \n> un", false, ">> deux\n> un"},
	}
	for _, tc := range tests {
		if got := unflow(tc.in, tc.delsp); got != tc.want {
			t.Errorf("unflow(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	in := testParseFile(t, filepath.Join("testdata", "replies", "23-thunderbird-fr-flowed.eml"))
	if !strings.Contains(in.Text, "les erreurs ont cessé depuis 11 h 20. Le problème") {
		t.Errorf("flowed text not joined: %q", in.Text)
	}
}

func TestParseHTMLOnly(t *testing.T) {
	raw := "From: a@desk.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<html><head><title>T</title><style>p{}</style></head><body onload="x()">` +
		`<p class="x">Bonjour&nbsp;!</p><script>alert(1)</script><a href="javascript:alert(2)" onclick="y()">lien</a>` +
		`<img src="cid:logo@x" alt="logo"><img src="data:image/png;base64,AAAA">` +
		`<div class="gmail_quote"><blockquote type="cite" class="q">cité</blockquote></div><hr id="zwchr"></body></html>`
	in := testParse(t, raw, ParseLimits{})
	if in.Text != "Bonjour !\n\nlien\n> cité" {
		t.Errorf("Text %q", in.Text)
	}
	for _, bad := range []string{"<script", "alert", "onload", "onclick", "javascript:", "data:", "<style", "<title"} {
		if strings.Contains(in.HTML, bad) {
			t.Errorf("HTML keeps %q: %s", bad, in.HTML)
		}
	}
	for _, keep := range []string{`class="gmail_quote"`, `type="cite"`, `id="zwchr"`, `src="cid:logo@x"`} {
		if !strings.Contains(in.HTML, keep) {
			t.Errorf("HTML lost %q: %s", keep, in.HTML)
		}
	}
}

func TestParseInlineImage(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "replies", "07-gmail-inline-image.eml"))
	if len(in.Attachments) != 1 {
		t.Fatalf("attachments %+v", in.Attachments)
	}
	a := in.Attachments[0]
	if a.Filename != "capture-pronote.png" || a.ContentType != "image/png" || a.ContentID != "ii_mhj3k2xq0" || !a.Inline {
		t.Errorf("attachment %+v", a)
	}
	if !bytes.HasPrefix(a.Content, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("content %q", a.Content)
	}
	if !strings.Contains(in.HTML, `src="cid:ii_mhj3k2xq0"`) {
		t.Errorf("cid reference lost: %s", in.HTML)
	}
	if !strings.HasPrefix(in.Text, "Bonjour,\n\nVoici ce que nous voyons") {
		t.Errorf("Text %q", in.Text)
	}
}

func TestParseForwardedMessage(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "inbound", "forward-nested-rfc822.eml"))
	if in.Text != "Je vous transfère le message de l'enseignante, avec sa capture." {
		t.Errorf("Text %q", in.Text)
	}
	if len(in.Attachments) != 1 {
		t.Fatalf("attachments %+v", in.Attachments)
	}
	a := in.Attachments[0]
	if a.Filename != "message.eml" || a.ContentType != "message/rfc822" || a.Inline {
		t.Errorf("attachment %+v", a)
	}
	inner, err := ParseMessage(a.Content, ParseLimits{})
	if err != nil {
		t.Fatalf("forwarded mail does not parse: %v", err)
	}
	if inner.MessageID != "inner-forwarded-1@school.example" || inner.Subject != "Capture de l'erreur" ||
		len(inner.Attachments) != 1 || inner.Attachments[0].Filename != "erreur.png" {
		t.Errorf("inner %q %q %+v", inner.MessageID, inner.Subject, inner.Attachments)
	}
	if strings.Contains(in.HTML, "script") {
		t.Errorf("HTML not sanitised: %s", in.HTML)
	}
	if in.Report != nil {
		t.Errorf("a forward has no delivery report")
	}
}

func TestParseFilenames(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "inbound", "rfc2231-filenames.eml"))
	var names []string
	for _, a := range in.Attachments {
		names = append(names, a.Filename+"|"+a.ContentType)
	}
	want := []string{
		"compte-rendu réunion élèves.pdf|application/pdf",
		"liste élèves.csv|text/csv",
		"evil.bat|application/octet-stream",
		"attachment-4.jpg|image/jpeg",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("names\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if len(in.Attachments) > 1 && string(in.Attachments[1].Content) != "nom;classe\nDupont;2nde B\n" {
		t.Errorf("csv content %q", in.Attachments[1].Content)
	}
}

func TestSafeFilename(t *testing.T) {
	tests := []struct {
		name, mediaType string
		want            string
	}{
		{"rapport.pdf", "application/pdf", "rapport.pdf"},
		{"../../etc/passwd", "text/plain", "passwd"},
		{`C:\Users\prof\Bureau\notes.docx`, "", "notes.docx"},
		{"a\x00b\r\nc.txt", "", "a b c.txt"},
		{"facture\u202egnp.exe", "", "facturegnp.exe"},
		{"  .htaccess  ", "", "htaccess"},
		{"..", "image/png", "attachment-3.png"},
		{"", "image/jpeg", "attachment-3.jpg"},
		{"", "message/rfc822", "attachment-3.eml"},
		{"", "application/x-unheard-of", "attachment-3.bin"},
		{"dir/", "application/pdf", "attachment-3.pdf"},
		{`a:b*c?"d"<e>|f.txt`, "", "a_b_c__d__e__f.txt"},
		{"bad\xffutf8.txt", "", "bad_utf8.txt"},
		{strings.Repeat("é", 150) + ".pdf", "", strings.Repeat("é", 98) + ".pdf"},
	}
	for _, tc := range tests {
		if got := safeFilename(tc.name, tc.mediaType, 3); got != tc.want {
			t.Errorf("safeFilename(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseDeliveryReport(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "inbound", "bounce-postfix.eml"))
	r := in.Report
	if r == nil {
		t.Fatal("no report")
	}
	want := DeliveryReport{
		Action:            "failed",
		Status:            "5.1.1",
		Diagnostic:        "smtp; 550 5.1.1 <support@desk.example>: Recipient address rejected: User unknown in virtual mailbox table",
		Recipients:        []string{"support@desk.example"},
		OriginalMessageID: testOrigID,
	}
	if fmt.Sprint(*r) != fmt.Sprint(want) {
		t.Errorf("report\n%+v\nwant\n%+v", *r, want)
	}
	if len(in.Attachments) != 1 || in.Attachments[0].Filename != "message.eml" {
		t.Errorf("returned mail not kept: %+v", in.Attachments)
	}

	// Several recipients: the failed one wins over a delivered one.
	raw := "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nReport.\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x.example\r\n\r\n" +
		"Final-Recipient: rfc822; ok@y.example\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n" +
		"Final-Recipient: rfc822; <ko@y.example>\r\nAction: Failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 mailbox full\r\n" +
		"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig@ent.example>\r\nSubject: x\r\n" +
		"--b--\r\n"
	in = testParse(t, raw, ParseLimits{})
	want = DeliveryReport{Action: "failed", Status: "5.2.2", Diagnostic: "smtp; 552 mailbox full",
		Recipients: []string{"ok@y.example", "ko@y.example"}, OriginalMessageID: "orig@ent.example"}
	if in.Report == nil || fmt.Sprint(*in.Report) != fmt.Sprint(want) {
		t.Errorf("report %+v, want %+v", in.Report, want)
	}
	if len(in.Attachments) != 0 || in.Text != "Report." {
		t.Errorf("attachments %+v text %q", in.Attachments, in.Text)
	}
}

func TestParseBrokenMIME(t *testing.T) {
	in := testParseFile(t, filepath.Join("testdata", "inbound", "truncated-base64.eml"))
	if in.Text != "Voici la capture demandée." {
		t.Errorf("Text %q", in.Text)
	}
	if !testHasProblem(in, "truncated") || !testHasProblem(in, "damaged base64") {
		t.Errorf("Problems %q", in.Problems)
	}
	if len(in.Attachments) != 1 || !bytes.HasPrefix(in.Attachments[0].Content, []byte("\x89PNG")) {
		t.Errorf("attachments %+v", in.Attachments)
	}

	in = testParseFile(t, filepath.Join("testdata", "inbound", "unknown-charset.eml"))
	if in.Text != "Le problème est réglé, merci de vérifier." || !testHasProblem(in, `unknown charset "x-mac-ancien-8bit"`) {
		t.Errorf("Text %q Problems %q", in.Text, in.Problems)
	}

	// A part whose own header is garbage after a good one.
	raw := "From: a@desk.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain\r\n\r\nGardé.\r\n--zz\r\n Bad header start\r\n\r\nperdu\r\n--zz--\r\n"
	in = testParse(t, raw, ParseLimits{})
	if in.Text != "Gardé." || !testHasProblem(in, "broken after part 1") {
		t.Errorf("Text %q Problems %q", in.Text, in.Problems)
	}
}

// Content lost is ProblemDamaged, whatever the words of the problem; an
// oddity is ProblemOddity even when a name it quotes says "damaged".
func TestParseProblemKinds(t *testing.T) {
	truncated := testParseFile(t, filepath.Join("testdata", "inbound", "truncated-base64.eml"))
	broken := testParse(t, "From: a@desk.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"+
		"--zz\r\nContent-Type: text/plain\r\n\r\nGardé.\r\n--zz\r\n Bad header start\r\n\r\nperdu\r\n--zz--\r\n", ParseLimits{})
	qp := testParse(t, "From: a@desk.example\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+
		"s=C3=BBr\x01 =\r\nfin =E9t=C3=A9", ParseLimits{})
	// HTML written on one line (against RFC 2045's 76 characters): decoded
	// whole, so an oddity, not damage that would quarantine the reply.
	longLine := strings.Repeat("<p>R=C3=A9ponse du support, ligne tr=C3=A8s longue.</p>", 120)
	longQP := testParse(t, "From: a@desk.example\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+
		longLine+"\r\n", ParseLimits{})
	if n := strings.Count(longQP.Text, "Réponse du support, ligne très longue."); n != 120 {
		t.Errorf("long quoted-printable line: %d of 120 paragraphs in %q", n, clip(longQP.Text, 200))
	}
	odd := testParse(t, "From: a@desk.example\r\nContent-Type: text/plain; charset=x-damaged-truncated-broken\r\n\r\nLisible.\r\n", ParseLimits{})
	dropped := testParse(t, "From: a@desk.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"+
		"--zz\r\nContent-Type: text/plain\r\n\r\nVoir pièce.\r\n"+
		"--zz\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"damaged-broken.pdf\"\r\n\r\n"+
		strings.Repeat("x", 200)+"\r\n--zz--\r\n", ParseLimits{MaxAttachmentBytes: 10})
	for _, tc := range []struct {
		name string
		in   *Inbound
		part string
		want ProblemKind
	}{
		{"truncated part", truncated, "part truncated", ProblemDamaged},
		{"damaged base64", truncated, "damaged base64", ProblemDamaged},
		{"broken boundary", broken, "broken after part 1", ProblemDamaged},
		{"damaged quoted-printable", qp, "damaged quoted-printable", ProblemDamaged},
		{"quoted-printable on one long line", longQP, "quoted-printable lines over 4 KB", ProblemOddity},
		{"unknown charset", odd, "unknown charset", ProblemOddity},
		{"attachment dropped", dropped, `attachment "damaged-broken.pdf" dropped`, ProblemOddity},
	} {
		kind, ok := testProblemKind(tc.in, tc.part)
		if !ok || kind != tc.want {
			t.Errorf("%s: kind %v (found %v) in %q, want %v", tc.name, kind, ok, tc.in.Problems, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	broken, err := testReadFixture("inbound", "broken-boundary.eml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string
		lim  ParseLimits
		want error
	}{
		{"empty", "", ParseLimits{}, ErrMalformed},
		{"blank", " \r\n\r\n", ParseLimits{}, ErrMalformed},
		{"no header", "Bonjour,\r\nvoici ma réponse.\r\n", ParseLimits{}, ErrMalformed},
		{"body only", "\r\nBonjour\r\n", ParseLimits{}, ErrMalformed},
		{"header starts with a space", " From: a@b\r\n\r\nx", ParseLimits{}, ErrMalformed},
		{"boundary never seen", broken, ParseLimits{}, ErrMalformed},
		{"multipart without boundary", "From: a@b\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhello\r\n--x--\r\n", ParseLimits{}, ErrMalformed},
		{"too large", "From: a@b\r\n\r\n" + strings.Repeat("x", 100), ParseLimits{MaxBytes: 50}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseMessage([]byte(tc.raw), tc.lim)
			if !errors.Is(err, tc.want) || in != nil {
				t.Errorf("ParseMessage = %v, %v; want %v", in, err, tc.want)
			}
		})
	}
	// Exactly at the limit is fine.
	raw := "From: a@b\r\n\r\nx"
	if _, err := ParseMessage([]byte(raw), ParseLimits{MaxBytes: int64(len(raw))}); err != nil {
		t.Errorf("mail at the limit: %v", err)
	}
	// An mbox separator line is skipped.
	in := testParse(t, "From k.benali@desk.example Mon Nov  3 10:41:02 2025\nFrom: a@b\nSubject: s\n\nbody\n", ParseLimits{})
	if in.Subject != "s" || in.Text != "body" {
		t.Errorf("mbox line: %q %q", in.Subject, in.Text)
	}
}

func testReadFixture(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	return string(b), err
}

func TestParseLimits(t *testing.T) {
	mixed := func(parts ...string) string {
		var b strings.Builder
		b.WriteString("From: a@desk.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n")
		for _, p := range parts {
			b.WriteString("--B\r\n" + p + "\r\n")
		}
		b.WriteString("--B--\r\n")
		return b.String()
	}
	att := func(name, body string) string {
		return "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=" + name + "\r\n\r\n" + body
	}
	text := "Content-Type: text/plain\r\n\r\nCorps."

	in := testParse(t, mixed(text, att("petit.bin", "1234"), att("gros.bin", strings.Repeat("x", 64))), ParseLimits{MaxAttachmentBytes: 10})
	if len(in.Attachments) != 1 || in.Attachments[0].Filename != "petit.bin" || !testHasProblem(in, `attachment "gros.bin" dropped: larger than 10 bytes`) {
		t.Errorf("size limit: %+v %q", in.Attachments, in.Problems)
	}
	if in.Text != "Corps." {
		t.Errorf("Text %q", in.Text)
	}

	in = testParse(t, mixed(att("a", "1"), att("b", "2"), att("c", "3")), ParseLimits{MaxAttachments: 2})
	if len(in.Attachments) != 2 || !testHasProblem(in, `attachment "c" dropped: more than 2 attachments`) {
		t.Errorf("count limit: %+v %q", in.Attachments, in.Problems)
	}

	var many []string
	for i := 0; i < 50; i++ {
		many = append(many, att(fmt.Sprintf("f%d", i), "x"))
	}
	in = testParse(t, mixed(many...), ParseLimits{MaxParts: 10})
	if len(in.Attachments) != 9 || !testHasProblem(in, "more than 10 MIME parts") {
		t.Errorf("parts limit: %d attachments, %q", len(in.Attachments), in.Problems)
	}

	// Nesting: 200 multiparts deep with the text at the bottom.
	var b strings.Builder
	b.WriteString("From: a@desk.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	const depth = 200
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\nau fond\r\n--b%d--\r\n", depth, depth)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	deep := b.String()
	in = testParse(t, deep, ParseLimits{MaxDepth: 5, MaxParts: 1000})
	if in.Text != "" || !testHasProblem(in, "nested deeper than 5") {
		t.Errorf("depth limit: %q %q", in.Text, in.Problems)
	}
	in = testParse(t, deep, ParseLimits{MaxDepth: depth + 5, MaxParts: 1000})
	if in.Text != "au fond" {
		t.Errorf("deep text %q", in.Text)
	}

	// A reused parser keeps its limits; a zero one takes the defaults.
	mp := NewMessageParser(ParseLimits{MaxAttachments: 2})
	for i := 0; i < 2; i++ {
		in, err := mp.Parse([]byte(mixed(att("a", "1"), att("b", "2"), att("c", "3"))))
		if err != nil || len(in.Attachments) != 2 {
			t.Fatalf("reused parser: %v %+v", err, in)
		}
	}
	var zero MessageParser
	if in, err := zero.Parse([]byte(mixed(att("a", "1")))); err != nil || len(in.Attachments) != 1 {
		t.Errorf("zero parser: %v", err)
	}
	var nilP *MessageParser
	if _, err := nilP.Parse([]byte("From: a@b\r\n\r\nx")); err != nil {
		t.Errorf("nil parser: %v", err)
	}

	// The defaults apply to zero and negative fields.
	d := DefaultParseLimits()
	if got := (ParseLimits{MaxBytes: -1}).withDefaults(); got != d {
		t.Errorf("defaults %+v, want %+v", got, d)
	}
}

func TestParseMsgIDs(t *testing.T) {
	tests := map[string]string{
		"<a@b>":                 "a@b",
		"<a@b> <c@d>":           "a@b c@d",
		"<a@b>,<c@d>":           "a@b c@d",
		"a@b c@d":               "a@b c@d",
		"a@b,c@d":               "a@b c@d",
		"<a b@c> <ok@d>":        "ok@d",
		"<unterminated@x":       "",
		"nothing here":          "",
		"  ":                    "",
		"<x@y> (comment <z@w>)": "x@y z@w",
	}
	for in, want := range tests {
		if got := strings.Join(msgIDs(in), " "); got != want {
			t.Errorf("msgIDs(%q) = %q, want %q", in, got, want)
		}
	}
}
