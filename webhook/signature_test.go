package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks reference libraries
// (libraries/go/webhook_test.go, TestWebhookSign, in
// github.com/standard-webhooks/standard-webhooks).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) []byte {
	t.Helper()
	k, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return k
}

func TestSignStandardWebhooksVector(t *testing.T) {
	key := mustSecret(t, vectorSecret)
	got := Sign(key, vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}

	h := http.Header{}
	h.Set("webhook-id", vectorMsgID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
	h.Set("webhook-signature", vectorSignature)
	v := &Verifier{Keys: [][]byte{key}, Now: func() time.Time { return time.Unix(vectorTimestamp+30, 0) }}
	id, ts, err := v.Verify(h, []byte(vectorPayload))
	if err != nil {
		t.Fatalf("Verify of the reference vector: %v", err)
	}
	if id != vectorMsgID || ts.Unix() != vectorTimestamp {
		t.Fatalf("Verify = %q, %d; want %q, %d", id, ts.Unix(), vectorMsgID, vectorTimestamp)
	}
}

func TestParseSecret(t *testing.T) {
	want24 := []byte("0123456789abcdefghijklmn")
	b64 := base64.StdEncoding.EncodeToString(want24)
	// ParseSecret is config's rule, whsec.Parse (its own table test is in
	// config/whsec): "whsec_" and padded standard base64 of 24 to 64
	// bytes. Bare keys, unpadded base64 and keys under 24 bytes, which
	// ParseSecret once took, are refused as the configuration refuses them.
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr string
	}{
		{name: "whsec prefix", in: "whsec_" + b64, want: want24},
		{name: "trailing newline", in: "whsec_" + b64 + "\n", want: want24},
		{name: "padded", in: "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnop")), want: []byte("0123456789abcdefghijklmnop")},
		{name: "bare base64", in: b64, wantErr: `webhook: secret must start with "whsec_"`},
		{name: "unpadded", in: "whsec_" + base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnop")), wantErr: "standard base64"},
		{name: "empty", in: "", wantErr: `must start with "whsec_"`},
		{name: "prefix only", in: "whsec_", wantErr: "24 to 64 bytes"},
		{name: "not base64", in: "whsec_c2VjcmV0!!!c2VjcmV0c2VjcmV0", wantErr: "standard base64"},
		{name: "url alphabet", in: "whsec_" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe}), wantErr: "standard base64"},
		{name: "too short", in: "whsec_dG9vc2hvcnQ=", wantErr: "24 to 64 bytes"},
		{name: "16 bytes", in: "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), wantErr: "24 to 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecret(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				// The secret must never appear in an error, it may be logged.
				if body := strings.TrimPrefix(strings.TrimSpace(tt.in), "whsec_"); len(body) > 4 && strings.Contains(err.Error(), body) {
					t.Fatalf("error %q reveals the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret(%q): %v", tt.in, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("ParseSecret(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	oldKey := mustSecret(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte("old-key-old-key-old-key!")))
	newKey := mustSecret(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte("new-key-new-key-new-key!")))
	now := time.Date(2025, 3, 10, 8, 15, 0, 0, time.UTC)
	body := []byte(`{"type":"ticket.escalation_requested","timestamp":"2025-03-10T08:15:00Z","data":{}}`)
	const id = "msg_2tRkB9"

	// signed returns the headers of body signed with key at ts.
	signed := func(key []byte, ts time.Time) http.Header {
		h := http.Header{}
		SignHeaders(h, key, id, ts, body)
		return h
	}
	sigOf := func(key []byte, id string, ts time.Time, body []byte) string { return Sign(key, id, ts, body) }

	tests := []struct {
		name    string
		keys    [][]byte
		header  func() http.Header
		body    []byte
		wantErr error
	}{
		{name: "valid", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now) }},
		{name: "several entries, others ignored", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			good := h.Get("webhook-signature")
			_, raw, _ := strings.Cut(good, ",")
			h.Set("webhook-signature", strings.Join([]string{
				"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
				"v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)),
				"v2," + raw, // same bytes, but not a scheme we know
				"v1,not base64",
				good,
				"v1",
			}, " "))
			return h
		}},
		{name: "entries folded over two header lines", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			good := h.Get("webhook-signature")
			h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
			h.Add("webhook-signature", good)
			return h
		}},
		{name: "rotation: old key still listed", keys: [][]byte{newKey, oldKey}, header: func() http.Header { return signed(oldKey, now) }},
		{name: "rotation: new key while old listed", keys: [][]byte{oldKey, newKey}, header: func() http.Header { return signed(newKey, now) }},
		{name: "rotation: old key removed", keys: [][]byte{newKey}, header: func() http.Header { return signed(oldKey, now) }, wantErr: ErrInvalidSignature},
		{name: "rotation: sender signs with both", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(oldKey, now)
			h.Set("webhook-signature", sigOf(oldKey, id, now, body)+" "+sigOf(newKey, id, now, body))
			return h
		}},
		{name: "empty key listed is skipped", keys: [][]byte{{}, newKey}, header: func() http.Header { return signed(newKey, now) }},
		{name: "no key configured", keys: nil, header: func() http.Header { return signed(newKey, now) }, wantErr: ErrInvalidSignature},
		{name: "only an empty key", keys: [][]byte{{}}, header: func() http.Header {
			h := signed(nil, now) // what an attacker could compute
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "tampered body", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now) },
			body: bytes.Replace(body, []byte("escalation_requested"), []byte("created"), 1), wantErr: ErrInvalidSignature},
		{name: "body with one more space", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now) },
			body: append(append([]byte{}, body...), ' '), wantErr: ErrInvalidSignature},
		{name: "tampered id", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-id", id+"x")
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "tampered timestamp", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10))
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "signature of another key", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-signature", sigOf(oldKey, id, now, body))
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "at the tolerance, in the past", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now.Add(-5*time.Minute)) }},
		{name: "at the tolerance, in the future", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now.Add(5*time.Minute)) }},
		{name: "stale", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now.Add(-5*time.Minute-time.Second)) }, wantErr: ErrStaleTimestamp},
		{name: "too far in the future", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now.Add(5*time.Minute+time.Second)) }, wantErr: ErrStaleTimestamp},
		{name: "replayed a day later", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, now.Add(-24*time.Hour)) }, wantErr: ErrStaleTimestamp},
		{name: "epoch", keys: [][]byte{newKey}, header: func() http.Header { return signed(newKey, time.Unix(0, 0)) }, wantErr: ErrStaleTimestamp},
		{name: "missing id", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Del("webhook-id")
			return h
		}, wantErr: ErrMissingHeaders},
		{name: "missing timestamp", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Del("webhook-timestamp")
			return h
		}, wantErr: ErrMissingHeaders},
		{name: "missing signature", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Del("webhook-signature")
			return h
		}, wantErr: ErrMissingHeaders},
		{name: "blank signature", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-signature", "   ")
			return h
		}, wantErr: ErrMissingHeaders},
		{name: "empty id", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-id", "")
			return h
		}, wantErr: ErrMissingHeaders},
		{name: "no headers at all", keys: [][]byte{newKey}, header: func() http.Header { return http.Header{} }, wantErr: ErrMissingHeaders},
	}
	for _, bad := range []string{"abc", "-5", "+" + strconv.FormatInt(now.Unix(), 10), strconv.FormatInt(now.Unix(), 10) + ".5",
		" " + strconv.FormatInt(now.Unix(), 10), "0" + strconv.FormatInt(now.Unix(), 10), "1e9", "0x67cea0f4", "99999999999999999999", "2025-03-10T08:15:00Z"} {
		tests = append(tests, struct {
			name    string
			keys    [][]byte
			header  func() http.Header
			body    []byte
			wantErr error
		}{name: "garbage timestamp " + strconv.Quote(bad), keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-timestamp", bad)
			return h
		}, wantErr: ErrInvalidSignature})
	}
	for _, bad := range []string{"v1", "v1,", ",", "garbage", "v1,%%%%", "v1," + strings.Repeat("A", 10000), "V1," + strings.TrimPrefix(sigOf(newKey, id, now, body), "v1,")} {
		tests = append(tests, struct {
			name    string
			keys    [][]byte
			header  func() http.Header
			body    []byte
			wantErr error
		}{name: "garbage signature " + strconv.Quote(bad[:min(len(bad), 20)]), keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Set("webhook-signature", bad)
			return h
		}, wantErr: ErrInvalidSignature})
	}
	tests = append(tests, []struct {
		name    string
		keys    [][]byte
		header  func() http.Header
		body    []byte
		wantErr error
	}{
		{name: "same MAC spelled with stray padding bits", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			sig := h.Get("webhook-signature") // "v1," + 43 characters + "="
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
			last := strings.IndexByte(alphabet, sig[len(sig)-2])
			odd := sig[:len(sig)-2] + string(alphabet[last^1]) + "="
			if raw, err := base64.StdEncoding.DecodeString(odd[3:]); err != nil || Sign(newKey, id, now, body) != "v1,"+base64.StdEncoding.EncodeToString(raw) {
				t.Fatalf("test setup: %q does not decode to the MAC: %v", odd, err)
			}
			h.Set("webhook-signature", odd)
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "id given twice", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Add("webhook-id", "msg_other")
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "timestamp given twice", keys: [][]byte{newKey}, header: func() http.Header {
			h := signed(newKey, now)
			h.Add("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "id with a space, even if signed", keys: [][]byte{newKey}, header: func() http.Header {
			h := http.Header{}
			SignHeaders(h, newKey, "msg 1", now, body)
			return h
		}, wantErr: ErrInvalidSignature},
		{name: "id too long, even if signed", keys: [][]byte{newKey}, header: func() http.Header {
			h := http.Header{}
			SignHeaders(h, newKey, strings.Repeat("m", 257), now, body)
			return h
		}, wantErr: ErrInvalidSignature},
	}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: tt.keys, Now: func() time.Time { return now }}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			h := tt.header()
			gotID, gotTS, err := v.Verify(h, b)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				if gotID != "" || !gotTS.IsZero() {
					t.Fatalf("Verify returned %q, %v with an error", gotID, gotTS)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if gotID != h.Get("webhook-id") {
				t.Fatalf("id = %q, want %q", gotID, h.Get("webhook-id"))
			}
			wantTS, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
			if gotTS.Unix() != wantTS || gotTS.Location() != time.UTC {
				t.Fatalf("ts = %v, want %d in UTC", gotTS, wantTS)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	key := mustSecret(t, vectorSecret)
	signedAt := time.Unix(vectorTimestamp, 0)
	h := http.Header{}
	SignHeaders(h, key, vectorMsgID, signedAt, []byte(vectorPayload))
	tests := []struct {
		tolerance time.Duration
		skew      time.Duration
		wantErr   error
	}{
		{0, 4 * time.Minute, nil},                          // default: 5 minutes
		{0, 6 * time.Minute, ErrStaleTimestamp},            // default
		{-time.Second, 6 * time.Minute, ErrStaleTimestamp}, // negative: default
		{time.Minute, 59 * time.Second, nil},
		{time.Minute, -61 * time.Second, ErrStaleTimestamp},
		{time.Hour, 59 * time.Minute, nil},
	}
	for _, tt := range tests {
		v := &Verifier{Keys: [][]byte{key}, Tolerance: tt.tolerance, Now: func() time.Time { return signedAt.Add(tt.skew) }}
		_, _, err := v.Verify(h, []byte(vectorPayload))
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("tolerance %v, clock %v ahead: err = %v, want %v", tt.tolerance, tt.skew, err, tt.wantErr)
		}
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	key := mustSecret(t, vectorSecret)
	body := []byte(`{}`)
	h := http.Header{}
	SignHeaders(h, key, "msg_now", time.Now(), body)
	if _, _, err := (&Verifier{Keys: [][]byte{key}}).Verify(h, body); err != nil {
		t.Fatalf("Verify with the real clock: %v", err)
	}
	// The reference vector is from 2021: the real clock calls it stale.
	h = http.Header{}
	SignHeaders(h, key, vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if _, _, err := (&Verifier{Keys: [][]byte{key}}).Verify(h, []byte(vectorPayload)); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("Verify of a 2021 message: %v, want ErrStaleTimestamp", err)
	}
}

func TestSignHeaders(t *testing.T) {
	key := mustSecret(t, vectorSecret)
	h := http.Header{}
	SignHeaders(h, key, vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	want := map[string]string{
		"webhook-id":        vectorMsgID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": vectorSignature,
	}
	for name, value := range want {
		if got := h.Values(name); len(got) != 1 || got[0] != value {
			t.Errorf("%s = %q, want [%q]", name, got, value)
		}
	}
	// Signing again replaces rather than adds.
	SignHeaders(h, key, "msg_2", time.Unix(vectorTimestamp+1, 0), []byte(vectorPayload))
	if got := h.Values("webhook-signature"); len(got) != 1 || got[0] == vectorSignature {
		t.Errorf("after a second SignHeaders, webhook-signature = %q", got)
	}
}
