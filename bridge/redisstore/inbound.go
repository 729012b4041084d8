package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

func (s *Store) deskRefKey(ref string) string {
	return s.opts.Prefix + "deskref:" + strings.ToLower(strings.TrimSpace(ref))
}
func (s *Store) rawKey(key string) string { return s.opts.Prefix + "raw:" + key }
func (s *Store) quarantineKey() string    { return s.opts.Prefix + "quarantine" }
func (s *Store) quarantineIndex() string  { return s.opts.Prefix + "quarantine:idx" }
func (s *Store) noReferentIndex() string  { return s.opts.Prefix + "noreferent:idx" }

// FlagNoReferent lists a demand that no referent hears of (its structure
// has none up its chain), for the operators; idempotent.
func (s *Store) FlagNoReferent(ctx context.Context, ticketID string, at time.Time) error {
	return s.rdb.ZAddNX(ctx, s.noReferentIndex(), redis.Z{Score: float64(at.UnixMilli()), Member: ticketID}).Err()
}

// NoReferentTickets returns the newest limit demands that no referent hears
// of, and how many there are in all.
func (s *Store) NoReferentTickets(ctx context.Context, limit int) (ids []string, total int64, err error) {
	pipe := s.rdb.Pipeline()
	card := pipe.ZCard(ctx, s.noReferentIndex())
	rng := pipe.ZRevRange(ctx, s.noReferentIndex(), 0, int64(limit)-1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, 0, err
	}
	return rng.Val(), card.Val(), nil
}

// IndexDeskReference maps the desk's own ticket number to a ticket.
func (s *Store) IndexDeskReference(ctx context.Context, ref, ticketID string) error {
	return s.rdb.Set(ctx, s.deskRefKey(ref), ticketID, s.opts.AttachmentRetention).Err()
}

// TicketByDeskReference finds the ticket of a desk reference.
func (s *Store) TicketByDeskReference(ctx context.Context, ref string) (string, error) {
	id, err := s.rdb.Get(ctx, s.deskRefKey(ref)).Result()
	if errors.Is(err, redis.Nil) {
		return "", bridge.ErrNotFound
	}
	return id, err
}

// KeepRaw keeps a raw inbound mail for ttl (idempotent).
func (s *Store) KeepRaw(ctx context.Context, key string, raw []byte, ttl time.Duration) error {
	var cmd *redis.BoolCmd
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		cmd = pipe.SetNX(ctx, s.rawKey(key), raw, ttl)
	}); err != nil {
		return err
	}
	return cmd.Err()
}

// Raw returns a kept raw mail.
func (s *Store) Raw(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.rawKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, bridge.ErrNotFound
	}
	return b, err
}

// Quarantine records a mail that could not be applied (by its key, once).
func (s *Store) Quarantine(ctx context.Context, q bridge.QuarantinedMail) error {
	b, err := json.Marshal(q)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.quarantineKey(), q.Key, b)
	pipe.ZAdd(ctx, s.quarantineIndex(), redis.Z{Score: float64(q.At.UnixMilli()), Member: q.Key})
	_, err = pipe.Exec(ctx)
	return err
}

// Quarantined lists the quarantined mails, newest first.
func (s *Store) Quarantined(ctx context.Context) ([]bridge.QuarantinedMail, error) {
	keys, err := s.rdb.ZRevRange(ctx, s.quarantineIndex(), 0, -1).Result()
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	vals, err := s.rdb.HMGet(ctx, s.quarantineKey(), keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]bridge.QuarantinedMail, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var q bridge.QuarantinedMail
		if err := json.Unmarshal([]byte(str), &q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// Unquarantine removes a mail from the quarantine list (assigned or
// discarded).
func (s *Store) Unquarantine(ctx context.Context, key string) error {
	pipe := s.rdb.TxPipeline()
	pipe.HDel(ctx, s.quarantineKey(), key)
	pipe.ZRem(ctx, s.quarantineIndex(), key)
	_, err := pipe.Exec(ctx)
	return err
}

// PruneQuarantine removes the quarantined mails recorded before before
// (their raw mail has expired by then), so that mail from strangers does
// not grow Redis without bound. It returns how many it removed.
func (s *Store) PruneQuarantine(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	max := strconv.FormatInt(before.UnixMilli()-1, 10)
	for {
		keys, err := s.rdb.ZRangeByScore(ctx, s.quarantineIndex(), &redis.ZRangeBy{Min: "-inf", Max: max, Count: 500}).Result()
		if err != nil || len(keys) == 0 {
			return removed, err
		}
		// The list entry goes first: a crash in between leaves an index
		// entry without its record, which the list skips and the next
		// prune removes.
		if err := s.rdb.HDel(ctx, s.quarantineKey(), keys...).Err(); err != nil {
			return removed, err
		}
		if err := s.rdb.ZRem(ctx, s.quarantineIndex(), toAny(keys)...).Err(); err != nil {
			return removed, err
		}
		removed += len(keys)
	}
}
