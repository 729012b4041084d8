package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary files: it must never panic, and what it
// answers must hold together (a valid config works with its helpers, an
// invalid one lists its problems one a line).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"~",
		"[]",
		minimal(""),
		minimal("redis:\n  db: ${DB}\n  password: '$$${PW:-x}'\n"),
		minimal("structures:\n  - &s {id: s1, referents: [&r {id: r, email: a@b.example}]}\n  - {<<: *s, id: s2, referents: [*r]}\n"),
		minimal("structures:\n  - &s {id: s1, <<: *s}\n"),
		minimal("a: &a [x]\nb: [*a, *a]\n"),
		"listen: [a\n",
		"---\n---\n",
		"? [a]\n: b\n",
		"listen: !!binary aGVsbG8=\n",
		"attachments: {max_bytes: 99999999999999999999TiB, max_count: 1e400}\n",
	} {
		f.Add([]byte(s))
	}
	env := envFunc(map[string]string{"DB": "3", "PW": "p", "SB_WEBHOOK_SECRET": testWebhookSecret, "SB_API_TOKEN": testToken})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env)
		if err != nil {
			if cfg != nil {
				t.Fatal("a config came back with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %T %v is not a ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "\r\n") {
					t.Fatalf("problem %q is not one non-empty line", p)
				}
			}
			// The same input gives the same answer.
			_, again := Parse(data, env)
			if again == nil || again.Error() != err.Error() {
				t.Fatalf("second parse differs:\n%v\n---\n%v", err, again)
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without an error")
		}
		keys, err := cfg.WebhookKeys()
		if err != nil || len(keys) == 0 {
			t.Fatalf("valid config without webhook keys: %v", err)
		}
		if _, err := cfg.CallbackKey(); err != nil {
			t.Fatalf("valid config with a bad callback key: %v", err)
		}
		if _, err := cfg.Desk.ReferenceRegexp(); err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Structures {
			for _, r := range s.Referents {
				if r.Digest == "" || r.Locale == "" {
					t.Fatalf("referent %+v not normalized", r)
				}
			}
		}
		again, err := Parse(data, env)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
