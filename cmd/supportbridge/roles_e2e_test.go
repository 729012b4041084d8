package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The structures of the roles tests: an academy whose referent oversees
// two schools, one of which has a referent of its own, and a school with
// nobody anywhere up its chain.
var rolesStructures = []string{
	`{"structure":{"id":"academy","name":"Académie","uai":"","parent_id":"","escalation_enabled":true,
	  "referents":[{"id":"u-academy","display_name":"M. Recteur","email":"recteur@ac.example","digest":"never"}]}}`,
	`{"structure":{"id":"school-a","name":"École A","uai":"0750010A","parent_id":"academy","escalation_enabled":true,"referents":[]}}`,
	`{"structure":{"id":"school-b","name":"École B","uai":"0750011B","parent_id":"academy","escalation_enabled":true,
	  "referents":[{"id":"u-ref-b","display_name":"Mme Blanc","email":"blanc@school.example","digest":"never"}]}}`,
	`{"structure":{"id":"lonely","name":"École isolée","uai":"0750012C","parent_id":"","escalation_enabled":true,"referents":[]}}`,
}

func actorJSON(id string) string {
	return fmt.Sprintf(`{"id":%q,"display_name":%q}`, id, id)
}

func escalationBy(ticket, actor string) string {
	return event("ticket.escalation_requested", fmt.Sprintf(`{"ticket_id":%q,"actor":%s}`, ticket, actorJSON(actor)))
}

func statusBy(ticket, actor, status string) string {
	return event("ticket.status_changed", fmt.Sprintf(`{"ticket_id":%q,"actor":%s,"status":%q}`, ticket, actorJSON(actor), status))
}

func editBy(ticket, actor, description string) string {
	return event("ticket.updated", fmt.Sprintf(`{"ticket_id":%q,"actor":%s,"changes":{"description":%q}}`, ticket, actorJSON(actor), description))
}

func commentBy(ticket, actor, id string) string {
	return event("ticket.commented", fmt.Sprintf(`{"ticket_id":%q,"comment":{"id":%q,"author":%s,"body":"Une précision.","created_at":%q,"attachments":[]}}`,
		ticket, id, actorJSON(actor), time.Now().UTC().Format(time.RFC3339)))
}

func startRolesDaemon(t *testing.T, redisAddr, extraENT string) *daemonUnderTest {
	t.Helper()
	d := startDaemon(t, opsConfig(t, redisAddr, extraENT, ""))
	for _, st := range rolesStructures {
		if a := d.post(t, nextID(), event("structure.upserted", st)); a.Status != 202 {
			t.Fatalf("structure: %d %s", a.Status, a.Raw)
		}
	}
	return d
}

