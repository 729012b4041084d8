package inbound

import (
	"errors"
	"testing"

	"supportbridge/bridge"
)

// TestTemporaryFailure pins what inbound returns when the store or the
// service cannot be reached: a temporary failure (bridge's taxonomy), so
// the IMAP reader leaves the mail for a later pass, with the text the
// reader's logs have always shown.
func TestTemporaryFailure(t *testing.T) {
	for _, err := range []error{
		errors.New("redis: connection refused"),
		bridge.Errorf(bridge.CodeUnavailable, "store down"),
		bridge.Permanent(errors.New("never kept")),
	} {
		got := temporary("apply reply", err)
		if bridge.IsPermanent(got) || got.Error() != "transient: apply reply: "+err.Error() {
			t.Errorf("temporary(%v) = %v, permanent %v", err, got, bridge.IsPermanent(got))
		}
	}
}
