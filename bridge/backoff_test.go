package bridge

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		n            int
		initial, max time.Duration
		want         time.Duration
	}{
		{0, time.Second, time.Minute, time.Second},
		{1, time.Second, time.Minute, 2 * time.Second},
		{5, time.Second, time.Minute, 32 * time.Second},
		{6, time.Second, time.Minute, time.Minute},
		{1000, time.Second, time.Minute, time.Minute}, // no overflow
		{3, 5 * time.Minute, 66 * time.Minute, 40 * time.Minute},
		{4, 5 * time.Minute, 66 * time.Minute, 66 * time.Minute},
		{2, time.Hour, time.Minute, time.Minute}, // initial above max
	}
	for _, tt := range tests {
		if got := Backoff(tt.n, tt.initial, tt.max); got != tt.want {
			t.Errorf("Backoff(%d, %s, %s) = %s, want %s", tt.n, tt.initial, tt.max, got, tt.want)
		}
	}
}
