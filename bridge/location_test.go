package bridge

import (
	"testing"
	"time"
)

func TestParisLocation(t *testing.T) {
	loc := ParisLocation()
	if loc.String() != "Europe/Paris" {
		t.Fatalf("ParisLocation() = %s", loc)
	}
	if ParisLocation() != loc || DefaultDigestLocation() != loc {
		t.Error("the zone is loaded more than once")
	}
	tests := []struct {
		utc  time.Time
		want string
	}{
		{time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC), "13:00 CET"},
		{time.Date(2024, 7, 15, 12, 0, 0, 0, time.UTC), "14:00 CEST"},
	}
	for _, tt := range tests {
		if got := tt.utc.In(loc).Format("15:04 MST"); got != tt.want {
			t.Errorf("%s in Paris = %s, want %s", tt.utc, got, tt.want)
		}
	}
}
