package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ValidationError lists every problem found in a configuration, one a line,
// each naming the key path it is about (and the file line when known).
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "\n") }

// Load reads the YAML file at path and parses it as Parse does. A file that
// cannot be read is a wrapped os error; a bad content is a *ValidationError.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, getenv)
}

// Parse reads a YAML configuration over the defaults, expands ${VAR} and
// ${VAR:-default} from getenv in its values ($$ is a literal $), and
// validates the result. Unknown keys are errors. Every problem is reported
// at once in a *ValidationError. A nil getenv is an empty environment.
//
// Expansion works on the parsed values, never on the text, so a variable
// cannot add keys. The expanded text is read again as a YAML scalar (so
// "${REDIS_DB}" can fill an integer), except that it never becomes null.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	p := newProblems()
	root, err := parseYAML(data)
	if err != nil {
		// Nothing else can be said about a file that is not YAML.
		p.add("", 0, "%v", err)
		return nil, p.err()
	}
	cfg := Default()
	if root != nil {
		d := &decoder{
			getenv:   getenv,
			p:        p,
			expanded: map[*yaml.Node]bool{},
			active:   map[*yaml.Node]bool{},
			budget:   64*len(data) + 10000,
		}
		d.value(root, reflect.ValueOf(&cfg).Elem(), "")
	}
	normalize(&cfg, p)
	validate(&cfg, p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// parseYAML returns the top node of the only document in data, or nil when
// data holds no document at all.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml re-raises panics that are not its own; a config file must
		// never crash the daemon.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml parser failure: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// syntaxMaxLines bounds the search for a syntax error's line.
const syntaxMaxLines = 5000

// syntaxError places a YAML syntax error on the line where it is. The
// parser names the line where the enclosing block or flow began, counted
// from zero ("line 1" for an unclosed "[" opened on line 2, "line 2" for a
// key misindented on line 4 of a block opened on line 3). The line at
// fault is the first from which every longer prefix of the file fails to
// parse: a flow still open on it is never closed, a misindented key fails
// there and on.
func syntaxError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
		msg = rest
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > syntaxMaxLines {
		return yamlError(err)
	}
	fails := func(n int) bool {
		var node yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &node)
		return err != nil
	}
	at := 0
	for n := len(lines); n >= 1 && fails(n); n-- {
		at = n
	}
	if at == 0 {
		return yamlError(err)
	}
	return fmt.Errorf("line %d: %s", at, msg)
}

func yamlError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// problems collects every problem of a configuration. Decoding records the
// file line of each key path so that validation can cite it too.
type problems struct {
	list   []string
	lines  map[string]int
	failed map[string]bool // paths that could not be decoded
}

func newProblems() *problems {
	return &problems{lines: map[string]int{}, failed: map[string]bool{}}
}

func (p *problems) add(path string, line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	if line > 0 {
		msg += " (line " + strconv.Itoa(line) + ")"
	}
	// One problem, one line: Error joins them with newlines.
	msg = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg)
	p.list = append(p.list, msg)
}

// at records a validation problem about path, unless decoding it already
// failed (its value is then a default that says nothing).
func (p *problems) at(path string, format string, args ...any) {
	for q := path; q != ""; q = parentPath(q) {
		if p.failed[q] {
			return
		}
	}
	// A key left out is cited at the nearest enclosing key of the file.
	line := 0
	for q := path; q != "" && line == 0; q = parentPath(q) {
		line = p.lines[q]
	}
	p.add(path, line, format, args...)
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: p.list}
}

