package config

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretIsNeverPrinted(t *testing.T) {
	env := fullEnv()
	cfg, err := Load("testdata/full.yaml", envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		env["SB_REDIS_PASSWORD"], env["SB_WEBHOOK_SECRET"], env["SB_WEBHOOK_SECRET_OLD"], env["SB_CALLBACK_SECRET"],
		env["SB_API_TOKEN"], env["SB_SIGNING_KEY"], env["SB_SMTP_PASSWORD"], env["SB_IMAP_PASSWORD"],
	}
	// The base64 parts too, in case something strips the prefix.
	for _, s := range secrets[1:4] {
		secrets = append(secrets, strings.TrimPrefix(s, "whsec_"))
	}
	one := cfg.Desk.SigningKey

	outputs := map[string]func() (string, error){
		"%v":       func() (string, error) { return fmt.Sprintf("%v", cfg), nil },
		"%+v":      func() (string, error) { return fmt.Sprintf("%+v", cfg), nil },
		"%#v":      func() (string, error) { return fmt.Sprintf("%#v", cfg), nil },
		"%s":       func() (string, error) { return fmt.Sprintf("%s", cfg.Redis.Password), nil },
		"%v value": func() (string, error) { return fmt.Sprintf("%v", *cfg), nil },
		"secret verbs": func() (string, error) {
			return fmt.Sprintf("%v %+v %#v %s %q %x %X %10s %T", one, one, one, one, one, one, one, one, one), nil
		},
		"secret slice": func() (string, error) {
			return fmt.Sprintf("%v %#v %q", cfg.ENT.APITokens, cfg.ENT.WebhookSecrets, cfg.ENT.WebhookSecrets), nil
		},
		"print":          func() (string, error) { return fmt.Sprint(cfg.Redis, cfg.SMTP, one) + fmt.Sprintln(cfg.IMAP), nil },
		"error wrapping": func() (string, error) { return fmt.Errorf("bad %v: %w", one, errors.New("x")).Error(), nil },
		"json": func() (string, error) {
			b, err := json.Marshal(cfg)
			return string(b), err
		},
		"json indent secret": func() (string, error) {
			b, err := json.MarshalIndent(map[string]any{"k": one, "l": []Secret{one}}, "", " ")
			return string(b), err
		},
		"yaml": func() (string, error) {
			b, err := yaml.Marshal(cfg)
			return string(b), err
		},
		"xml": func() (string, error) {
			type holder struct{ K Secret }
			b, err := xml.Marshal(holder{one})
			return string(b), err
		},
		"slog text": func() (string, error) {
			var buf bytes.Buffer
			l := slog.New(slog.NewTextHandler(&buf, nil))
			l.Info("cfg", "cfg", cfg, "redis", cfg.Redis, "key", one, slog.Any("tokens", cfg.ENT.APITokens))
			return buf.String(), nil
		},
		"slog json": func() (string, error) {
			var buf bytes.Buffer
			l := slog.New(slog.NewJSONHandler(&buf, nil))
			l.Info("cfg", "cfg", cfg, "smtp", cfg.SMTP, "key", one, slog.Any("tokens", cfg.ENT.APITokens))
			return buf.String(), nil
		},
	}
	for name, out := range outputs {
		s, err := out()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret: %s", name, s)
				break
			}
		}
		if !strings.Contains(s, redacted) {
			t.Errorf("%s does not say [redacted]: %s", name, s)
		}
	}
	if one.Reveal() != env["SB_SIGNING_KEY"] {
		t.Error("Reveal does not give the value")
	}
}

func TestSecretDecodesFromJSON(t *testing.T) {
	// Decoding is untouched: only output is hidden.
	var v struct{ K Secret }
	if err := json.Unmarshal([]byte(`{"K":"value-1"}`), &v); err != nil || v.K.Reveal() != "value-1" {
		t.Errorf("json decode = %q, %v", v.K.Reveal(), err)
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "1_048_576", want: MiB},
		{in: "512KiB", want: 512 * KiB},
		{in: "20MiB", want: 20 * MiB},
		{in: "20 MiB", want: 20 * MiB},
		{in: "20mib", want: 20 * MiB},
		{in: "1GiB", want: GiB},
		{in: "2TiB", want: 2 * TiB},
		{in: "10MB", want: 10_000_000},
		{in: "10kB", want: 10_000},
		{in: "3GB", want: 3_000_000_000},
		{in: "7B", want: 7},
		{in: "1.5KiB", want: 1536},
		{in: "0.5MB", want: 500_000},
		{in: " 8KiB ", want: 8 * KiB},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "-1", err: true},
		{in: "-1MiB", err: true},
		{in: "10M", err: true},
		{in: "10K", err: true},
		{in: "10 parsecs", err: true},
		{in: "1e6", err: true},
		{in: "1.2.3MB", err: true},
		{in: ".", err: true},
		{in: "9223372036854775807", want: 9223372036854775807},
		{in: "9223372036854775808", err: true},
		{in: "9000000TiB", err: true},
		{in: "99999999999999999999.5TB", err: true},
	} {
		got, err := ParseByteSize(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("ParseByteSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{{0, "0"}, {1000, "1000"}, {KiB, "1KiB"}, {1536, "1536"}, {20 * MiB, "20MiB"}, {3 * GiB, "3GiB"}, {TiB, "1TiB"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		// What is written reads back the same.
		var back ByteSize
		if err := back.UnmarshalText([]byte(tc.in.String())); err != nil || back != tc.in {
			t.Errorf("round trip of %d = %d, %v", int64(tc.in), back, err)
		}
	}
	b, err := yaml.Marshal(struct{ S ByteSize }{20 * MiB})
	if err != nil || string(b) != "s: 20MiB\n" {
		t.Errorf("yaml = %q, %v", b, err)
	}
}

func TestByteSizeFromYAML(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want ByteSize
	}{
		{"attachments: {max_bytes: 1024}", 1024},
		{"attachments: {max_bytes: \"2048\"}", 2048},
		{"attachments: {max_bytes: 3MiB}", 3 * MiB},
	} {
		c := mustParse(t, minimal(tc.yaml), nil)
		if c.Attachments.MaxBytes != tc.want {
			t.Errorf("%s: %d, want %d", tc.yaml, c.Attachments.MaxBytes, tc.want)
		}
	}
}
