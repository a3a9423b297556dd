// Package runner runs a chaos run: it starts a fresh chaos cluster (a dev
// cluster of package procs with fault proxies on every NATS link and fault
// injection on, NewSupervisor), puts load on it through the DNS switch as
// the clients of every region, applies a seeded schedule of faults one
// after the other (each kind's inject and heal come from the table in
// package chaos), heals everything, and judges the recorded history with
// the checkers of chaos/check. The report goes to Dir/seed-N.
//
// It acts as an operator would: on processes through the cluster's
// supervisor and its control socket (procs.Call), on the regions through
// their HTTP API. It must not import the region's internals, nor cmd; it
// starts no process but through procs.
package runner
