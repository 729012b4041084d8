package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestEnvExpansion(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		env   map[string]string
		check func(*Config) (got, want any)
	}{
		{"plain", "smtp:\n  helo: ${HELO}", map[string]string{"HELO": "mx.example"},
			func(c *Config) (any, any) { return c.SMTP.HELO, "mx.example" }},
		{"inside a text", `smtp: {helo: "mx.${HOST}"}`, map[string]string{"HOST": "ent.example"},
			func(c *Config) (any, any) { return c.SMTP.HELO, "mx.ent.example" }},
		{"default when unset", "smtp: {helo: '${HELO:-fallback.example}'}", nil,
			func(c *Config) (any, any) { return c.SMTP.HELO, "fallback.example" }},
		{"default when empty", "smtp: {helo: '${HELO:-fallback.example}'}", map[string]string{"HELO": ""},
			func(c *Config) (any, any) { return c.SMTP.HELO, "fallback.example" }},
		{"set wins over default", "smtp: {helo: '${HELO:-fallback.example}'}", map[string]string{"HELO": "set.example"},
			func(c *Config) (any, any) { return c.SMTP.HELO, "set.example" }},
		{"empty default", "redis: {username: '${RU:-}'}", nil,
			func(c *Config) (any, any) { return c.Redis.Username, "" }},
		{"dollar escape", "redis: {password: 'pa$$${PW}$$'}", map[string]string{"PW": "x"},
			func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "pa$x$" }},
		{"lone dollar kept", "redis: {password: 'pa$word$'}", nil,
			func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "pa$word$" }},
		{"value not expanded again", "redis: {password: '${PW}'}", map[string]string{"PW": "${OTHER}$$"},
			func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "${OTHER}$$" }},
		{"integer", "redis:\n  db: ${DB}", map[string]string{"DB": "7"},
			func(c *Config) (any, any) { return c.Redis.DB, 7 }},
		{"quoted integer", `redis: {db: "${DB}"}`, map[string]string{"DB": "7"},
			func(c *Config) (any, any) { return c.Redis.DB, 7 }},
		{"boolean", "imap:\n  idle: ${IDLE}", map[string]string{"IDLE": "false"},
			func(c *Config) (any, any) { return c.IMAP.IDLE, false }},
		{"duration", "smtp:\n  timeout: ${T}", map[string]string{"T": "45s"},
			func(c *Config) (any, any) { return c.SMTP.Timeout, 45 * time.Second }},
		{"size", "attachments:\n  max_bytes: ${S}", map[string]string{"S": "1MiB"},
			func(c *Config) (any, any) { return c.Attachments.MaxBytes, MiB }},
		{"list item", `redis: {addrs: ["${A}", "b.example:6379"]}`, map[string]string{"A": "a.example:6379"},
			func(c *Config) (any, any) { return c.Redis.Addrs, []string{"a.example:6379", "b.example:6379"} }},
		{"number stays text in a text field", "smtp:\n  helo: ${H}", map[string]string{"H": "123"},
			func(c *Config) (any, any) { return c.SMTP.HELO, "123" }},
		{"null stays text", "redis:\n  password: ${PW}", map[string]string{"PW": "null"},
			func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "null" }},
		{"empty value replaces the default", "desk: {identity: '${ID:-}'}", nil,
			func(c *Config) (any, any) { return c.Desk.Identity, "" }},
		{"injection stays one string", "structures: [{id: s1, name: '${NAME}'}]", map[string]string{"NAME": "x\n  evil: 1\nlisten: 0.0.0.0:1"},
			func(c *Config) (any, any) {
				return []any{c.Structures[0].Name, c.Listen}, []any{"x\n  evil: 1\nlisten: 0.0.0.0:1", "127.0.0.1:8080"}
			}},
		{"flow injection stays one string", "structures:\n  - id: s1\n    name: ${NAME}", map[string]string{"NAME": "a}, {id: s2"},
			func(c *Config) (any, any) {
				return []any{len(c.Structures), c.Structures[0].Name}, []any{1, "a}, {id: s2"}
			}},
		{"anchored value expanded once", "redis: {password: &pw 'a$$${X}'}\nsmtp: {password: *pw}", map[string]string{"X": "b"},
			func(c *Config) (any, any) {
				return []string{c.Redis.Password.Reveal(), c.SMTP.Password.Reveal()}, []string{"a$b", "a$b"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "empty value replaces the default" {
				// An empty identity is invalid: check the decoded value
				// through the problem it causes.
				_, err := Parse([]byte(minimal(tc.extra)), envFunc(tc.env))
				ps := problemsOf(t, err)
				if len(ps) != 1 || !strings.HasPrefix(ps[0], `desk.identity: must be 1 to 64`) {
					t.Errorf("problems = %q", ps)
				}
				return
			}
			c := mustParse(t, minimal(tc.extra), tc.env)
			got, want := tc.check(c)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestEnvExpansionProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		env   map[string]string
		want  []string
	}{
		{"unset variable names key and variable", "smtp: {helo: mx}\nent:\n  callback_url: https://ent.example/cb\n  callback_secret: ${CB_SECRET}\n", nil,
			nil}, // replaced below: ent appears twice
		{"unset in a list", `redis: {addrs: ["${R1}", "${R2}"]}`, map[string]string{"R1": "a:1"},
			[]string{"redis.addrs[1]: environment variable R2 is not set (write ${R2:-} if it may be empty) (line 4)"}},
		{"two unset in one value", `desk: {identity: "${A}${B}"}`, nil,
			[]string{
				"desk.identity: environment variable A is not set (write ${A:-} if it may be empty) (line 4)",
				"desk.identity: environment variable B is not set (write ${B:-} if it may be empty) (line 4)",
			}},
		{"unterminated", `smtp: {helo: "${HELO"}`, nil,
			[]string{`smtp.helo: "${" without its closing "}" (line 4)`}},
		{"bad name", `smtp: {helo: "${1X}"}`, nil,
			[]string{`smtp.helo: "1X" is not a variable name (letters, digits, _) (line 4)`}},
		{"empty name", `smtp: {helo: "${:-x}"}`, nil,
			[]string{`smtp.helo: "" is not a variable name (letters, digits, _) (line 4)`}},
		{"a variable cannot make a list", "desk:\n  allowed_senders: ${S}", map[string]string{"S": "[a@b.example, c@d.example]"},
			[]string{"desk.allowed_senders: must be a list, not a single value (line 5)"}},
		{"a variable cannot make a mapping", "redis: ${R}", map[string]string{"R": "{addrs: [x:1]}"},
			[]string{"redis: must be a mapping of keys to values, not a single value (line 4)"}},
		{"bad integer from env", "redis:\n  db: ${DB}", map[string]string{"DB": "seven"},
			[]string{"redis.db: must be a whole number (line 5)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := minimal(tc.extra)
			want := tc.want
			if want == nil {
				yaml = "smtp: {helo: mx}\nent:\n  webhook_secrets: [\"" + testWebhookSecret + "\"]\n  api_tokens: [\"" + testToken +
					"\"]\n  callback_url: https://ent.example/cb\n  callback_secret: ${CB_SECRET}\n"
				want = []string{"ent.callback_secret: environment variable CB_SECRET is not set (write ${CB_SECRET:-} if it may be empty) (line 6)"}
			}
			_, err := Parse([]byte(yaml), envFunc(tc.env))
			if got := problemsOf(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestDecodeProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level key", minimal("evil: 1\n"),
			[]string{"evil: unknown key (line 4)"}},
		{"unknown key with suggestion", minimal("redis:\n  addrs: [a:1]\n  key_prefx: x\n"),
			[]string{"redis.key_prefx: unknown key (did you mean key_prefix?) (line 6)"}},
		{"unknown key in a list item", minimal("structures:\n  - id: s1\n    referents:\n      - {id: r1, email: a@b.example, digets: weekly}\n"),
			[]string{"structures[0].referents[0].digets: unknown key (did you mean digest?) (line 7)"}},
		{"unknown keys all reported", minimal("smtp: {adr: x, tsl: none}\nimap: {polling: 1s}\n"),
			[]string{
				"smtp.adr: unknown key (did you mean addr?) (line 4)",
				"smtp.tsl: unknown key (did you mean tls?) (line 4)",
				"imap.polling: unknown key (line 5)",
			}},
		{"duplicate key", minimal("listen: a:1\nlisten: b:2\n"),
			[]string{"listen: defined twice (first on line 4) (line 5)"}},
		{"wrong kinds", minimal("redis: [a]\nimap: {idle: maybe, max_message_bytes: {a: 1}}\ndesk: {allowed_senders: {a: b}, from: [x]}\n"),
			[]string{
				"redis: must be a mapping of keys to values, not a list (line 4)",
				"imap.idle: must be true or false (line 5)",
				"imap.max_message_bytes: must be a size such as 4096, 512KiB, 20MiB or 10MB (line 5)",
				"desk.allowed_senders: must be a list, not a mapping (line 6)",
				"desk.from: must be a single value, not a list (line 6)",
			}},
		{"duration without unit", minimal("smtp: {timeout: 30}\n"),
			[]string{"smtp.timeout: must be a duration such as 30s, 5m or 120h (line 4)"}},
		{"fractional integer", minimal("attachments: {max_count: 2.5}\n"),
			[]string{"attachments.max_count: must be a whole number (line 4)"}},
		{"top level not a mapping", "- a\n- b\n",
			[]string{
				"(top level): must be a mapping of keys to values, not a list (line 1)",
				"ent.webhook_secrets: at least one secret is required",
				"ent.api_tokens: at least one token is required",
			}},
		{"syntax error stops there", "listen: [a\nent: {\n",
			nil}, // only checked for a single line mentioning a line number
		{"unquoted ${VAR} in flow style is a YAML error", minimal("redis: {db: ${DB}}\n"),
			nil},
		{"two documents", minimal("---\nlisten: a:1\n"),
			[]string{"line 4: only one YAML document is allowed"}},
		{"alias cycle through a merge", minimal("structures:\n  - &s {id: s1, <<: *s}\n"),
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), nil)
			got := problemsOf(t, err)
			if tc.want == nil {
				if len(got) != 1 || !strings.Contains(got[0], "line ") {
					t.Errorf("problems = %q; want one, with its line", got)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	c := mustParse(t, minimal(`
structures:
  - id: s1
    referents:
      - &boss {id: r-boss, display_name: Boss, email: boss@school.example, digest: weekly}
      - {<<: *boss, id: r-2, locale: en}
      - <<: [{id: r-3, email: first@school.example}, *boss]
        display_name: Third
  - id: s2
    referents: [*boss]
`), nil)
	want := []Referent{
		{ID: "r-boss", DisplayName: "Boss", Email: "boss@school.example", Digest: "weekly", Locale: "fr"},
		{ID: "r-2", DisplayName: "Boss", Email: "boss@school.example", Digest: "weekly", Locale: "en"},
		{ID: "r-3", DisplayName: "Third", Email: "first@school.example", Digest: "weekly", Locale: "fr"},
	}
	if !slices.Equal(c.Structures[0].Referents, want) {
		t.Errorf("s1 referents = %+v", c.Structures[0].Referents)
	}
	if !slices.Equal(c.Structures[1].Referents, want[:1]) {
		t.Errorf("s2 referents = %+v", c.Structures[1].Referents)
	}
}

func TestAliasBombIsStopped(t *testing.T) {
	// Each level merges the previous one ten times: 10^9 visits if
	// followed blindly.
	var b strings.Builder
	b.WriteString(minimal("") + "structures:\n  - &a0 {id: s}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [", i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	start := time.Now()
	_, err := Parse([]byte(b.String()), nil)
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	got := problemsOf(t, err)
	if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "too many values") }) {
		t.Errorf("problems = %q", got)
	}
}

func TestExpandVars(t *testing.T) {
	env := envFunc(map[string]string{"A": "1", "B": "two", "EMPTY": ""})
	for _, tc := range []struct {
		in, want    string
		missing     []string
		substituted bool
		err         bool
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "1", substituted: true},
		{in: "x${A}y${B}z", want: "x1ytwoz", substituted: true},
		{in: "${EMPTY:-d}", want: "d", substituted: true},
		{in: "${NOPE:-a:-b}", want: "a:-b", substituted: true},
		{in: "${NOPE:-}", want: "", substituted: true},
		{in: "${NOPE}", want: "", missing: []string{"NOPE"}, substituted: true},
		{in: "${EMPTY}", want: "", missing: []string{"EMPTY"}, substituted: true},
		{in: "$$", want: "$"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$${A}", want: "$1", substituted: true},
		{in: "$${A}", want: "${A}"},
		{in: "$", want: "$"},
		{in: "a$b", want: "a$b"},
		{in: "${A", err: true},
		{in: "${A B}", err: true},
		{in: "${}", err: true},
	} {
		got, missing, sub, err := expandVars(tc.in, env)
		if tc.err {
			if err == nil {
				t.Errorf("expandVars(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || got != tc.want || !slices.Equal(missing, tc.missing) || sub != tc.substituted {
			t.Errorf("expandVars(%q) = %q, %q, %v, %v; want %q, %q, %v", tc.in, got, missing, sub, err, tc.want, tc.missing, tc.substituted)
		}
	}
}

// The decoder must agree with yaml.v3's own strict decoding on which keys
// exist: the full example passes Decoder.KnownFields(true), and a key that
// yaml rejects is rejected here too.
func TestKnownKeysAgreeWithYAML(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	strict := func(doc string) error {
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		var c Config
		return dec.Decode(&c)
	}
	if err := strict(string(data)); err != nil {
		t.Fatalf("yaml's strict decoder rejects the full example: %v", err)
	}
	for _, doc := range []string{
		"redis: {key_prefx: x}\n",
		"desk: {status_markers: {reopened: [x]}}\n",
		"structures: [{id: s, referents: [{mail: a@b.example}]}]\n",
	} {
		if strict(doc) == nil {
			t.Fatalf("yaml accepts %q", doc)
		}
		_, err := Parse([]byte(minimal(doc)), nil)
		if got := problemsOf(t, err); !strings.Contains(got[0], "unknown key") {
			t.Errorf("%q: problems %q", doc, got)
		}
	}
}

// TestSyntaxErrorLines: a YAML syntax error names the line at fault, not
// the line (counted from zero) where its enclosing block or flow began.
func TestSyntaxErrorLines(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unclosed flow sequence", "listen: 127.0.0.1:8080\nredis: {addrs: [\"127.0.0.1:6379\"\nent:\n  webhook_secrets: []\n",
			"line 2: did not find expected ',' or ']'"},
		{"misindented key", "listen: 127.0.0.1:8080\nredis:\n  addrs: [\"x\"]\n    key_prefix: \"sb:\"\n",
			"line 4: did not find expected key"},
		{"a tab", "listen: 127.0.0.1:8080\nredis:\n\taddrs: [\"x\"]\n", "line 3: found character that cannot start any token"},
		{"valid flow over two lines, error below", "redis: {addrs: [\"a\",\n  \"b\"]}\nlisten: [\n", "line 3: did not find expected node content"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), func(string) string { return "" })
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
