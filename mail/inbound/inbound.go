package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strings"
	"time"

	"supportbridge/bridge"
	"supportbridge/mail"
	"supportbridge/mail/imapreader"
)

// ReplyApplier is what the inbound side needs from the domain.
type ReplyApplier interface {
	ApplyDeskReply(ctx context.Context, r bridge.DeskReply) (bridge.Outcome, error)
	LearnDeskReference(ctx context.Context, ticketID, ref, tag string) error
	EscalationBounced(ctx context.Context, ticketID, reason string) error
	RecordDeskStatus(ctx context.Context, n bridge.DeskNotice) (bridge.Outcome, error)
}

// Store is what the inbound side keeps and looks up.
type Store interface {
	TicketByMessageID(ctx context.Context, messageID string) (string, error)
	TicketByDeskReference(ctx context.Context, ref string) (string, error)
	IndexDeskReference(ctx context.Context, ref, ticketID string) error
	KeepRaw(ctx context.Context, key string, raw []byte, ttl time.Duration) error
	Quarantine(ctx context.Context, q bridge.QuarantinedMail) error
}

// Options configure the inbound processor.
type Options struct {
	Signer mail.Signer
	// ReplyTo is the mailbox the desk answers to (plus-address tokens are
	// looked for on it).
	ReplyTo string
	// OwnAddresses are our own addresses (desk.from, desk.reply_to): a
	// message from one of them, forwarded back inside a reply, is our own
	// mail and is not kept.
	OwnAddresses []string
	// SubjectTag is the word of the [<tag>-<id>] subject tag.
	SubjectTag string
	// SenderAllowed says whether an address may answer a ticket.
	SenderAllowed func(address string) bool
	// SenderAuth checks, when configured, the receiving server's
	// Authentication-Results: an allowed From that fails DMARC is a
	// forgery and never lands on a ticket.
	SenderAuth     SenderAuth
	Classify       ClassifyOptions
	StatusMarkers  map[string][]string
	Limits         ParseLimits
	RawRetention   time.Duration
	Mailbox        string
	Logger         *slog.Logger
	Now            func() time.Time
	OnOutcome      func(outcome string) // metrics: applied, duplicate, loop, auto_reply, desk_notice, bounce, quarantined
	MaxAttachments int
}

// Processor turns a fetched mail into its effect on a ticket: a
// desk reply, a learned desk reference, a failed escalation, or nothing
// (our own mail, an auto-reply); what it cannot match goes to quarantine.
type Processor struct {
	apply ReplyApplier
	store Store
	opt   Options
	// Built once: compiling their patterns per mail cost a third of the
	// import's CPU.
	parser  *MessageParser
	extract *ReplyExtractor
}

// NewInboundProcessor returns a processor.
func NewInboundProcessor(apply ReplyApplier, store Store, opt Options) *Processor {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.RawRetention <= 0 {
		opt.RawRetention = 90 * 24 * time.Hour
	}
	if opt.SenderAllowed == nil {
		opt.SenderAllowed = func(string) bool { return false }
	}
	return &Processor{apply: apply, store: store, opt: opt,
		parser: NewMessageParser(opt.Limits), extract: NewReplyExtractor()}
}

// mailKey is a mail's idempotency key: its Message-ID, or a hash of the raw
// mail when it has none. It is hashed so that it is safe in keys and ids.
func mailKey(messageID string, raw []byte) string {
	var sum [32]byte
	if messageID != "" {
		sum = sha256.Sum256([]byte("mid:" + strings.ToLower(strings.Trim(messageID, "<> "))))
	} else {
		sum = sha256.Sum256(raw)
	}
	return hex.EncodeToString(sum[:16])
}

func (p *Processor) outcome(o string) {
	if p.opt.OnOutcome != nil {
		p.opt.OnOutcome(o)
	}
}

// temporary is a failure that leaves the mail for a later pass: in
// bridge's taxonomy every failure not marked permanent is temporary, and
// the IMAP reader tries those again. Its text starts with "transient: ",
// as the reader's logs have always said; err's chain is not kept, so that
// whatever err holds, the mail is tried again rather than quarantined.
func temporary(what string, err error) error {
	return fmt.Errorf("transient: %s: %v", what, err)
}

