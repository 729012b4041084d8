package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrStaleFence refuses a checkpoint written under a fencing token that is
// no longer the lease's current one: another replica took the mailbox over
// since, and its view wins.
var ErrStaleFence = errors.New("redisstore: stale fencing token")

// Leases. One key holds "<fence>:<holder>" with a TTL; a counter beside it
// hands out the fences, and never expires, so that a fence is never given
// twice. Both share the hash tag {l:<name>}, as does the checkpoint fenced by
// the lease, so the scripts below touch one slot on a Cluster.

func (s *Store) leaseBase(name string) string { return s.opts.Prefix + "{l:" + name + "}:" }
func (s *Store) leaseKey(name string) string  { return s.leaseBase(name) + "lease" }
func (s *Store) leaseFenceKey(name string) string {
	return s.leaseBase(name) + "fence"
}

// CheckpointLease is the name of the lease that fences the checkpoint of
// mailbox: the IMAP reader takes that lease before it reads the mailbox.
func CheckpointLease(mailbox string) string { return "imap:" + mailbox }

// checkpointKey is beside the lease that fences it.
func (s *Store) checkpointKey(mailbox string) string {
	return s.leaseCheckpointKey(CheckpointLease(mailbox))
}

func (s *Store) leaseCheckpointKey(name string) string { return s.leaseBase(name) + "checkpoint" }

func leaseValue(holder string, fence int64) string {
	return strconv.FormatInt(fence, 10) + ":" + holder
}

// parseLease splits a lease value; the holder may itself hold colons.
func parseLease(v string) (holder string, fence int64, err error) {
	f, h, ok := strings.Cut(v, ":")
	if !ok {
		return "", 0, fmt.Errorf("lease value %q: no separator", v)
	}
	fence, err = strconv.ParseInt(f, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("lease value %q: %w", v, err)
	}
	return h, fence, nil
}

// KEYS: lease fence checkpoint; ARGV: holder ttlMillis. Answers the new
// fence, or 0 when someone holds the lease (the holder itself included: a
// second acquisition under the same name is still a second holder). Should
// the counter ever be lost (a flush, an eviction) while a checkpoint
// survived, the fence starts again above the checkpoint's, or every later
// save would be refused as stale.
var acquireLeaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = redis.call('INCR', KEYS[2])
local written = tonumber(redis.call('HGET', KEYS[3], 'f') or '0')
if written and f <= written then
  f = written + 1
  redis.call('SET', KEYS[2], f)
end
redis.call('SET', KEYS[1], f .. ':' .. ARGV[1], 'PX', ARGV[2])
return f`)

// KEYS: lease; ARGV: value ttlMillis.
var renewLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// KEYS: lease; ARGV: value.
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`)

func leaseTTLMillis(ttl time.Duration) (int64, error) {
	ms := ttl.Milliseconds()
	if ms <= 0 {
		return 0, fmt.Errorf("lease ttl %v: must be at least 1ms", ttl)
	}
	return ms, nil
}

// AcquireLease takes the lease name for holder for ttl, if nobody holds it.
// Every acquisition gets a fencing token greater than all those before it,
// whoever held them. ok is false, with no error, when the lease is taken.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (fence int64, ok bool, err error) {
	ms, err := leaseTTLMillis(ttl)
	if err != nil {
		return 0, false, err
	}
	fence, err = acquireLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(name), s.leaseFenceKey(name), s.leaseCheckpointKey(name)}, holder, ms).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return fence, fence > 0, nil
}

// RenewLease extends the lease by ttl from now, if holder still holds it
// under fence. false means the lease expired or someone else took it.
func (s *Store) RenewLease(ctx context.Context, name, holder string, fence int64, ttl time.Duration) (bool, error) {
	ms, err := leaseTTLMillis(ttl)
	if err != nil {
		return false, err
	}
	n, err := renewLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, leaseValue(holder, fence), ms).Int64()
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives the lease up if holder still holds it under fence;
// otherwise it does nothing, so that it never frees someone else's lease.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, fence int64) error {
	if err := releaseLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, leaseValue(holder, fence)).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder tells who holds the lease name and under which fence; "" and 0