// TestRolesThroughTheWebhook: each role rule, allowed and refused, as the
// ENT would send it (the owner is u-owner, school-a's referent is the
// academy's u-academy; u-ref-b is a referent of another school).
func TestRolesThroughTheWebhook(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		d := startRolesDaemon(t, redisAddr, "")
		defer d.stop(t)
		create := func(id string) {
			t.Helper()
			if a := d.post(t, nextID(), ticketCreated(id, "school-a")); a.Status != 202 {
				t.Fatalf("create %s: %d %s", id, a.Status, a.Raw)
			}
		}
		for _, id := range []string{"R-esc", "R-status", "R-edit", "R-comment"} {
			create(id)
		}
		steps := []struct {
			name string
			body string
			want int
			code string
		}{
			{"escalation by someone else", escalationBy("R-esc", "u-other"), 403, "forbidden_actor"},
			{"escalation by the requester", escalationBy("R-esc", "u-owner"), 403, "forbidden_actor"},
			{"escalation by another school's referent", escalationBy("R-esc", "u-ref-b"), 403, "forbidden_actor"},
			{"escalation by the academy's referent", escalationBy("R-esc", "u-academy"), 202, ""},

			{"the requester resolving", statusBy("R-status", "u-owner", "resolved"), 403, "forbidden_actor"},
			{"someone else closing", statusBy("R-status", "u-other", "closed"), 403, "forbidden_actor"},
			{"a referent opening", statusBy("R-status", "u-academy", "opened"), 202, ""},
			{"the requester closing", statusBy("R-status", "u-owner", "closed"), 202, ""},
			{"the requester reopening by a status", statusBy("R-status", "u-owner", "opened"), 403, "forbidden_actor"},

			{"an edit by someone else", editBy("R-edit", "u-other", "autre"), 403, "forbidden_actor"},
			{"the requester editing a new demand", editBy("R-edit", "u-owner", "précisée"), 202, ""},
			{"a referent taking it up", statusBy("R-edit", "u-academy", "opened"), 202, ""},
			{"the requester editing an opened demand", editBy("R-edit", "u-owner", "encore"), 403, "forbidden_actor"},
			{"a referent editing", editBy("R-edit", "u-academy", "reformulée"), 202, ""},

			{"a comment by someone else", commentBy("R-comment", "u-other", "k1"), 403, "forbidden_actor"},
			{"a comment by the requester", commentBy("R-comment", "u-owner", "k2"), 202, ""},
			{"a comment by a referent", commentBy("R-comment", "u-academy", "k3"), 202, ""},

			{"a demand in an unknown school", ticketCreated("R-unknown", "nowhere"), 409, "unknown_structure"},
		}
		for _, st := range steps {
			a := d.post(t, nextID(), st.body)
			if a.Status != st.want || st.code != "" && a.code() != st.code {
				t.Errorf("%s: %d %s, want %d %s", st.name, a.Status, a.Raw, st.want, st.code)
			}
		}
		// The requester's reopening by a comment still works.
		if a := d.post(t, nextID(), commentBy("R-status", "u-owner", "k4")); a.Status != 202 {
			t.Errorf("the requester reopening by a comment: %d %s", a.Status, a.Raw)
		}
		if a := d.get(t, "/v1/tickets/R-status"); a.Body["status"] != "opened" {
			t.Errorf("R-status is %v after the requester's comment", a.Body["status"])
		}
		if a := d.get(t, "/v1/tickets/R-edit"); a.Body["description"] != "reformulée" {
			t.Errorf("R-edit description %v", a.Body["description"])
		}
	})
}

// notificationTypes lists the types of a user's notifications on a ticket.
func notificationTypes(t *testing.T, d *daemonUnderTest, user, ticket string) []string {
	t.Helper()
	a := d.get(t, "/v1/users/"+url.PathEscape(user)+"/notifications?limit=100")
	var out []string
	ns, _ := a.Body["notifications"].([]any)
	for _, n := range ns {
		m, _ := n.(map[string]any)
		if m["ticket_id"] == ticket {
			out = append(out, m["type"].(string))
		}
	}
	slices.Sort(out)
	return out
}

func waitNotifications(t *testing.T, d *daemonUnderTest, user, ticket string, n int) []string {
	t.Helper()
	var got []string
	waitOps(t, fmt.Sprintf("%d notifications of %s for %s", n, user, ticket), 10*time.Second, func() bool {
		got = notificationTypes(t, d, user, ticket)
		return len(got) >= n
	})
	return got
}