// parentPath gives "a.b" for "a.b.c" and "a.b[2]", "" at the top.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decoder fills a Config from a YAML node tree, reading the same yaml struct
// tags as yaml.v3 and letting yaml.v3 decode each scalar. It stands in for
// yaml's struct decoding because expansion has to run on the node tree, and
// yaml's Node.Decode ignores KnownFields (only Decoder has it, on text,
// before expansion); besides, yaml stops at the first bad value of a custom
// type and its messages name a Go type rather than the key path.
type decoder struct {
	getenv   func(string) string
	p        *problems
	expanded map[*yaml.Node]bool // scalars already expanded (aliases share nodes)
	active   map[*yaml.Node]bool // aliases and merges being followed (cycles)
	budget   int                 // nodes left to visit (alias bombs)
	stopped  bool
	// useLine is the line of the alias being followed: problems inside
	// the aliased value are reported where the alias is used.
	useLine int
}

func (d *decoder) line(n *yaml.Node) int {
	if d.useLine > 0 {
		return d.useLine
	}
	return n.Line
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

func (d *decoder) spend(n *yaml.Node) bool {
	if d.stopped {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.stopped = true
		d.p.add("", d.line(n), "the document expands to too many values (aliases)")
		return false
	}
	return true
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if target == nil {
			return
		}
		if d.active[target] {
			d.p.add(path, d.line(n), "alias refers to a value that contains it")
			d.p.failed[path] = true
			return
		}
		d.active[target] = true
		prev := d.useLine
		d.useLine = d.line(n)
		d.value(target, v, path)
		d.useLine = prev
		delete(d.active, target)
		return
	}
	switch {
	case v.Kind() == reflect.Struct:
		if isNull(n) {
			return // an empty section keeps its defaults
		}
		d.mapping(n, v, path)
	case v.Kind() == reflect.Slice:
		if isNull(n) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		d.sequence(n, v, path)
	default:
		d.leaf(n, v, path)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.p.add(pathOrRoot(path), d.line(n), "must be a mapping of keys to values, not %s", kindName(n))
		d.p.failed[path] = true
		return
	}
	fields := yamlFields(v.Type())
	// Merged mappings ("<<: *base") first: the mapping's own keys win
	// wherever they stand.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			d.merge(n.Content[i+1], v, path)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.p.add(pathOrRoot(path), d.line(k), "keys must be plain names, not %s", kindName(k))
			continue
		}
		name := k.Value
		child := joinPath(path, name)
		if first, dup := seen[name]; dup {
			d.p.add(child, d.line(k), "defined twice (first on line %d)", first)
			continue
		}
		seen[name] = d.line(k)
		idx, ok := fields[name]
		if !ok {
			msg := "unknown key"
			if s := closestKey(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.p.add(child, d.line(k), "%s", msg)
			continue
		}
		d.p.lines[child] = d.line(k)
		d.value(val, v.Field(idx), child)
	}
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// merge applies "<<: *a" or "<<: [*a, *b]"; in a list the first mapping
// wins, so they are applied last to first.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, path string) {
	one := func(m *yaml.Node) {
		if !d.spend(m) {
			return
		}
		target := m
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			target = m.Alias
		}
		if target.Kind != yaml.MappingNode {
			d.p.add(joinPath(path, "<<"), d.line(m), "must be a mapping or a list of mappings")
			return
		}
		if d.active[target] {
			d.p.add(joinPath(path, "<<"), d.line(m), "merges a mapping that contains it")
			return
		}
		d.active[target] = true
		prev := d.useLine
		if m.Kind == yaml.AliasNode {
			d.useLine = d.line(m)
		}
		d.mapping(target, v, path)
		d.useLine = prev
		delete(d.active, target)
	}
	src := n
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		src = n.Alias
	}
	if src.Kind == yaml.SequenceNode {
		for i := len(src.Content) - 1; i >= 0; i-- {
			one(src.Content[i])
		}
		return
	}
	one(n)
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.p.add(path, d.line(n), "must be a list, not %s", kindName(n))
		d.p.failed[path] = true
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		child := path + "[" + strconv.Itoa(i) + "]"
		d.p.lines[child] = d.line(item)
		d.value(item, s.Index(i), child)
	}
	v.Set(s)
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	d.expand(n, path)
	if isNull(n) {
		return // yaml's rule: a null leaves a scalar at its default
	}
	t := v.Type()
	if err := decodeScalar(n, v); err != nil {
		var msg string
		switch {
		case t == byteSizeType && n.Kind == yaml.ScalarNode:
			msg = err.Error()
		case t == byteSizeType:
			msg = "must be a size such as 4096, 512KiB, 20MiB or 10MB"
		case t == durationType:
			msg = "must be a duration such as 30s, 5m or 120h"
		case t.Kind() == reflect.Int:
			msg = "must be a whole number"
		case t.Kind() == reflect.Bool:
			msg = "must be true or false"
		default:
			// yaml's own message quotes the value: never for a secret.
			msg = "must be a single value, not " + kindName(n)
		}
		d.p.add(path, d.line(n), "%s", msg)
		d.p.failed[path] = true
	}
}

