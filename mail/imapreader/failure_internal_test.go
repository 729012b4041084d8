package imapreader

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"supportbridge/bridge"
)

// TestHandlerFailureClasses pins which of a handler's errors quarantine
// the message (permanent) and which leave it for a later pass (temporary).
// A context that ended is neither: guard checks it first and leaves the
// message.
func TestHandlerFailureClasses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"a plain error", errors.New("redis: connection refused"), false},
		{"a context that ended", context.Canceled, false},
		{"marked permanent", bridge.Permanent(errors.New("cannot parse")), true},
		{"marked permanent, wrapped", fmt.Errorf("apply: %w", bridge.Permanent(errors.New("x"))), true},
		{"the domain unavailable", bridge.Errorf(bridge.CodeUnavailable, "store down"), false},
		{"the domain's refusal", bridge.Errorf(bridge.CodeUnknownTicket, "no ticket 42"), true},
		{"the domain's refusal, wrapped", fmt.Errorf("apply: %w", bridge.Errorf(bridge.CodeInvalid, "x")), true},
		{"the domain's refusal, not kept in the chain", fmt.Errorf("transient: apply: %v",
			bridge.Errorf(bridge.CodeInvalid, "x")), false},
	} {
		if got := permanent(tt.err); got != tt.permanent {
			t.Errorf("%s: permanent(%v) = %v, want %v", tt.name, tt.err, got, tt.permanent)
		}
	}
}
