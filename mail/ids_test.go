package mail

import (
	"strings"
	"testing"

	gomail "github.com/emersion/go-message/mail"
)

func testSigner() Signer {
	return Signer{Key: []byte("0123456789abcdef0123456789abcdef"), Domain: "ent.example"}
}

// The ticket ids the ENT may send: any of [A-Za-z0-9._:@-].
func idsTicketIDs() []string {
	return []string{"42", "abc", "T-42", "a.b_c:d@e-f", "UPPER", "x", strings.Repeat("9", 40)}
}

func TestMessageIDRoundTrip(t *testing.T) {
	s := testSigner()
	for _, id := range idsTicketIDs() {
		for _, kind := range []string{"esc", "fu"} {
			mid := s.NewMessageID(id, kind)
			if strings.ContainsAny(mid, "<> \r\n") {
				t.Fatalf("NewMessageID(%q) = %q: not a bare msg-id", id, mid)
			}
			if strings.Count(mid, "@") != 1 || !strings.HasSuffix(mid, "@ent.example") {
				t.Fatalf("NewMessageID(%q) = %q: want one '@' then the domain", id, mid)
			}
			// go-message must read it back as a valid msg-id.
			var h gomail.Header
			h.SetMessageID(mid)
			got, err := h.MessageID()
			if err != nil || got != mid {
				t.Fatalf("go-message parse of %q: %q, %v", mid, got, err)
			}
			for _, form := range []string{mid, "<" + mid + ">", " <" + mid + "> ", strings.ToUpper(mid)} {
				gotID, gotKind, ok := s.ParseMessageID(form)
				if !ok || gotID != id || gotKind != kind {
					t.Errorf("ParseMessageID(%q) = %q, %q, %v; want %q, %q, true", form, gotID, gotKind, ok, id, kind)
				}
			}
		}
	}
}

func TestMessageIDKindIsNormalised(t *testing.T) {
	s := testSigner()
	mid := s.NewMessageID("42", "Fu.X@<y>")
	_, kind, ok := s.ParseMessageID(mid)
	if !ok || kind != "fuxy" {
		t.Fatalf("kind = %q, ok %v; want fuxy", kind, ok)
	}
	mid = s.NewMessageID("42", "")
	if _, kind, ok := s.ParseMessageID(mid); !ok || kind != "x" {
		t.Fatalf("empty kind: %q, %v", kind, ok)
	}
}

func TestMessageIDRejectsTampering(t *testing.T) {
	s := testSigner()
	mid := s.NewMessageID("T-42", "esc")
	at := strings.LastIndexByte(mid, '@')
	parts := strings.Split(mid[:at], ".")
	if len(parts) != 5 {
		t.Fatalf("%q: want 5 dotted parts", mid)
	}
	other := s.NewMessageID("T-43", "fu")
	otherParts := strings.Split(other[:strings.LastIndexByte(other, '@')], ".")

	flip := func(p string) string {
		b := []byte(p)
		if b[0] == 'a' {
			b[0] = 'b'
		} else {
			b[0] = 'a'
		}
		return string(b)
	}
	for i := range parts {
		for name, repl := range map[string]string{"flipped": flip(parts[i]), "from another id": otherParts[i]} {
			if repl == parts[i] {
				continue
			}
			p := append([]string(nil), parts...)
			p[i] = repl
			forged := strings.Join(p, ".") + mid[at:]
			if _, _, ok := s.ParseMessageID(forged); ok {
				t.Errorf("part %d %s: %q accepted", i, name, forged)
			}
		}
	}
	bad := map[string]string{
		"other domain":     mid[:at] + "@evil.example",
		"sub domain":       mid[:at] + "@x.ent.example",
		"no domain":        mid[:at],
		"extra part":       "x." + mid,
		"mac truncated":    mid[:at-1] + mid[at:],
		"empty":            "",
		"only brackets":    "<>",
		"other key":        Signer{Key: []byte("another key"), Domain: "ent.example"}.NewMessageID("T-42", "esc"),
		"foreign msg-id":   "CAF=abc123@mail.gmail.com",
		"unbalanced angle": "<" + mid,
	}
	for name, id := range bad {
		if _, _, ok := s.ParseMessageID(id); ok {
			t.Errorf("%s: %q accepted", name, id)
		}
	}
	if _, _, ok := (Signer{Domain: "ent.example"}).ParseMessageID(Signer{Domain: "ent.example"}.NewMessageID("1", "esc")); ok {
		t.Error("an unkeyed signer verified an id")
	}
}

