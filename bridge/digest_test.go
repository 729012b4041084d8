package bridge

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// digT0 is the start of the test window: Monday 3 March 2025, 08:00 Paris.
var digT0 = time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)

func digWindow() DigestWindow { return DigestWindow{From: digT0, To: digT0.Add(24 * time.Hour)} }

func digAt(h float64) time.Time { return digT0.Add(time.Duration(h * float64(time.Hour))) }

// digTicket builds a ticket view recorded at created (hours from digT0),
// with the given status, exchanges and events added after creation.
func digTicket(id string, created float64, status Status, exchanges []Exchange, events ...TimelineEvent) TicketView {
	at := digAt(created)
	v := TicketView{Ticket: Ticket{ID: id, StructureID: "s1", Subject: "Demande " + id, Status: status,
		CreatedAt: at, UpdatedAt: at, Escalation: Escalation{Status: EscalationNotDone}}}
	v.Events = append([]TimelineEvent{{Type: "created", At: at}}, events...)
	v.Exchanges = exchanges
	for _, e := range events {
		if e.At.After(v.UpdatedAt) {
			v.UpdatedAt = e.At
		}
	}
	return v
}

func digEx(origin Origin, h float64) Exchange {
	return Exchange{ID: string(origin) + "-" + digAt(h).Format("150405"), Origin: origin, CreatedAt: digAt(h)}
}

func digEv(typ TimelineKind, h float64) TimelineEvent { return TimelineEvent{Type: typ, At: digAt(h)} }

func digIDs(items []DigestItem) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.TicketID)
	}
	return out
}

func TestSummarizeStructureRules(t *testing.T) {
	failed := func(v TicketView, reason string) TicketView {
		v.Escalation.Status = EscalationFailed
		v.Escalation.LastError = reason
		return v
	}
	tests := []struct {
		name                              string
		view                              TicketView
		wantNew, wantWait, wantRep, wantF bool
		wantReplies                       int
	}{
		{name: "new in the window, status new: new and waiting",
			view: digTicket("t1", 2, StatusNew, nil), wantNew: true, wantWait: true},
		{name: "created at the window's start is in it",
			view: digTicket("t1", 0, StatusWaiting, nil), wantNew: true},
		{name: "created at the window's end is the next digest's",
			view: digTicket("t1", 24, StatusNew, nil)},
		{name: "created before the window, still new: waiting only",
			view: digTicket("t1", -30, StatusNew, nil), wantWait: true},
		{name: "opened, nobody answered: waiting",
			view: digTicket("t1", -30, StatusOpened, nil), wantWait: true},
		{name: "opened, last word from the ENT: not waiting",
			view: digTicket("t1", -30, StatusOpened, []Exchange{digEx(OriginDesk, -20), digEx(OriginENT, -10)})},
		{name: "opened, last word from the desk before the window: waiting",
			view: digTicket("t1", -30, StatusOpened, []Exchange{digEx(OriginENT, -20), digEx(OriginDesk, -10)},
				digEv("desk_replied", -10)), wantWait: true},
		{name: "desk replied twice in the window: one item, two replies, waiting",
			view: digTicket("t1", -30, StatusOpened, []Exchange{digEx(OriginDesk, 3), digEx(OriginDesk, 5)},
				digEv("desk_replied", 3), digEv("desk_replied", 5)), wantWait: true, wantRep: true, wantReplies: 2},
		{name: "desk reply recorded in the window though dated before it",
			view: digTicket("t1", -30, StatusResolved, []Exchange{digEx(OriginDesk, -2)},
				digEv("desk_replied", 1)), wantRep: true, wantReplies: 1},
		{name: "desk reply recorded after the window",
			view: digTicket("t1", -30, StatusResolved, []Exchange{digEx(OriginDesk, 25)},
				digEv("desk_replied", 25))},
		{name: "desk reply recorded before the window",
			view: digTicket("t1", -30, StatusWaiting, []Exchange{digEx(OriginDesk, -1)},
				digEv("desk_replied", -1))},
		{name: "no history: the desk exchange's own date counts",
			view: func() TicketView {
				v := digTicket("t1", -30, StatusClosed, []Exchange{digEx(OriginDesk, 4)})
				v.Events = nil
				v.UpdatedAt = digAt(4) // every commit moves it
				return v
			}(), wantRep: true, wantReplies: 1},
		{name: "escalation failed in the window",
			view:  failed(digTicket("t1", -30, StatusWaiting, nil, digEv("escalation_failed", 6)), "550 no such user"),
			wantF: true},
		{name: "escalation failed before the window",
			view: failed(digTicket("t1", -30, StatusWaiting, nil, digEv("escalation_failed", -6)), "550"),
		},
		{name: "escalation failed in the window then retried: not failed any more",
			view: func() TicketView {
				v := digTicket("t1", -30, StatusWaiting, nil, digEv("escalation_failed", 6), digEv("escalation_requested", 7))
				v.Escalation.Status = EscalationInProgress
				return v
			}()},
		{name: "failed twice, the last failure in the window counts",
			view: failed(digTicket("t1", -30, StatusWaiting, nil, digEv("escalation_failed", -6),
				digEv("escalation_requested", 2), digEv("escalation_failed", 3)), "timeout"), wantF: true},
		{name: "resolved, nothing in the window",
			view: digTicket("t1", -30, StatusResolved, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := SummarizeStructure(Structure{ID: "s1", Name: "Lycée"}, []TicketView{tt.view}, digWindow())
			got := []bool{len(sd.New) == 1, len(sd.Waiting) == 1, len(sd.DeskReplies) == 1, len(sd.FailedEscalations) == 1}
			want := []bool{tt.wantNew, tt.wantWait, tt.wantRep, tt.wantF}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("new/waiting/replies/failed = %v, want %v", got, want)
			}
			if tt.wantRep && sd.DeskReplies[0].Replies != tt.wantReplies {
				t.Errorf("replies = %d, want %d", sd.DeskReplies[0].Replies, tt.wantReplies)
			}
			if tt.wantF && sd.FailedEscalations[0].Reason != tt.view.Escalation.LastError {
				t.Errorf("reason = %q", sd.FailedEscalations[0].Reason)
			}
			if sd.Empty() != !(tt.wantNew || tt.wantWait || tt.wantRep || tt.wantF) {
				t.Errorf("Empty() = %v", sd.Empty())
			}
			if DigestCandidate(tt.view.Ticket, digWindow().From) == false && !sd.Empty() {
				t.Errorf("a ticket the store would not load has something to say")
			}
		})
	}
}