// when nobody does.
func (s *Store) LeaseHolder(ctx context.Context, name string) (holder string, fence int64, err error) {
	v, err := s.rdb.Get(ctx, s.leaseKey(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("lease %s: %w", name, err)
	}
	holder, fence, err = parseLease(v)
	if err != nil {
		return "", 0, fmt.Errorf("lease %s: %w", name, err)
	}
	return holder, fence, nil
}

// Checkpoint is how far the IMAP reader got in a mailbox: every message up
// to LastUID under UIDValidity is done with. Fence is the lease fence of
// the replica that wrote it.
type Checkpoint struct {
	UIDValidity uint32
	LastUID     uint32
	Fence       int64
	UpdatedAt   time.Time
}

// LoadCheckpoint returns the checkpoint of mailbox, or the zero value when
// there is none.
func (s *Store) LoadCheckpoint(ctx context.Context, mailbox string) (Checkpoint, error) {
	var cp Checkpoint
	vals, err := s.rdb.HMGet(ctx, s.checkpointKey(mailbox), "v", "u", "f", "t").Result()
	if err != nil {
		return cp, fmt.Errorf("load checkpoint %s: %w", mailbox, err)
	}
	if vals[0] == nil {
		return cp, nil
	}
	nums := make([]int64, len(vals))
	for i, v := range vals {
		str, _ := v.(string)
		if nums[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return Checkpoint{}, fmt.Errorf("load checkpoint %s: field %d: %w", mailbox, i, err)
		}
	}
	if nums[0] < 0 || nums[0] > 1<<32-1 || nums[1] < 0 || nums[1] > 1<<32-1 {
		return Checkpoint{}, fmt.Errorf("load checkpoint %s: uid out of range", mailbox)
	}
	cp.UIDValidity = uint32(nums[0])
	cp.LastUID = uint32(nums[1])
	cp.Fence = nums[2]
	cp.UpdatedAt = time.UnixMilli(nums[3]).UTC()
	return cp, nil
}

// KEYS: checkpoint lease; ARGV: uidValidity lastUID fence updatedAtMillis.
var saveCheckpointScript = redis.NewScript(`
local fence = tonumber(ARGV[3])
local lease = redis.call('GET', KEYS[2])
if not lease then return 'stale' end
local held = tonumber(string.match(lease, '^(%d+):'))
if held ~= fence then return 'stale' end
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'f')
if cur[3] and tonumber(cur[3]) > fence then return 'stale' end
local last = tonumber(ARGV[2])
if cur[1] == ARGV[1] and tonumber(cur[2]) > last then last = tonumber(cur[2]) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'u', last, 'f', ARGV[3], 't', ARGV[4])
return 'ok'`)

// SaveCheckpoint records cp for mailbox, only while cp.Fence is the current
// fence of the mailbox's lease (CheckpointLease) and no newer fence wrote
// before: otherwise ErrStaleFence. Under the same UIDValidity, LastUID never
// goes down. A zero UpdatedAt means now.
func (s *Store) SaveCheckpoint(ctx context.Context, mailbox string, cp Checkpoint) error {
	at := cp.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	res, err := saveCheckpointScript.Run(ctx, s.rdb,
		[]string{s.checkpointKey(mailbox), s.leaseKey(CheckpointLease(mailbox))},
		strconv.FormatUint(uint64(cp.UIDValidity), 10), strconv.FormatUint(uint64(cp.LastUID), 10),
		cp.Fence, at.UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", mailbox, err)
	}
	if res != "ok" {
		return fmt.Errorf("save checkpoint %s (fence %d): %w", mailbox, cp.Fence, ErrStaleFence)
	}
	return nil
}

// LoadMailboxCheckpoint is LoadCheckpoint in the shape of the mail
// package's Checkpointer, so that a *Store serves the IMAP reader as is.
func (s *Store) LoadMailboxCheckpoint(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, fence int64, err error) {
	cp, err := s.LoadCheckpoint(ctx, mailbox)
	return cp.UIDValidity, cp.LastUID, cp.Fence, err
}

// SaveMailboxCheckpoint is SaveCheckpoint in the shape of the mail
// package's Checkpointer.
func (s *Store) SaveMailboxCheckpoint(ctx context.Context, mailbox string, uidValidity, lastUID uint32, fence int64) error {
	return s.SaveCheckpoint(ctx, mailbox, Checkpoint{UIDValidity: uidValidity, LastUID: lastUID, Fence: fence})
}
