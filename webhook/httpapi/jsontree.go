package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf16"
	"unicode/utf8"
)

// The parsed body. encoding/json is used for the syntax and the tokens;
// the tree keeps what its Unmarshal would lose: member order, repeated
// members, and whether a string was valid UTF-8 before it was decoded
// (Unmarshal silently turns bad bytes into U+FFFD).

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
	// Unmarshal gives exact byte offsets for syntax errors, which the
	// streaming Decoder does not. json.Valid, the same scanner without
	// the decoding, first tells whether there is an error to place; well
	// formed JSON that is not an object is the checker's to report.
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
	p := &parser{dec: json.NewDecoder(bytes.NewReader(body)), body: body}
	p.dec.UseNumber()
	v, err := p.value(0)
	if err != nil {
		return nil, &Problem{Status: http.StatusBadRequest, Code: codeInvalidPayload,
			Message: "malformed JSON: " + err.Error()}
	}
	return v, nil
}

type parser struct {
	dec  *json.Decoder
	body []byte
}

func (p *parser) value(depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels at byte offset %d", maxDepth, p.dec.InputOffset())
	}
	start := p.dec.InputOffset()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	switch t := tok.(type) {
	case nil:
		return &jvalue{kind: kindNull}, nil
	case bool:
		return &jvalue{kind: kindBool, b: t}, nil
	case json.Number:
		return &jvalue{kind: kindNumber, str: string(t)}, nil
	case string:
		return &jvalue{kind: kindString, str: t, badText: !p.literalValid(start)}, nil
	case json.Delim:
		switch t {
		case '{':
			v := &jvalue{kind: kindObject}
			for p.dec.More() {
				keyStart := p.dec.InputOffset()
				tok, err := p.dec.Token()
				if err != nil {
					return nil, unexpectedEOF(err)
				}
				name, ok := tok.(string)
				if !ok {
					return nil, fmt.Errorf("object key expected at byte offset %d", keyStart)
				}
				mv, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				v.members = append(v.members, jmember{name: name, badName: !p.literalValid(keyStart), value: mv})
			}
			return v, p.closing('}')
		case '[':
			v := &jvalue{kind: kindArray}
			for p.dec.More() {
				item, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				v.items = append(v.items, item)
			}
			return v, p.closing(']')
		}
	}
	return nil, fmt.Errorf("unexpected %v at byte offset %d", tok, start)
}

func (p *parser) closing(want json.Delim) error {
	tok, err := p.dec.Token()
	if err != nil {
		return unexpectedEOF(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%q expected", want)
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// literalValid reports whether the string literal that starts at or after
// byte off of the body (past white space, ':' or ',') is valid UTF-8 with
// no lone surrogate escape. The literal's syntax was already checked.
func (p *parser) literalValid(off int64) bool {
	b := p.body
	i := int(off)
	for i < len(b) && b[i] != '"' {
		i++
	}
	i++ // the opening quote
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return true
		case c == '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := hex4(b, i+2)
				if !ok {
					return false
				}
				i += 6
				switch {
				case utf16.IsSurrogate(r) && r < 0xDC00: // high half: a low half must follow
					if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return false
					}
					lo, ok := hex4(b, i+2)
					if !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
						return false
					}
					i += 6
				case utf16.IsSurrogate(r): // a low half alone
					return false
				}
				continue
			}
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return false
			}
			i += size
		}
	}
	return false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
