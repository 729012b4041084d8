package bridge

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Digests: each referent gets, on their own schedule, one mail summing up
// the demands of the structures they serve. This file decides what goes in
// it; building the mail and sending it once per period are the adapters'.
//
// The rules, for a window [From, To):
//   - a referent serves the structures they are listed on and, as the
//     notifications do (referentsOf), every structure whose parent chain
//     reaches one of them;
//   - new demands: recorded by the bridge in the window;
//   - demands waiting for action: status new, or status opened whose last
//     exchange is from the desk or which has none (a desk answer nobody has
//     followed up, or an opened demand nobody answered), recorded before
//     To. It is a state, not an event: such a demand shows in every digest
//     until someone acts on it;
//   - desk replies: the desk replies recorded in the window;
//   - failed escalations: demands whose escalation is failed now, the
//     failure recorded in the window.
//
// "Recorded" means the time of the timeline event the bridge wrote (created,
// desk_replied, escalation_failed), not a time given by the ENT or a mail
// header: an event delivered late still lands in the next digest instead of
// in a window that has already been sent. Tickets without a history (none
// are written without one) fall back on their own dates.

// DigestWindow is the span of time a digest covers: [From, To).
type DigestWindow struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Contains reports whether t is in [From, To).
func (w DigestWindow) Contains(t time.Time) bool { return !t.Before(w.From) && t.Before(w.To) }

// DigestItem is a demand as a digest section lists it.
type DigestItem struct {
	TicketID  string
	Subject   string
	Owner     Person
	Category  Category
	Status    Status
	CreatedAt time.Time // the demand's creation, as the ENT gave it
	// At is when what the section reports happened: the creation (new
	// demands), since when the demand waits (the last desk reply, else its
	// creation), the last desk reply of the window (desk replies), the
	// failure (failed escalations).
	At time.Time
	// Replies is how many desk replies the window holds (desk replies).
	Replies int
	// Reason is why the escalation failed (failed escalations).
	Reason string
}

// DigestCounts are the sizes of a digest's sections. DeskReplies counts
// replies, not demands: a demand may have several in one window.
type DigestCounts struct {
	New, Waiting, DeskReplies, FailedEscalations int
}

// Total is the sum of the counts.
func (c DigestCounts) Total() int { return c.New + c.Waiting + c.DeskReplies + c.FailedEscalations }

func (c DigestCounts) plus(o DigestCounts) DigestCounts {
	return DigestCounts{New: c.New + o.New, Waiting: c.Waiting + o.Waiting,
		DeskReplies: c.DeskReplies + o.DeskReplies, FailedEscalations: c.FailedEscalations + o.FailedEscalations}
}

// StructureDigest is what a digest says about one structure. Each section
// is in the order a reader wants: oldest first.
type StructureDigest struct {
	Structure         Structure // without its referents
	New               []DigestItem
	Waiting           []DigestItem
	DeskReplies       []DigestItem
	FailedEscalations []DigestItem
}

// Counts returns the sizes of the sections.
func (s StructureDigest) Counts() DigestCounts {
	c := DigestCounts{New: len(s.New), Waiting: len(s.Waiting), FailedEscalations: len(s.FailedEscalations)}
	for _, it := range s.DeskReplies {
		c.DeskReplies += it.Replies
	}
	return c
}

// Empty reports whether there is nothing to say about the structure.
func (s StructureDigest) Empty() bool {
	return len(s.New) == 0 && len(s.Waiting) == 0 && len(s.DeskReplies) == 0 && len(s.FailedEscalations) == 0
}

// ReferentDigest is one referent's digest for one period.
type ReferentDigest struct {
	Referent Referent
	Period   Digest
	Window   DigestWindow
	// Structures are those with something to say, by name then id.
	Structures []StructureDigest
}

// Empty reports whether the digest has nothing to say: no mail then.
func (d ReferentDigest) Empty() bool { return len(d.Structures) == 0 }

// Counts sums the counts of the structures.
func (d ReferentDigest) Counts() DigestCounts {
	var c DigestCounts
	for _, s := range d.Structures {
		c = c.plus(s.Counts())
	}
	return c
}

