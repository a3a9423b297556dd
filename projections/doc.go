// Package projections folds event streams into the read model every redirect
// is served from: a Pebble store of link states, with the golang-lru cache in
// front for reads.
//
// Invariants: the rows an event changes and the checkpoint of the stream it
// came from are written in one atomic batch, so after a crash (kill -9 in the
// middle of a batch included) the store holds each event exactly once or not
// at all, and what a crash took is delivered again from the checkpoint; an event whose id is already stored is skipped; records of a
// stream are applied in sequence order with no gap; events for one code fold
// in events.Before order whatever order the streams delivered them in (an
// event that arrives late re-folds the code from its stored events); the
// cache is only ever written with a row after that row is committed.
//
// Pebble is used only here. It does not import replicator or region: its
// source of records is the Source interface declared here.
package projections
