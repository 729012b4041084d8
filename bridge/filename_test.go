package bridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeFilename(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "capture écran.png", "capture écran.png"},
		{"unix path", "../../etc/passwd", "passwd"},
		{"windows path", `C:\Users\prof\Bureau\notes.docx`, "notes.docx"},
		{"line break to a header", "a\r\nX-Evil: 1.png", "a X-Evil_ 1.png"},
		{"controls", "a\x00b\r\nc.txt", "a b c.txt"},
		{"tab", "a\tb.png", "a b.png"},
		{"spaces folded", "rapport   \u00a0 final.pdf", "rapport final.pdf"},
		{"right-to-left override", "facture\u202Efdp.exe", "facturefdp.exe"},
		{"zero-width joiner", "a\u200db.png", "ab.png"},
		{"byte order mark", "\ufeffnote.txt", "note.txt"},
		{"windows reserved", `a:b*c?"d"<e>|f.txt`, "a_b_c__d__e__f.txt"},
		{"encoded word", "=?utf-8?q?=0D=0A?=.txt", "=_utf-8_q_=0D=0A_=.txt"},
		{"invalid utf-8", "bad\xff\xfeutf8.txt", "bad_utf8.txt"},
		{"replacement character", "a\uFFFDb.txt", "a_b.txt"},
		{"leading dots", "..htaccess", "htaccess"},
		{"hidden with spaces", "  .hidden  ", "hidden"},
		{"trailing dot and space", "note.txt. ", "note.txt"},
		{"trailing dots", "trailing...", "trailing"},
		{"double extension kept visible", "devoir.pdf.exe", "devoir.pdf.exe"},
		{"only dots", "..", ""},
		{"only a directory", "dir/", ""},
		{"only a format character", "\u202E", ""},
		{"empty", "", ""},
		{"long, extension kept", strings.Repeat("é", 150) + ".pdf", strings.Repeat("é", 98) + ".pdf"},
		{"long, long extension dropped", strings.Repeat("a", 190) + "." + strings.Repeat("b", 30), strings.Repeat("a", 190) + "." + strings.Repeat("b", 9)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SafeFilename(tc.in)
			if got != tc.want {
				t.Errorf("SafeFilename(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if SafeFilename(got) != got {
				t.Errorf("SafeFilename is not idempotent on %q", got)
			}
		})
	}
}

func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"a.pdf", "../x", "a\r\nb", "\u202Eexe.pdf", strings.Repeat("é", 150), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeFilename(in)
		if !utf8.ValidString(got) || len(got) > MaxFilenameBytes {
			t.Fatalf("SafeFilename(%q) = %q: invalid or too long", in, got)
		}
		if strings.ContainsAny(got, "/\\<>:\"|?*\x00\r\n\t\u202E\u200d\uFFFD") {
			t.Fatalf("SafeFilename(%q) = %q keeps a refused character", in, got)
		}
		if strings.HasPrefix(got, ".") || strings.HasSuffix(got, ".") || strings.TrimSpace(got) != got {
			t.Fatalf("SafeFilename(%q) = %q: dots or spaces at an end", in, got)
		}
		if SafeFilename(got) != got {
			t.Fatalf("SafeFilename not idempotent on %q", got)
		}
	})
}
