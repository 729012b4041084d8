package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// Digests. What a digest reads (a structure's tickets with their history)
// and what makes each digest go out once per referent and period:
//
//	<prefix>digest:{r:<referent>}:<period>:<period key>  "pending:<unix ms>" | "sent"
//	<prefix>digest:run:<period>:<period key>               "done"
//
// The per-referent key is the guarantee: ClaimDigest sets it "pending" with
// SET NX, so only one caller, whatever the replica, sends; MarkDigestSent
// turns it "sent" once the server accepted the mail; ReleaseDigest deletes
// a pending claim whose send failed, so that a later run tries again. A
// pending claim never expires before the marker TTL: a run that dies
// between the claim and the mark may have had its mail accepted, and
// "never twice" wins over "at least once" (DigestState shows such claims).
//
// The run key says that a period's run finished with every digest sent or
// empty; the scheduler's catch-up looks for it.

// DigestMarkerTTL is how long the digest claims and run markers are kept:
// far longer than any catch-up looks back.
const DigestMarkerTTL = 60 * 24 * time.Hour

// The states of a referent's digest for a period (DigestState): the
// bridge's.
const (
	DigestStateNone    = bridge.DigestStateNone
	DigestStatePending = bridge.DigestStatePending
	DigestStateSent    = bridge.DigestStateSent
)

var _ bridge.DigestRunStore = (*Store)(nil)

// digestBatch is how many tickets of a structure are read at once.
const digestBatch = 200

func (s *Store) digestClaimKey(referentID, period, periodKey string) string {
	return s.opts.Prefix + "digest:{r:" + referentID + "}:" + period + ":" + periodKey
}

func (s *Store) digestRunKey(period, periodKey string) string {
	return s.opts.Prefix + "digest:run:" + period + ":" + periodKey
}

func digestCheck(parts ...string) error {
	for _, p := range parts {
		if p == "" {
			return errors.New("digest: empty referent, period or period key")
		}
	}
	return nil
}

// StructureTicketViews returns, with their exchanges and history, the
// tickets of a structure that keep accepts. Ticket documents are read in
// batches and only the kept ones have their lists read.
func (s *Store) StructureTicketViews(ctx context.Context, structureID string, keep func(bridge.Ticket) bool) ([]bridge.TicketView, error) {
	key := s.structureIndexKey(structureID)
	seen := map[string]bool{}
	var out []bridge.TicketView
	for start := int64(0); ; start += digestBatch {
		// A ticket indexed meanwhile may shift the ranks by one: the
		// next batch then starts with one already seen, never skips one
		// (nothing leaves the index).
		ids, err := s.rdb.ZRange(ctx, key, start, start+digestBatch-1).Result()
		if err != nil {
			return nil, fmt.Errorf("tickets of structure %s: %w", structureID, err)
		}
		var fresh []string
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				fresh = append(fresh, id)
			}
		}
		tickets, err := s.loadTickets(ctx, fresh)
		if err != nil {
			return nil, err
		}
		var kept []bridge.Ticket
		for _, t := range tickets {
			if t != nil && (keep == nil || keep(*t)) {
				kept = append(kept, *t)
			}
		}
		views, err := s.withHistory(ctx, kept)
		if err != nil {
			return nil, err
		}
		out = append(out, views...)
		if len(ids) < digestBatch {
			return out, nil
		}
	}
}

// withHistory reads the exchanges and events of tickets with one pipeline.
func (s *Store) withHistory(ctx context.Context, tickets []bridge.Ticket) ([]bridge.TicketView, error) {
	if len(tickets) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	exs := make([]*redis.StringSliceCmd, len(tickets))
	evs := make([]*redis.StringSliceCmd, len(tickets))
	for i, t := range tickets {
		k := s.ticketKeys(t.ID)
		exs[i] = pipe.LRange(ctx, k.ex, 0, -1)
		evs[i] = pipe.LRange(ctx, k.ev, 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ticket histories: %w", err)
	}
	out := make([]bridge.TicketView, len(tickets))
	for i, t := range tickets {
		v := bridge.TicketView{Ticket: t, Exchanges: make([]bridge.Exchange, 0, len(exs[i].Val())),
			Events: make([]bridge.TimelineEvent, 0, len(evs[i].Val()))}
		for _, raw := range exs[i].Val() {
			var e bridge.Exchange
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return nil, fmt.Errorf("ticket %s exchange: %w", t.ID, err)
			}
			v.Exchanges = append(v.Exchanges, e)
		}
		for _, raw := range evs[i].Val() {
			var e bridge.TimelineEvent
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return nil, fmt.Errorf("ticket %s event: %w", t.ID, err)
			}
			v.Events = append(v.Events, e)
		}
		out[i] = v
	}
	return out, nil
}

