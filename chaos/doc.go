// Package chaos is where faults meet real traffic: fault injection against
// live regions (kill, pause, partition, slow link, full disk, skewed clock)
// and the checkers that judge a recorded history against the invariants of
// DESIGN.md. Its subpackage load is the project's only load generator.
//
// For now it holds only load; the faults and checkers come with the chaos
// issue. It must not import region internals: it acts on processes,
// networks and the HTTP API, as an operator would.
package chaos
