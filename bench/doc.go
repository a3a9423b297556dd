// Package bench holds the benchmarks of shortener bench: each measures a
// path of the system against a baseline run side by side (redirects against
// a bare net/http 301, HTTP creates against raw JetStream publishes,
// replication lag against its target, a region's mirror catch-up against
// JetStream's own, the audit replay against an ordered consumer) and prints
// a table, a verdict per target and, for replication, a picture; a JSON
// file of the results on request. Bench redirect also appends every run
// as one JSON line to a results file kept in the repository
// (docs/bench-results/redirect.jsonl), and fails when a target is missed.
//
// The regions measured run as child processes of this process's own binary
// (shortener region), on fixed loopback addresses, with their state and
// logs under a scratch directory each run wipes. Every child is started,
// killed, stopped and waited for with package procs, and its command line
// built by procs.RegionConfig. The package imports the domain and the region's
// API types; never cmd, nor the auditor (bench replay is given the replay
// it measures).
package bench