func TestMessageIDDomain(t *testing.T) {
	s := Signer{Key: []byte("k"), Domain: " ENT.Example "}
	mid := s.NewMessageID("1", "esc")
	if !strings.HasSuffix(mid, "@ent.example") {
		t.Fatalf("%q: domain not normalised", mid)
	}
	if _, _, ok := s.ParseMessageID(strings.Replace(mid, "@ent.example", "@Ent.EXAMPLE", 1)); !ok {
		t.Error("domain compared case-sensitively")
	}
	bad := Signer{Key: []byte("k"), Domain: "evil>\r\nBcc: x"}
	if mid := bad.NewMessageID("1", "esc"); !strings.HasSuffix(mid, "@"+idsFallbackHost) {
		t.Errorf("malformed domain kept: %q", mid)
	}
}

func TestMessageIDsAreUnique(t *testing.T) {
	s := testSigner()
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		mid := s.NewMessageID("42", "fu")
		if seen[mid] {
			t.Fatalf("duplicate Message-ID %q after %d", mid, i)
		}
		seen[mid] = true
	}
}

func TestReplyTokenRoundTrip(t *testing.T) {
	s := testSigner()
	for _, id := range idsTicketIDs() {
		tok := s.ReplyToken(id)
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
				t.Fatalf("ReplyToken(%q) = %q: character %q", id, tok, r)
			}
		}
		if tok != s.ReplyToken(id) {
			t.Errorf("ReplyToken(%q) not stable", id)
		}
		for _, form := range []string{tok, strings.ToUpper(tok)} {
			got, ok := s.ParseReplyToken(form)
			if !ok || got != id {
				t.Errorf("ParseReplyToken(%q) = %q, %v; want %q", form, got, ok, id)
			}
		}
	}
	if n := len(s.ReplyToken("42")); n > 20 {
		t.Errorf("token for a short numeric id is %d characters; want it short", n)
	}
	if s.ReplyToken("abc") == s.ReplyToken("ABC") {
		t.Error("ids differing in case share a token")
	}
}

func TestReplyTokenRejectsTampering(t *testing.T) {
	s := testSigner()
	tok := s.ReplyToken("T-42")
	for i := range tok {
		b := []byte(tok)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if id, ok := s.ParseReplyToken(string(b)); ok {
			t.Errorf("byte %d changed: %q accepted as %q", i, b, id)
		}
	}
	other := Signer{Key: []byte("another key")}
	bad := map[string]string{
		"empty":           "",
		"truncated":       tok[:len(tok)-1],
		"extended":        tok + "a",
		"other key":       other.ReplyToken("T-42"),
		"other ticket":    s.ReplyToken("T-43")[:len(s.ReplyToken("T-43"))-13] + tok[len(tok)-13:],
		"unknown mode":    "z" + tok[1:],
		"empty ticket id": s.ReplyToken(""),
	}
	for name, v := range bad {
		if id, ok := s.ParseReplyToken(v); ok {
			t.Errorf("%s: %q accepted as %q", name, v, id)
		}
	}
	if _, ok := (Signer{}).ParseReplyToken((Signer{}).ReplyToken("42")); ok {
		t.Error("an unkeyed signer verified a token")
	}
}

func TestPlusAddress(t *testing.T) {
	tests := []struct {
		addr, token, want string
	}{
		{"assistance@ent.example", "tok", "assistance+tok@ent.example"},
		{"assistance+old@ent.example", "tok", "assistance+tok@ent.example"},
		{"assistance+old@ent.example", "", "assistance@ent.example"},
		{"assistance@ent.example", "", "assistance@ent.example"},
		{"not-an-address", "tok", "not-an-address"},
	}
	for _, tt := range tests {
		if got := PlusAddress(tt.addr, tt.token); got != tt.want {
			t.Errorf("PlusAddress(%q, %q) = %q; want %q", tt.addr, tt.token, got, tt.want)
		}
	}
}

