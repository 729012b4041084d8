package bridge

import (
	"errors"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// parisTime is a local time in Paris.
func parisTime(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, DefaultDigestLocation())
}

func TestDigestPeriods(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	const (
		daily  = "CRON_TZ=Europe/Paris 0 8 * * 1-5"
		weekly = "CRON_TZ=Europe/Paris 0 8 * * 1"
	)
	paris := DefaultDigestLocation()
	tests := []struct {
		name     string
		spec     string
		zone     *time.Location // the spec's CRON_TZ; nil: the default zone
		period   Digest
		now      time.Time
		at, prev time.Time
		key      string
	}{
		{name: "weekday morning", spec: daily, zone: paris, period: DigestDaily,
			now: parisTime(2025, 3, 4, 10, 0), at: parisTime(2025, 3, 4, 8, 0), prev: parisTime(2025, 3, 3, 8, 0), key: "2025-03-04"},
		{name: "at the very second", spec: daily, zone: paris, period: DigestDaily,
			now: parisTime(2025, 3, 4, 8, 0), at: parisTime(2025, 3, 4, 8, 0), prev: parisTime(2025, 3, 3, 8, 0), key: "2025-03-04"},
		{name: "just before: yesterday's", spec: daily, zone: paris, period: DigestDaily,
			now: parisTime(2025, 3, 4, 8, 0).Add(-time.Second), at: parisTime(2025, 3, 3, 8, 0), prev: parisTime(2025, 2, 28, 8, 0), key: "2025-03-03"},
		{name: "Monday's window covers the weekend", spec: daily, zone: paris, period: DigestDaily,
			now: parisTime(2025, 3, 10, 9, 0), at: parisTime(2025, 3, 10, 8, 0), prev: parisTime(2025, 3, 7, 8, 0), key: "2025-03-10"},
		{name: "Sunday: Friday's", spec: daily, zone: paris, period: DigestDaily,
			now: parisTime(2025, 3, 9, 23, 0), at: parisTime(2025, 3, 7, 8, 0), prev: parisTime(2025, 3, 6, 8, 0), key: "2025-03-07"},
		{name: "summer time begins", spec: daily, zone: paris, period: DigestDaily,
			now: utc(2025, 3, 31, 12, 0), at: utc(2025, 3, 31, 6, 0), prev: utc(2025, 3, 28, 7, 0), key: "2025-03-31"},
		{name: "weekly", spec: weekly, zone: paris, period: DigestWeekly,
			now: parisTime(2025, 3, 12, 15, 0), at: parisTime(2025, 3, 10, 8, 0), prev: parisTime(2025, 3, 3, 8, 0), key: "2025-W11"},
		{name: "ISO week of the next year", spec: weekly, zone: paris, period: DigestWeekly,
			now: parisTime(2024, 12, 31, 9, 0), at: parisTime(2024, 12, 30, 8, 0), prev: parisTime(2024, 12, 23, 8, 0), key: "2025-W01"},
		{name: "bare spec in the default zone", spec: "30 7 * * *", period: DigestDaily,
			now: utc(2025, 7, 1, 6, 0), at: utc(2025, 7, 1, 5, 30), prev: utc(2025, 6, 30, 5, 30), key: "2025-07-01"},
		{name: "other zone: the date is the zone's", spec: "CRON_TZ=America/New_York 0 22 * * *", zone: ny, period: DigestDaily,
			now: utc(2025, 3, 5, 4, 0), at: utc(2025, 3, 5, 3, 0), prev: utc(2025, 3, 4, 3, 0), key: "2025-03-04"},
		{name: "a date that comes once every four years", spec: "0 8 29 2 *", period: DigestDaily,
			now: utc(2025, 3, 1, 0, 0), at: parisTime(2024, 2, 29, 8, 0), key: "2024-02-29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := cron.ParseStandard(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := DigestSchedule{Schedule: cs, Location: tt.zone}
			loc := s.location()
			at, ok := lastOccurrence(s.Schedule, tt.now.In(loc))
			if !ok || !at.Equal(tt.at) {
				t.Fatalf("last = %v, %v; want %v", at, ok, tt.at)
			}
			if got := digestPeriodKey(tt.period, at.In(loc)); got != tt.key {
				t.Errorf("key %q, want %q", got, tt.key)
			}
			if tt.prev.IsZero() {
				return
			}
			prev, ok := prevOccurrence(s.Schedule, at)
			if !ok || !prev.Equal(tt.prev) {
				t.Errorf("prev = %v, %v; want %v", prev, ok, tt.prev)
			}
		})
	}
}

func TestDigestReportResult(t *testing.T) {
	for _, tt := range []struct {
		rep  DigestReport
		err  error
		want string
	}{
		{DigestReport{Sent: 2, Empty: 1}, nil, "done"},
		{DigestReport{AlreadyDone: true}, nil, "already_done"},
		{DigestReport{Busy: true}, nil, "busy"},
		{DigestReport{Sent: 1, Failed: 1}, nil, "incomplete"},
		{DigestReport{Pending: 1}, nil, "incomplete"},
		{DigestReport{Interrupted: true}, nil, "incomplete"},
		{DigestReport{}, errors.New("redis down"), "error"},
	} {
		if got := tt.rep.Result(tt.err); got != tt.want {
			t.Errorf("%+v, %v: %q, want %q", tt.rep, tt.err, got, tt.want)
		}
	}
}
