package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// libraryLogEvery is how often the same line of a library (go-redis)
// is written while it repeats: once per cause and interval, the next one
// saying how many were left out. While Redis is down they repeat many times
// a second, and /readyz already says what is wrong.
const libraryLogEvery = 30 * time.Second

// repeatLimiter is a slog.Handler that writes a record only when the same
// level and message were not written within every; the next one written
// carries "repeated": how many were left out meanwhile.
type repeatLimiter struct {
	inner slog.Handler
	every time.Duration
	now   func() time.Time
	state *repeatState
}

type repeatState struct {
	mu   sync.Mutex
	seen map[string]*repeatEntry
}

type repeatEntry struct {
	last       time.Time
	suppressed int
}

// repeatLimiterMaxKeys bounds the causes remembered: past it the oldest
// are forgotten (a library writing ever new lines is not limited further).
const repeatLimiterMaxKeys = 1024

func newRepeatLimiter(inner slog.Handler, every time.Duration, now func() time.Time) *repeatLimiter {
	return &repeatLimiter{inner: inner, every: every, now: now, state: &repeatState{seen: map[string]*repeatEntry{}}}
}

func (h *repeatLimiter) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *repeatLimiter) Handle(ctx context.Context, r slog.Record) error {
	key := r.Level.String() + "\x00" + r.Message
	now := h.now()
	h.state.mu.Lock()
	e := h.state.seen[key]
	if e != nil && now.Sub(e.last) < h.every {
		e.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	suppressed := 0
	if e == nil {
		if len(h.state.seen) >= repeatLimiterMaxKeys {
			h.state.seen = map[string]*repeatEntry{}
		}
		e = &repeatEntry{}
		h.state.seen[key] = e
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	h.state.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", suppressed), slog.Duration("within", h.every))
	}
	return h.inner.Handle(ctx, r)
}

func (h *repeatLimiter) WithAttrs(as []slog.Attr) slog.Handler {
	return &repeatLimiter{inner: h.inner.WithAttrs(as), every: h.every, now: h.now, state: h.state}
}

func (h *repeatLimiter) WithGroup(name string) slog.Handler {
	return &repeatLimiter{inner: h.inner.WithGroup(name), every: h.every, now: h.now, state: h.state}
}

// libraryLogger is log for a library's lines: rate-limited per cause.
func libraryLogger(log *slog.Logger) *slog.Logger {
	return slog.New(newRepeatLimiter(log.Handler(), libraryLogEvery, time.Now))
}

// redisLogs takes go-redis's own lines (pool and dial errors), which it
// writes in plain text to the standard error by default. go-redis has one
// logger per process: it is set once, and each daemon started since points
// it at its own (rate-limited) log.
var redisLogs struct {
	once sync.Once
	to   atomic.Pointer[slog.Logger]
}

type redisLogSink struct{}

func (redisLogSink) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLogs.to.Load(); l != nil {
		l.WarnContext(ctx, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
	}
}

// routeRedisLogs sends go-redis's lines to log, limited per cause.
func routeRedisLogs(log *slog.Logger) {
	redisLogs.to.Store(libraryLogger(log))
	redisLogs.once.Do(func() { redis.SetLogger(redisLogSink{}) })
}
