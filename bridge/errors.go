package bridge

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. The values are the error codes of the
// integration contract; the HTTP layer maps them to statuses in one place.
type Code string

// The error codes.
const (
	CodeInvalid              Code = "invalid_payload"
	CodeUnknownTicket        Code = "unknown_ticket"
	CodeTransitionNotAllowed Code = "transition_not_allowed"
	CodeEscalationConflict   Code = "escalation_conflict"
	CodeEscalationDisabled   Code = "escalation_disabled"
	CodeForbiddenActor       Code = "forbidden_actor"
	CodeUnknownStructure     Code = "unknown_structure"
	CodeNotFound             Code = "not_found"
	CodeUnavailable          Code = "unavailable"
)

// Error is a domain error with a code, a message safe to show to the caller
// and, for invalid input, the fields at fault.
type Error struct {
	Code    Code
	Message string
	Fields  []string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeUnavailable for any other error (a store that cannot be reached, a
// timeout): the caller may retry those.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnavailable
}

// ErrNotFound is returned by stores for a missing record.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// ErrVersionConflict is returned by a store when a ticket changed between
// its read and the commit; the service reads again and retries.
var ErrVersionConflict = errors.New("bridge: ticket changed concurrently")
