// Package load is the project's open-loop HTTP load generator for the URL
// shortener: it drives one or more regions with a seeded mix of redirects
// (GET /{code}) and creates (POST /api/v1/links) at a fixed intended rate,
// like wrk2, or in closed loop (Rate 0) for peak throughput. Operation i is
// due at start + i/Rate and its latency runs from that intended time to
// completion, so a stalled server shows up as latency instead of as fewer
// requests (no coordinated omission); an optional history writes every
// operation as a JSON line for correctness checkers, and a Report gives
// per-target and total counts, throughput, latency quantiles and per-second
// series. Invariants: redirects are never followed; every due operation is
// either sent (and counted OK or Failed, transport errors with status 0) or
// counted as Missed, never dropped silently; the operation sequence (kinds,
// targets, codes) is a function of Config.Seed as long as no created codes
// join the pools; workers record samples locally and a collector merges them
// once per second, so there is no global lock per request. Quantiles come
// from a log-linear histogram (128 sub-buckets per power of two, error below
// 0.4%, constant memory), Max is exact. Redirects to http:// targets go
// through a lean HTTP/1.1 keep-alive client (each worker owns one connection
// per target, requests are written from a reused buffer and responses parsed
// from a reused reader, no allocations per request) so that the generator is
// not what saturates first in a peak measurement; creates, https targets and
// every operation under Config.StdHTTP use net/http.
//
// A target can play the clients of one region that find the service through
// the DNS switch (Target.DNS): the name is resolved from the target's source
// address, each answer is used for its TTL, then resolved again in the
// background; requests follow a changed answer at once. The history records
// every operation with the address and region that served it, every
// resolve, and every 500 ms what each region reports at GET /api/v1/regions
// (lag and RPO per origin); ReadHistory reads it back, Failover measures a
// region's loss from it (RTO, failure runs, success per client region, the
// acknowledged creates at risk, the RPO reported at the kill) and Probe
// counts which of those creates a surviving region lacks (the measured
// RPO). The history format is documented in read.go. The package imports
// only the standard library and golang.org/x/net/dns/dnsmessage (the DNS
// client); its tests use github.com/miekg/dns as the DNS server.
package load
