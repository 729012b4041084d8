package bridge

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFilenameBytes bounds a file name kept by SafeFilename.
const MaxFilenameBytes = 200

// SafeFilename is the one rule for the name of a file that came from outside
// (an ENT's attachment, a desk mail's part) before it is stored, shown in the
// API or written into a mail to the desk:
//   - only its last element is kept, after the last '/' or '\' (a Windows
//     client sends C:\Users\x\file.pdf);
//   - invalid UTF-8 and U+FFFD become '_';
//   - format characters (right-to-left overrides, zero-width joiners: they
//     disguise extensions, "facture\u202Efdp.exe") are dropped;
//   - control characters and other white space become one space, runs of
//     spaces fold into one;
//   - the characters Windows refuses in a name, <>:"|?*, become '_' (no MIME
//     encoded word survives, '?' being one of them);
//   - leading and trailing dots and spaces go (no hidden file, no name
//     Windows cannot open);
//   - at most MaxFilenameBytes bytes, cut on a character boundary, the
//     extension kept when it is short.
//
// A double extension (devoir.pdf.exe) is kept visible. The result is empty
// when nothing of the name is left: each caller says what that means (a
// refused field, a generated name).
func SafeFilename(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Cf, r):
			return -1
		case r == utf8.RuneError:
			return '_'
		case unicode.IsControl(r) || unicode.IsSpace(r):
			return ' '
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.Join(strings.Fields(name), " ")
	name = strings.Trim(name, ". ")
	if len(name) > MaxFilenameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		base := name[:MaxFilenameBytes-len(ext)]
		for len(base) > 0 && !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		name = strings.TrimRight(base, ". ") + ext
	}
	return name
}
