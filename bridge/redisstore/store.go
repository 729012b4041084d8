// Package redisstore keeps supportbridge's state in Redis. Every key of a
// ticket carries the hash tag {t:<id>} so that the Lua scripts that change a
// ticket touch one slot, and the same code runs on a Redis Cluster.
package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

// Options tune the store.
type Options struct {
	Prefix              string        // key prefix, e.g. "sb:"
	StructureDedupeTTL  time.Duration // how long a structure event id is remembered
	AttachmentRetention time.Duration // how long attachment bytes are kept
	// WaitReplicas, when above 0, has every write of the shared pipelines
	// (commits, acceptances, outbox acknowledgements, raw mail, ledger,
	// attachments, indexes) wait until that many replicas hold it, up to
	// WaitTimeout; past it the writer gets ErrNotReplicated. Standalone or
	// Sentinel only: not on a Cluster.
	WaitReplicas int
	WaitTimeout  time.Duration
	// OnNotReplicated, when set, is told of each pipeline of writes that
	// fewer replicas than WaitReplicas acknowledged in time (metrics).
	OnNotReplicated func()
}

// Store is the Redis implementation of bridge.Store.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	// batch carries the hot per-change calls (load, commit, outbox
	// acknowledgement, raw mail) of concurrent callers in shared pipelines.
	batch *batcher
}

var _ bridge.Store = (*Store)(nil)

// New returns a store over rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.StructureDedupeTTL <= 0 {
		opts.StructureDedupeTTL = 7 * 24 * time.Hour
	}
	if opts.AttachmentRetention <= 0 {
		opts.AttachmentRetention = 365 * 24 * time.Hour
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	b := newBatcher(rdb, storeBatchLanes, storeBatchMax)
	b.waitReplicas, b.waitTimeout, b.fenceKey = opts.WaitReplicas, opts.WaitTimeout, opts.Prefix+"replfence"
	b.onNotReplicated = opts.OnNotReplicated
	return &Store{rdb: rdb, opts: opts, batch: b}
}

// storeBatchLanes pipelines may be in flight at once, each carrying the
// calls of up to storeBatchMax callers. One lane is what makes batches:
// callers arriving while a pipeline is out share the next one. With more,
// each caller found a free lane and went alone (measured: 1.05 callers per
// pipeline with 4 lanes, 3 to 8 with one).
const (
	storeBatchLanes = 1
	storeBatchMax   = 64
)

// Client returns the Redis client (for adapters sharing it).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.opts.Prefix }

// keys of a ticket, all in the slot of {t:<id>}.
type ticketKeys struct{ doc, ver, seen, ex, exids, ev, outbox string }

func (s *Store) ticketKeys(id string) ticketKeys {
	base := s.opts.Prefix + "{t:" + id + "}:"
	return ticketKeys{doc: base + "doc", ver: base + "ver", seen: base + "seen", ex: base + "ex",
		exids: base + "exids", ev: base + "ev", outbox: base + "outbox"}
}

func (s *Store) structureKey(id string) string { return s.opts.Prefix + "{s:" + id + "}:doc" }
func (s *Store) structureSeenKey(id, eventID string) string {
	return s.opts.Prefix + "{s:" + id + "}:wh:" + eventID
}
func (s *Store) structuresKey() string          { return s.opts.Prefix + "structures" }
func (s *Store) attachmentKey(id string) string { return s.opts.Prefix + "{a:" + id + "}" }
func (s *Store) allIndexKey() string            { return s.opts.Prefix + "idx:tickets" }
func (s *Store) structureIndexKey(id string) string {
	return s.opts.Prefix + "idx:s:" + id
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Structure returns a structure.
func (s *Store) Structure(ctx context.Context, id string) (bridge.Structure, error) {
	var st bridge.Structure
	// Through the shared pipelines: each webhook reads its structure
	// chain (roles), and concurrent webhooks share the round trip.
	var doc *redis.StringCmd
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) { doc = pipe.Get(ctx, s.structureKey(id)) }); err != nil {
		return st, err
	}
	raw, err := doc.Bytes()
	if errors.Is(err, redis.Nil) {
		return st, bridge.ErrNotFound
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("structure %s: %w", id, err)
	}
	return st, nil
}

var upsertStructureScript = redis.NewScript(`
if ARGV[2] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'dup' end
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1])
return 'ok'`)

