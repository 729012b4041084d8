package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// A user's feed: a sorted set of notification ids by time, a hash of the
// notifications, and the set of unread ids (its size is the exact unread
// count, however many writers race). All three share the hash tag {u:<id>}.
type feedKeys struct{ index, items, unread string }

func (s *Store) feedKeys(userID string) feedKeys {
	base := s.opts.Prefix + "{u:" + userID + "}:"
	return feedKeys{index: base + "feed", items: base + "notif", unread: base + "unread"}
}

func (s *Store) feedUsersKey() string { return s.opts.Prefix + "feed:users" }

var addNotificationScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1`)

// AddNotification adds a notification to a user's feed, once by its id.
func (s *Store) AddNotification(ctx context.Context, userID string, n bridge.Notification) error {
	k := s.feedKeys(userID)
	n.Read = false
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := addNotificationScript.Run(ctx, s.rdb, []string{k.index, k.items, k.unread},
		n.ID, n.CreatedAt.UnixMilli(), b).Err(); err != nil {
		return err
	}
	// Known users, for the retention sweep (another slot; idempotent).
	return s.rdb.SAdd(ctx, s.feedUsersKey(), userID).Err()
}

// AddNotifications adds notifications to several feeds in one round trip:
// a pipeline (which go-redis splits by node in a Cluster) of the same
// script as AddNotification, each write idempotent by its id.
func (s *Store) AddNotifications(ctx context.Context, writes []bridge.FeedWrite) error {
	if len(writes) == 0 {
		return nil
	}
	type prepared struct {
		keys []string
		id   string
		at   int64
		doc  []byte
	}
	ps := make([]prepared, len(writes))
	users := make([]any, len(writes))
	for i, w := range writes {
		n := w.Notification
		n.Read = false
		b, err := json.Marshal(n)
		if err != nil {
			return err
		}
		k := s.feedKeys(w.UserID)
		ps[i] = prepared{keys: []string{k.index, k.items, k.unread}, id: n.ID, at: n.CreatedAt.UnixMilli(), doc: b}
		users[i] = w.UserID
	}
	send := func(eval func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd) error {
		pipe := s.rdb.Pipeline()
		for _, p := range ps {
			eval(ctx, pipe, p.keys, p.id, p.at, p.doc)
		}
		pipe.SAdd(ctx, s.feedUsersKey(), users...)
		_, err := pipe.Exec(ctx)
		return err
	}
	err := send(addNotificationScript.EvalSha)
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A Redis that restarted or was flushed forgot the script: send
		// it whole. Writes that went through are not doubled (HSETNX).
		err = send(addNotificationScript.Eval)
	}
	return err
}

// Notifications returns a user's unread count and newest notifications.
func (s *Store) Notifications(ctx context.Context, userID string, unreadOnly bool, limit int) (int, []bridge.Notification, error) {
	k := s.feedKeys(userID)
	if limit <= 0 {
		limit = 50
	}
	var ids []string
	pipe := s.rdb.Pipeline()
	unread := pipe.SCard(ctx, k.unread)
	var unreadIDs *redis.StringSliceCmd
	var recent *redis.StringSliceCmd
	if unreadOnly {
		unreadIDs = pipe.SMembers(ctx, k.unread)
	} else {
		recent = pipe.ZRevRange(ctx, k.index, 0, int64(limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, nil, err
	}
	if unreadOnly {
		// Order the unread ids by their time through the index.
		pipe := s.rdb.Pipeline()
		scores := make([]*redis.FloatCmd, len(unreadIDs.Val()))
		for i, id := range unreadIDs.Val() {
			scores[i] = pipe.ZScore(ctx, k.index, id)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return 0, nil, err
		}
		type scored struct {
			id string
			at float64
		}
		var list []scored
		for i, id := range unreadIDs.Val() {
			list = append(list, scored{id, scores[i].Val()})
		}
		sortScored(list, func(a, b scored) bool { return a.at > b.at || a.at == b.at && a.id > b.id })
		for i := 0; i < len(list) && i < limit; i++ {
			ids = append(ids, list[i].id)
		}
	} else {
		ids = recent.Val()
	}
	if len(ids) == 0 {
		return int(unread.Val()), []bridge.Notification{}, nil
	}
	vals, err := s.rdb.HMGet(ctx, k.items, ids...).Result()
	if err != nil {
		return 0, nil, err
	}
	isUnread := map[string]bool{}
	if unreadOnly {
		for _, id := range ids {
			isUnread[id] = true
		}
	} else {
		members, err := s.rdb.SMIsMember(ctx, k.unread, toAny(ids)...).Result()
		if err != nil {
			return 0, nil, err
		}
		for i, id := range ids {
			isUnread[id] = members[i]
		}
	}
	out := make([]bridge.Notification, 0, len(ids))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var n bridge.Notification
		if err := json.Unmarshal([]byte(str), &n); err != nil {
			return 0, nil, fmt.Errorf("notification %s: %w", ids[i], err)
		}
		n.Read = !isUnread[n.ID]
		out = append(out, n)
	}
	return int(unread.Val()), out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// sortScored is an insertion sort: unread lists are short.
func sortScored[T any](list []T, less func(a, b T) bool) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && less(list[j], list[j-1]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// MarkRead marks notifications read (all of them when all is set) and
// returns the unread count left.
func (s *Store) MarkRead(ctx context.Context, userID string, ids []string, all bool) (int, error) {
	k := s.feedKeys(userID)
	if all {
		if err := s.rdb.Del(ctx, k.unread).Err(); err != nil {
			return 0, err
		}
		return 0, nil
	}
	pipe := s.rdb.TxPipeline()
	if len(ids) > 0 {
		pipe.SRem(ctx, k.unread, toAny(ids)...)
	}
	n := pipe.SCard(ctx, k.unread)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return int(n.Val()), nil
}

var pruneFeedScript = redis.NewScript(`
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
if #old == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(old))
redis.call('HDEL', KEYS[2], unpack(old))
redis.call('SREM', KEYS[3], unpack(old))
return #old`)

// PruneFeeds removes notifications older than before from every feed, and
// returns how many it removed.
func (s *Store) PruneFeeds(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	var cursor uint64
	for {
		users, next, err := s.rdb.SScan(ctx, s.feedUsersKey(), cursor, "", 500).Result()
		if err != nil {
			return removed, err
		}
		for _, u := range users {
			k := s.feedKeys(u)
			for {
				n, err := pruneFeedScript.Run(ctx, s.rdb, []string{k.index, k.items, k.unread},
					strconv.FormatInt(before.UnixMilli(), 10)).Int()
				if err != nil {
					return removed, err
				}
				removed += n
				if n < 1000 {
					break
				}
			}
		}
		cursor = next
		if cursor == 0 {
			return removed, nil
		}
	}
}
