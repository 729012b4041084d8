package redisstore

import (
	"context"
	"fmt"
	"time"
)

func (s *Store) windowKey(name string) string { return s.opts.Prefix + "{w:" + name + "}" }

// ClaimWindow claims the time window name for ttl: true for the first
// caller across all replicas, false for the others until it expires. It
// rate-limits what must happen at most once per window (alert mails, the
// retention prune).
func (s *Store) ClaimWindow(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("claim window %s: ttl %v too short", name, ttl)
	}
	ok, err := s.rdb.SetNX(ctx, s.windowKey(name), time.Now().UTC().Format(time.RFC3339), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim window %s: %w", name, err)
	}
	return ok, nil
}

// ReleaseWindow gives a claimed window back, so that the next caller does
// the work after all (the claimer failed).
func (s *Store) ReleaseWindow(ctx context.Context, name string) error {
	if err := s.rdb.Del(ctx, s.windowKey(name)).Err(); err != nil {
		return fmt.Errorf("release window %s: %w", name, err)
	}
	return nil
}