// DigestStore is what digests read.
type DigestStore interface {
	Structures(ctx context.Context) ([]Structure, error)
	// StructureTicketViews returns, with their exchanges and history, the
	// tickets of a structure that keep accepts; keep sees the ticket alone,
	// so that only the tickets that may matter are read in full.
	StructureTicketViews(ctx context.Context, structureID string, keep func(Ticket) bool) ([]TicketView, error)
}

// DigestSubscriber is a referent with a given digest preference and the
// structures their digest covers.
type DigestSubscriber struct {
	Referent     Referent
	StructureIDs []string // sorted
}

// DigestSubscribers returns, by referent id, the referents whose listing
// asks for period and the structures each serves through those listings.
//
// A referent may be listed on several structures, each listing with its own
// preference: a listing counts for the period it names. The referent's
// name, address and locale come from their first such listing, structures
// taken in id order, so that the answer does not depend on the store's
// order.
func DigestSubscribers(structures []Structure, period Digest) []DigestSubscriber {
	sts := append([]Structure(nil), structures...)
	sort.Slice(sts, func(i, j int) bool { return sts[i].ID < sts[j].ID })
	byID := make(map[string]Structure, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	subs := map[string]*DigestSubscriber{}
	served := map[string]map[string]bool{}
	for _, st := range sts {
		for _, r := range st.Referents {
			if r.ID == "" || r.Digest.OrDefault() != period || subs[r.ID] != nil {
				continue
			}
			subs[r.ID] = &DigestSubscriber{Referent: r}
			served[r.ID] = map[string]bool{}
		}
	}
	// Walk up from each structure as referentsOf does: the referents met
	// on the way serve it. A cycle, a missing parent or an overlong chain
	// ends the walk.
	for _, st := range sts {
		seen := map[string]bool{}
		id := st.ID
		for i := 0; id != "" && !seen[id] && i < maxStructureChainLength; i++ {
			seen[id] = true
			anc, ok := byID[id]
			if !ok {
				break
			}
			for _, r := range anc.Referents {
				if r.ID != "" && r.Digest.OrDefault() == period {
					served[r.ID][st.ID] = true
				}
			}
			id = anc.ParentID
		}
	}
	out := make([]DigestSubscriber, 0, len(subs))
	for id, s := range subs {
		for sid := range served[id] {
			s.StructureIDs = append(s.StructureIDs, sid)
		}
		sort.Strings(s.StructureIDs)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Referent.ID < out[j].Referent.ID })
	return out
}

// DigestCandidate reports whether a ticket may appear in a digest whose
// window starts at from: one changed since (every recorded event changes
// UpdatedAt), or one that may be waiting for action. It is the filter given
// to the store.
func DigestCandidate(t Ticket, from time.Time) bool {
	return !t.UpdatedAt.Before(from) || t.Status == StatusNew || t.Status == StatusOpened
}

// SummarizeStructure applies the digest rules to a structure's tickets over
// window w.
func SummarizeStructure(st Structure, views []TicketView, w DigestWindow) StructureDigest {
	st.Referents = nil
	sd := StructureDigest{Structure: st}
	for _, v := range views {
		recorded := digRecordedAt(v)
		if !recorded.Before(w.To) {
			// Recorded after the window: the next digest's.
			continue
		}
		item := DigestItem{TicketID: v.ID, Subject: v.Subject, Owner: v.Owner, Category: v.Category,
			Status: v.Status, CreatedAt: v.CreatedAt}
		if w.Contains(recorded) {
			it := item
			it.At = recorded
			sd.New = append(sd.New, it)
		}
		if since, ok := digWaitingSince(v, recorded); ok {
			it := item
			it.At = since
			sd.Waiting = append(sd.Waiting, it)
		}
		if n, last := digDeskReplies(v, w); n > 0 {
			it := item
			it.At, it.Replies = last, n
			sd.DeskReplies = append(sd.DeskReplies, it)
		}
		if at, ok := digFailedAt(v); ok && w.Contains(at) {
			it := item
			it.At, it.Reason = at, v.Escalation.LastError
			sd.FailedEscalations = append(sd.FailedEscalations, it)
		}
	}
	for _, items := range [][]DigestItem{sd.New, sd.Waiting, sd.DeskReplies, sd.FailedEscalations} {
		sort.Slice(items, func(i, j int) bool {
			if !items[i].At.Equal(items[j].At) {
				return items[i].At.Before(items[j].At)
			}
			return items[i].TicketID < items[j].TicketID
		})
	}
	return sd
}

