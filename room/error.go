package room

import (
	"errors"
	"fmt"
)

// Error codes are stable: clients and the HTTP and WebSocket layers switch on
// them. The hub maps each one to an HTTP status.
const (
	ECONFLICT    = "conflict"     // the command does not fit the room's current state
	EFORBIDDEN   = "forbidden"    // the actor's role may not do this
	EINVALID     = "invalid"      // the input is malformed or out of range
	ENOTFOUND    = "not_found"    // a named room, team, aspect or question does not exist
	ERATELIMITED = "rate_limited" // too many requests; retry later
	EUNAVAILABLE = "unavailable"  // a dependency (the store, Redis) is down; retry later
	EINTERNAL    = "internal"     // a bug or an unexpected failure
)

// Error is a domain error with a stable code and a human message. The
// message is safe to show to the client that caused it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is or wraps an *Error, and
// EINTERNAL otherwise (nil gives "").
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, or a generic text for anything else so internals never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