// ClaimDigest takes the right to send a referent's digest for a period
// (periodKey: "2025-03-04", "2025-W10"…): true for the first caller only;
// false while another claim is pending and once the digest is sent.
func (s *Store) ClaimDigest(ctx context.Context, referentID, period, periodKey string) (bool, error) {
	if err := digestCheck(referentID, period, periodKey); err != nil {
		return false, err
	}
	v := DigestStatePending + ":" + strconv.FormatInt(time.Now().UnixMilli(), 10)
	ok, err := s.rdb.SetNX(ctx, s.digestClaimKey(referentID, period, periodKey), v, DigestMarkerTTL).Result()
	if err != nil {
		return false, fmt.Errorf("claim digest %s %s %s: %w", referentID, period, periodKey, err)
	}
	return ok, nil
}

// MarkDigestSent records that the digest was accepted by the mail server:
// it is never claimed again.
func (s *Store) MarkDigestSent(ctx context.Context, referentID, period, periodKey string) error {
	if err := digestCheck(referentID, period, periodKey); err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.digestClaimKey(referentID, period, periodKey), DigestStateSent, DigestMarkerTTL).Err(); err != nil {
		return fmt.Errorf("mark digest %s %s %s sent: %w", referentID, period, periodKey, err)
	}
	return nil
}

// KEYS: claim. Deletes a pending claim only: a sent digest stays sent.
var releaseDigestScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 8) == 'pending:' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`)

// ReleaseDigest gives a pending claim up after a failed send, so that a
// later run sends the digest; a digest marked sent stays so.
func (s *Store) ReleaseDigest(ctx context.Context, referentID, period, periodKey string) error {
	if err := digestCheck(referentID, period, periodKey); err != nil {
		return err
	}
	key := s.digestClaimKey(referentID, period, periodKey)
	if err := releaseDigestScript.Run(ctx, s.rdb, []string{key}).Err(); err != nil {
		return fmt.Errorf("release digest %s %s %s: %w", referentID, period, periodKey, err)
	}
	return nil
}

// DigestState tells where a referent's digest for a period stands: none,
// pending (since when) or sent.
func (s *Store) DigestState(ctx context.Context, referentID, period, periodKey string) (state string, since time.Time, err error) {
	if err := digestCheck(referentID, period, periodKey); err != nil {
		return "", time.Time{}, err
	}
	v, err := s.rdb.Get(ctx, s.digestClaimKey(referentID, period, periodKey)).Result()
	if errors.Is(err, redis.Nil) {
		return DigestStateNone, time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("digest %s %s %s: %w", referentID, period, periodKey, err)
	}
	if ms, ok := strings.CutPrefix(v, DigestStatePending+":"); ok {
		n, _ := strconv.ParseInt(ms, 10, 64)
		return DigestStatePending, time.UnixMilli(n).UTC(), nil
	}
	return v, time.Time{}, nil
}

// MarkDigestRunDone records that the run of a period ended with every
// digest sent or empty.
func (s *Store) MarkDigestRunDone(ctx context.Context, period, periodKey string) error {
	if err := digestCheck(period, periodKey); err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.digestRunKey(period, periodKey), "done", DigestMarkerTTL).Err(); err != nil {
		return fmt.Errorf("mark digest run %s %s: %w", period, periodKey, err)
	}
	return nil
}

// DigestRunDone reports whether the run of a period is done.
func (s *Store) DigestRunDone(ctx context.Context, period, periodKey string) (bool, error) {
	if err := digestCheck(period, periodKey); err != nil {
		return false, err
	}
	n, err := s.rdb.Exists(ctx, s.digestRunKey(period, periodKey)).Result()
	if err != nil {
		return false, fmt.Errorf("digest run %s %s: %w", period, periodKey, err)
	}
	return n == 1, nil
}
