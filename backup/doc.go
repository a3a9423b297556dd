// Package backup takes and restores backups of a shortener deployment:
// a JetStream snapshot of every origin stream (each region's event log
// LINKS_<REGION>, its click stream CLICKS_<REGION>, the alias register
// KV_ALIASES) and a Pebble checkpoint of every region's projection, with a
// manifest of sizes, SHA-256 sums, stream states and the sequences each
// projection had applied.
//
// Mirrors are not backed up: each is a copy of an origin that is in the
// backup (audit verify proves it), and a restored region's mirrors fill
// again from the origins. Snapshots use JetStream's own API
// ($JS.API.STREAM.SNAPSHOT / RESTORE, the protocol of `nats stream
// backup`), so a backup restores into any NATS server; backup reaches
// JetStream only through replicator (ListStreams, Snapshot, Restore).
//
// A backup is consistent in one direction: the projections are
// checkpointed first and the streams snapshotted after, so the backup's
// streams hold at least every event its projections applied, and each
// projection equals a replay of the backed-up log up to the sequences it
// records.
package backup