// inboundAction is what Apply does with a routed mail.
type inboundAction int

const (
	inboundQuarantine inboundAction = iota + 1
	inboundLoop
	inboundBounce
	inboundAutoReply
	inboundDeskNotice
	inboundReply
)

// inboundRoute is what Route found out about a mail, for Apply: nothing
// of it is applied yet.
type inboundRoute struct {
	act inboundAction
	log *slog.Logger
	// outcome, when set, is counted first (bounce, auto_reply), whatever
	// comes of the mail then.
	outcome string
	in      *Inbound
	cls     Classification
	key     string // the mail's idempotency key
	keepRaw bool   // the raw mail is kept under key before anything else
	q       bridge.QuarantinedMail
	// ticketID is the ticket the mail applies to, found by how; "" for
	// none.
	ticketID, how string
	// bounceReason is the bounce's diagnostic.
	bounceReason string
	// ignored says, for an auto-reply that teaches nothing, why (in the
	// log), with ignoredReason when there is one.
	ignored, ignoredReason string
}

// Route reads, classifies and threads a mail, changing nothing: the route's
// key is the ticket it applies to (none for what is quarantined, dropped
// or ignored), and an acknowledgement or a product's notice that carries a
// desk number is a barrier: the mails after it may be threaded by that
// number once it is learned. It is the first half of the IMAP reader's
// MessageHandler.
func (p *Processor) Route(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Route, error) {
	ir, err := p.route(ctx, m)
	if err != nil {
		return imapreader.Route{}, err
	}
	barrier := (ir.cls.Kind == KindAutoReply || ir.cls.Kind == KindDeskNotice) && ir.cls.DeskReference != ""
	return imapreader.Route{Key: ir.ticketID, Barrier: barrier, Data: ir}, nil
}

func (p *Processor) route(ctx context.Context, m imapreader.FetchedMessage) (*inboundRoute, error) {
	log := p.opt.Logger.With(slog.Uint64("uid", uint64(m.UID)), slog.String("mailbox", p.opt.Mailbox))
	ir := &inboundRoute{log: log, act: inboundQuarantine,
		q: bridge.QuarantinedMail{Mailbox: p.opt.Mailbox, UID: m.UID, Size: m.Size, At: p.opt.Now().UTC()}}
	q := &ir.q
	if m.TooLarge || m.Raw == nil {
		q.Key = fmt.Sprintf("large-%d-%d", m.UIDValidity, m.UID)
		q.Reason = fmt.Sprintf("too large (%d bytes)", m.Size)
		return ir, nil
	}
	in, perr := p.parser.Parse(m.Raw)
	msgID := ""
	if in != nil {
		msgID = in.MessageID
	}
	ir.key, ir.keepRaw = mailKey(msgID, m.Raw), true
	q.Key, q.RawKey, q.MessageID = ir.key, ir.key, msgID
	if perr != nil || in == nil {
		q.Reason = "unparseable: " + errString(perr)
		return ir, nil
	}
	ir.in = in
	if in.From != nil {
		q.From = in.From.Address
	}
	q.Subject = in.Subject
	ir.log = ir.log.With(slog.String("message_id", msgID))
	if damage := damaged(in.Problems); damage != "" {
		// Half a message posted on a ticket misleads more than it helps:
		// an operator can still assign it after a look.
		q.Reason = "damaged MIME: " + damage
		return ir, nil
	}

	cls := Classify(in, p.opt.Classify)
	ir.cls = cls
	switch cls.Kind {
	case KindLoop:
		ir.act = inboundLoop
		return ir, nil
	case KindBounce:
		return p.routeBounce(ctx, ir)
	case KindAutoReply:
		return p.routeAutoReply(ctx, ir)
	}
	if cls.Product != nil {
		ir.log = ir.log.With(slog.String("desk_product", cls.Product.Name))
	}

	from := ""
	if in.From != nil {
		from = in.From.Address
	}
	if !p.opt.SenderAllowed(from) {
		q.Reason = "sender not allowed"
		return ir, nil
	}
	if reason := p.opt.SenderAuth.Check(in); reason != "" {
		q.Reason = reason
		return ir, nil
	}
	ticketID, how, err := p.thread(ctx, in, cls)
	if err != nil {
		return nil, err
	}
	if ticketID == "" {
		q.Reason = "no ticket matched"
		return ir, nil
	}
	ir.ticketID, ir.how = ticketID, how
	ir.act = inboundReply
	if cls.Kind == KindDeskNotice {
		ir.act = inboundDeskNotice
	}
	return ir, nil
}

