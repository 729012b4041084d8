package bridge

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"t-1", true},
		{"A.b_c:d@e-9", true},
		{strings.Repeat("a", MaxIDLen), true},
		{strings.Repeat("a", MaxIDLen+1), false},
		{"t 1", false},
		{"t/1", false},
		{"t]1", false},
		{"é", false},
		{"t\n1", false},
		{"t+1", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.in); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for c := 0; c < 256; c++ {
		want := strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-", byte(c)) >= 0
		if got := IDChar(byte(c)); got != want {
			t.Errorf("IDChar(%q) = %v, want %v", byte(c), got, want)
		}
	}
}