func TestSummarizeStructureOrderAndTimes(t *testing.T) {
	views := []TicketView{
		digTicket("b", 5, StatusNew, nil),
		digTicket("a", 5, StatusNew, nil),
		digTicket("c", 1, StatusNew, nil),
		digTicket("d", -50, StatusOpened, []Exchange{digEx(OriginDesk, -40)}),
	}
	sd := SummarizeStructure(Structure{ID: "s1", Referents: []Referent{{ID: "r"}}}, views, digWindow())
	if got := digIDs(sd.New); !reflect.DeepEqual(got, []string{"c", "a", "b"}) {
		t.Errorf("new order %v", got)
	}
	if got := digIDs(sd.Waiting); !reflect.DeepEqual(got, []string{"d", "c", "a", "b"}) {
		t.Errorf("waiting order %v", got)
	}
	if !sd.Waiting[0].At.Equal(digAt(-40)) {
		t.Errorf("waiting since %v, want the desk reply", sd.Waiting[0].At)
	}
	if sd.Structure.Referents != nil {
		t.Error("the structure keeps its referents")
	}
	if c := sd.Counts(); c != (DigestCounts{New: 3, Waiting: 4}) || c.Total() != 7 {
		t.Errorf("counts %+v", c)
	}
}

func TestDigestSubscribers(t *testing.T) {
	ref := func(id string, d Digest) Referent { return Referent{ID: id, Email: id + "@x.example", Digest: d} }
	sts := []Structure{
		// a cycle and a missing parent end the walk
		{ID: "cyc1", ParentID: "cyc2", Referents: []Referent{ref("rc", DigestDaily)}},
		{ID: "cyc2", ParentID: "cyc1"},
		{ID: "orphan", ParentID: "gone", Referents: []Referent{ref("ro", DigestDaily)}},
		// academy > city > school
		{ID: "school", ParentID: "city", Referents: []Referent{ref("r1", DigestDaily), ref("r2", DigestWeekly)}},
		{ID: "city", ParentID: "academy", Referents: []Referent{ref("r3", DigestDaily), ref("rn", DigestNever)}},
		{ID: "academy", Referents: []Referent{ref("r4", DigestWeekly), {ID: "r5", Email: "r5@x.example"}}},
		// r1 again, weekly on another school: that listing is weekly only
		{ID: "other", Referents: []Referent{{ID: "r1", Email: "r1-other@x.example", Digest: DigestWeekly}}},
	}
	got := func(period Digest) map[string][]string {
		out := map[string][]string{}
		for _, s := range DigestSubscribers(sts, period) {
			out[s.Referent.ID] = s.StructureIDs
		}
		return out
	}
	wantDaily := map[string][]string{
		"rc": {"cyc1", "cyc2"},
		"ro": {"orphan"},
		"r1": {"school"},
		"r3": {"city", "school"},
		"r5": {"academy", "city", "school"}, // no preference: daily
	}
	if g := got(DigestDaily); !reflect.DeepEqual(g, wantDaily) {
		t.Errorf("daily:\n got %v\nwant %v", g, wantDaily)
	}
	wantWeekly := map[string][]string{
		"r1": {"other"},
		"r2": {"school"},
		"r4": {"academy", "city", "school"},
	}
	if g := got(DigestWeekly); !reflect.DeepEqual(g, wantWeekly) {
		t.Errorf("weekly:\n got %v\nwant %v", g, wantWeekly)
	}
	if g := got(DigestNever); len(g) != 1 || g["rn"] == nil {
		t.Errorf("never: %v (the subscribers of never are never mailed, but they are theirs)", g)
	}
	// The referent's details come from their first listing in id order,
	// whatever order the store gives.
	rev := append([]Structure(nil), sts...)
	sort.Slice(rev, func(i, j int) bool { return rev[i].ID > rev[j].ID })
	for _, s := range DigestSubscribers(rev, DigestWeekly) {
		if s.Referent.ID == "r1" && s.Referent.Email != "r1-other@x.example" {
			t.Errorf("r1 weekly listing: %+v", s.Referent)
		}
	}
}