func TestSplitPlusAddress(t *testing.T) {
	tests := []struct {
		addr, base, token string
	}{
		{"assistance+tok@ent.example", "assistance@ent.example", "tok"},
		{"Assistance+TOK@ENT.Example", "Assistance@ent.example", "TOK"},
		{" <assistance+tok@ent.example> ", "assistance@ent.example", "tok"},
		{"assistance@ent.example", "assistance@ent.example", ""},
		{"a+b+c@ent.example", "a@ent.example", "b+c"},
		{"nobody", "nobody", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		base, token := SplitPlusAddress(tt.addr)
		if base != tt.base || token != tt.token {
			t.Errorf("SplitPlusAddress(%q) = %q, %q; want %q, %q", tt.addr, base, token, tt.base, tt.token)
		}
	}
	// Inverse of PlusAddress, and the token survives the trip.
	s := testSigner()
	addr := PlusAddress("assistance@ent.example", s.ReplyToken("T-42"))
	base, token := SplitPlusAddress(strings.ToUpper(addr))
	if !strings.EqualFold(base, "assistance@ent.example") {
		t.Errorf("base %q", base)
	}
	if id, ok := s.ParseReplyToken(token); !ok || id != "T-42" {
		t.Errorf("token from %q: %q, %v", addr, id, ok)
	}
}

func FuzzParseMessageID(f *testing.F) {
	s := testSigner()
	f.Add(s.NewMessageID("T-42", "esc"))
	f.Add("<" + s.NewMessageID("", "fu") + ">")
	f.Add("sb.esc..aaaa.bbbb@ent.example")
	f.Add("<@>")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		ticket, kind, ok := s.ParseMessageID(id)
		if !ok && (ticket != "" || kind != "") {
			t.Fatalf("rejected id returned data: %q %q", ticket, kind)
		}
		if ok {
			// Only a signed id can verify: making one for the same ticket
			// and kind must verify too.
			if _, _, ok2 := s.ParseMessageID(s.NewMessageID(ticket, kind)); !ok2 {
				t.Fatalf("re-made id for %q/%q does not verify", ticket, kind)
			}
		}
	})
}

func FuzzParseReplyToken(f *testing.F) {
	s := testSigner()
	f.Add(s.ReplyToken("42"))
	f.Add(s.ReplyToken("T-42"))
	f.Add("r")
	f.Add("b00000000000000")
	f.Fuzz(func(t *testing.T, tok string) {
		id, ok := s.ParseReplyToken(tok)
		if ok && !strings.EqualFold(s.ReplyToken(id), tok) {
			t.Fatalf("token %q verified as %q, whose token is %q", tok, id, s.ReplyToken(id))
		}
		base, token := SplitPlusAddress(tok)
		if token != "" && !strings.Contains(tok, "+") {
			t.Fatalf("token %q from an address without '+'", token)
		}
		_ = PlusAddress(base, token)
	})
}

func TestSignerKeyRotation(t *testing.T) {
	old := Signer{Key: []byte("old-key-0123456789abcdef"), Domain: "ent.example"}
	msgID := old.NewMessageID("42", "esc")
	tok := old.ReplyToken("42")
	rotated := Signer{Key: []byte("new-key-0123456789abcdef"), Domain: "ent.example",
		PreviousKeys: [][]byte{[]byte("older-still-0123456789"), old.Key}}
	if id, kind, ok := rotated.ParseMessageID(msgID); !ok || id != "42" || kind != "esc" {
		t.Errorf("old Message-ID after rotation: %q %q %v", id, kind, ok)
	}
	if id, ok := rotated.ParseReplyToken(tok); !ok || id != "42" {
		t.Errorf("old token after rotation: %q %v", id, ok)
	}
	// New mails are signed with the new key only.
	fresh := rotated.NewMessageID("43", "fu")
	if _, _, ok := old.ParseMessageID(fresh); ok {
		t.Error("a new Message-ID verifies with the old key alone")
	}
	if _, _, ok := rotated.ParseMessageID(fresh); !ok {
		t.Error("a new Message-ID does not verify")
	}
	// Once the old key is dropped, its mails no longer verify.
	dropped := Signer{Key: rotated.Key, Domain: "ent.example"}
	if _, _, ok := dropped.ParseMessageID(msgID); ok {
		t.Error("an old Message-ID verifies after its key was dropped")
	}
	if _, ok := dropped.ParseReplyToken(tok); ok {
		t.Error("an old token verifies after its key was dropped")
	}
	// An empty previous key verifies nothing.
	empty := Signer{Key: rotated.Key, Domain: "ent.example", PreviousKeys: [][]byte{nil}}
	if _, ok := empty.ParseReplyToken(Signer{Domain: "ent.example"}.ReplyToken("42")); ok {
		t.Error("a token made with an empty key verifies")
	}
}
