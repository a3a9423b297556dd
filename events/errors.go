package events

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error so that every adapter (HTTP, CLI) can map it to
// its own status from one table.
type Kind string

// The fixed set of error kinds.
const (
	Invalid      Kind = "invalid"      // the input is malformed; Field names the culprit
	Unauthorized Kind = "unauthorized" // no credentials or bad ones
	NotFound     Kind = "not_found"    // no such link
	Conflict     Kind = "conflict"     // an alias or code already taken
	Gone         Kind = "gone"         // deleted or expired
	RateLimited  Kind = "rate_limited" // too many requests
	Unavailable  Kind = "unavailable"  // a dependency is down; RetryAfter says when to retry
	Internal     Kind = "internal"     // a bug or an unexpected failure
)

// Error is the error type of the domain. Use errors.As to read it.
type Error struct {
	Kind       Kind
	Field      string        // for Invalid: the input field at fault
	Message    string        // a human-readable reason, safe to show clients
	RetryAfter time.Duration // for Unavailable and RateLimited
	Err        error         // the cause, logged but never shown to clients
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		if msg == "" {
			return e.Err.Error()
		}
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a formatted message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an Invalid error naming the field and the reason.
func FieldError(field, reason string) *Error {
	return &Error{Kind: Invalid, Field: field, Message: reason}
}

// Wrap returns an *Error of kind k whose cause is err.
func Wrap(k Kind, err error, message string) *Error {
	return &Error{Kind: k, Message: message, Err: err}
}

// KindOf returns the Kind of err: the Kind of the first *Error in its chain,
// Internal for any other non-nil error, and "" for nil.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
