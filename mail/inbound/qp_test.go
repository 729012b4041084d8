package inbound

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// TestLenientQP sets the fallback beside mime/quotedprintable (go-message's
// decoder) on the malformed quoted-printable seen in real mail: the stdlib
// takes most of it; lenientQP is only for what it refuses (stdErr).
func TestLenientQP(t *testing.T) {
	long := strings.Repeat("<p>caf=C3=A9</p>", 300) // 4800 bytes on one line
	tests := []struct {
		name   string
		in     string
		want   string // lenientQP
		std    string // what the stdlib reader returns before it stops
		stdErr bool
	}{
		{"well formed", "caf=C3=A9 cr=\r\n=C3=A8me\r\n", "café crème\r\n", "café crème\r\n", false},
		{"lower-case hex", "caf=c3=a9\r\n", "café\r\n", "café\r\n", false},
		{"bad escape", "100=% s=C3=BBr =ZZ fin", "100=% sûr =ZZ fin", "100=% sûr =ZZ fin", false},
		{"one hex digit at the end", "a=4", "a=4", "a=4", false},
		{"= at the end", "fin=", "fin", "fin", false},
		{"= and spaces at the end", "fin= \t", "fin", "fin", false},
		{"spaces before a soft break", "une= \t\r\nligne\r\n", "uneligne\r\n", "uneligne\r\n", false},
		{"LF soft break", "une=\nligne\n", "uneligne\n", "uneligne\n", false},
		{"LF line ends", "deux\nlignes\n", "deux\nlignes\n", "deux\nlignes\n", false},
		{"8-bit bytes", "caf\xe9 =E9\r\n", "caf\xe9 \xe9\r\n", "caf\xe9 \xe9\r\n", false},
		{"soft break only", "=\r\n", "", "", false},
		// The stdlib drops spaces at the end of a line (RFC 2045 says
		// they were added in transit); lenientQP keeps them.
		{"spaces at the end of a line", "fin  \r\n", "fin  \r\n", "fin\r\n", false},

		// What the stdlib refuses.
		{"lone = on the last line", "fin\r\n=", "fin\r\n", "fin\r\n", true},
		{"control byte", "s=C3=BBr\x01 =\r\nfin", "sûr\x01 fin", "sûr", true},
		{"ISO-2022-JP escape", "a\x1b$B\x1b(B b\r\n", "a\x1b$B\x1b(B b\r\n", "a", true},
		{"NUL", "a\x00b\r\n", "a\x00b\r\n", "a", true},
		{"DEL", "a\x7fb\r\n", "a\x7fb\r\n", "a", true},
		{"soft break at a bare CR", "mac=\rbreak\r", "macbreak\r", "mac", true},
		{"= CR CRLF", "a=\r\r\nb", "a\r\nb", "a", true},
		{"literal = before a soft break", "a==\r\nb", "a=b", "a", true},
		{"line longer than 4096 bytes", long + "\r\n", strings.Repeat("<p>café</p>", 300) + "\r\n",
			strings.Repeat("<p>café</p>", 4096/len("<p>caf=C3=A9</p>")), true}, // its first 4096 bytes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lenientQP([]byte(tt.in)); string(got) != tt.want {
				t.Errorf("lenientQP = %q; want %q", got, tt.want)
			}
			std, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader([]byte(tt.in))))
			if string(std) != tt.std || (err != nil) != tt.stdErr {
				t.Errorf("stdlib = %q, %v; want %q, error %v", std, err, tt.std, tt.stdErr)
			}
		})
	}
}
