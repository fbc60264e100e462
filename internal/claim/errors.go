package claim

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Code classifies an error for clients. internal/http maps each code to an
// HTTP status in one table; anything without a code is internal.
type Code string

const (
	CodeInvalid     Code = "invalid"   // field rules (422)
	CodeMalformed   Code = "malformed" // unreadable body, unknown field (400)
	CodeNotFound    Code = "not-found" // 404
	CodeConflict    Code = "conflict"  // hold rule, wrong state (409)
	CodeIdemReuse   Code = "idempotency-key-reused"
	CodeUnavailable Code = "unavailable" // the database cannot be reached: nothing was stored (503)
	CodeInternal    Code = "internal"    // 500
)

// FieldError names one field that broke a rule.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is claimsvc's one application error. Message is safe to show a
// client: it never holds a token or a secret.
type Error struct {
	Code     Code
	Message  string
	Fields   []FieldError // with CodeInvalid
	Blocking *uuid.UUID   // with CodeConflict from the hold rule: the claim in the way
	Original *uuid.UUID   // with CodeIdemReuse: the claim the key answered first
	Err      error        // the cause, for logs only; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns err's code, or CodeInternal when it has none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrNotFound is returned when no claim has the given id.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "no such claim"}

// Unavailable wraps a database failure that means nothing was stored.
func Unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the database is unreachable; nothing was stored, try again", Err: err}
}
