package bridge

import (
	"encoding/json"
	"testing"
	"time"
)

// The kinds are the read API's "type" strings (api/openapi.yaml,
// TimelineEvent): a rename here would be a change of the contract.
func TestTimelineKindJSON(t *testing.T) {
	tests := []struct {
		kind TimelineKind
		want string
	}{
		{TimelineCreated, "created"},
		{TimelineUpdated, "updated"},
		{TimelineCommented, "commented"},
		{TimelineStatusChanged, "status_changed"},
		{TimelineStatusIgnored, "status_ignored"},
		{TimelineEscalationRequested, "escalation_requested"},
		{TimelineEscalated, "escalated"},
		{TimelineEscalationFailed, "escalation_failed"},
		{TimelineEscalationRecorded, "escalation_recorded"},
		{TimelineDeskForwardFailed, "desk_forward_failed"},
		{TimelineDeskReplied, "desk_replied"},
		{TimelineDeskReference, "desk_reference"},
		{TimelineDeskStatus, "desk_status"},
	}
	at := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		b, err := json.Marshal(TimelineEvent{Type: tt.kind, At: at, Detail: "d"})
		if err != nil {
			t.Fatal(err)
		}
		want := `{"type":"` + tt.want + `","at":"2024-03-01T08:00:00Z","actor":null,"detail":"d"}`
		if string(b) != want {
			t.Errorf("%s: %s, want %s", tt.want, b, want)
		}
		var back TimelineEvent
		if err := json.Unmarshal(b, &back); err != nil || back.Type != tt.kind {
			t.Errorf("%s: read back %q, %v", tt.want, back.Type, err)
		}
	}
}
