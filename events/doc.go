// Package events is the domain of shortener: the event envelope and the link
// event types, the deterministic fold from events to link state, generated
// codes and custom aliases, input validation and the error codes every other
// package reports with.
//
// Invariants: event types are wire formats (add, never rename); the fold is a
// pure function of the set of events for a code, independent of the order in
// which they arrive, because it sorts them by (Time, ID) and skips duplicate
// IDs; a generated code starts with a region digit and an alias with a letter,
// so the two can never be equal.
//
// It must not import any other package of this module nor any third-party
// module except golang.org/x/net/idna (the Go team's IDNA implementation, the
// same code the standard library vendors for net/http), which turns
// internationalised host names into punycode. A test enforces this.
package events
