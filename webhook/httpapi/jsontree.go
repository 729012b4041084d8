package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The parsed body. encoding/json decides what is JSON and words the syntax
// errors, with their byte offsets: the contract's messages are its own.
// One pass over the checked body then builds the tree, which keeps what
// Unmarshal would lose: member order, repeated members, and whether a
// string was valid UTF-8 (Unmarshal silently turns bad bytes and lone
// surrogates into U+FFFD, and so does this pass, but it says so).

type jkind uint8

const (
	kindNull jkind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

type jvalue struct {
	kind    jkind
	b       bool
	str     string // string, or the text of a number
	badText bool   // the string held invalid UTF-8 or a lone surrogate
	members []jmember
	items   []*jvalue
}

type jmember struct {
	name    string
	badName bool
	value   *jvalue
}

func parseJSON(body []byte) (*jvalue, *Problem) {
	// Unmarshal gives exact byte offsets for syntax errors. json.Valid,
	// the same scanner without the decoding, first tells whether there is
	// an error to place; well formed JSON that is not an object is the
	// checker's to report.
	if !json.Valid(body) {
		var se *json.SyntaxError
		if err := json.Unmarshal(body, new(struct{})); errors.As(err, &se) {
			off := se.Offset - 1 // Offset counts the bad byte itself
			if se.Offset >= int64(len(body)) {
				off = int64(len(body))
			}
			return nil, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
				Message: fmt.Sprintf("malformed JSON at byte offset %d: %s", off, se.Error())}
		}
	}
	t := &treeBuilder{body: body, tooDeep: -1}
	v := t.value(0)
	if t.tooDeep >= 0 {
		return nil, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
			Message: fmt.Sprintf("malformed JSON: nested deeper than %d levels at byte offset %d", maxDepth, t.tooDeep)}
	}
	return v, nil
}

// treeBuilder reads a body that json.Valid accepted, once, front to back,
// and stops at the first value nested deeper than maxDepth.
type treeBuilder struct {
	body []byte
	pos  int
	// end is where the last token ended (white space, ':' and ','
	// aside): the offset a too-deep value is reported at.
	end     int
	tooDeep int // the offset of the first value nested too deep, or -1
}

func (t *treeBuilder) value(depth int) *jvalue {
	if depth > maxDepth {
		t.tooDeep = t.end
		return nil
	}
	t.skipSpace()
	switch t.body[t.pos] {
	case '{':
		t.token(1)
		v := &jvalue{kind: kindObject}
		for t.more('}') {
			name, bad := t.string()
			t.skipSpace()
			t.pos++ // ':'
			mv := t.value(depth + 1)
			if t.tooDeep >= 0 {
				return nil
			}
			v.members = append(v.members, jmember{name: name, badName: bad, value: mv})
		}
		return v
	case '[':
		t.token(1)
		v := &jvalue{kind: kindArray}
		for t.more(']') {
			item := t.value(depth + 1)
			if t.tooDeep >= 0 {
				return nil
			}
			v.items = append(v.items, item)
		}
		return v
	case '"':
		s, bad := t.string()
		return &jvalue{kind: kindString, str: s, badText: bad}
	case 't':
		t.token(len("true"))
		return &jvalue{kind: kindBool, b: true}
	case 'f':
		t.token(len("false"))
		return &jvalue{kind: kindBool}
	case 'n':
		t.token(len("null"))
		return &jvalue{kind: kindNull}
	}
	start := t.pos // a number, kept as its text
	for t.pos < len(t.body) && strings.IndexByte("+-.0123456789Ee", t.body[t.pos]) >= 0 {
		t.pos++
	}
	t.end = t.pos
	return &jvalue{kind: kindNumber, str: string(t.body[start:t.pos])}
}

// more reports whether another member or item of a container follows,
// and moves to it (past a ','), or past the closing byte when none does.
func (t *treeBuilder) more(closing byte) bool {
	t.skipSpace()
	if t.body[t.pos] == ',' {
		t.pos++
		t.skipSpace()
	}
	if t.body[t.pos] == closing {
		t.token(1)
		return false
	}
	return true
}

func (t *treeBuilder) token(n int) {
	t.pos += n
	t.end = t.pos
}

func (t *treeBuilder) skipSpace() {
	for t.pos < len(t.body) {
		switch t.body[t.pos] {
		case ' ', '\t', '\n', '\r':
			t.pos++
		default:
			return
		}
	}
}

// string reads the string literal at pos. It decodes it as Unmarshal does,
// with U+FFFD for each byte of invalid UTF-8 and each lone surrogate, and
// reports whether there was any.
func (t *treeBuilder) string() (s string, bad bool) {
	b := t.body
	i := t.pos + 1
	lit := i       // the start of the bytes not yet copied to buf
	var buf []byte // the decoded text, once it differs from the literal
	for {
		switch c := b[i]; {
		case c == '"':
			t.token(i + 1 - t.pos)
			if buf == nil {
				return string(b[lit:i]), bad
			}
			return string(append(buf, b[lit:i]...)), bad
		case c == '\\':
			buf = append(buf, b[lit:i]...)
			e := b[i+1]
			i += 2
			switch e {
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(b[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					// A pair, or U+FFFD and the next escape read on its own.
					lo := rune(-1)
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						lo = hex4(b[i+2:])
					}
					if r = utf16.DecodeRune(r, lo); r != utf8.RuneError {
						i += 6
					} else {
						bad = true
					}
				}
				buf = utf8.AppendRune(buf, r)
			default: // '"', '\\', '/'
				buf = append(buf, e)
			}
			lit = i
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				bad = true
				buf = utf8.AppendRune(append(buf, b[lit:i]...), utf8.RuneError)
				lit = i + 1
			}
			i += size
		}
	}
}

// hex4 reads the four hex digits, checked by json.Valid, of a \u escape.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