// UpsertStructure stores a structure, idempotent by eventID.
func (s *Store) UpsertStructure(ctx context.Context, eventID string, st bridge.Structure) (bool, error) {
	doc, err := json.Marshal(st)
	if err != nil {
		return false, err
	}
	seenKey := s.structureSeenKey(st.ID, eventID)
	res, err := upsertStructureScript.Run(ctx, s.rdb, []string{s.structureKey(st.ID), seenKey},
		doc, eventID, s.opts.StructureDedupeTTL.Milliseconds()).Text()
	if err != nil {
		return false, err
	}
	// The set of structures is in another slot: added after the script,
	// and again on a duplicate so that a crash in between heals.
	if err := s.rdb.SAdd(ctx, s.structuresKey(), st.ID).Err(); err != nil {
		return false, err
	}
	return res == "dup", nil
}

// Structures returns every known structure.
func (s *Store) Structures(ctx context.Context) ([]bridge.Structure, error) {
	ids, err := s.rdb.SMembers(ctx, s.structuresKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make([]bridge.Structure, 0, len(ids))
	for _, id := range ids {
		st, err := s.Structure(ctx, id)
		if errors.Is(err, bridge.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// LoadTicket returns a ticket and whether eventID was applied to it.
func (s *Store) LoadTicket(ctx context.Context, id, eventID string) (bridge.Ticket, bool, error) {
	k := s.ticketKeys(id)
	var t bridge.Ticket
	var doc *redis.StringCmd
	var seen *redis.BoolCmd
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		doc = pipe.Get(ctx, k.doc)
		if eventID != "" {
			seen = pipe.HExists(ctx, k.seen, eventID)
		}
	}); err != nil {
		return t, false, err
	}
	if seen != nil && seen.Err() != nil {
		return t, false, seen.Err()
	}
	wasSeen := seen != nil && seen.Val()
	raw, err := doc.Bytes()
	if errors.Is(err, redis.Nil) {
		return t, wasSeen, bridge.ErrNotFound
	}
	if err != nil {
		return t, false, err
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, false, fmt.Errorf("ticket %s: %w", id, err)
	}
	return t, wasSeen, nil
}

// TicketView returns a ticket with its exchanges and events.
func (s *Store) TicketView(ctx context.Context, id string) (bridge.TicketView, error) {
	return s.ticketView(ctx, id, true)
}

// TicketWithExchanges returns a ticket with its exchanges, without its
// timeline: what the mails to the desk and the callbacks show. The
// timeline grows with every change; not reading it spares a round trip's
// command and its decoding.
func (s *Store) TicketWithExchanges(ctx context.Context, id string) (bridge.TicketView, error) {
	return s.ticketView(ctx, id, false)
}

func (s *Store) ticketView(ctx context.Context, id string, events bool) (bridge.TicketView, error) {
	k := s.ticketKeys(id)
	var v bridge.TicketView
	var doc *redis.StringCmd
	var exs, evs *redis.StringSliceCmd
	if err := s.batch.read(ctx, func(pipe redis.Pipeliner) {
		doc = pipe.Get(ctx, k.doc)
		exs = pipe.LRange(ctx, k.ex, 0, -1)
		if events {
			evs = pipe.LRange(ctx, k.ev, 0, -1)
		}
	}); err != nil {
		return v, err
	}
	if err := exs.Err(); err != nil {
		return v, err
	}
	if events && evs.Err() != nil {
		return v, evs.Err()
	}
	raw, err := doc.Bytes()
	if errors.Is(err, redis.Nil) {
		return v, bridge.ErrNotFound
	}
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v.Ticket); err != nil {
		return v, fmt.Errorf("ticket %s: %w", id, err)
	}
	v.Exchanges = make([]bridge.Exchange, 0, len(exs.Val()))
	for _, r := range exs.Val() {
		var e bridge.Exchange
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return v, fmt.Errorf("ticket %s exchange: %w", id, err)
		}
		v.Exchanges = append(v.Exchanges, e)
	}
	if !events {
		return v, nil
	}
	v.Events = make([]bridge.TimelineEvent, 0, len(evs.Val()))
	for _, r := range evs.Val() {
		var e bridge.TimelineEvent
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return v, fmt.Errorf("ticket %s event: %w", id, err)
		}
		v.Events = append(v.Events, e)
	}
	return v, nil
}

// commitScript applies one change to a ticket: checks come first so that a
// refused commit writes nothing. It answers 'dup', 'conflict', or 'ok'
// followed by the outbox's effects as the commit left it.
//
// KEYS: doc ver seen ex exids ev outbox
// ARGV: eventID expectVersion doc nowMillis nEx [exID exJSON]... nEv [evJSON]... nEff [effID effJSON]...
var commitScript = redis.NewScript(`
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'dup' end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur ~= tonumber(ARGV[2]) then return 'conflict' end
local i = 5
local nEx = tonumber(ARGV[i]); i = i + 1
for j = 0, nEx - 1 do
  if redis.call('HEXISTS', KEYS[5], ARGV[i + 2*j]) == 1 then return 'dup' end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], cur + 1)
for j = 1, nEx do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[4])
  redis.call('RPUSH', KEYS[4], ARGV[i + 1])
  i = i + 2
end
local nEv = tonumber(ARGV[i]); i = i + 1
for j = 1, nEv do
  redis.call('RPUSH', KEYS[6], ARGV[i]); i = i + 1
end
local nEff = tonumber(ARGV[i]); i = i + 1
for j = 1, nEff do
  redis.call('HSET', KEYS[7], ARGV[i], ARGV[i + 1]); i = i + 2
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
local out = redis.call('HVALS', KEYS[7])
table.insert(out, 1, 'ok')
return out`)

// Commit applies a change atomically and returns the ticket's outbox.
func (s *Store) Commit(ctx context.Context, c bridge.Commit) (bool, []bridge.Effect, error) {
	k := s.ticketKeys(c.Ticket.ID)
	doc, err := json.Marshal(c.Ticket)
	if err != nil {
		return false, nil, err
	}
	args := []any{c.EventID, c.Ticket.Version - 1, doc, time.Now().UnixMilli(), len(c.Exchanges)}
	for _, e := range c.Exchanges {
		b, err := json.Marshal(e)
		if err != nil {
			return false, nil, err
		}
		args = append(args, e.ID, b)
	}
	args = append(args, len(c.Events))
	for _, e := range c.Events {
		b, err := json.Marshal(e)
		if err != nil {
			return false, nil, err
		}
		args = append(args, b)
	}
	args = append(args, len(c.Effects))
	// The outbox comes back as JSON: this commit's own effects are known
	// by their encoding and need no decoding.
	mine := make(map[string]bridge.Effect, len(c.Effects))
	for _, e := range c.Effects {
		b, err := json.Marshal(e)
		if err != nil {
			return false, nil, err
		}
		args = append(args, e.ID, b)
		mine[string(b)] = e
	}
	res, err := s.runScript(ctx, commitScript, []string{k.doc, k.ver, k.seen, k.ex, k.exids, k.ev, k.outbox}, args...)
	if err != nil {
		return false, nil, err
	}
	switch v := res.(type) {
	case string:
		switch v {
		case "dup":
			return true, nil, nil
		case "conflict":
			return false, nil, bridge.ErrVersionConflict
		}
	case []any:
		if len(v) > 0 && v[0] == "ok" {
			outbox, err := decodeEffects(c.Ticket.ID, v[1:], mine)
			return false, outbox, err
		}
	}
	return false, nil, fmt.Errorf("commit: unexpected answer %v", res)
}

// decodeEffects decodes an outbox's values; known maps encodings to the
// effects they are (nil: none known).
func decodeEffects(ticketID string, vals []any, known map[string]bridge.Effect) ([]bridge.Effect, error) {
	out := make([]bridge.Effect, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("outbox of %s: unexpected value %T", ticketID, v)
		}
		if e, ok := known[str]; ok {
			out = append(out, e)
			continue
		}
		var e bridge.Effect
		if err := json.Unmarshal([]byte(str), &e); err != nil {
			return nil, fmt.Errorf("outbox of %s: %w", ticketID, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// IndexTicket adds a ticket to the listings (idempotent).
func (s *Store) IndexTicket(ctx context.Context, t bridge.Ticket) error {
	score := float64(t.CreatedAt.UnixMilli())
	var all, byStructure *redis.IntCmd
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		all = pipe.ZAdd(ctx, s.allIndexKey(), redis.Z{Score: score, Member: t.ID})
		if t.StructureID != "" {
			byStructure = pipe.ZAdd(ctx, s.structureIndexKey(t.StructureID), redis.Z{Score: score, Member: t.ID})
		}
	}); err != nil {
		return err
	}
	if byStructure != nil && byStructure.Err() != nil {
		return byStructure.Err()
	}
	return all.Err()
}

type cursor struct {
	Score float64
	ID    string
}

func encodeCursor(c cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatFloat(c.Score, 'f', -1, 64) + "|" + c.ID))
}

func decodeCursor(s string) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	score, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return cursor{}, errors.New("no separator")
	}
	f, err := strconv.ParseFloat(score, 64)
	if err != nil {
		return cursor{}, err
	}
	return cursor{Score: f, ID: id}, nil
}

// ListTickets returns a page of tickets, newest first. The status filter is
// applied to the tickets themselves, so it is never stale.
func (s *Store) ListTickets(ctx context.Context, q bridge.ListQuery) (bridge.TicketPage, error) {
	if len(q.StructureIDs) > 1 {
		return s.listMerged(ctx, q)
	}
	page := bridge.TicketPage{Tickets: []bridge.Ticket{}}
	key := s.allIndexKey()
	if q.StructureID != "" {
		key = s.structureIndexKey(q.StructureID)
	}
	max, after, err := listStart(q.Cursor)
	if err != nil {
		return page, err
	}
	batch := int64(q.Limit * 2)
	if batch < 50 {
		batch = 50
	}
	var offset int64
	for len(page.Tickets) < q.Limit {
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Max: max, Min: "-inf", Offset: offset, Count: batch}).Result()
		if err != nil {
			return page, err
		}
		if len(zs) == 0 {
			return page, nil
		}
		offset += int64(len(zs))
		var ids []string
		var scores []float64
		for _, z := range zs {
			id, _ := z.Member.(string)
			// Members sharing the cursor's score come in reverse order
			// of their id: skip those already shown.
			if after != nil && z.Score == after.Score && id >= after.ID {
				continue
			}
			ids = append(ids, id)
			scores = append(scores, z.Score)
		}
		if full, err := s.fillPage(ctx, &page, q, ids, scores); err != nil || full {
			return page, err
		}
		if int64(len(zs)) < batch {
			return page, nil
		}
	}
	return page, nil
}

// fillPage adds to the page the tickets ids (with their index scores), in
// order, that pass the query's status filter, up to its limit; full says
// the page is complete (its next cursor set).
func (s *Store) fillPage(ctx context.Context, page *bridge.TicketPage, q bridge.ListQuery, ids []string, scores []float64) (full bool, err error) {
	tickets, err := s.loadTickets(ctx, ids)
	if err != nil {
		return false, err
	}
	for i, t := range tickets {
		if t == nil || (q.Status != "" && t.Status != q.Status) {
			continue
		}
		page.Tickets = append(page.Tickets, *t)
		if len(page.Tickets) == q.Limit {
			page.NextCursor = encodeCursor(cursor{Score: scores[i], ID: ids[i]})
			return true, nil
		}
	}
	return false, nil
}

// listStart reads a listing's cursor: the highest score to read from
// ("+inf" for the first page) and the last ticket shown, or an
// invalid_payload error.
func listStart(c string) (max string, after *cursor, err error) {
	if c == "" {
		return "+inf", nil, nil
	}
	cur, err := decodeCursor(c)
	if err != nil {
		return "", nil, &bridge.Error{Code: bridge.CodeInvalid, Message: "invalid cursor", Fields: []string{"cursor"}}
	}
	return strconv.FormatFloat(cur.Score, 'f', -1, 64), &cur, nil
}

// listCandidate is a member of a listing index.
type listCandidate struct {
	id    string
	score float64
}

// before reports whether a comes before b in a listing: newest first, then
// (same score) by id descending, as ZREVRANGEBYSCORE orders them.
func (a listCandidate) before(b listCandidate) bool {
	return a.score > b.score || a.score == b.score && a.id > b.id
}

// listSource is one structure's index, read in batches.
type listSource struct {
	key    string
	buf    []listCandidate
	offset int64
	done   bool
}

// listMerged lists the tickets of several structures together, newest
// first, with the same cursors as one structure's listing: each
// structure's index (in its own slot on a Cluster) is read in batches and
// the batches merged.
func (s *Store) listMerged(ctx context.Context, q bridge.ListQuery) (bridge.TicketPage, error) {
	page := bridge.TicketPage{Tickets: []bridge.Ticket{}}
	max, after, err := listStart(q.Cursor)
	if err != nil {
		return page, err
	}
	batch := int64(q.Limit + 1)
	if batch < 20 {
		batch = 20
	}
	srcs := make([]*listSource, 0, len(q.StructureIDs))
	for _, id := range q.StructureIDs {
		srcs = append(srcs, &listSource{key: s.structureIndexKey(id)})
	}
	refill := func() error {
		pipe := s.rdb.Pipeline()
		cmds := map[*listSource]*redis.ZSliceCmd{}
		for _, src := range srcs {
			if len(src.buf) == 0 && !src.done {
				cmds[src] = pipe.ZRevRangeByScoreWithScores(ctx, src.key, &redis.ZRangeBy{
					Max: max, Min: "-inf", Offset: src.offset, Count: batch})
			}
		}
		if len(cmds) == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for src, cmd := range cmds {
			zs := cmd.Val()
			src.offset += int64(len(zs))
			src.done = int64(len(zs)) < batch
			for _, z := range zs {
				id, _ := z.Member.(string)
				if after != nil && z.Score == after.Score && id >= after.ID {
					continue
				}
				src.buf = append(src.buf, listCandidate{id: id, score: z.Score})
			}
		}
		return nil
	}
	for len(page.Tickets) < q.Limit {
		// Take, in order, as many candidates as the page still needs:
		// every source with more to read must have a candidate buffered
		// before the smallest can be known.
		var ids []string
		var scores []float64
		for len(ids) < q.Limit-len(page.Tickets) {
			if err := refill(); err != nil {
				return page, err
			}
			var best *listSource
			for _, src := range srcs {
				if len(src.buf) > 0 && (best == nil || src.buf[0].before(best.buf[0])) {
					best = src
				}
			}
			if best == nil {
				break
			}
			c := best.buf[0]
			best.buf = best.buf[1:]
			ids = append(ids, c.id)
			scores = append(scores, c.score)
		}
		if len(ids) == 0 {
			return page, nil
		}
		if full, err := s.fillPage(ctx, &page, q, ids, scores); err != nil || full {
			return page, err
		}
	}
	return page, nil
}

// loadTickets reads several tickets with one pipeline (one GET a ticket, so
// that it works across slots on a cluster). A missing ticket is nil.
func (s *Store) loadTickets(ctx context.Context, ids []string) ([]*bridge.Ticket, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.ticketKeys(id).doc)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]*bridge.Ticket, len(ids))
	for i, c := range cmds {
		raw, err := c.Bytes()
		if err != nil {
			continue
		}
		var t bridge.Ticket
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("ticket %s: %w", ids[i], err)
		}
		out[i] = &t
	}
	return out, nil
}

var putAttachmentScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 't')
if owner and owner ~= ARGV[1] then return 'taken' end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'f', ARGV[2], 'c', ARGV[3], 'd', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 'ok'`)

// PutAttachments stores attachment bytes (idempotent per ticket).
func (s *Store) PutAttachments(ctx context.Context, ticketID string, atts []bridge.AttachmentData) error {
	if len(atts) == 0 {
		return nil
	}
	calls := make([]*scriptCall, len(atts))
	for i, a := range atts {
		calls[i] = &scriptCall{script: putAttachmentScript, keys: []string{s.attachmentKey(a.ID)},
			args: []any{ticketID, a.Filename, a.ContentType, a.Content, s.opts.AttachmentRetention.Milliseconds()}}
	}
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		for _, c := range calls {
			c.add(ctx, pipe)
		}
	}); err != nil {
		return err
	}
	for i, a := range atts {
		out, err := calls[i].result(ctx, s.batch)
		if err != nil {
			return fmt.Errorf("attachment %s: %w", a.ID, err)
		}
		if res, _ := out.(string); res == "taken" {
			return &bridge.Error{Code: bridge.CodeInvalid,
				Message: fmt.Sprintf("attachment id %s already belongs to another ticket", a.ID),
				Fields:  []string{fmt.Sprintf("attachments[%d].id", i)}}
		}
	}
	return nil
}

// Attachment returns an attachment with its bytes.
func (s *Store) Attachment(ctx context.Context, id string) (bridge.AttachmentData, error) {
	var a bridge.AttachmentData
	vals, err := s.rdb.HMGet(ctx, s.attachmentKey(id), "f", "c", "d").Result()
	if err != nil {
		return a, err
	}
	if vals[2] == nil {
		return a, bridge.ErrNotFound
	}
	a.ID = id
	a.Filename, _ = vals[0].(string)
	a.ContentType, _ = vals[1].(string)
	data, _ := vals[2].(string)
	a.Content = []byte(data)
	a.Size = int64(len(a.Content))
	return a, nil
}

// Outbox lists a ticket's pending effects.
func (s *Store) Outbox(ctx context.Context, ticketID string) ([]bridge.Effect, error) {
	vals, err := s.rdb.HVals(ctx, s.ticketKeys(ticketID).outbox).Result()
	if err != nil {
		return nil, err
	}
	anys := make([]any, len(vals))
	for i, v := range vals {
		anys[i] = v
	}
	return decodeEffects(ticketID, anys, nil)
}

// AckEffects removes dispatched effects from a ticket's outbox.
func (s *Store) AckEffects(ctx context.Context, ticketID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var cmd *redis.IntCmd
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		cmd = pipe.HDel(ctx, s.ticketKeys(ticketID).outbox, ids...)
	}); err != nil {
		return err
	}
	return cmd.Err()
}
