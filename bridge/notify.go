package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// NotificationType names a feed notification.
type NotificationType string

// The notification types.
const (
	NotifyTicketCreated    NotificationType = "ticket.created"
	NotifyTicketUpdated    NotificationType = "ticket.updated"
	NotifyDeskReplied      NotificationType = "ticket.desk_replied"
	NotifyTicketResolved   NotificationType = "ticket.resolved"
	NotifyTicketClosed     NotificationType = "ticket.closed"
	NotifyEscalationFailed NotificationType = "ticket.escalation_failed"
	// NotifyDeskSolved and NotifyDeskClosed tell the referent who
	// escalated that the desk's product solved or closed its own ticket.
	NotifyDeskSolved        NotificationType = "ticket.desk_solved"
	NotifyDeskClosed        NotificationType = "ticket.desk_closed"
	maxSubjectInTitle                        = 60
	maxStructureChainLength                  = 16
)

// Notification is an entry of a user's news feed.
type Notification struct {
	ID        string           `json:"id"`
	Type      NotificationType `json:"type"`
	TicketID  string           `json:"ticket_id"`
	Title     string           `json:"title"`
	Actor     *Person          `json:"actor"`
	CreatedAt time.Time        `json:"created_at"`
	Read      bool             `json:"read"`
}

// Feed keeps each user's notifications.
type Feed interface {
	// AddNotification adds n to a user's feed once (by n.ID).
	AddNotification(ctx context.Context, userID string, n Notification) error
}

// FeedWrite is one notification for one user.
type FeedWrite struct {
	UserID       string
	Notification Notification
}

// FeedBatcher is a Feed that can write several users' notifications at
// once (one round trip instead of one per recipient). Each write is still
// idempotent by the notification's id.
type FeedBatcher interface {
	AddNotifications(ctx context.Context, writes []FeedWrite) error
}

// CallbackSender posts a signed callback to the ENT. id is the callback's
// webhook-id: the same at every try.
type CallbackSender interface {
	SendCallback(ctx context.Context, id, typ string, at time.Time, data any) error
}

// The callback types.
const (
	CallbackEscalated           = "ticket.escalated"
	CallbackEscalationFailed    = "ticket.escalation_failed"
	CallbackDeskReplied         = "ticket.desk_replied"
	CallbackNotificationCreated = "notification.created"
	CallbackDeskStatusChanged   = "ticket.desk_status_changed"
)

// Title is a notification's title in locale's language (LangOf), with
// the subject cut to a readable length.
func Title(locale string, typ NotificationType, subject string) string {
	format, ok := titles[LangOf(locale)][typ]
	if !ok {
		format = "%s"
	}
	return fmt.Sprintf(format, cutSubject(subject, maxSubjectInTitle))
}

func cutSubject(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	// Cut at a word boundary when one is near.
	if i := strings.LastIndexByte(string(r), ' '); i > len(string(r))*2/3 {
		return string(r)[:i] + "…"
	}
	return string(r) + "…"
}

// notificationID derives a short, stable notification id from its effect.
func notificationID(effectID string) string {
	sum := sha256.Sum256([]byte(effectID))
	return "n" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:12]))
}

// notifyEffect is the effect that notifies of an event on a ticket.
func notifyEffect(eventID, ticketID string, typ NotificationType, actor *Person, at time.Time) Effect {
	return Effect{ID: eventID + ":notify:" + string(typ), Kind: EffectNotify, TicketID: ticketID, EventID: eventID,
		Notify: typ, Actor: actor, At: at}
}

// callbackEffect is the effect that tells the ENT.
func callbackEffect(eventID, ticketID, typ string, payload any, at time.Time) Effect {
	e := Effect{ID: eventID + ":cb:" + typ, Kind: EffectCallback, TicketID: ticketID, EventID: eventID,
		Callback: typ, At: at}
	if payload != nil {
		e.Payload, _ = json.Marshal(payload)
	}
	return e
}

// recipient is someone to notify, in their locale.
type recipient struct {
	ID     string
	Locale string
}

// referentsOf returns the referents of a structure and of its parents,
// each once, nearest first. A cycle or a missing parent ends the walk.
func referentsOf(ctx context.Context, store Store, structureID string) ([]Referent, error) {
	out, _, err := referentChain(ctx, store, structureID)
	return out, err
}

// referentChain is referentsOf that also says whether the structure itself
// is known.
func referentChain(ctx context.Context, store Store, structureID string) (out []Referent, found bool, err error) {
	seenStructure := map[string]bool{}
	seenUser := map[string]bool{}
	id := structureID
	for i := 0; id != "" && !seenStructure[id] && i < maxStructureChainLength; i++ {
		seenStructure[id] = true
		st, err := store.Structure(ctx, id)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if i == 0 {
			found = true
		}
		for _, r := range st.Referents {
			if !seenUser[r.ID] {
				seenUser[r.ID] = true
				out = append(out, r)
			}
		}
		id = st.ParentID
	}
	return out, found, nil
}