// digFakeStore serves structures and ticket views from memory, and
// counts the loads.
type digFakeStore struct {
	structures []Structure
	views      map[string][]TicketView // by structure
	loads      map[string]int
	fail       error
}

func (f *digFakeStore) Structures(context.Context) ([]Structure, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	return f.structures, nil
}

func (f *digFakeStore) StructureTicketViews(_ context.Context, id string, keep func(Ticket) bool) ([]TicketView, error) {
	if f.loads == nil {
		f.loads = map[string]int{}
	}
	f.loads[id]++
	var out []TicketView
	for _, v := range f.views[id] {
		if keep(v.Ticket) {
			out = append(out, v)
		}
	}
	return out, nil
}

func TestBuildDigests(t *testing.T) {
	in := func(sid string, v TicketView) TicketView { v.StructureID = sid; return v }
	store := &digFakeStore{
		structures: []Structure{
			{ID: "city", Name: "Ville", Referents: []Referent{{ID: "boss", Email: "boss@x.example", Digest: DigestDaily}}},
			{ID: "s2", Name: "Collège", ParentID: "city",
				Referents: []Referent{{ID: "r2", Email: "r2@x.example", Digest: DigestDaily, Locale: "en"}}},
			{ID: "s1", Name: "Lycée", ParentID: "city",
				Referents: []Referent{{ID: "r1", Email: "r1@x.example", Digest: DigestDaily}}},
			{ID: "s3", Name: "École", ParentID: "city",
				Referents: []Referent{{ID: "r3", Email: "r3@x.example", Digest: DigestDaily}}},
		},
		views: map[string][]TicketView{
			"s1": {in("s1", digTicket("t1", 2, StatusNew, nil)), in("s1", digTicket("t2", -100, StatusResolved, nil))},
			"s2": {in("s2", digTicket("t3", -100, StatusOpened, []Exchange{digEx(OriginDesk, 3)}, digEv("desk_replied", 3)))},
			"s3": {in("s3", digTicket("t4", -100, StatusClosed, nil))},
		},
	}
	ds, err := BuildDigests(context.Background(), store, DigestDaily, digWindow())
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]ReferentDigest{}
	for _, d := range ds {
		byRef[d.Referent.ID] = d
		if d.Period != DigestDaily || d.Window != digWindow() {
			t.Errorf("%s: period %s window %v", d.Referent.ID, d.Period, d.Window)
		}
	}
	if len(ds) != 4 {
		t.Fatalf("%d digests, want one per daily referent (empty ones included)", len(ds))
	}
	names := func(d ReferentDigest) []string {
		var out []string
		for _, s := range d.Structures {
			out = append(out, s.Structure.Name)
		}
		return out
	}
	if got := names(byRef["boss"]); !reflect.DeepEqual(got, []string{"Collège", "Lycée"}) {
		t.Errorf("the city's referent sees %v", got)
	}
	if got := names(byRef["r1"]); !reflect.DeepEqual(got, []string{"Lycée"}) {
		t.Errorf("r1 sees %v", got)
	}
	if c := byRef["boss"].Counts(); c != (DigestCounts{New: 1, Waiting: 2, DeskReplies: 1}) {
		t.Errorf("boss counts %+v", c)
	}
	if !byRef["r3"].Empty() || byRef["r1"].Empty() {
		t.Errorf("r3 empty = %v, r1 empty = %v", byRef["r3"].Empty(), byRef["r1"].Empty())
	}
	if byRef["r2"].Referent.Locale != "en" {
		t.Errorf("r2 lost its locale: %+v", byRef["r2"].Referent)
	}
	for sid, n := range store.loads {
		if n != 1 {
			t.Errorf("structure %s loaded %d times", sid, n)
		}
	}
	if store.loads["city"] != 1 {
		t.Errorf("the parent structure's own tickets were not read")
	}
}

func TestBuildDigestsRefuses(t *testing.T) {
	store := &digFakeStore{}
	ctx := context.Background()
	if _, err := BuildDigests(ctx, store, DigestNever, digWindow()); err == nil {
		t.Error("period never accepted")
	}
	if _, err := BuildDigests(ctx, store, DigestDaily, DigestWindow{From: digT0, To: digT0}); err == nil {
		t.Error("empty window accepted")
	}
	store.fail = errors.New("redis down")
	if _, err := BuildDigests(ctx, store, DigestDaily, digWindow()); err == nil || !strings.Contains(err.Error(), "redis down") {
		t.Errorf("store error: %v", err)
	}
}
