// Package replicator owns the JetStream side of shortener: each region's
// write stream LINKS_<REGION> (subjects links.<region>.>), appends with the
// event id as Nats-Msg-Id, the fsync policy, and the durable pull consumers
// that feed the projection. The next steps add the mirrors of the other
// regions' streams, the alias register, heartbeats and lag accounting here,
// and the snapshots and restores of streams that backups are made of.
//
// Invariants: streams and consumers are created at start-up, never on the
// request path; a consumer is never positioned past the projection's own
// checkpoint (it is re-created behind it instead), so no event is skipped;
// the streams deny delete and purge, because the log is the audit record.
//
// It is the only package that talks JetStream: the others hold the opaque
// Conn that Connect makes of their NATS connection (bench aside, for its
// raw baselines; enforced by boundary_test.go).
//
// It imports events and the NATS client, and nothing of projections or
// region: the projection reaches it through interfaces it declares itself.
package replicator
