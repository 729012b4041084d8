package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

var _ bridge.EscalationPreparer = (*Store)(nil)

// PrepareEscalation prepares an escalation mail's record and loads the
// structure and attachment bytes it is made of, in one pipeline: one round
// trip instead of one a step. The Message-ID → ticket entry is written for
// the record's own Message-ID in the same pipeline; when the ledger held an
// earlier record (a retry), that record's Message-ID gets its entry too,
// in a second round trip, as PrepareMail does.
func (s *Store) PrepareEscalation(ctx context.Context, ticketID string, rec bridge.MailRecord, structureID string,
	refs []bridge.Attachment) (bridge.MailRecord, bridge.Structure, []bridge.AttachmentData, error) {
	st := bridge.Structure{ID: structureID}
	b, err := json.Marshal(rec)
	if err != nil {
		return rec, st, nil, err
	}
	ttl := s.opts.AttachmentRetention
	prep := &scriptCall{script: prepareMailScript, keys: []string{s.mailKey(ticketID)}, args: []any{rec.EffectID, b}}
	var setID *redis.StatusCmd
	var stCmd *redis.StringCmd
	attCmds := make([]*redis.SliceCmd, len(refs))
	if err := s.batch.do(ctx, func(pipe redis.Pipeliner) {
		prep.add(ctx, pipe)
		setID = pipe.Set(ctx, s.messageIDKey(rec.MessageID), ticketID, ttl)
		if structureID != "" {
			stCmd = pipe.Get(ctx, s.structureKey(structureID))
		}
		for i, r := range refs {
			attCmds[i] = pipe.HMGet(ctx, s.attachmentKey(r.ID), "f", "c", "d")
		}
	}); err != nil {
		return rec, st, nil, err
	}
	// redis.Nil (no such structure) is sorted out per command below.
	out, err := prep.result(ctx, s.batch)
	if err != nil {
		return rec, st, nil, err
	}
	res, _ := out.(string)
	if err := setID.Err(); err != nil {
		return rec, st, nil, err
	}
	var got bridge.MailRecord
	if err := json.Unmarshal([]byte(res), &got); err != nil {
		return rec, st, nil, err
	}
	if got.MessageID != rec.MessageID {
		if err := s.rdb.Set(ctx, s.messageIDKey(got.MessageID), ticketID, ttl).Err(); err != nil {
			return got, st, nil, err
		}
	}
	if stCmd != nil {
		raw, err := stCmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return got, st, nil, err
		default:
			if err := json.Unmarshal(raw, &st); err != nil {
				return got, st, nil, fmt.Errorf("structure %s: %w", structureID, err)
			}
		}
	}
	atts := make([]bridge.AttachmentData, 0, len(refs))
	for i, r := range refs {
		vals, err := attCmds[i].Result()
		if err != nil {
			return got, st, nil, fmt.Errorf("attachment %s: %w", r.ID, err)
		}
		data, ok := vals[2].(string)
		if !ok {
			continue // past its retention: the mail goes without it
		}
		atts = append(atts, bridge.AttachmentData{Attachment: r, Content: []byte(data)})
	}
	return got, st, atts, nil
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
	out, err := s.runScript(ctx, markAcceptedScript, []string{s.mailKey(ticketID), s.threadKey(ticketID)},
		effectID, at.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return err
	}
	res, _ := out.(string)
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
