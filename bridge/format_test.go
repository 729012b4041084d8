package bridge

import "testing"

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{850, "850 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{12_595, "12.3 KiB"},
		{1<<20 - 1, "1024.0 KiB"},
		{1 << 20, "1.0 MiB"},
		{2_621_440, "2.5 MiB"},
		{5 << 30, "5120.0 MiB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestPersonLabel(t *testing.T) {
	tests := []struct {
		p    Person
		want string
	}{
		{Person{ID: "u1", DisplayName: "Alice Martin", Email: "alice@ent.example"}, "Alice Martin <alice@ent.example>"},
		{Person{ID: "u1", DisplayName: "Alice Martin"}, "Alice Martin"},
		{Person{ID: "agent@desk.example", Email: "Agent@desk.example"}, "Agent@desk.example"},
		{Person{Email: "agent@desk.example"}, "agent@desk.example"},
		{Person{ID: "u1"}, "u1"},
		{Person{}, ""},
	}
	for _, tt := range tests {
		if got := tt.p.Label(); got != tt.want {
			t.Errorf("%+v.Label() = %q, want %q", tt.p, got, tt.want)
		}
	}
}
