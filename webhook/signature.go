// Package webhook is Standard Webhooks (standardwebhooks.com), both ways:
// secrets, signing and verifying (signature.go), and the client that posts
// signed callbacks to the ENT (callback.go).
//
// It imports bridge only, for the callback sender's interface and its
// give-up error; bridge imports nothing of it. It holds no HTTP server:
// the daemon's intake of webhooks is in package httpapi.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"supportbridge/config/whsec"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// MaxMsgIDBytes bounds the webhook-id, which becomes a Redis key (see
// ValidMsgID).
const MaxMsgIDBytes = 256

// DefaultTolerance is how far a webhook-timestamp may be from our clock,
// either way, when Verifier.Tolerance is not set (the spec's 5 minutes).
const DefaultTolerance = 5 * time.Minute

const (
	// maxTimestampDigits keeps a Unix-seconds value well inside int64.
	maxTimestampDigits = 18
)

// The errors of Verify. The HTTP layer answers all three with 401:
// ErrStaleTimestamp as stale_timestamp, the others as invalid_signature.
// Verify wraps them with detail; test with errors.Is.
var (
	ErrMissingHeaders   = errors.New("webhook: missing signature headers")
	ErrInvalidSignature = errors.New("webhook: invalid signature")
	ErrStaleTimestamp   = errors.New("webhook: timestamp outside the tolerance")
)

// ParseSecret returns the key of a Standard Webhooks secret: "whsec_"
// followed by the standard base64 of a key of 24 to 64 bytes. It is the
// rule config validates the configured secrets with (package whsec); the
// error never holds the secret.
func ParseSecret(s string) ([]byte, error) {
	key, err := whsec.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("webhook: secret %w", err)
	}
	return key, nil
}

// Sign returns the webhook-signature value of a message: "v1," and the
// base64 HMAC-SHA256, under key, of msgID "." Unix seconds of ts "." body.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, msgID, ts.Unix(), body))
}

// SignHeaders sets the three Standard Webhooks headers of a message on h.
func SignHeaders(h http.Header, key []byte, msgID string, ts time.Time, body []byte) {
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(key, msgID, ts, body))
}

func mac(key []byte, msgID string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verifier checks Standard Webhooks signatures. Several keys are accepted
// at once so that a secret can be rotated: list the new key beside the old
// one, move the sender to the new one, then drop the old one.
type Verifier struct {
	Keys [][]byte
	// Tolerance is how far the webhook-timestamp may be from Now, in
	// either direction; zero or less means DefaultTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks the signature headers of a request against its raw body
// and returns the webhook-id (the idempotency key) and the signed time.
// The signature is checked before the timestamp, so ErrStaleTimestamp
// means an authentic message whose clock is off (or a replay), and a
// tampered timestamp gives ErrInvalidSignature. On error msgID and ts are
// zero: nothing unauthenticated leaks to the caller.
func (v *Verifier) Verify(h http.Header, body []byte) (msgID string, ts time.Time, err error) {
	ids, stamps, sigs := h.Values(HeaderID), h.Values(HeaderTimestamp), h.Values(HeaderSignature)
	if len(ids) == 0 || len(stamps) == 0 || len(sigs) == 0 ||
		ids[0] == "" || stamps[0] == "" || strings.TrimSpace(strings.Join(sigs, "")) == "" {
		return "", time.Time{}, ErrMissingHeaders
	}
	// Two ids or timestamps could be read differently by a proxy and by
	// us: refuse rather than pick one.
	if len(ids) > 1 || len(stamps) > 1 {
		return "", time.Time{}, fmt.Errorf("%w: %s or %s given more than once", ErrInvalidSignature, HeaderID, HeaderTimestamp)
	}
	id := ids[0]
	if !ValidMsgID(id) {
		return "", time.Time{}, fmt.Errorf("%w: %s must be 1 to %d visible ASCII characters", ErrInvalidSignature, HeaderID, MaxMsgIDBytes)
	}
	unix, ok := parseUnix(stamps[0])
	if !ok {
		return "", time.Time{}, fmt.Errorf("%w: %s must be an integer of Unix seconds", ErrInvalidSignature, HeaderTimestamp)
	}
	if len(v.Keys) == 0 {
		return "", time.Time{}, fmt.Errorf("%w: no key configured", ErrInvalidSignature)
	}

	// Proxies may fold repeated headers into one, so every value counts.
	var given [][]byte
	for _, value := range sigs {
		for _, entry := range strings.Fields(value) {
			version, sig, found := strings.Cut(entry, ",")
			if !found || version != "v1" {
				continue // other schemes (v1a: asymmetric…) are not ours
			}
			// Strict: a second spelling of the same bytes (stray padding
			// bits) is not a signature the sender made.
			raw, err := base64.StdEncoding.Strict().DecodeString(sig)
			if err != nil || len(raw) != sha256.Size {
				continue
			}
			given = append(given, raw)
		}
	}
	if len(given) == 0 {
		return "", time.Time{}, fmt.Errorf("%w: no v1 signature in %s", ErrInvalidSignature, HeaderSignature)
	}

	matched := false
	for _, key := range v.Keys {
		if len(key) == 0 {
			continue // an empty key would make the HMAC guessable
		}
		want := mac(key, id, unix, body)
		for _, g := range given {
			if hmac.Equal(g, want) {
				matched = true
			}
		}
	}
	if !matched {
		return "", time.Time{}, ErrInvalidSignature
	}

	ts = time.Unix(unix, 0).UTC()
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(ts); d > tol || d < -tol {
		return "", time.Time{}, fmt.Errorf("%w: signed at %s, more than %s away", ErrStaleTimestamp, ts.Format(time.RFC3339), tol)
	}
	return id, ts, nil
}

// parseUnix accepts only the plain decimal form of an integer of seconds:
// no sign, fraction, white space or leading zero. The MAC is computed over
// that form, so any other spelling would verify as a second copy of the
// same signed message.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > maxTimestampDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ValidMsgID reports whether id may be a webhook-id: 1 to MaxMsgIDBytes
// visible ASCII characters, no space. The id ends up in Redis keys, logs
// and answers.
func ValidMsgID(id string) bool {
	if id == "" || len(id) > MaxMsgIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}
