package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"supportbridge/bridge"
)

// TestFailureClasses pins the taxonomy: a failure is temporary unless
// marked permanent, through any wrapping that keeps the chain; a
// context that ended and the domain's refusals are not marked.
func TestFailureClasses(t *testing.T) {
	if bridge.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	refused := errors.New("550 5.1.1 no such user")
	for _, tt := range []struct {
		name      string
		err       error
		permanent bool
		text      string
	}{
		{"a plain error", errors.New("dial tcp: connection refused"), false, "dial tcp: connection refused"},
		{"a context that ended", context.Canceled, false, "context canceled"},
		{"a deadline gone by", fmt.Errorf("send: %w", context.DeadlineExceeded), false, "send: context deadline exceeded"},
		{"the domain's refusal", bridge.Errorf(bridge.CodeUnknownTicket, "no ticket 42"), false,
			"unknown_ticket: no ticket 42"},
		{"marked permanent", bridge.Permanent(refused), true, "550 5.1.1 no such user"},
		{"marked, then wrapped", fmt.Errorf("escalate: %w", bridge.Permanent(refused)), true,
			"escalate: 550 5.1.1 no such user"},
		{"marked, then its chain cut", fmt.Errorf("escalate: %v", bridge.Permanent(refused)), false,
			"escalate: 550 5.1.1 no such user"},
	} {
		if got := bridge.IsPermanent(tt.err); got != tt.permanent || tt.err.Error() != tt.text {
			t.Errorf("%s: IsPermanent(%q) = %v, want %v (text %q)", tt.name, tt.err, got, tt.permanent, tt.text)
		}
	}
	if err := bridge.Permanent(refused); !errors.Is(err, refused) {
		t.Errorf("Permanent(%v) does not keep its error in the chain", refused)
	}
}
