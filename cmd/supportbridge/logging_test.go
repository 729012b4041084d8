package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRepeatLimiter: a library's line repeated many times is written once
// per interval and cause, the next one saying how many were left out;
// another cause is not held back.
func TestRepeatLimiter(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	log := slog.New(newRepeatLimiter(slog.NewJSONHandler(&buf, nil), 30*time.Second, func() time.Time { return now }))
	lib := log.With(slog.String("component", "go-redis"))
	for i := 0; i < 113; i++ {
		lib.Error("redis: connection pool: dial tcp: connection refused")
		if i == 50 {
			lib.Error("another cause")
		}
		now = now.Add(100 * time.Millisecond)
	}
	// 11.3 s later: one line each, and nothing yet about the repeats.
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	now = now.Add(30 * time.Second)
	buf.Reset()
	lib.Error("redis: connection pool: dial tcp: connection refused")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["repeated"] != float64(112) || rec["component"] != "go-redis" {
		t.Errorf("line after the interval: %s", buf.String())
	}
}

// TestRedisLogsThroughSlog: go-redis's own lines come out of the daemon's
// JSON log with a component, not as plain text on the standard error.
func TestRedisLogsThroughSlog(t *testing.T) {
	var buf syncBuffer
	routeRedisLogs(newLogger(&buf, "info"))
	redisLogSink{}.Printf(context.Background(), "redis: %s:%d: %v", "pool.go", 12, "connection pool timeout")
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &rec); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	if rec["component"] != "go-redis" || rec["level"] != "WARN" || rec["msg"] != "redis: pool.go:12: connection pool timeout" {
		t.Errorf("line %v", rec)
	}
}
