package redisstore_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
	"supportbridge/bridge/redisstore/redistest"
)

// TestPrepareEscalation checks that the one-round-trip preparation gives
// what PrepareMail, Structure and Attachment give one by one: the record
// that holds (a retry keeps the first Message-ID), the structure or a bare
// one, the attachments still kept with their refs' metadata, and a
// Message-ID → ticket entry for the record that holds.
func TestPrepareEscalation(t *testing.T) {
	backends(t, testPrepareEscalation)
	t.Run("cluster", func(t *testing.T) {
		// The ledger, the structure, the attachments and the Message-ID
		// map live in different slots.
		if testing.Short() {
			t.Skip("cluster in -short")
		}
		c := redistest.StartCluster(t, 3)
		testPrepareEscalation(t, c.Client(t))
	})
}

func testPrepareEscalation(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	svc, st := newService(rdb, nil)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
	mustApply(t, svc, createdEvent("t1", "s1", at), bridge.Applied)
	view, err := st.TicketView(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	kept := view.Attachments[0]
	gone := bridge.Attachment{ID: "att-never-stored", Filename: "old.pdf", ContentType: "application/pdf", Size: 9}

	first := bridge.MailRecord{EffectID: "esc:t1:1", Kind: "esc", MessageID: "first@ent.example", PreparedAt: at}
	retry := first
	retry.MessageID = "second@ent.example"
	tests := []struct {
		name        string
		rec         bridge.MailRecord
		structureID string
		refs        []bridge.Attachment
		wantMsgID   string
		wantSchool  string
		wantAtts    []string
	}{
		{"first preparation", first, "s1", []bridge.Attachment{kept, gone}, "first@ent.example", "Lycée Victor Hugo",
			[]string{kept.ID}},
		{"a retry keeps the first Message-ID", retry, "s1", []bridge.Attachment{kept}, "first@ent.example",
			"Lycée Victor Hugo", []string{kept.ID}},
		{"unknown structure", bridge.MailRecord{EffectID: "esc:t1:2", Kind: "esc", MessageID: "third@ent.example",
			PreparedAt: at}, "s-unknown", nil, "third@ent.example", "", nil},
		{"no structure id", bridge.MailRecord{EffectID: "esc:t1:3", Kind: "esc", MessageID: "fourth@ent.example",
			PreparedAt: at}, "", nil, "fourth@ent.example", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, s, atts, err := st.PrepareEscalation(ctx, "t1", tc.rec, tc.structureID, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			if rec.MessageID != tc.wantMsgID || rec.EffectID != tc.rec.EffectID || rec.AcceptedAt != nil {
				t.Errorf("record %+v, want Message-ID %s for %s, not accepted", rec, tc.wantMsgID, tc.rec.EffectID)
			}
			if s.ID != tc.structureID || s.Name != tc.wantSchool {
				t.Errorf("structure %q %q, want %q %q", s.ID, s.Name, tc.structureID, tc.wantSchool)
			}
			if len(atts) != len(tc.wantAtts) {
				t.Fatalf("%d attachments, want %v", len(atts), tc.wantAtts)
			}
			for i, a := range atts {
				want, err := st.Attachment(ctx, tc.wantAtts[i])
				if err != nil {
					t.Fatal(err)
				}
				if a.ID != tc.wantAtts[i] || string(a.Content) != string(want.Content) ||
					a.Filename != kept.Filename || a.ContentType != kept.ContentType || a.Size != kept.Size {
					t.Errorf("attachment %d: %+v (%d bytes), want %s as stored", i, a.Attachment, len(a.Content), tc.wantAtts[i])
				}
			}
			if id, err := st.TicketByMessageID(ctx, rec.MessageID); err != nil || id != "t1" {
				t.Errorf("ticket of %s: %q, %v", rec.MessageID, id, err)
			}
		})
	}

	// Once accepted, a preparation says so, and the thread holds the
	// first Message-ID once.
	if err := st.MarkAccepted(ctx, "t1", first.EffectID, at); err != nil {
		t.Fatal(err)
	}
	rec, _, _, err := st.PrepareEscalation(ctx, "t1", retry, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.AcceptedAt == nil || rec.MessageID != first.MessageID {
		t.Errorf("after acceptance: %+v", rec)
	}
	thread, err := st.Thread(ctx, "t1")
	if err != nil || len(thread) != 1 || thread[0] != first.MessageID {
		t.Errorf("thread %v, %v", thread, err)
	}
	var _ bridge.EscalationPreparer = (*redisstore.Store)(nil)
}

// TestTicketWithExchanges: the view the workers read is TicketView less
// the timeline, the same ticket and exchanges.
func TestTicketWithExchanges(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		svc, st := newService(rdb, nil)
		at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		mustApply(t, svc, structureEvent("s1", true), bridge.Applied)
		mustApply(t, svc, createdEvent("t1", "s1", at), bridge.Applied)
		full, err := st.TicketView(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		lean, err := st.TicketWithExchanges(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if len(full.Events) == 0 || lean.Events != nil {
			t.Errorf("events: full %d, lean %v", len(full.Events), lean.Events)
		}
		full.Events = nil
		if !reflect.DeepEqual(full, lean) {
			t.Errorf("lean view %+v\nwant %+v", lean, full)
		}
		if _, err := st.TicketWithExchanges(ctx, "t-none"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("missing ticket: %v", err)
		}
	})
}
