package httpapi

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkDecodeEvent decodes the valid bodies of testdata (one op is
// all of them) and a large comment: a long body and a 256 KiB attachment,
// the strings a decoder spends its time on.
func BenchmarkDecodeEvent(b *testing.B) {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no body in testdata/valid: %v", err)
	}
	var bodies [][]byte
	size := 0
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
		size += len(body)
	}
	b.Run("valid", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for _, body := range bodies {
				if _, err := DecodeEvent(testMsgID, body, DecodeLimits{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})

	large := []byte(edit(b, "ticket_commented.json", func(m map[string]any) {
		cm := at(m, "data", "comment")
		cm["body"] = strings.Repeat("Ligne « accentuée » du message,\tavec une tabulation.\n", 1000)
		cm["attachments"] = []any{map[string]any{"id": "a-1", "filename": "capture.png", "content_type": "image/png",
			"content_base64": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x89PNG\r\n\x1a\n", 32<<10)))}}
	}))
	b.Run("large", func(b *testing.B) {
		b.SetBytes(int64(len(large)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeEvent(testMsgID, large, DecodeLimits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
