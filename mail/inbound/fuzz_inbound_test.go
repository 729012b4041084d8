package inbound

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"supportbridge/bridge"
)

// testSeedMails returns the raw mails of testdata/replies and
// testdata/inbound, the seeds of the fuzzers.
func testSeedMails(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, dir := range []string{"replies", "inbound"} {
		paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		f.Fatal("no seed mails")
	}
	return out
}

func FuzzParseMessage(f *testing.F) {
	for _, m := range testSeedMails(f) {
		f.Add(m)
	}
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d\r\n\r\nhi\r\n--x--\r\n"))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=r\n\n--r\nContent-Type: message/delivery-status\n\nAction: failed\n--r--"))
	f.Add([]byte("Subject: =?x-unknown?q?abc?=\n\n\xff\xfe"))
	lim := ParseLimits{MaxBytes: 1 << 20, MaxAttachmentBytes: 64 << 10, MaxAttachments: 8, MaxParts: 50, MaxDepth: 6}
	opt := ClassifyOptions{Identity: "supportbridge@ent.example", OwnDomains: []string{"ent.example"}, RefPattern: regexp.MustCompile(`\[Desk #(\d+)\]`)}
	// Built once: a fuzzer wants many executions a second.
	parser := NewMessageParser(lim)
	extractor := NewReplyExtractor()
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := parser.Parse(raw)
		if err != nil {
			if in != nil {
				t.Fatal("an error with a message")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error is neither ErrMalformed nor ErrTooLarge: %v", err)
			}
			return
		}
		if !utf8.ValidString(in.Text) || !utf8.ValidString(in.Subject) {
			t.Fatalf("invalid UTF-8 in Text or Subject")
		}
		if len(in.Attachments) > lim.MaxAttachments {
			t.Fatalf("%d attachments over the limit", len(in.Attachments))
		}
		for _, a := range in.Attachments {
			if a.Filename == "" || strings.ContainsAny(a.Filename, "/\\\x00\r\n") || !utf8.ValidString(a.Filename) {
				t.Fatalf("unsafe file name %q", a.Filename)
			}
			if int64(len(a.Content)) > lim.MaxAttachmentBytes {
				t.Fatalf("attachment of %d bytes over the limit", len(a.Content))
			}
		}
		if strings.Contains(strings.ToLower(in.HTML), "<script") {
			t.Fatalf("script left in HTML")
		}
		c := Classify(in, opt)
		if c.Kind < KindReply || c.Kind > KindBounce {
			t.Fatalf("kind %v", c.Kind)
		}
		_ = extractor.Extract(in.Text, in.HTML)
		_, _ = SubjectTicketID(in.Subject, "ENT")
		_, _ = DetectStatus(in.Subject, in.Text, nil)
	})
}

func FuzzExtractReply(f *testing.F) {
	for _, m := range testSeedMails(f) {
		in, err := ParseMessage(m, DefaultParseLimits())
		if err == nil {
			f.Add(in.Text, in.HTML)
		}
	}
	f.Add("Merci\n-- \nsig", "")
	f.Add("", `<div>a</div><div class="gmail_quote"><blockquote type="cite">b</blockquote></div>`)
	extractor := NewReplyExtractor()
	f.Fuzz(func(t *testing.T, text, html string) {
		got := extractor.Extract(text, html)
		if utf8.ValidString(text) && utf8.ValidString(html) && !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 out of valid input")
		}
		if got != strings.TrimRight(got, " \t\r\n") {
			t.Fatalf("trailing white space kept: %q", got)
		}
		if html == "" && strings.TrimSpace(normalizeReply(text)) != "" && got == "" {
			t.Fatalf("a non-blank text gave an empty reply")
		}
	})
}

func FuzzSubjectTicketID(f *testing.F) {
	for _, m := range testSeedMails(f) {
		in, err := ParseMessage(m, DefaultParseLimits())
		if err == nil {
			f.Add(in.Subject, "ENT")
		}
	}
	f.Add("RE : TR: [ent - 42 ] x", "ENT")
	f.Add("[Desk #5678] [ENT-a.b:c@d-e]", "ent")
	f.Fuzz(func(t *testing.T, subject, tag string) {
		id, ok := SubjectTicketID(subject, tag)
		if !ok {
			if id != "" {
				t.Fatalf("id %q without ok", id)
			}
			return
		}
		if len(id) == 0 || len(id) > 128 {
			t.Fatalf("id length %d", len(id))
		}
		for i := 0; i < len(id); i++ {
			if !bridge.IDChar(id[i]) {
				t.Fatalf("id %q has %q", id, id[i])
			}
		}
		if !strings.Contains(subject, id) {
			t.Fatalf("id %q not in subject", id)
		}
		// The id round-trips through the canonical tag.
		if again, ok := SubjectTicketID("Re: ["+strings.TrimSpace(tag)+"-"+id+"] x", tag); !ok || again != id {
			t.Fatalf("round trip: %q, %v", again, ok)
		}
	})
}
