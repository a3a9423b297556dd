// Package dnsswitch is the DNS failover switch: an authoritative DNS server
// (UDP and TCP) for one zone that answers each client with its home region
// (by source address) while that region passes its health checks and is not
// drained, else with the next healthy region of the home's preference list,
// and an admin HTTP API to read its state and to drain or override regions
// (Client is its client).
//
// Invariants: a region is taken out after Fall failed checks in a row and
// brought back only after passing every check for Rise (hysteresis); with
// nothing healthy it fails open rather than answer nobody; drains and
// overrides survive a restart (the state file); changes need an API key,
// kept only as a SHA-256 hash and compared in constant time. Run returns
// only after every goroutine it started has returned.
//
// It imports only the standard library and miekg/dns; in particular not
// region: the switch runs apart from the regions, as its own process.
package dnsswitch