// Apply carries out what Route found: it keeps the raw mail, then applies
// the reply, the notice, the learned desk number or the bounce to its
// ticket, or quarantines the mail. It is the second half of the IMAP
// reader's MessageHandler, which calls it in the ticket's arrival order.
func (p *Processor) Apply(ctx context.Context, m imapreader.FetchedMessage, rt imapreader.Route) (imapreader.Verdict, error) {
	ir, ok := rt.Data.(*inboundRoute)
	if !ok || ir == nil {
		return imapreader.Verdict{}, bridge.Permanent(errors.New("inbound: applying a route that Route did not give"))
	}
	if ir.keepRaw {
		if err := p.store.KeepRaw(ctx, ir.key, m.Raw, p.opt.RawRetention); err != nil {
			return imapreader.Verdict{}, fmt.Errorf("keep raw mail: %w", err)
		}
	}
	if ir.outcome != "" {
		p.outcome(ir.outcome)
	}
	switch ir.act {
	case inboundLoop:
		p.outcome("loop")
		ir.log.Info("our own mail came back: dropped", slog.String("reason", ir.cls.Reason))
		return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "loop"}, nil
	case inboundBounce:
		return p.bounce(ctx, ir)
	case inboundAutoReply:
		return p.autoReply(ctx, ir)
	case inboundDeskNotice:
		return p.deskNotice(ctx, ir)
	case inboundReply:
		return p.reply(ctx, ir)
	}
	return p.quarantine(ctx, ir.log, ir.q)
}

// Handle routes and applies one mail on its own, ordered against no other:
// for a mail handled alone. The IMAP reader calls Route and Apply.
func (p *Processor) Handle(ctx context.Context, m imapreader.FetchedMessage) (imapreader.Verdict, error) {
	rt, err := p.Route(ctx, m)
	if err != nil {
		return imapreader.Verdict{}, err
	}
	return p.Apply(ctx, m, rt)
}

// reply applies a desk reply to its ticket.
func (p *Processor) reply(ctx context.Context, ir *inboundRoute) (imapreader.Verdict, error) {
	log, q := ir.log, ir.q
	reply := p.deskReply(ir.in, ir.key, ir.ticketID, ir.cls)
	res, err := p.apply.ApplyDeskReply(ctx, reply)
	if err != nil {
		if bridge.ErrorCode(err) == bridge.CodeUnavailable {
			return imapreader.Verdict{}, temporary("apply reply", err)
		}
		q.Reason = "not applied: " + err.Error()
		return p.quarantine(ctx, log, q)
	}
	if ir.cls.DeskReference != "" {
		if err := p.store.IndexDeskReference(ctx, ir.cls.DeskReference, ir.ticketID); err != nil {
			return imapreader.Verdict{}, err
		}
	}
	p.outcome(string(res))
	log.Info("desk reply", slog.String("ticket", ir.ticketID), slog.String("threaded_by", ir.how),
		slog.String("outcome", string(res)))
	return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: string(res)}, nil
}