// digLastEvent returns the time of the last event of type typ.
func digLastEvent(v TicketView, typ TimelineKind) (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range v.Events {
		if e.Type == typ && (!found || e.At.After(at)) {
			at, found = e.At, true
		}
	}
	return at, found
}

// digRecordedAt is when the bridge recorded the demand.
func digRecordedAt(v TicketView) time.Time {
	for _, e := range v.Events {
		if e.Type == TimelineCreated {
			return e.At
		}
	}
	return v.CreatedAt
}

// digWaitingSince applies the "waiting for action" rule; since is the last
// desk reply, else the creation.
func digWaitingSince(v TicketView, recorded time.Time) (since time.Time, ok bool) {
	switch v.Status {
	case StatusNew:
		return recorded, true
	case StatusOpened:
		// Exchanges are kept in the order they were committed: the
		// last one is the latest word, whatever date it carries.
		if len(v.Exchanges) == 0 {
			return recorded, true
		}
		last := v.Exchanges[len(v.Exchanges)-1]
		if last.Origin == OriginDesk {
			return last.CreatedAt, true
		}
	}
	return time.Time{}, false
}

// digDeskReplies counts the desk replies recorded in w and gives the time
// of the last one.
func digDeskReplies(v TicketView, w DigestWindow) (n int, last time.Time) {
	count := func(at time.Time) {
		if w.Contains(at) {
			n++
			if at.After(last) {
				last = at
			}
		}
	}
	if len(v.Events) == 0 {
		for _, ex := range v.Exchanges {
			if ex.Origin == OriginDesk {
				count(ex.CreatedAt)
			}
		}
		return n, last
	}
	for _, e := range v.Events {
		if e.Type == TimelineDeskReplied {
			count(e.At)
		}
	}
	return n, last
}

// digFailedAt is when the current failed escalation failed; ok is false
// when the escalation is not failed.
func digFailedAt(v TicketView) (time.Time, bool) {
	if v.Escalation.Status != EscalationFailed {
		return time.Time{}, false
	}
	if at, ok := digLastEvent(v, TimelineEscalationFailed); ok {
		return at, true
	}
	return v.UpdatedAt, true
}

// BuildDigests returns the digest of every referent whose preference is
// period, over window w, empty ones included (Empty tells: the caller
// sends none for those, but may record that the period is done). Each
// structure's tickets are read once, whatever the number of referents.
func BuildDigests(ctx context.Context, store DigestStore, period Digest, w DigestWindow) ([]ReferentDigest, error) {
	if period != DigestDaily && period != DigestWeekly {
		return nil, fmt.Errorf("digest: no digest for period %q", period)
	}
	if !w.From.Before(w.To) {
		return nil, fmt.Errorf("digest: empty window [%s, %s)", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	}
	sts, err := store.Structures(ctx)
	if err != nil {
		return nil, fmt.Errorf("digest: structures: %w", err)
	}
	byID := make(map[string]Structure, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	subs := DigestSubscribers(sts, period)
	sections := map[string]StructureDigest{}
	keep := func(t Ticket) bool { return DigestCandidate(t, w.From) }
	out := make([]ReferentDigest, 0, len(subs))
	for _, sub := range subs {
		d := ReferentDigest{Referent: sub.Referent, Period: period, Window: w}
		for _, sid := range sub.StructureIDs {
			sd, ok := sections[sid]
			if !ok {
				views, err := store.StructureTicketViews(ctx, sid, keep)
				if err != nil {
					return nil, fmt.Errorf("digest: tickets of structure %s: %w", sid, err)
				}
				sd = SummarizeStructure(byID[sid], views, w)
				sections[sid] = sd
			}
			if !sd.Empty() {
				d.Structures = append(d.Structures, sd)
			}
		}
		sort.SliceStable(d.Structures, func(i, j int) bool {
			a, b := d.Structures[i].Structure, d.Structures[j].Structure
			if na, nb := strings.ToLower(a.Name), strings.ToLower(b.Name); na != nb {
				return na < nb
			}
			return a.ID < b.ID
		})
		out = append(out, d)
	}
	return out, nil
}
