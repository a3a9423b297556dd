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
// every operation under Config.StdHTTP use net/http. The package imports
// only the standard library.
package load