// deskNotice records a help-desk product's solved/closed notice on the
// escalation of the ticket it threads to; the agent's words a notice may
// carry (a solution) are posted once, as an exchange.
func (p *Processor) deskNotice(ctx context.Context, ir *inboundRoute) (imapreader.Verdict, error) {
	log, in, cls, key, ticketID, q := ir.log, ir.in, ir.cls, ir.key, ir.ticketID, ir.q
	res, err := p.apply.RecordDeskStatus(ctx, bridge.DeskNotice{Key: key, TicketID: ticketID,
		Status: bridge.DeskStatusValue(cls.DeskStatus), At: in.Date, DeskReference: cls.DeskReference,
		DeskTag: cls.DeskTag})
	if err != nil {
		if bridge.ErrorCode(err) == bridge.CodeUnavailable {
			return imapreader.Verdict{}, temporary("record desk status", err)
		}
		q.Reason = "desk notice not applied: " + err.Error()
		return p.quarantine(ctx, log, q)
	}
	if cls.DeskReference != "" {
		if err := p.store.IndexDeskReference(ctx, cls.DeskReference, ticketID); err != nil {
			return imapreader.Verdict{}, err
		}
	}
	// A notice may carry the agent's words (the solution): they become an
	// exchange, once.
	if reply := p.deskReply(in, key, ticketID, cls); reply.Body != "" {
		reply.Status, reply.SkipRepeated = "", true
		if _, err := p.apply.ApplyDeskReply(ctx, reply); err != nil {
			if bridge.ErrorCode(err) == bridge.CodeUnavailable {
				return imapreader.Verdict{}, temporary("apply the notice's text", err)
			}
			// The status is recorded; the text must not be lost: an
			// operator can still assign the mail to the ticket.
			q.Reason = "desk notice recorded, its text not applied: " + err.Error()
			return p.quarantine(ctx, log, q)
		}
	}
	p.outcome("desk_notice")
	log.Info("desk notice", slog.String("ticket", ticketID), slog.String("threaded_by", ir.how),
		slog.String("desk_status", cls.DeskStatus), slog.String("outcome", string(res)))
	return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "desk notice: " + cls.DeskStatus}, nil
}

// deskReply builds the reply a parsed mail makes on a ticket: the new text
// only, the status it asks for, its attachments with ids derived from key.
func (p *Processor) deskReply(in *Inbound, key, ticketID string, cls Classification) bridge.DeskReply {
	from := ""
	if in.From != nil {
		from = in.From.Address
	}
	deskRef := cls.DeskReference
	text := p.extract.ExtractFor(in.Text, in.HTML, ReplyContext{Product: cls.Product, Subject: in.Subject,
		OwnAddresses: p.opt.OwnAddresses, KeepForwards: true, Notice: cls.Kind == KindDeskNotice})
	reply := bridge.DeskReply{
		Key:           key,
		TicketID:      ticketID,
		Author:        bridge.Person{ID: strings.ToLower(from), DisplayName: displayName(in.From), Email: from},
		Body:          text,
		ReceivedAt:    in.Date.UTC(),
		DeskReference: deskRef,
		DeskTag:       cls.DeskTag,
	}
	if reply.ReceivedAt.IsZero() || reply.ReceivedAt.After(p.opt.Now().Add(24*time.Hour)) {
		reply.ReceivedAt = p.opt.Now().UTC()
	}
	if st, ok := DetectStatus(in.Subject, text, p.opt.StatusMarkers); ok {
		reply.Status = bridge.Status(st)
	}
	for i, a := range in.Attachments {
		if p.opt.MaxAttachments > 0 && i >= p.opt.MaxAttachments {
			break
		}
		reply.Attachments = append(reply.Attachments, bridge.AttachmentData{
			Attachment: bridge.Attachment{ID: fmt.Sprintf("%s-%d", key, i), Filename: a.Filename,
				ContentType: a.ContentType, Size: int64(len(a.Content))},
			Content: a.Content})
	}
	return reply
}

// ApplyToTicket applies a quarantined mail to the ticket an operator chose:
// the sender and threading checks are the operator's call; the reply is
// idempotent by the mail's key like any other.
func (p *Processor) ApplyToTicket(ctx context.Context, raw []byte, ticketID string) (bridge.Outcome, error) {
	in, err := p.parser.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse: %w", err)
	}
	cls := Classify(in, p.opt.Classify)
	return p.apply.ApplyDeskReply(ctx, p.deskReply(in, mailKey(in.MessageID, raw), ticketID, cls))
}

