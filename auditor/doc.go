// Package auditor checks a running cluster the way an auditor would: it
// trusts the event log, not the live stores. It reads every copy of the
// log (each region's stream LINKS_<REGION> and its mirrors
// LINKS_<X>_AT_<Y>) through ordered consumers, which leave nothing behind
// on the servers, replays them into fresh Pebble stores, and compares the
// replays with the regions' projections (their digests API, or a stopped
// region's store) and the mirrors with their origins. It also answers what
// a link pointed to and when (History, At), and exports the log.
//
// The restore checks live here, not in package backup: checking a restored
// backup is the same work as checking a live region (replay a log up to a
// projection's checkpoints, compare digests, ask a region's API), and
// backup stays what it is, the taking and restoring of copies, with no
// knowledge of replays or of the regions' API. So auditor imports backup,
// never the reverse.
//
// Invariants: a replay reads every source up to its last sequence or
// fails; a check that saw nothing fails (Verify with nothing compared, a
// restore with no check). Every replayed event is checked against Rules,
// built in one place. The package imports region only for its API's types
// and no test harness; its callers give it credentials, endpoints and the
// API key (it reads no flags, files or environment).
package auditor
