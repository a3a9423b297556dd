// Package region is one region's process: its embedded NATS server, the
// projector that folds the event log into the local store, the HTTP API and
// redirects (Echo lives only here), health, readiness and lifecycle.
//
// Invariants: a create, update or delete is answered only after its event is
// acknowledged by JetStream and applied by the local projection
// (read-your-writes in the writing region); every error leaves through one
// mapping table from events.Kind to an RFC 7807 problem; API keys are kept
// only as SHA-256 hashes and compared in constant time.
//
// It may import events, projections and replicator; nothing imports it but
// cmd and the test harness region/regiontest.
package region
