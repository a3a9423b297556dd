// Package drills runs the DR drills as programs: each drill has a
// steady-state hypothesis, a method, a rollback that always runs, abort
// conditions and a journal, and the package writes the DR report.
//
// It drives regions through the same interfaces as operators (the dev
// cluster's control socket of package procs, the API, chaos/load), never
// through package internals.
package drills