func decodeScalar(n *yaml.Node, v reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml decoder failure: %v", r)
		}
	}()
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a scalar")
	}
	// yaml truncates 2.5 to 2 for an int: accept integers only.
	if v.Kind() == reflect.Int && v.Type() != byteSizeType && n.ShortTag() != "!!int" {
		return errors.New("not an integer")
	}
	return n.Decode(v.Addr().Interface())
}

// expand replaces ${VAR}, ${VAR:-default} and $$ in a scalar, once per node
// even when aliases reach it several times.
func (d *decoder) expand(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || d.expanded[n] {
		return
	}
	d.expanded[n] = true
	if !strings.Contains(n.Value, "$") {
		return
	}
	val, missing, substituted, err := expandVars(n.Value, d.getenv)
	if err != nil {
		d.p.add(path, d.line(n), "%v", err)
		d.p.failed[path] = true
		return
	}
	for _, name := range missing {
		d.p.add(path, d.line(n), "environment variable %s is not set (write ${%s:-} if it may be empty)", name, name)
		d.p.failed[path] = true
	}
	n.Value = val
	if substituted && n.Style&yaml.TaggedStyle == 0 {
		// Read the result again as a plain scalar so that a variable can
		// fill a number or a boolean; a value such as "null" or "" stays a
		// string rather than silently meaning "default".
		n.Style &^= yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
		n.Tag = ""
		if n.ShortTag() == "!!null" || n.ShortTag() == "!!merge" {
			n.Tag = "!!str"
		}
	}
}

// expandVars expands s. missing lists the variables that are unset (or
// empty) and have no default; substituted says whether any ${…} was
// replaced.
func expandVars(s string, getenv func(string) string) (out string, missing []string, substituted bool, err error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, false, errors.New(`"${" without its closing "}"`)
			}
			inner := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(inner, ":-")
			if !validVarName(name) {
				return "", nil, false, fmt.Errorf("%q is not a variable name (letters, digits, _)", name)
			}
			val := getenv(name)
			if val == "" {
				if hasDef {
					val = def
				} else {
					missing = append(missing, name)
				}
			}
			b.WriteString(val)
			substituted = true
			i += 2 + end + 1
		default:
			// A lone $ is kept: passwords hold them.
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), missing, substituted, nil
}

func validVarName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// yamlFields maps the yaml names of a struct's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// closestKey suggests the known key nearest to a misspelt one.
func closestKey(name string, fields map[string]int) string {
	best, bestDist := "", 3 // more than 2 edits away is no suggestion
	for k := range fields {
		if dist := editDistance(strings.ToLower(name), k); dist < bestDist || dist == bestDist && k < best {
			best, bestDist = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// kindNames names, in the messages, the kinds of node that are not a
// single value.
var kindNames = map[yaml.Kind]string{
	yaml.MappingNode:  "a mapping",
	yaml.SequenceNode: "a list",
	yaml.AliasNode:    "an alias",
}

// kindName says what n is: a mapping, a list, an alias or a single value.
func kindName(n *yaml.Node) string {
	if name, ok := kindNames[n.Kind]; ok {
		return name
	}
	return "a single value"
}

func pathOrRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}
