package inbound

import (
	"net/mail"
	"strings"
	"testing"
)

func TestSenderAuth(t *testing.T) {
	const id = "mx.ent.example"
	for _, tc := range []struct {
		name    string
		from    string
		headers []string // Authentication-Results values, topmost first
		require bool
		want    string // "" trusted, else a part of the reason
	}{
		{"pass", "agent@desk.example", []string{id + "; dmarc=pass header.from=desk.example"}, true, ""},
		{"fail", "agent@desk.example", []string{id + "; dmarc=fail header.from=desk.example"}, false, "dmarc=fail"},
		{"comments and case, as Postfix filters write them", "Agent@Desk.Example", []string{
			"MX.ENT.EXAMPLE (OpenDMARC); dkim=pass (2048-bit key; unprotected) header.d=desk.example header.i=@desk.example; " +
				"DMARC=PASS (p=reject dis=none) header.from=Desk.Example"}, true, ""},
		{"fail under comments", "agent@desk.example", []string{
			id + " (amavis (nested)); spf=pass smtp.mailfrom=evil.example; dmarc=fail (p=none dis=none) header.from=desk.example"}, false, "dmarc=fail"},
		{"version number", "agent@desk.example", []string{id + " 1; dmarc=fail header.from=desk.example"}, false, "dmarc=fail"},
		{"another server's pass is not ours", "agent@desk.example", []string{
			"mx.evil.example; dmarc=pass header.from=desk.example"}, true, "no Authentication-Results"},
		{"another server's pass does not hide our fail", "agent@desk.example", []string{
			"mx.evil.example; dmarc=pass header.from=desk.example", id + "; dmarc=fail header.from=desk.example"}, false, "dmarc=fail"},
		{"the topmost of ours decides, a forged one below does not", "agent@desk.example", []string{
			id + "; dmarc=fail header.from=desk.example", id + "; dmarc=pass header.from=desk.example"}, false, "dmarc=fail"},
		{"a result about another domain", "agent@desk.example", []string{
			id + "; dmarc=pass header.from=evil.example"}, false, "not the From domain"},
		{"none, not required", "agent@desk.example", []string{id + "; dmarc=none header.from=desk.example"}, false, ""},
		{"none, required", "agent@desk.example", []string{id + "; dmarc=none header.from=desk.example"}, true, "dmarc=none"},
		{"no dmarc result, not required", "agent@desk.example", []string{id + "; spf=pass smtp.mailfrom=desk.example"}, false, ""},
		{"no dmarc result, required", "agent@desk.example", []string{id + "; spf=pass smtp.mailfrom=desk.example"}, true, "no DMARC result"},
		{"none at all, not required", "agent@desk.example", nil, false, ""},
		{"none at all, required", "agent@desk.example", nil, true, "no Authentication-Results"},
		{"explicit none", "agent@desk.example", []string{id + "; none"}, true, "no DMARC result"},
		{"garbage", "agent@desk.example", []string{id + "; dmarc"}, true, "no DMARC result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &Inbound{From: &mail.Address{Address: tc.from}}
			for _, h := range tc.headers {
				in.Header.fields = append(in.Header.fields, headerField{key: "Authentication-Results", value: h})
			}
			got := SenderAuth{AuthServID: id, RequirePass: tc.require}.Check(in)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("Check = %q, want %q", got, tc.want)
			}
			// Off when no server is named, whatever the headers say.
			if got := (SenderAuth{RequirePass: tc.require}).Check(in); got != "" {
				t.Fatalf("without authserv_id: %q", got)
			}
		})
	}
}

func TestAuthresCleanKeepsQuotedParentheses(t *testing.T) {
	got := authresClean(`mx (c) ; dkim=pass reason="a (b) c" (comment \) still) header.d=x`)
	if !strings.Contains(got, `reason="a (b) c"`) || strings.Contains(got, "comment") || strings.Contains(got, "still") {
		t.Fatalf("authresClean = %q", got)
	}
}

// FuzzSenderAuth feeds Authentication-Results values of any shape to the
// check: it never panics, and a header that is not from the configured
// server never changes the verdict.
func FuzzSenderAuth(f *testing.F) {
	for _, seed := range []string{
		"mx.ent.example; dmarc=pass header.from=desk.example",
		"mx.ent.example (c (d)); dkim=pass (x) header.d=desk.example; dmarc=fail header.from=desk.example",
		"mx.ent.example 1; none",
		"mx.ent.example 2; dmarc=pass",
		`mx.ent.example; dmarc=pass reason="a \" (b" header.from=desk.example`,
		"; dmarc",
		"(((",
		"mx.ent.example;;;dmarc=;=;",
	} {
		f.Add(seed, "agent@desk.example")
	}
	f.Fuzz(func(t *testing.T, header, from string) {
		in := &Inbound{From: &mail.Address{Address: from}}
		in.Header.fields = []headerField{{key: "Authentication-Results", value: header}}
		for _, require := range []bool{false, true} {
			a := SenderAuth{AuthServID: "mx.ent.example", RequirePass: require}
			got := a.Check(in)
			if again := a.Check(in); again != got {
				t.Fatalf("two verdicts for one mail: %q, %q", got, again)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Fatalf("reason with a line break: %q", got)
			}
			// The same header under another server's name is ignored.
			other := &Inbound{From: in.From}
			other.Header.fields = []headerField{{key: "Authentication-Results", value: "mx.other.example; " + header}}
			if v := a.Check(other); v != a.Check(&Inbound{From: in.From}) {
				t.Fatalf("another server's header changed the verdict: %q", v)
			}
		}
	})
}
