package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/redisstore"
)

func TestFeed(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		st := redisstore.New(rdb, redisstore.Options{Prefix: "feed:"})
		base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		// 50 writers race, each notification written twice: the unread
		// count is exact.
		var wg sync.WaitGroup
		for i := range 50 {
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := bridge.Notification{ID: fmt.Sprintf("n%02d", i), Type: bridge.NotifyTicketUpdated,
						TicketID: "42", Title: "t", CreatedAt: base.Add(time.Duration(i) * time.Minute)}
					if err := st.AddNotification(ctx, "u1", n); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		unread, list, err := st.Notifications(ctx, "u1", false, 10)
		if err != nil || unread != 50 || len(list) != 10 || list[0].ID != "n49" || list[9].ID != "n40" {
			t.Fatalf("unread %d, %d listed (first %v), %v", unread, len(list), list, err)
		}
		left, err := st.MarkRead(ctx, "u1", []string{"n49", "n48", "nope"}, false)
		if err != nil || left != 48 {
			t.Fatalf("mark read: %d %v", left, err)
		}
		unread, list, _ = st.Notifications(ctx, "u1", true, 5)
		if unread != 48 || len(list) != 5 || list[0].ID != "n47" || list[0].Read {
			t.Fatalf("unread only: %d %+v", unread, list)
		}
		_, list, _ = st.Notifications(ctx, "u1", false, 2)
		if !list[0].Read || !list[1].Read {
			t.Fatalf("read flags: %+v", list)
		}
		// Retention: everything before n10 goes.
		removed, err := st.PruneFeeds(ctx, base.Add(9*time.Minute+time.Second))
		if err != nil || removed != 10 {
			t.Fatalf("prune: %d %v", removed, err)
		}
		unread, list, _ = st.Notifications(ctx, "u1", false, 100)
		if unread != 38 || len(list) != 40 {
			t.Fatalf("after prune: unread %d, %d kept", unread, len(list))
		}
		if left, _ := st.MarkRead(ctx, "u1", nil, true); left != 0 {
			t.Fatalf("mark all: %d", left)
		}
		if unread, _, _ := st.Notifications(ctx, "u1", false, 1); unread != 0 {
			t.Fatalf("unread after all: %d", unread)
		}
	})
}

func TestAddNotificationsBatch(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		st := redisstore.New(rdb, redisstore.Options{Prefix: "feedb:"})
		at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		batch := func(id string, users ...string) []bridge.FeedWrite {
			var ws []bridge.FeedWrite
			for _, u := range users {
				ws = append(ws, bridge.FeedWrite{UserID: u, Notification: bridge.Notification{ID: id,
					Type: bridge.NotifyTicketUpdated, TicketID: "42", Title: "pour " + u, CreatedAt: at, Read: true}})
			}
			return ws
		}
		if err := st.AddNotifications(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.AddNotifications(ctx, batch("n1", "u1", "u2", "u3")); err != nil {
			t.Fatal(err)
		}
		// Redis forgot its scripts (restart, flush): the batch still goes,
		// and the writes already made are not doubled.
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.AddNotifications(ctx, batch("n1", "u1", "u2", "u3", "u4")); err != nil {
			t.Fatal(err)
		}
		if err := st.AddNotifications(ctx, batch("n2", "u1")); err != nil {
			t.Fatal(err)
		}
		for u, want := range map[string]int{"u1": 2, "u2": 1, "u3": 1, "u4": 1} {
			unread, list, err := st.Notifications(ctx, u, false, 10)
			if err != nil || unread != want || len(list) != want || list[len(list)-1].Title != "pour "+u || list[0].Read {
				t.Errorf("%s: %d unread, %+v, %v", u, unread, list, err)
			}
		}
		// The retention sweep knows every user written by a batch.
		removed, err := st.PruneFeeds(ctx, at.Add(time.Second))
		if err != nil || removed != 5 {
			t.Errorf("pruned %d (%v), want 5", removed, err)
		}
	})
}