// Recipients applies the notification rules: who hears of an event of type
// typ on ticket t caused by actor.
func Recipients(typ NotificationType, t Ticket, referents []Referent, actor *Person) []recipient {
	var out []recipient
	seen := map[string]bool{}
	add := func(id, locale string) {
		if id == "" || seen[id] || (actor != nil && actor.ID == id) {
			return
		}
		seen[id] = true
		out = append(out, recipient{ID: id, Locale: locale})
	}
	switch typ {
	case NotifyTicketCreated:
		// referents only: the owner made it
	case NotifyEscalationFailed:
		if t.Escalation.EscalatedBy != nil {
			add(t.Escalation.EscalatedBy.ID, t.Locale)
		}
	case NotifyDeskSolved, NotifyDeskClosed:
		// The referent who escalated follows the desk's side; the
		// structure's referents only when that is not known.
		if by := t.Escalation.EscalatedBy; by != nil {
			for _, r := range referents {
				if r.ID == by.ID {
					return []recipient{{ID: r.ID, Locale: r.Locale}}
				}
			}
			return []recipient{{ID: by.ID, Locale: t.Locale}}
		}
	default:
		add(t.Owner.ID, t.Locale)
	}
	for _, r := range referents {
		add(r.ID, r.Locale)
	}
	return out
}

func (w *Worker) notify(ctx context.Context, eff Effect) error {
	t, _, err := w.store.LoadTicket(ctx, eff.TicketID, "")
	if err != nil {
		return fmt.Errorf("load ticket %s: %w", eff.TicketID, err)
	}
	refs, err := referentsOf(ctx, w.store, t.StructureID)
	if err != nil {
		return err
	}
	rcpts := Recipients(eff.Notify, t, refs, eff.Actor)
	at := eff.At
	if at.IsZero() {
		at = w.svc.now().UTC()
	}
	id := notificationID(eff.ID)
	ids := make([]string, 0, len(rcpts))
	if w.feed != nil {
		writes := make([]FeedWrite, 0, len(rcpts))
		for _, r := range rcpts {
			locale := r.Locale
			if locale == "" {
				locale = w.defaultLocale
			}
			writes = append(writes, FeedWrite{UserID: r.ID, Notification: Notification{ID: id, Type: eff.Notify,
				TicketID: t.ID, Title: Title(locale, eff.Notify, t.Subject), Actor: eff.Actor, CreatedAt: at}})
			ids = append(ids, r.ID)
		}
		if err := w.writeFeeds(ctx, writes); err != nil {
			return err
		}
	}
	if w.callbacks == nil || w.dispatcher == nil || len(ids) == 0 {
		return nil
	}
	payload := map[string]any{
		"notification": Notification{ID: id, Type: eff.Notify, TicketID: t.ID,
			Title: Title(t.Locale, eff.Notify, t.Subject), Actor: eff.Actor, CreatedAt: at},
		"recipients": ids,
	}
	cb := callbackEffect(eff.ID, t.ID, CallbackNotificationCreated, payload, at)
	return w.dispatcher.Dispatch(ctx, []Effect{cb})
}

// writeFeeds writes the notifications, in one batch when the feed can.
func (w *Worker) writeFeeds(ctx context.Context, writes []FeedWrite) error {
	if b, ok := w.feed.(FeedBatcher); ok && len(writes) > 1 {
		if err := b.AddNotifications(ctx, writes); err != nil {
			return fmt.Errorf("feeds of %d users: %w", len(writes), err)
		}
		return nil
	}
	for _, fw := range writes {
		if err := w.feed.AddNotification(ctx, fw.UserID, fw.Notification); err != nil {
			return fmt.Errorf("feed of %s: %w", fw.UserID, err)
		}
	}
	return nil
}

// callback sends one callback. Its data is the payload recorded at commit
// time, or (a desk reply, whose attachments travel inline) built now.
func (w *Worker) callback(ctx context.Context, eff Effect) error {
	if w.callbacks == nil {
		return nil
	}
	var data any = eff.Payload
	if eff.Callback == CallbackDeskReplied {
		d, err := w.deskReplyPayload(ctx, eff)
		if err != nil {
			return err
		}
		data = d
	}
	at := eff.At
	if at.IsZero() {
		at = w.svc.now().UTC()
	}
	return w.callbacks.SendCallback(ctx, eff.ID, eff.Callback, at, data)
}

type inlineAttachment struct {
	ID            string `json:"id"`
	Filename      string `json:"filename"`
	ContentType   string `json:"content_type"`
	Size          int64  `json:"size"`
	ContentBase64 []byte `json:"content_base64"` // encoding/json writes []byte as base64
}

func (w *Worker) deskReplyPayload(ctx context.Context, eff Effect) (any, error) {
	view, err := w.store.TicketWithExchanges(ctx, eff.TicketID)
	if err != nil {
		return nil, err
	}
	var ex *Exchange
	for i := range view.Exchanges {
		if view.Exchanges[i].ID == eff.ExchangeID {
			ex = &view.Exchanges[i]
		}
	}
	if ex == nil {
		return nil, Permanent(fmt.Errorf("exchange %s not found", eff.ExchangeID))
	}
	atts := make([]inlineAttachment, 0, len(ex.Attachments))
	for _, a := range ex.Attachments {
		data, err := w.store.Attachment(ctx, a.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		atts = append(atts, inlineAttachment{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType,
			Size: a.Size, ContentBase64: data.Content})
	}
	out := map[string]any{
		"ticket_id": view.ID,
		"exchange": map[string]any{"id": ex.ID, "origin": ex.Origin, "author": ex.Author, "body": ex.Body,
			"created_at": ex.CreatedAt, "attachments": atts},
	}
	if eff.Note != "" {
		out["status"] = eff.Note
	}
	return out, nil
}
