package projections

// What the region's telemetry reads of a store: whether a lookup is served
// by the cache (a hit, with no Pebble read) and how much disk the store
// takes. Kept apart from store.go: it adds no state, only views.

// Cached returns the cached redirect entry of code, without reading Pebble.
// A miss here is what Lookup then reads from Pebble (and caches).
func (s *Store) Cached(code string) (Entry, bool) { return s.cache.Get(code) }

// DiskUsage returns the bytes the store's files take on disk (Pebble's own
// accounting: tables, WAL, manifests). It takes Pebble's metrics lock: call
// it at scrape time, not per request.
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }
