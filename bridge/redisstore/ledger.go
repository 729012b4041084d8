package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
)

var _ bridge.Ledger = (*Store)(nil)

func (s *Store) mailKey(ticketID string) string { return s.opts.Prefix + "{t:" + ticketID + "}:mail" }
func (s *Store) threadKey(ticketID string) string {
	return s.opts.Prefix + "{t:" + ticketID + "}:thread"
}
func (s *Store) messageIDKey(id string) string {
	return s.opts.Prefix + "msgid:" + strings.ToLower(strings.Trim(id, "<> "))
}

var prepareMailScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]`)

// PrepareMail records the Message-ID chosen for an effect's mail, or
// returns the record made before.
func (s *Store) PrepareMail(ctx context.Context, ticketID string, rec bridge.MailRecord) (bridge.MailRecord, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return rec, err
	}
	res, err := prepareMailScript.Run(ctx, s.rdb, []string{s.mailKey(ticketID)}, rec.EffectID, b).Text()
	if err != nil {
		return rec, err
	}
	var got bridge.MailRecord
	if err := json.Unmarshal([]byte(res), &got); err != nil {
		return rec, err
	}
	// The Message-ID → ticket map lives in another slot; written at every
	// preparation (idempotent) so that it exists before the mail leaves.
	ttl := s.opts.AttachmentRetention
	if err := s.rdb.Set(ctx, s.messageIDKey(got.MessageID), ticketID, ttl).Err(); err != nil {
		return got, err
	}
	return got, nil
}

var markAcceptedScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 'missing' end
local rec = cjson.decode(cur)
if rec['accepted_at'] then return 'ok' end
rec['accepted_at'] = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
redis.call('RPUSH', KEYS[2], rec['message_id'])
return 'ok'`)

// MarkAccepted records that the server accepted an effect's mail.
func (s *Store) MarkAccepted(ctx context.Context, ticketID, effectID string, at time.Time) error {
	res, err := markAcceptedScript.Run(ctx, s.rdb, []string{s.mailKey(ticketID), s.threadKey(ticketID)},
		effectID, at.UTC().Format(time.RFC3339Nano)).Text()
	if err != nil {
		return err
	}
	if res == "missing" {
		return errors.New("mark accepted: no prepared mail for " + effectID)
	}
	return nil
}

// Thread returns the accepted Message-IDs of a ticket, oldest first.
func (s *Store) Thread(ctx context.Context, ticketID string) ([]string, error) {
	return s.rdb.LRange(ctx, s.threadKey(ticketID), 0, -1).Result()
}

// MailRecords returns the ledger of a ticket (ops, tests).
func (s *Store) MailRecords(ctx context.Context, ticketID string) ([]bridge.MailRecord, error) {
	vals, err := s.rdb.HVals(ctx, s.mailKey(ticketID)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]bridge.MailRecord, 0, len(vals))
	for _, v := range vals {
		var r bridge.MailRecord
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// TicketByMessageID finds the ticket of a Message-ID this bridge sent.
func (s *Store) TicketByMessageID(ctx context.Context, messageID string) (string, error) {
	id, err := s.rdb.Get(ctx, s.messageIDKey(messageID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", bridge.ErrNotFound
	}
	return id, err
}