// damaged returns the parse problems that mean the content itself was
// lost (ProblemDamaged: truncated parts, damaged transfer encodings, broken
// boundaries), or "" when the mail came through whole.
func damaged(problems []Problem) string {
	var out []string
	for _, p := range problems {
		if p.Kind == ProblemDamaged {
			out = append(out, p.Text)
		}
	}
	return strings.Join(out, "; ")
}

func displayName(a *netmail.Address) string {
	if a == nil {
		return ""
	}
	if a.Name != "" {
		return a.Name
	}
	return a.Address
}

func errString(err error) string {
	if err == nil {
		return "no content"
	}
	return err.Error()
}

// thread finds the ticket a reply belongs to, in the order the best help
// desks use: our Message-IDs in In-Reply-To/References (signed, or in the
// ledger), the signed plus-address token, the subject tag (the caller has
// checked the sender), the desk's own ticket number.
func (p *Processor) thread(ctx context.Context, in *Inbound, cls Classification) (ticketID, how string, err error) {
	ids := append(append([]string{}, in.InReplyTo...), reverse(in.References)...)
	for _, id := range ids {
		if t, _, ok := p.opt.Signer.ParseMessageID(id); ok {
			return t, "message-id", nil
		}
		t, err := p.store.TicketByMessageID(ctx, id)
		if err == nil {
			return t, "ledger", nil
		}
		if !errors.Is(err, bridge.ErrNotFound) {
			return "", "", temporary("ledger", err)
		}
	}
	base := strings.ToLower(p.opt.ReplyTo)
	var rcpts []string
	for _, a := range append(append([]*netmail.Address{}, in.To...), in.Cc...) {
		rcpts = append(rcpts, a.Address)
	}
	rcpts = append(rcpts, in.Header.Values("Delivered-To")...)
	rcpts = append(rcpts, in.Header.Values("X-Original-To")...)
	for _, r := range rcpts {
		b, tok := mail.SplitPlusAddress(strings.Trim(strings.TrimSpace(r), "<>"))
		if tok == "" || !strings.EqualFold(b, base) {
			continue
		}
		if t, ok := p.opt.Signer.ParseReplyToken(tok); ok {
			return t, "token", nil
		}
	}
	if t, ok := SubjectTicketID(in.Subject, p.opt.SubjectTag); ok {
		return t, "subject", nil
	}
	if cls.DeskReference != "" {
		t, err := p.store.TicketByDeskReference(ctx, cls.DeskReference)
		if err == nil {
			return t, "desk-reference", nil
		}
		if !errors.Is(err, bridge.ErrNotFound) {
			return "", "", temporary("desk reference", err)
		}
	}
	return "", "", nil
}

func reverse(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[len(ss)-1-i] = s
	}
	return out
}

// routeAutoReply routes an auto-reply: to the ticket whose desk number it
// teaches, or to none when it teaches nothing (said in the log by Apply).
func (p *Processor) routeAutoReply(ctx context.Context, ir *inboundRoute) (*inboundRoute, error) {
	in, cls := ir.in, ir.cls
	ir.act, ir.outcome = inboundAutoReply, "auto_reply"
	if cls.DeskReference == "" {
		ir.ignored, ir.ignoredReason = "auto-reply: nothing to learn", cls.Reason
		return ir, nil
	}
	from := ""
	if in.From != nil {
		from = in.From.Address
	}
	if !p.opt.SenderAllowed(from) {
		ir.ignored = "auto-reply from a sender not allowed: ignored"
		return ir, nil
	}
	if reason := p.opt.SenderAuth.Check(in); reason != "" {
		// A forged acknowledgement would teach a desk number that routes
		// the real desk's later mail to the wrong ticket.
		ir.ignored, ir.ignoredReason = "auto-reply whose sender is not authenticated: ignored", reason
		return ir, nil
	}
	ticketID, _, err := p.thread(ctx, in, Classification{})
	if err != nil {
		return nil, err
	}
	if ticketID == "" {
		ir.ignored, ir.ignoredReason = "auto-reply for no known ticket", cls.Reason
		return ir, nil
	}
	ir.ticketID = ticketID
	return ir, nil
}

