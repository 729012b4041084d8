package redisstore_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
)

// digClock is a settable clock for the service.
type digClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *digClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *digClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func digSetup(t *testing.T, rdb redis.UniversalClient) (*bridge.Service, *redisstore.Store, *digClock) {
	t.Helper()
	st := redisstore.New(rdb, redisstore.Options{Prefix: "sbdig:"})
	clock := &digClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc := bridge.NewService(st, bridge.WithClock(clock.now))
	return svc, st, clock
}

func digApply(t *testing.T, svc *bridge.Service, ev bridge.Event) {
	t.Helper()
	if _, err := svc.Apply(context.Background(), ev); err != nil {
		t.Fatalf("apply %s %s: %v", ev.Type, ev.ID, err)
	}
}

func digStructure(id, parent string, refs ...bridge.Referent) bridge.Event {
	return bridge.Event{ID: "wh-st-" + id, Type: bridge.EventStructureUpserted, Structure: &bridge.Structure{
		ID: id, Name: "Structure " + id, ParentID: parent, EscalationEnabled: true, Referents: refs}}
}

func digCreate(id, structure string) bridge.Event {
	return bridge.Event{ID: "wh-c-" + id, Type: bridge.EventTicketCreated, NewTicket: &bridge.NewTicket{
		ID: id, StructureID: structure, Owner: bridge.Person{ID: "u-owner", DisplayName: "Léa Dupont"},
		Subject: "Demande " + id}}
}

func TestStructureTicketViews(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		svc, st, _ := digSetup(t, rdb)
		const n = 450 // more than two batches
		digApply(t, svc, digStructure("s1", "", bridge.Referent{ID: "u-ref"}))
		digApply(t, svc, digStructure("s2", "", bridge.Referent{ID: "u-ref"}))
		for i := 0; i < n; i++ {
			digApply(t, svc, digCreate(fmt.Sprintf("t%03d", i), "s1"))
		}
		digApply(t, svc, digCreate("other", "s2"))
		digApply(t, svc, bridge.Event{ID: "wh-cm", Type: bridge.EventTicketCommented, TicketID: "t007",
			Comment: &bridge.Comment{ID: "c1", Author: bridge.Person{ID: "u-ref"}, Body: "je regarde"}})

		all, err := st.StructureTicketViews(ctx, "s1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("%d tickets, want %d", len(all), n)
		}
		var calls atomic.Int64
		kept, err := st.StructureTicketViews(ctx, "s1", func(tk bridge.Ticket) bool {
			calls.Add(1)
			return tk.ID == "t007" || tk.ID == "t449" || tk.ID == "t200"
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != n {
			t.Errorf("keep called %d times, want once a ticket", calls.Load())
		}
		var ids []string
		for _, v := range kept {
			ids = append(ids, v.ID)
		}
		sort.Strings(ids)
		if !reflect.DeepEqual(ids, []string{"t007", "t200", "t449"}) {
			t.Fatalf("kept %v", ids)
		}
		for _, v := range kept {
			if len(v.Events) == 0 || v.Events[0].Type != "created" {
				t.Errorf("%s without its history: %+v", v.ID, v.Events)
			}
			if v.ID == "t007" && (len(v.Exchanges) != 1 || v.Exchanges[0].ID != "c1" || v.Status != bridge.StatusOpened) {
				t.Errorf("t007: %+v", v)
			}
		}
		none, err := st.StructureTicketViews(ctx, "nobody", nil)
		if err != nil || len(none) != 0 {
			t.Errorf("unknown structure: %v, %v", none, err)
		}
	})
}

// TestDigestsFromTheStore runs the digest rules on tickets made by the
// service, so that the events the rules read are the ones really written.
func TestDigestsFromTheStore(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		svc, st, clock := digSetup(t, rdb)
		from := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
		w := bridge.DigestWindow{From: from, To: from.Add(24 * time.Hour)}
		at := func(h int) { clock.set(from.Add(time.Duration(h) * time.Hour)) }
		ref := bridge.Referent{ID: "u-ref1", Email: "martin@school.example", Digest: bridge.DigestDaily}
		digApply(t, svc, digStructure("city", "", bridge.Referent{ID: "u-boss", Email: "boss@city.example", Digest: bridge.DigestWeekly}))
		digApply(t, svc, digStructure("s1", "city", ref))

		at(-48)
		digApply(t, svc, digCreate("old-resolved", "s1"))
		digApply(t, svc, bridge.Event{ID: "wh-res", Type: bridge.EventStatusChanged, TicketID: "old-resolved",
			Status: bridge.StatusResolved, Actor: bridge.Person{ID: "u-ref1"}})
		digApply(t, svc, digCreate("escalated", "s1"))
		digApply(t, svc, bridge.Event{ID: "wh-esc", Type: bridge.EventEscalationRequested, TicketID: "escalated",
			Actor: bridge.Person{ID: "u-ref1"}})
		digApply(t, svc, digCreate("failing", "s1"))
		digApply(t, svc, bridge.Event{ID: "wh-esc2", Type: bridge.EventEscalationRequested, TicketID: "failing",
			Actor: bridge.Person{ID: "u-ref1"}})
		at(2)
		digApply(t, svc, digCreate("fresh", "s1"))
		at(3)
		if _, err := svc.ApplyDeskReply(ctx, bridge.DeskReply{Key: "m1", TicketID: "escalated",
			Author: bridge.Person{DisplayName: "Desk"}, Body: "Bonjour", ReceivedAt: from.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		at(4)
		if err := svc.EscalationFailed(ctx, "failing", 1, "550 5.1.1 no such user"); err != nil {
			t.Fatal(err)
		}
		at(30)
		digApply(t, svc, digCreate("tomorrow", "s1"))

		ds, err := bridge.BuildDigests(ctx, st, bridge.DigestDaily, w)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Referent.ID != "u-ref1" || len(ds[0].Structures) != 1 {
			t.Fatalf("digests %+v", ds)
		}
		sd := ds[0].Structures[0]
		ids := func(items []bridge.DigestItem) []string {
			var out []string
			for _, it := range items {
				out = append(out, it.TicketID)
			}
			return out
		}
		if got := ids(sd.New); !reflect.DeepEqual(got, []string{"fresh"}) {
			t.Errorf("new %v", got)
		}
		// failing: opened, nobody answered, since its creation;
		// escalated: opened, the desk's word last, since that reply's
		// date; fresh: new.
		if got := ids(sd.Waiting); !reflect.DeepEqual(got, []string{"failing", "escalated", "fresh"}) {
			t.Errorf("waiting %v", got)
		}
		if got := ids(sd.DeskReplies); !reflect.DeepEqual(got, []string{"escalated"}) || sd.DeskReplies[0].Replies != 1 {
			t.Errorf("desk replies %+v", sd.DeskReplies)
		}
		if got := ids(sd.FailedEscalations); !reflect.DeepEqual(got, []string{"failing"}) ||
			sd.FailedEscalations[0].Reason != "550 5.1.1 no such user" {
			t.Errorf("failed %+v", sd.FailedEscalations)
		}
		weekly, err := bridge.BuildDigests(ctx, st, bridge.DigestWeekly, w)
		if err != nil || len(weekly) != 1 || weekly[0].Referent.ID != "u-boss" || weekly[0].Empty() {
			t.Errorf("the parent's weekly referent sees the school: %+v, %v", weekly, err)
		}
	})
}

