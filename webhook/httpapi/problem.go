package httpapi

import (
	"strconv"
	"strings"

	"supportbridge/bridge"
)

// Problem is an error answer of the HTTP contract: the status to send and
// the body's {"code", "message", "fields"}. The Problems of DecodeEvent name
// what is wrong (field paths, an unknown event type), never a field's
// value, so they are safe to log.
type Problem struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Fields  []string `json:"fields,omitempty"`
}

// The codes DecodeEvent answers with.
const (
	codeInvalidPayload   = string(bridge.CodeInvalid)
	codeUnknownEventType = "unknown_event_type"
)

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString("webhook: ")
	b.WriteString(strconv.Itoa(p.Status))
	b.WriteString(" ")
	b.WriteString(p.Code)
	if p.Message != "" {
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}
