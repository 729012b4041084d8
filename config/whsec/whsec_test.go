package whsec

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	k24 := []byte("0123456789abcdefghijklmn")
	k26 := []byte("0123456789abcdefghijklmnop")
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr string
	}{
		{name: "24 bytes", in: Prefix + base64.StdEncoding.EncodeToString(k24), want: k24},
		{name: "26 bytes, padded", in: Format(k26), want: k26},
		{name: "64 bytes", in: Prefix + strings.Repeat("A", 86) + "==", want: make([]byte, 64)},
		{name: "Standard Webhooks vector", in: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: mustB64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{name: "empty", in: "", wantErr: `must start with "whsec_"`},
		{name: "prefix only", in: Prefix, wantErr: "not 0"},
		{name: "bare base64", in: base64.StdEncoding.EncodeToString(k24), wantErr: `must start with "whsec_"`},
		{name: "surrounding white space", in: " " + Format(k24) + "\n", wantErr: `must start with "whsec_"`},
		// encoding/base64 skips line breaks: a secret read from a file
		// with its final newline decodes (config has always accepted it).
		{name: "trailing newline", in: Format(k24) + "\n", want: k24},
		{name: "unpadded", in: Prefix + base64.RawStdEncoding.EncodeToString(k26), wantErr: "standard base64"},
		{name: "url alphabet", in: Prefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff, 0xfe}, 8)), wantErr: "standard base64"},
		{name: "not base64", in: "whsec_c2VjcmV0!!!c2VjcmV0c2VjcmV0c2Vj", wantErr: "standard base64"},
		{name: "21 bytes", in: Prefix + strings.Repeat("A", 28), wantErr: "24 to 64 bytes, not 21"},
		{name: "16 bytes", in: Format([]byte("0123456789abcdef")), wantErr: "not 16"},
		{name: "69 bytes", in: Prefix + strings.Repeat("A", 92), wantErr: "not 69"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				// The secret must never appear in an error, it may be logged.
				if body := strings.TrimPrefix(strings.TrimSpace(tt.in), Prefix); len(body) > 4 && strings.Contains(err.Error(), body) {
					t.Fatalf("error %q reveals the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if Format(got) != strings.TrimSuffix(tt.in, "\n") {
				t.Fatalf("Format(Parse(%q)) = %q", tt.in, Format(got))
			}
		})
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
