package inbound

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

const testOrigID = "sb.esc.gqza.mfrgg3dfmztgq2lk.k5xw4zlsmvxa@ent.example"

func testClassifyOptions() ClassifyOptions {
	return ClassifyOptions{
		Identity:   "supportbridge@ent.example",
		OwnDomains: []string{"ent.example"},
		RefPattern: regexp.MustCompile(`\[Desk #(\d+)\]`),
	}
}

func testParseFile(t *testing.T, path string) *Inbound {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseMessage(raw, DefaultParseLimits())
	if err != nil {
		t.Fatalf("ParseMessage(%s): %v", path, err)
	}
	return in
}

func TestClassifyFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Classification
	}{
		{"ooo-exchange-fr", Classification{Kind: KindAutoReply, Reason: "Auto-Submitted: auto-replied"}},
		{"ooo-vacation-en", Classification{Kind: KindAutoReply, Reason: "X-Autoreply present"}},
		{"ooo-subject-only-fr", Classification{Kind: KindAutoReply, Reason: "out-of-office subject"}},
		{"reply-subject-absence", Classification{Kind: KindReply, Reason: "reply"}},
		{"desk-ack-5678", Classification{Kind: KindAutoReply, Reason: "Auto-Submitted: auto-generated", DeskReference: "5678"}},
		{"bounce-postfix", Classification{Kind: KindBounce, Reason: "delivery status notification: 5.1.1", OriginalMessageID: testOrigID}},
		{"bounce-exchange-ndr", Classification{Kind: KindBounce, Reason: "delivery status notification: 5.1.10", OriginalMessageID: testOrigID}},
		{"bounce-qmail-plain", Classification{Kind: KindBounce, Reason: "mailer-daemon message", OriginalMessageID: testOrigID}},
		{"dsn-delayed", Classification{Kind: KindAutoReply, Reason: "delivery delayed", OriginalMessageID: testOrigID}},
		{"loop-own-mail", Classification{Kind: KindLoop, Reason: "X-Loop is ours"}},
		{"loop-own-message-id", Classification{Kind: KindLoop, Reason: "Message-ID in our domain"}},
		{"read-receipt", Classification{Kind: KindAutoReply, Reason: "read receipt"}},
		{"truncated-base64", Classification{Kind: KindReply, Reason: "reply"}},
		{"unknown-charset", Classification{Kind: KindReply, Reason: "reply"}},
		{"forward-nested-rfc822", Classification{Kind: KindReply, Reason: "reply"}},
		{"rfc2231-filenames", Classification{Kind: KindReply, Reason: "reply"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			in := testParseFile(t, filepath.Join("testdata", "inbound", tc.file+".eml"))
			got := Classify(in, testClassifyOptions())
			if got.Kind != tc.want.Kind || got.Reason != tc.want.Reason || got.OriginalMessageID != tc.want.OriginalMessageID ||
				got.DeskReference != tc.want.DeskReference || got.DeskStatus != tc.want.DeskStatus || got.Product != tc.want.Product {
				t.Errorf("Classify = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestClassifyReplyCorpus checks that no reply of the corpus is taken for
// noise, and that the desk's reference is learned from a reply too.
func TestClassifyReplyCorpus(t *testing.T) {
	emls, err := filepath.Glob(filepath.Join("testdata", "replies", "*.eml"))
	if err != nil || len(emls) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, path := range emls {
		in := testParseFile(t, path)
		c := Classify(in, testClassifyOptions())
		if c.Kind != KindReply {
			t.Errorf("%s: Kind %v (%s), want reply", filepath.Base(path), c.Kind, c.Reason)
		}
		wantRef := ""
		switch filepath.Base(path) {
		case "31-zammad-agent-reply.eml", "33-desk-notification-reply-above.eml":
			wantRef = "5678"
		}
		if c.DeskReference != wantRef {
			t.Errorf("%s: DeskReference %q, want %q", filepath.Base(path), c.DeskReference, wantRef)
		}
	}
}

func testInbound(headers map[string]string) *Inbound {
	in := &Inbound{}
	for k, v := range headers {
		in.Header.fields = append(in.Header.fields, headerField{key: k, value: v})
	}
	in.Subject = headers["Subject"]
	in.MessageID = firstOf(msgIDs(headers["Message-Id"]))
	return in
}

func TestClassifyHeaders(t *testing.T) {
	opt := testClassifyOptions()
	tests := []struct {
		name    string
		headers map[string]string
		report  *DeliveryReport
		want    Kind
		reason  string
	}{
		{"plain reply", map[string]string{"Subject": "Re: [ENT-1] x", "Message-Id": "<a@desk.example>"}, nil, KindReply, "reply"},
		{"x-loop other case", map[string]string{"X-Loop": " SupportBridge@ENT.example "}, nil, KindLoop, "X-Loop is ours"},
		{"x-loop of someone else", map[string]string{"X-Loop": "yes"}, nil, KindReply, "reply"},
		{"own domain any case", map[string]string{"Message-Id": "<x@ENT.Example>"}, nil, KindLoop, "Message-ID in our domain"},
		{"ticket header", map[string]string{"X-Supportbridge-Ticket": "42"}, nil, KindLoop, "X-SupportBridge-Ticket present"},
		{"auto-submitted no", map[string]string{"Auto-Submitted": "no"}, nil, KindReply, "reply"},
		{"auto-submitted with comment", map[string]string{"Auto-Submitted": "auto-replied (vacation)"}, nil, KindAutoReply, "Auto-Submitted: auto-replied (vacation)"},
		{"auto-submitted params", map[string]string{"Auto-Submitted": "Auto-Generated; owner-email=x@y"}, nil, KindAutoReply, "Auto-Submitted: auto-generated"},
		{"x-autorespond", map[string]string{"X-Autorespond": "1"}, nil, KindAutoReply, "X-Autorespond present"},
		{"precedence bulk", map[string]string{"Precedence": "Bulk"}, nil, KindAutoReply, "Precedence: bulk"},
		{"precedence list", map[string]string{"Precedence": "list"}, nil, KindAutoReply, "Precedence: list"},
		{"precedence auto_reply", map[string]string{"Precedence": "auto_reply"}, nil, KindAutoReply, "Precedence: auto_reply"},
		{"precedence first-class", map[string]string{"Precedence": "first-class"}, nil, KindReply, "reply"},
		{"x-auto-response-suppress", map[string]string{"X-Auto-Response-Suppress": "All"}, nil, KindAutoReply, "X-Auto-Response-Suppress present"},
		{"null return-path", map[string]string{"Return-Path": "<>"}, nil, KindAutoReply, "null Return-Path"},
		{"null return-path with dsn is a bounce", map[string]string{"Return-Path": "<>"}, &DeliveryReport{Action: "failed", Status: "5.2.2", OriginalMessageID: "o@ent.example"}, KindBounce, "delivery status notification: 5.2.2"},
		{"dsn delivered", nil, &DeliveryReport{Action: "delivered", Status: "2.0.0"}, KindAutoReply, "delivery notification: delivered"},
		{"loop beats bounce", map[string]string{"X-Loop": "supportbridge@ent.example"}, &DeliveryReport{Action: "failed"}, KindLoop, "X-Loop is ours"},
		{"bounce beats auto-reply", map[string]string{"Auto-Submitted": "auto-replied"}, &DeliveryReport{Action: "failed"}, KindBounce, "delivery status notification"},
		{"subject automatic reply", map[string]string{"Subject": "Automatic reply: [ENT-1] x"}, nil, KindAutoReply, "out-of-office subject"},
		{"subject reponse automatique", map[string]string{"Subject": "Réponse automatique : [ENT-1] x"}, nil, KindAutoReply, "out-of-office subject"},
		{"subject absence alone", map[string]string{"Subject": "Absence"}, nil, KindAutoReply, "out-of-office subject"},
		{"subject absence of pupils", map[string]string{"Subject": "Absences des élèves non remontées"}, nil, KindReply, "reply"},
		{"subject re absence", map[string]string{"Subject": "RE: Absence du bureau"}, nil, KindReply, "reply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := testInbound(tc.headers)
			in.Report = tc.report
			got := Classify(in, opt)
			if got.Kind != tc.want || got.Reason != tc.reason {
				t.Errorf("Classify = %v %q, want %v %q", got.Kind, got.Reason, tc.want, tc.reason)
			}
		})
	}
}

func TestClassifyDaemonWithoutOriginal(t *testing.T) {
	in, err := ParseMessage([]byte("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nSubject: Delivery Status Notification\r\n\r\nSomething happened.\r\n"), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	got := Classify(in, testClassifyOptions())
	if got.Kind != KindAutoReply || got.Reason != "mailer-daemon message without original Message-ID" {
		t.Errorf("Classify = %+v", got)
	}
}

func TestClassifyPrefersOwnDomainInBody(t *testing.T) {
	raw := "From: postmaster@relay.example\r\nSubject: failure\r\nMessage-ID: <bounce-1@relay.example>\r\n\r\n" +
		"Message-ID: <other@third.example>\r\n> Message-ID: <sb.fu.x.y.z@ent.example>\r\n"
	in, err := ParseMessage([]byte(raw), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	got := Classify(in, testClassifyOptions())
	if got.Kind != KindBounce || got.OriginalMessageID != "sb.fu.x.y.z@ent.example" {
		t.Errorf("Classify = %+v", got)
	}
}

func TestClassifyDeskReference(t *testing.T) {
	opt := testClassifyOptions()
	in := &Inbound{Subject: "Re: [ENT-1] x", Text: "Votre demande porte le numéro [Desk #991]."}
	if got := Classify(in, opt).DeskReference; got != "991" {
		t.Errorf("from body: %q", got)
	}
	in = &Inbound{Subject: "[Desk #12] Re: [ENT-1] x", Text: "[Desk #991]"}
	if got := Classify(in, opt).DeskReference; got != "12" {
		t.Errorf("subject first: %q", got)
	}
	opt.RefPattern = regexp.MustCompile(`INC-\d+`)
	in = &Inbound{Subject: "INC-0042 created"}
	if got := Classify(in, opt).DeskReference; got != "INC-0042" {
		t.Errorf("no group: %q", got)
	}
	opt.RefPattern = nil
	if got := Classify(in, opt).DeskReference; got != "" {
		t.Errorf("nil pattern: %q", got)
	}
	if got := Classify(nil, opt); got.Kind == KindReply {
		t.Errorf("nil mail classified as a reply")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindReply: "reply", KindLoop: "loop", KindAutoReply: "auto-reply", KindBounce: "bounce", 0: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}

func TestSubjectTicketID(t *testing.T) {
	tests := []struct {
		subject, tag string
		id           string
		ok           bool
	}{
		{"[ENT-42] Écran blanc", "ENT", "42", true},
		{"Re: [ENT-42] Écran blanc", "ENT", "42", true},
		{"RE : [ENT-42] Écran blanc", "ENT", "42", true},
		{"TR: Fwd: AW: [ent-t_42.x] Écran blanc", "ENT", "t_42.x", true},
		{"Re: [Desk #5678] [ENT-abc:def@x-1] y", "ENT", "abc:def@x-1", true},
		{"[ ENT - 42 ] espaces", "ENT", "42", true},
		{"[ENT-42 ] fin", "ent", "42", true},
		{"Réponse automatique : [ENT-7] z", "ENT", "7", true},
		{"[ENTX-42] other tag", "ENT", "", false},
		{"[ENT42] no dash", "ENT", "", false},
		{"[ENT-] empty id", "ENT", "", false},
		{"[ENT-4 2] space in id", "ENT", "", false},
		{"[ENT-42 no bracket", "ENT", "", false},
		{"[ENT-é] non ascii", "ENT", "", false},
		{"[[ENT-9]] nested", "ENT", "9", true},
		{"[ENT-1] [ENT-2] first wins", "ENT", "1", true},
		{"[bad] then [ENT-3]", "ENT", "3", true},
		{"[ENT-42]", "", "", false},
		{"", "ENT", "", false},
	}
	for _, tc := range tests {
		id, ok := SubjectTicketID(tc.subject, tc.tag)
		if id != tc.id || ok != tc.ok {
			t.Errorf("SubjectTicketID(%q, %q) = %q, %v; want %q, %v", tc.subject, tc.tag, id, ok, tc.id, tc.ok)
		}
	}
	long := "[ENT-"
	for i := 0; i < 128; i++ {
		long += "a"
	}
	if id, ok := SubjectTicketID(long+"]", "ENT"); !ok || len(id) != 128 {
		t.Errorf("128-char id refused")
	}
	if _, ok := SubjectTicketID(long+"a]", "ENT"); ok {
		t.Errorf("129-char id accepted")
	}
}

func TestDetectStatus(t *testing.T) {
	markers := map[string][]string{
		"resolved": {"[RESOLU]", "[RESOLVED]"},
		"closed":   {"[CLOS]", "[FERMÉ]", "[CLOSED]"},
		"waiting":  {"[EN ATTENTE]", "[WAITING]"},
	}
	tests := []struct {
		name, subject, text string
		markers             map[string][]string
		want                string
		ok                  bool
	}{
		{"subject marker", "Re: [ENT-42] x [RESOLU]", "", markers, "resolved", true},
		{"subject marker accents and case", "Re: [ENT-42] [fermé] x", "", markers, "closed", true},
		{"subject marker without accent", "[ENT-42] [FERME] x", "", markers, "closed", true},
		{"first marker in subject wins", "[WAITING] then [CLOSED]", "", markers, "waiting", true},
		{"status line fr", "Re: x", "Bonjour,\nStatut : résolu\nMerci", markers, "resolved", true},
		{"status line no space", "", "Statut: resolu", markers, "resolved", true},
		{"status line en", "", "Status: Resolved.", markers, "resolved", true},
		{"status line closed", "", "  Statut : Fermé  ", markers, "closed", true},
		{"status line clos", "", "Statut : clos", markers, "closed", true},
		{"status line waiting", "", "Statut : en attente", markers, "waiting", true},
		{"status line nbsp", "", "Statut\u00a0: en attente", markers, "waiting", true},
		{"status line bold", "", "*Statut :* résolu", markers, "resolved", true},
		{"status line crlf", "", "x\r\nStatus : closed\r\n", markers, "closed", true},
		{"status in a sentence", "", "Le statut : résolu dès demain, normalement.", markers, "", false},
		{"status unknown value", "", "Statut : en cours", markers, "", false},
		{"key not configured", "", "Statut : en attente", map[string][]string{"resolved": {"[RESOLU]"}}, "", false},
		{"nil markers use defaults", "Re: [RESOLVED] x", "", nil, "resolved", true},
		{"nil markers status line", "", "Statut : fermé", nil, "closed", true},
		{"nothing", "Re: [ENT-42] x", "Merci", markers, "", false},
		{"marker word in status line", "", "Statut : waiting", map[string][]string{"waiting": {"[WAITING]"}}, "waiting", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := DetectStatus(tc.subject, tc.text, tc.markers)
			if got != tc.want || ok != tc.ok {
				t.Errorf("DetectStatus = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestDetectStatusOnCorpus runs DetectStatus on extracted replies, the way
// the bridge will: the status line must survive the extraction.
func TestDetectStatusOnCorpus(t *testing.T) {
	tests := map[string]string{
		"12-outlook-web-fr-status":     "resolved",
		"37-mutt-status-resolved":      "resolved",
		"40-iso-8859-15-8bit":          "closed",
		"01-gmail-web-fr":              "",
		"08-outlook-desktop-fr-latin1": "",
	}
	for name, want := range tests {
		in := testParseFile(t, filepath.Join("testdata", "replies", name+".eml"))
		got, _ := DetectStatus(in.Subject, ExtractReply(in.Text, in.HTML), nil)
		if got != want {
			t.Errorf("%s: status %q, want %q", name, got, want)
		}
	}
}
