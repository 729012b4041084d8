package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo end to end and checks each step through the API,
// not through the narration.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, []string{"supportbridge", "demo", "--listen", "127.0.0.1:0", "--pace", "300ms"},
			func(string) string { return "" }, out, errOut)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "demo: scripted loop") && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s\n%s", err, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), "demo: scripted loop complete") {
		t.Fatalf("the scripted loop did not complete:\n%s\n%s", out.String(), errOut.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the scripted loop took %v", took)
	}
	base := regexp.MustCompile(`listening on (http://[0-9.:]+)`).FindStringSubmatch(out.String())
	token := regexp.MustCompile(`API token: +(\S+)`).FindStringSubmatch(out.String())
	if base == nil || token == nil {
		t.Fatalf("no URL or token in:\n%s", out.String())
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base[1]+path, nil)
		req.Header.Set("Authorization", "Bearer "+token[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var tk struct {
		Status      string `json:"status"`
		Attachments []struct {
			ID          string `json:"id"`
			ContentType string `json:"content_type"`
		} `json:"attachments"`
		Escalation struct {
			Status        string `json:"status"`
			DeskReference string `json:"desk_reference"`
		} `json:"escalation"`
		Exchanges []struct {
			Origin string `json:"origin"`
			Body   string `json:"body"`
		} `json:"exchanges"`
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	get("/v1/tickets/T-1001", &tk)
	if tk.Status != "resolved" || tk.Escalation.Status != "successful" || tk.Escalation.DeskReference != "5678" {
		t.Errorf("ticket %s, escalation %s, desk reference %q", tk.Status, tk.Escalation.Status, tk.Escalation.DeskReference)
	}
	if len(tk.Attachments) != 1 || tk.Attachments[0].ContentType != "image/png" {
		t.Errorf("attachments %+v", tk.Attachments)
	}
	var origins []string
	for _, x := range tk.Exchanges {
		origins = append(origins, x.Origin)
		if x.Origin == "desk" && (strings.Contains(x.Body, "a écrit") || strings.Contains(x.Body, "> ")) {
			t.Errorf("a desk exchange kept the quote: %q", x.Body)
		}
	}
	if strings.Join(origins, ",") != "ent,desk,ent,desk" {
		t.Errorf("exchanges from %v", origins)
	}
	types := map[string]bool{}
	for _, e := range tk.Events {
		types[e.Type] = true
	}
	for _, want := range []string{"created", "escalation_requested", "escalated", "desk_replied", "desk_reference", "status_changed"} {
		if !types[want] {
			t.Errorf("no %s event in %v", want, types)
		}
	}
	var feed struct {
		Unread        int `json:"unread"`
		Notifications []struct {
			Type string `json:"type"`
		} `json:"notifications"`
	}
	get("/v1/users/u-1234/notifications", &feed)
	ntypes := map[string]bool{}
	for _, n := range feed.Notifications {
		ntypes[n.Type] = true
	}
	if !ntypes["ticket.desk_replied"] || !ntypes["ticket.resolved"] || feed.Unread == 0 {
		t.Errorf("owner's feed %+v", feed)
	}
	get("/v1/users/u-ref1/notifications", &feed)
	if len(feed.Notifications) == 0 {
		t.Errorf("referent's feed is empty")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