// autoReply learns the desk number an acknowledgement teaches.
func (p *Processor) autoReply(ctx context.Context, ir *inboundRoute) (imapreader.Verdict, error) {
	log, cls, ticketID := ir.log, ir.cls, ir.ticketID
	if ir.ignored != "" {
		if ir.ignoredReason != "" {
			log.Info(ir.ignored, slog.String("reason", ir.ignoredReason))
		} else {
			log.Info(ir.ignored)
		}
		return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "auto-reply"}, nil
	}
	if err := p.apply.LearnDeskReference(ctx, ticketID, cls.DeskReference, cls.DeskTag); err != nil {
		if bridge.ErrorCode(err) == bridge.CodeUnavailable {
			return imapreader.Verdict{}, temporary("learn desk reference", err)
		}
		log.Warn("desk reference not recorded", slog.String("ticket", ticketID), slog.String("error", err.Error()))
		return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "auto-reply"}, nil
	}
	if err := p.store.IndexDeskReference(ctx, cls.DeskReference, ticketID); err != nil {
		return imapreader.Verdict{}, err
	}
	log.Info("desk reference learned", slog.String("ticket", ticketID), slog.String("desk_reference", cls.DeskReference))
	return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "auto-reply"}, nil
}

// routeBounce routes a bounce to the ticket whose mail bounced, or to
// quarantine when that mail is unknown.
func (p *Processor) routeBounce(ctx context.Context, ir *inboundRoute) (*inboundRoute, error) {
	in, cls := ir.in, ir.cls
	ir.outcome = "bounce"
	ticketID := ""
	if cls.OriginalMessageID != "" {
		if t, _, ok := p.opt.Signer.ParseMessageID(cls.OriginalMessageID); ok {
			ticketID = t
		} else if t, err := p.store.TicketByMessageID(ctx, cls.OriginalMessageID); err == nil {
			ticketID = t
		} else if !errors.Is(err, bridge.ErrNotFound) {
			return nil, temporary("ledger", err)
		}
	}
	if ticketID == "" {
		ir.q.Reason = "bounce of an unknown mail"
		return ir, nil
	}
	ir.bounceReason = cls.Reason
	if in.Report != nil && in.Report.Diagnostic != "" {
		ir.bounceReason = in.Report.Diagnostic
	}
	ir.act, ir.ticketID = inboundBounce, ticketID
	return ir, nil
}

// bounce records that the escalation mail of a ticket bounced.
func (p *Processor) bounce(ctx context.Context, ir *inboundRoute) (imapreader.Verdict, error) {
	q := ir.q
	if err := p.apply.EscalationBounced(ctx, ir.ticketID, ir.bounceReason); err != nil {
		if bridge.ErrorCode(err) == bridge.CodeUnavailable {
			return imapreader.Verdict{}, temporary("bounce", err)
		}
		q.Reason = "bounce not applied: " + err.Error()
		return p.quarantine(ctx, ir.log, q)
	}
	ir.log.Warn("escalation mail bounced", slog.String("ticket", ir.ticketID))
	return imapreader.Verdict{Disposition: imapreader.DispositionProcessed, Reason: "bounce"}, nil
}

func (p *Processor) quarantine(ctx context.Context, log *slog.Logger, q bridge.QuarantinedMail) (imapreader.Verdict, error) {
	if err := p.store.Quarantine(ctx, q); err != nil {
		return imapreader.Verdict{}, temporary("quarantine", err)
	}
	p.outcome("quarantined")
	log.Warn("mail quarantined", slog.String("reason", q.Reason))
	return imapreader.Verdict{Disposition: imapreader.DispositionQuarantine, Reason: q.Reason}, nil
}
