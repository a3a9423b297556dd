// Package chaos is where faults meet real traffic: fault injection against
// live regions (kill, pause, partition, slow or lossy link, full disk,
// skewed clock, projector crash) and the checkers that judge a recorded
// history against the invariants of DESIGN.md. Its subpackage load is the project's only load generator.
//
// This package holds the fault kinds (one table: name, precondition,
// draw, inject, heal), the seeded schedule and the report; check holds
// the checkers, netfault the fault proxies, runner the run itself. It
// must not import region internals: it acts on processes, networks and
// the HTTP API, as an operator would.
package chaos