func TestDigestClaims(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		_, st, _ := digSetup(t, rdb)
		claim := func(ref, key string, want bool) {
			t.Helper()
			ok, err := st.ClaimDigest(ctx, ref, "daily", key)
			if err != nil || ok != want {
				t.Fatalf("claim %s %s = %v, %v; want %v", ref, key, ok, err, want)
			}
		}
		state := func(ref, key, want string) {
			t.Helper()
			got, since, err := st.DigestState(ctx, ref, "daily", key)
			if err != nil || got != want {
				t.Fatalf("state %s %s = %q, %v; want %q", ref, key, got, err, want)
			}
			if want == redisstore.DigestStatePending && time.Since(since) > time.Minute {
				t.Errorf("pending since %v", since)
			}
		}
		state("r1", "2025-03-04", redisstore.DigestStateNone)
		claim("r1", "2025-03-04", true)
		state("r1", "2025-03-04", redisstore.DigestStatePending)
		claim("r1", "2025-03-04", false) // pending: nobody else sends
		claim("r2", "2025-03-04", true)  // per referent
		claim("r1", "2025-03-05", true)  // per period key
		if ok, _ := st.ClaimDigest(ctx, "r1", "weekly", "2025-03-04"); !ok {
			t.Error("the weekly claim is another one")
		}

		// A failed send releases: the next run may claim again.
		if err := st.ReleaseDigest(ctx, "r1", "daily", "2025-03-04"); err != nil {
			t.Fatal(err)
		}
		state("r1", "2025-03-04", redisstore.DigestStateNone)
		claim("r1", "2025-03-04", true)

		// Once sent, never again, even after a stray release.
		if err := st.MarkDigestSent(ctx, "r1", "daily", "2025-03-04"); err != nil {
			t.Fatal(err)
		}
		if err := st.ReleaseDigest(ctx, "r1", "daily", "2025-03-04"); err != nil {
			t.Fatal(err)
		}
		state("r1", "2025-03-04", redisstore.DigestStateSent)
		claim("r1", "2025-03-04", false)

		ttl, err := rdb.TTL(ctx, "sbdig:digest:{r:r1}:daily:2025-03-04").Result()
		if err != nil || ttl < redisstore.DigestMarkerTTL-time.Hour {
			t.Errorf("marker TTL %v, %v", ttl, err)
		}
		for _, bad := range [][3]string{{"", "daily", "k"}, {"r", "", "k"}, {"r", "daily", ""}} {
			if _, err := st.ClaimDigest(ctx, bad[0], bad[1], bad[2]); err == nil {
				t.Errorf("claim %q accepted", bad)
			}
		}
	})
}

func TestDigestClaimRace(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		_, st, _ := digSetup(t, rdb)
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := st.ClaimDigest(ctx, "r1", "weekly", "2025-W10")
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims won, want 1", wins.Load())
		}
	})
}

func TestDigestRunMarker(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		_, st, _ := digSetup(t, rdb)
		done, err := st.DigestRunDone(ctx, "daily", "2025-03-04")
		if err != nil || done {
			t.Fatalf("done before = %v, %v", done, err)
		}
		if err := st.MarkDigestRunDone(ctx, "daily", "2025-03-04"); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]bool{"2025-03-04": true, "2025-03-05": false} {
			done, err := st.DigestRunDone(ctx, "daily", key)
			if err != nil || done != want {
				t.Errorf("done %s = %v, %v", key, done, err)
			}
		}
		if _, err := st.DigestRunDone(ctx, "", "x"); err == nil {
			t.Error("empty period accepted")
		}
	})
}
