package inbound

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDeskProduct reads any mail as each help-desk product would: the
// product's recognition, number, kind and layout (GLPI's ticket dump among
// them) never panic, give one kind, and give valid, trimmed text.
func FuzzDeskProduct(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "desks", "*", "*.eml"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no desk mails: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	modes := DeskProductNames()
	x := NewReplyExtractor()
	f.Fuzz(func(t *testing.T, raw []byte, pick uint8) {
		in, err := ParseMessage(raw, DefaultParseLimits())
		if err != nil || in == nil {
			return
		}
		// One desk.product value per input (auto first), so that an input
		// costs one reading.
		for _, mode := range []string{modes[int(pick)%len(modes)]} {
			products, product := DeskProductFor(mode)
			opt := testClassifyOptions()
			opt.Products, opt.Product = products, product
			c := Classify(in, opt)
			if c.Kind < KindReply || c.Kind > KindDeskNotice {
				t.Fatalf("%s: kind %v", mode, c.Kind)
			}
			if (c.Kind == KindDeskNotice) != (c.DeskStatus != "") {
				t.Fatalf("%s: kind %v with desk status %q", mode, c.Kind, c.DeskStatus)
			}
			if c.DeskTag != "" && !strings.Contains(in.Subject, c.DeskTag) {
				t.Fatalf("%s: tag %q not in the subject", mode, c.DeskTag)
			}
			got := x.ExtractFor(in.Text, in.HTML, ReplyContext{Product: c.Product, Subject: in.Subject,
				OwnAddresses: []string{"assistance@ent.example"}, KeepForwards: true, Notice: c.Kind == KindDeskNotice})
			if !utf8.ValidString(got) {
				t.Fatalf("%s: invalid UTF-8 out", mode)
			}
			if got != strings.TrimRight(got, " \t\r\n") {
				t.Fatalf("%s: trailing white space kept: %q", mode, got)
			}
			if c.Kind == KindReply && strings.TrimSpace(in.Text) != "" && got == "" {
				t.Fatalf("%s: a reply with text gave an empty exchange", mode)
			}
		}
	})
}
