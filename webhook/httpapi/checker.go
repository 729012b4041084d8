package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// The checker walks the parsed body: the shapes every member has (object
// with known members, array, text), the problems it collects, and the
// paths that name the faulty fields.

// checker walks the parsed body and collects every problem.
type checker struct {
	problems []fieldProblem
}

type fieldProblem struct{ path, reason string }

func (c *checker) fail(path, reason string) {
	c.problems = append(c.problems, fieldProblem{path, reason})
}

// problem reports the collected problems: fields sorted and unique, and
// the first reasons in the message.
func (c *checker) problem() *Problem {
	ps := slices.Clone(c.problems)
	slices.SortStableFunc(ps, func(a, b fieldProblem) int { return strings.Compare(a.path, b.path) })
	var fields []string
	var reasons []string
	for _, p := range ps {
		if len(fields) > 0 && fields[len(fields)-1] == p.path {
			continue
		}
		fields = append(fields, p.path)
		if len(reasons) < maxMessageReasons {
			reasons = append(reasons, p.path+": "+p.reason)
		}
	}
	total := len(fields)
	if len(fields) > maxProblemFields {
		fields = fields[:maxProblemFields]
	}
	msg := fmt.Sprintf("%d faulty field(s): %s", total, strings.Join(reasons, "; "))
	if total > len(reasons) {
		msg += fmt.Sprintf("; and %d more", total-len(reasons))
	}
	return &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload, Message: msg, Fields: fields}
}

func isAbsent(v *jvalue) bool { return v == nil || v.kind == kindNull }

// object checks that v is an object with only the known members, reports
// unknown and repeated members, and returns the known ones by name. It
// returns nil when v is absent, null or not an object (the latter is
// reported).
func (c *checker) object(path string, v *jvalue, known ...string) map[string]*jvalue {
	if isAbsent(v) {
		return nil
	}
	if v.kind != kindObject {
		c.fail(pathOrRoot(path), "must be an object")
		return nil
	}
	m := make(map[string]*jvalue, len(v.members))
	for _, mem := range v.members {
		p := join(path, mem.name)
		switch {
		case mem.badName:
			c.fail(p, "field name is not valid UTF-8")
		case !slices.Contains(known, mem.name):
			c.fail(p, "unknown field")
		case m[mem.name] != nil:
			// A repeated member could be read differently by another
			// parser along the way: refuse it.
			c.fail(p, "repeated field")
		default:
			m[mem.name] = mem.value
		}
	}
	return m
}

func (c *checker) requiredObject(path string, v *jvalue, known ...string) map[string]*jvalue {
	if isAbsent(v) {
		c.fail(path, "required")
		return nil
	}
	return c.object(path, v, known...)
}

// array returns the items of v; absent or null is an empty list unless
// required.
func (c *checker) array(path string, v *jvalue, required bool) ([]*jvalue, bool) {
	if isAbsent(v) {
		if required {
			c.fail(path, "required")
		}
		return nil, false
	}
	if v.kind != kindArray {
		c.fail(path, "must be an array")
		return nil, false
	}
	return v.items, true
}

// text returns a string that passes the rules every string follows:
// valid UTF-8 and no control character but tab, CR and LF.
func (c *checker) text(path string, v *jvalue, required bool) (string, bool) {
	if isAbsent(v) {
		if required {
			c.fail(path, "required")
		}
		return "", false
	}
	if v.kind != kindString {
		c.fail(path, "must be a string")
		return "", false
	}
	if v.badText {
		c.fail(path, "must be valid UTF-8")
		return "", false
	}
	for _, r := range v.str {
		if unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n' {
			c.fail(path, "must not contain control characters")
			return "", false
		}
	}
	return v.str, true
}

// identifiers (they can only come from unknown fields) are quoted and
// shortened, so that a path is always one safe line.
func join(path, name string) string {
	seg := "." + name
	if !plainName(name) {
		seg = "[" + quoteShort(name) + "]"
	}
	if path == "" {
		return strings.TrimPrefix(seg, ".")
	}
	return path + seg
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func pathOrRoot(path string) string {
	if path == "" {
		return "$"
	}
	return path
}

func plainName(s string) bool {
	if s == "" || len(s) > maxPathSegmentChars {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// quoteShort quotes s for a message or path, cut to a few dozen runes.
func quoteShort(s string) string {
	n := 0
	for i := range s {
		if n == maxPathSegmentChars {
			return strconv.QuoteToASCII(s[:i]) + "…"
		}
		n++
	}
	return strconv.QuoteToASCII(s)
}
