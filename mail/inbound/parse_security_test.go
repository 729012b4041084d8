package inbound

import (
	"mime"
	"strings"
	"testing"
)

// An attachment's content type reaches the ENT in callbacks and the read
// API: one the mime package cannot read, however the sender spelled it,
// travels as application/octet-stream, never as the raw header text.
func TestAttachmentContentTypeFromInputIsCanonical(t *testing.T) {
	tests := []struct {
		name, ctype, want string
	}{
		{"plain", "image/png", "image/png"},
		{"upper case with parameters", "IMAGE/PNG; name=x.png", "image/png"},
		{"garbage after the type", `image/png "<script>" ;;;`, "application/octet-stream"},
		{"spaces inside the type", "image / png; name=x.png", "application/octet-stream"},
		{"quote in the type", `image/png"x; name=x.png`, "application/octet-stream"},
		{"non-ASCII", "image/pngé; name=x.png", "application/octet-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := "From: agent@desk.example\r\nTo: assistance@ent.example\r\nSubject: pj\r\n" +
				"Message-ID: <ct@desk.example>\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nvoir pièce jointe\r\n" +
				"--b\r\nContent-Type: " + tc.ctype + "\r\nContent-Disposition: attachment; filename=x.png\r\n\r\nPNGDATA\r\n" +
				"--b--\r\n"
			in := testParse(t, raw, ParseLimits{})
			if len(in.Attachments) != 1 {
				t.Fatalf("%d attachments", len(in.Attachments))
			}
			got := in.Attachments[0].ContentType
			if got != tc.want {
				t.Errorf("content type %q, want %q", got, tc.want)
			}
			if mt, _, err := mime.ParseMediaType(got); err != nil || mt != got || strings.ContainsAny(got, " \"<>") {
				t.Errorf("content type %q is not a bare media type", got)
			}
		})
	}
}
