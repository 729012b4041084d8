// Package whsec is the one format of a Standard Webhooks secret in
// supportbridge: "whsec_" followed by the standard, padded base64 of a key
// of 24 to 64 bytes (the spec's recommended sizes).
//
// It imports nothing of ours, so that both config (which imports nothing
// of ours) and webhook can use it: config validates and decodes the
// configured secrets with it, webhook.ParseSecret is it.
package whsec

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every secret.
const Prefix = "whsec_"

// The key sizes accepted, in bytes.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// Parse returns the key of a secret. Nothing is trimmed: a secret with
// white space around it is refused. The error never holds the secret, not
// even a byte offset into it.
func Parse(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return nil, errors.New(`must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New(`must be "whsec_" followed by standard base64`)
	}
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return nil, fmt.Errorf("key must be %d to %d bytes, not %d", MinKeyBytes, MaxKeyBytes, len(key))
	}
	return key, nil
}

// Format returns the secret of a key: Prefix and its standard base64.
func Format(key []byte) string {
	return Prefix + base64.StdEncoding.EncodeToString(key)
}