// TestRolesFeeds: the requester hears of a referent's comment and status
// change; the academy's referent hears of a demand in one of its schools;
// a school without any referent up its chain is accepted, counted and
// listed.
func TestRolesFeeds(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		d := startRolesDaemon(t, redisAddr, "")
		defer d.stop(t)
		if a := d.post(t, nextID(), ticketCreated("F1", "school-a")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if got := waitNotifications(t, d, "u-academy", "F1", 1); !slices.Equal(got, []string{"ticket.created"}) {
			t.Errorf("the academy's referent got %v", got)
		}
		if got := notificationTypes(t, d, "u-ref-b", "F1"); len(got) != 0 {
			t.Errorf("another school's referent got %v", got)
		}
		if a := d.post(t, nextID(), commentBy("F1", "u-academy", "fk1")); a.Status != 202 {
			t.Fatalf("comment: %d %s", a.Status, a.Raw)
		}
		if got := waitNotifications(t, d, "u-owner", "F1", 1); !slices.Equal(got, []string{"ticket.updated"}) {
			t.Errorf("the requester after a referent's comment: %v", got)
		}
		if a := d.post(t, nextID(), statusBy("F1", "u-academy", "waiting")); a.Status != 202 {
			t.Fatalf("status: %d %s", a.Status, a.Raw)
		}
		if got := waitNotifications(t, d, "u-owner", "F1", 2); !slices.Equal(got, []string{"ticket.updated", "ticket.updated"}) {
			t.Errorf("the requester after a status change: %v", got)
		}

		if a := d.post(t, nextID(), ticketCreated("F-lonely", "lonely")); a.Status != 202 {
			t.Fatalf("a demand nobody hears of is still accepted: %d %s", a.Status, a.Raw)
		}
		digWaitMetric(t, d, "supportbridge_tickets_without_referent_total 1")
		req, _ := http.NewRequest("GET", d.base+"/", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), `<ul id="noreferent"><li><a href="/tickets/F-lonely">F-lonely</a></li></ul>`) {
			t.Errorf("the status page does not list F-lonely as a demand no referent hears of")
		}
	})
}

// TestIncludeChildren: an academy's listing with include_children holds
// the demands of its schools, newest first, page after page; without it,
// only its own.
func TestIncludeChildren(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		d := startRolesDaemon(t, redisAddr, "")
		defer d.stop(t)
		for i, st := range []string{"school-a", "school-b", "school-a", "s1", "academy", "school-b"} {
			if a := d.post(t, nextID(), ticketCreated(fmt.Sprintf("L%d", i), st)); a.Status != 202 {
				t.Fatalf("create: %d %s", a.Status, a.Raw)
			}
			time.Sleep(5 * time.Millisecond)
		}
		var got []string
		cursor := ""
		for page := 0; page < 10; page++ {
			a := d.get(t, "/v1/tickets?structure_id=academy&include_children=true&limit=2&cursor="+url.QueryEscape(cursor))
			if a.Status != 200 {
				t.Fatalf("list: %d %s", a.Status, a.Raw)
			}
			for _, x := range a.Body["tickets"].([]any) {
				got = append(got, x.(map[string]any)["id"].(string))
			}
			cursor, _ = a.Body["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		if want := []string{"L5", "L4", "L2", "L1", "L0"}; !slices.Equal(got, want) {
			t.Errorf("academy with its schools: %v, want %v", got, want)
		}
		a := d.get(t, "/v1/tickets?structure_id=academy")
		if ts := a.Body["tickets"].([]any); len(ts) != 1 || ts[0].(map[string]any)["id"] != "L4" {
			t.Errorf("academy alone: %s", a.Raw)
		}
		if a := d.get(t, "/v1/tickets?include_children=true"); a.Status != 400 {
			t.Errorf("include_children without structure_id: %d", a.Status)
		}
		if a := d.get(t, "/v1/tickets?structure_id=academy&include_children=yes"); a.Status != 400 {
			t.Errorf("include_children=yes: %d", a.Status)
		}
	})
}

// TestTrustActorRoles: with ent.trust_actor_roles the ENT's word on who
// may act is taken; an unknown structure is still refused.
func TestTrustActorRoles(t *testing.T) {
	e2eBackends(t, func(t *testing.T, redisAddr string, _, _ func()) {
		d := startRolesDaemon(t, redisAddr, "  trust_actor_roles: true\n")
		defer d.stop(t)
		if a := d.post(t, nextID(), ticketCreated("TR1", "school-a")); a.Status != 202 {
			t.Fatalf("create: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), escalationBy("TR1", "u-other")); a.Status != 202 {
			t.Errorf("escalation by anyone with trust_actor_roles: %d %s", a.Status, a.Raw)
		}
		if a := d.post(t, nextID(), ticketCreated("TR2", "nowhere")); a.Status != 409 || a.code() != "unknown_structure" {
			t.Errorf("unknown structure: %d %s", a.Status, a.Raw)
		}
	})
}
