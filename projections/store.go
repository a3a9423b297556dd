package projections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
	lru "github.com/hashicorp/golang-lru/v2"

	"shortener/events"
)

// Key layout. Every key starts with a one-letter table name and a slash.
const (
	prefixCheckpoint = "c/" // c/<stream> -> last applied sequence, 8 bytes big-endian
	prefixLink       = "l/" // l/<code> -> events.Link as JSON
	prefixEvent      = "e/" // e/<code>\x00<time ns, 8 bytes BE><event id> -> the envelope as stored
	prefixHeartbeat  = "h/" // h/<origin> -> producer time of its last heartbeat, unix ns 8 bytes BE
	prefixRejected   = "r/" // r/<reason> -> records refused with that reason, 8 bytes BE
)

// comparer is Pebble's default (same name, so any store opens with it),
// with Split telling Pebble that a whole key is its own prefix: what lets
// an iterator's SeekPrefixGE consult the Bloom filters (linkReader). The
// filters are built from the same bytes as without it.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = func(key []byte) int { return len(key) }
	return &c
}()

// Options configures a Store.
type Options struct {
	CacheSize int          // entries in the LRU cache; default 100,000
	Logger    *slog.Logger // default slog.Default()
	FS        vfs.FS       // the file system; default the OS's (tests crash an in-memory one)

	// SyncWrites fsyncs every batch. Without it a crash can take the last
	// batches, whole (rows and checkpoint together), and they must be
	// delivered again from the checkpoint (the feed then re-creates its
	// consumer, which needs a JetStream meta leader).
	// Regions turn it on: measured, leaving it off did not raise create
	// throughput (docs/benchmarks.md), so the cheaper recovery wins.
	SyncWrites bool

	// Rules are what every event is checked against before it is folded
	// (events.Rules.Check): the cluster's table of region digits. Every
	// region of a cluster and its auditor must use the same.
	Rules events.Rules
	// Unchecked folds every well-formed event without checking where it
	// was found: only for tests of the fold itself, whose histories
	// predate the checks (the golden digest). Never in a region.
	Unchecked bool
	// MaxSchema is the newest envelope schema the store folds; default
	// events.SchemaVersion. A record of a later schema, or of an unknown
	// type, halts its stream (Halted) instead of being skipped: a binary
	// that understands it (an upgrade, or a test raising MaxSchema) folds
	// it from there.
	MaxSchema int
}

// Halt is where a stream stopped: the first record the store does not
// understand. Its checkpoint stays at Seq-1 and nothing after it is
// applied until a binary that understands it reads it.
type Halt struct {
	Seq    uint64 `json:"seq"`
	Schema int    `json:"schema"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Store is a region's projection: link rows, the events they fold from, and
// a checkpoint per stream, in Pebble, with an LRU cache of redirect entries.
type Store struct {
	db    *pebble.DB
	cache *lru.Cache[string, Entry]
	log   *slog.Logger
	write *pebble.WriteOptions // Sync or NoSync: Options.SyncWrites

	mu          sync.Mutex
	checkpoints map[string]uint64 // mirrors the c/ rows, for WaitApplied
	heartbeats  map[string]time.Time
	changed     chan struct{}            // closed and replaced after every commit
	rejected    map[events.Reason]uint64 // records refused at the fold, by reason (the r/ rows)
	rules       events.Rules
	unchecked   bool
	maxSchema   int
	halted      map[string]Halt // by stream; in memory: found again from the checkpoint after a restart

	fault faultHook // fault injection (fault.go)
}

// Entry is what a redirect needs of a link, kept compact for the cache.
type Entry struct {
	// Location is the link's URL as the value of a Location header, made
	// once when the entry is (a redirect sets it without allocating). It
	// is shared by every redirect of the link: never to be modified (cap
	// 1, so that an append copies).
	Location  []string
	ExpiresAt int64 // unix ns; 0 for none
	Status    uint16
	Deleted   bool
}

// URL returns the link's URL.
func (e Entry) URL() string {
	if len(e.Location) == 0 {
		return ""
	}
	return e.Location[0]
}

// Servable reports whether the entry redirects at now.
func (e Entry) Servable(now time.Time) bool {
	return !e.Deleted && (e.ExpiresAt == 0 || now.UnixNano() < e.ExpiresAt)
}

func entryOf(l events.Link) Entry {
	e := Entry{Location: []string{l.URL}[:1:1], Status: uint16(l.RedirectStatus), Deleted: l.Deleted}
	if l.ExpiresAt != nil {
		e.ExpiresAt = l.ExpiresAt.UnixNano()
	}
	return e
}

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Bloom filters: every new event is first looked up by key (dedupe by
	// id) and so is the row of every new code; both are misses, which
	// without a filter read and decompress a block of every table that
	// might hold the key. The default options but for the filter (one
	// LevelOptions applies to every level).
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{opts.Logger}, FS: opts.FS, Comparer: comparer,
		Levels: []pebble.LevelOptions{{FilterPolicy: bloom.FilterPolicy(10)}}})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	cache, err := lru.New[string, Entry](opts.CacheSize)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	s := &Store{db: db, cache: cache, log: opts.Logger, changed: make(chan struct{}), write: pebble.NoSync,
		rules: opts.Rules, unchecked: opts.Unchecked, maxSchema: opts.MaxSchema, halted: map[string]Halt{}}
	if s.maxSchema <= 0 {
		s.maxSchema = events.SchemaVersion
	}
	if opts.SyncWrites {
		s.write = pebble.Sync
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	s.checkpoints = map[string]uint64{}
	s.heartbeats = map[string]time.Time{}
	s.rejected = map[events.Reason]uint64{}
	err := s.scan(prefixRejected, func(k, v []byte) error {
		if len(v) == 8 {
			s.rejected[events.Reason(k[len(prefixRejected):])] = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load rejected counts: %w", err)
	}
	err = s.scan(prefixCheckpoint, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("checkpoint %q: %d bytes", k, len(v))
		}
		s.checkpoints[string(k[len(prefixCheckpoint):])] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load checkpoints: %w", err)
	}
	return s.scan(prefixHeartbeat, func(k, v []byte) error {
		if len(v) == 8 {
			s.heartbeats[string(k[len(prefixHeartbeat):])] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		return nil
	})
}

// Flush writes everything applied so far durably to disk.
func (s *Store) Flush() error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flush store: %w", err)
	}
	return nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Checkpoint returns the last sequence of stream applied to the store.
func (s *Store) Checkpoint(stream string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoints[stream]
}

// Checkpoints returns the last applied sequence of every stream.
func (s *Store) Checkpoints() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.checkpoints))
	for k, v := range s.checkpoints {
		out[k] = v
	}
	return out
}

// Heartbeat returns the producer time of the last heartbeat of origin applied.
func (s *Store) Heartbeat(origin string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.heartbeats[origin]
	return t, ok
}

// Skipped returns how many records were refused at the fold and stepped
// over (counted, logged, and their sequence still checkpointed): the sum of
// Rejected.
func (s *Store) Skipped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, c := range s.rejected {
		n += c
	}
	return n
}

// Rejected returns how many records were refused at the fold, by reason
// (events.Reasons), since the store was created: the counts are stored
// with the checkpoints, so they survive restarts and a Reset clears them.
func (s *Store) Rejected() map[events.Reason]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[events.Reason]uint64, len(s.rejected))
	for k, v := range s.rejected {
		out[k] = v
	}
	return out
}

// Halted returns the streams stopped at a record the store does not
// understand (Options.MaxSchema), by stream.
func (s *Store) Halted() map[string]Halt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.halted)
}

// HaltedAt returns where stream is halted, if it is.
func (s *Store) HaltedAt(stream string) (Halt, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.halted[stream]
	return h, ok
}

// check decodes a record, for a reader of schemas up to maxSchema, and
// checks it belongs where it was found; a refused record gives its
// *events.Rejection, one not understood its *events.UnsupportedError.
func check(rules events.Rules, unchecked bool, maxSchema int, r events.Record) (events.Envelope, *events.Rejection, *events.UnsupportedError) {
	e, err := events.DecodeUpTo(r.Data, maxSchema)
	var unsup *events.UnsupportedError
	if errors.As(err, &unsup) {
		return events.Envelope{}, nil, unsup
	}
	if err != nil {
		return events.Envelope{}, &events.Rejection{Reason: events.ReasonMalformed, Message: err.Error()}, nil
	}
	if unchecked {
		return e, nil, nil
	}
	if rej := rules.CheckRecord(e, r); rej != nil {
		return events.Envelope{}, rej, nil
	}
	return e, nil, nil
}

// WaitApplied blocks until stream's checkpoint reaches seq or ctx ends.
func (s *Store) WaitApplied(ctx context.Context, stream string, seq uint64) error {
	for {
		s.mu.Lock()
		cp, ch := s.checkpoints[stream], s.changed
		s.mu.Unlock()
		if cp >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Lookup returns the redirect entry of code: from the cache, else from
// Pebble (and then cached). found is false for a code never created.
func (s *Store) Lookup(code string) (e Entry, found bool, err error) {
	if e, ok := s.cache.Get(code); ok {
		return e, true, nil
	}
	l, found, err := s.Get(code)
	if err != nil || !found {
		return Entry{}, false, err
	}
	e = entryOf(l)
	// Add only if absent: the projector may have put a newer row in meanwhile.
	s.cache.ContainsOrAdd(code, e)
	return e, true, nil
}

// Get returns the folded state of code from Pebble. found is false for a
// code never created.
func (s *Store) Get(code string) (l events.Link, found bool, err error) {
	v, closer, err := s.db.Get(linkKey(code))
	if errors.Is(err, pebble.ErrNotFound) {
		return events.Link{}, false, nil
	}
	if err != nil {
		return events.Link{}, false, fmt.Errorf("read link %s: %w", code, err)
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &l); err != nil {
		return events.Link{}, false, fmt.Errorf("decode link %s: %w", code, err)
	}
	return l, l.Exists(), nil
}

// CachePurge empties the cache (a cache flush drill, or a test).
func (s *Store) CachePurge() { s.cache.Purge() }

// CacheLen returns the number of cached entries.
func (s *Store) CacheLen() int { return s.cache.Len() }

// GapError reports a record that does not follow its stream's checkpoint.
type GapError struct {
	Stream    string
	Want, Got uint64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("gap in %s: want sequence %d, got %d", e.Stream, e.Want, e.Got)
}

// Apply folds records into the store in one atomic batch with the new
// checkpoints (fsynced when Options.SyncWrites is set). Records at or below their stream's checkpoint are skipped
// (redeliveries); a record beyond checkpoint+1 is a *GapError and nothing is
// written. A record the store does not understand (Options.MaxSchema)
// halts its stream: its checkpoint stays before it, and the stream's later
// records, in this batch and later ones, are left out (not a gap) until a
// store that understands it applies it; other streams go on. It returns
// how many records were applied. Apply must not be called concurrently
// with itself.
func (s *Store) Apply(recs []events.Record) (int, error) {
	cps := s.Checkpoints()
	halted := s.Halted()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	rows := &linkReader{db: s.db}
	defer rows.close()
	touched := map[string]events.Link{}
	beats := map[string]time.Time{}
	var applied int
	rejected := map[events.Reason]uint64{}
	for _, r := range recs {
		cp := cps[r.Stream]
		if r.Seq <= cp {
			continue
		}
		if h, ok := halted[r.Stream]; ok && r.Seq > h.Seq {
			continue // after the halt: read again once the halt is passed
		}
		if r.Seq != cp+1 {
			return 0, &GapError{Stream: r.Stream, Want: cp + 1, Got: r.Seq}
		}
		e, rej, unsup := check(s.rules, s.unchecked, s.maxSchema, r)
		if unsup != nil {
			if _, was := halted[r.Stream]; !was {
				s.log.Error("stopping the stream at an event this binary does not understand: upgrade the binary",
					"stream", r.Stream, "seq", r.Seq, "schema", unsup.Schema, "type", string(unsup.Type), "err", unsup.Err)
			}
			halted[r.Stream] = Halt{Seq: r.Seq, Schema: unsup.Schema, Type: string(unsup.Type), Reason: unsup.Err.Error()}
			continue
		}
		delete(halted, r.Stream)
		cps[r.Stream] = r.Seq
		applied++
		if rej != nil {
			rejected[rej.Reason]++
			s.log.Error("refusing to fold a record", "stream", r.Stream, "seq", r.Seq, "subject", r.Subject,
				"reason", string(rej.Reason), "err", rej.Message)
			continue
		}
		if e.Type == events.TypeRegionHeartbeat {
			if e.Time.After(beats[e.Origin]) {
				beats[e.Origin] = e.Time
			}
			continue
		}
		l, err := s.fold(b, rows, touched, e, r.Data)
		if err != nil {
			return 0, err
		}
		if l != nil {
			touched[e.Code] = *l
		}
	}
	if applied == 0 {
		s.mu.Lock()
		s.halted = halted
		s.mu.Unlock()
		return 0, nil
	}
	var row []byte
	for code, l := range touched {
		// The bytes json.Marshal writes (the digest hashes them); on an
		// error (a time outside RFC 3339) an empty row, as ever.
		row, _ = l.AppendJSON(row[:0])
		if err := b.Set(linkKey(code), row, nil); err != nil { // Set copies row
			return 0, err
		}
	}
	var buf [8]byte
	for stream, seq := range cps {
		binary.BigEndian.PutUint64(buf[:], seq)
		if err := b.Set([]byte(prefixCheckpoint+stream), buf[:], nil); err != nil {
			return 0, err
		}
	}
	total := s.Rejected()
	for reason, n := range rejected {
		total[reason] += n
		binary.BigEndian.PutUint64(buf[:], total[reason])
		if err := b.Set([]byte(prefixRejected+string(reason)), buf[:], nil); err != nil {
			return 0, err
		}
	}
	for origin, t := range beats {
		if prev, ok := s.Heartbeat(origin); ok && !t.After(prev) {
			delete(beats, origin)
			continue
		}
		binary.BigEndian.PutUint64(buf[:], uint64(t.UnixNano()))
		if err := b.Set([]byte(prefixHeartbeat+origin), buf[:], nil); err != nil {
			return 0, err
		}
	}
	if err := s.injected("batch"); err != nil {
		return 0, fmt.Errorf("commit batch: %w", err)
	}
	if err := b.Commit(s.write); err != nil {
		return 0, fmt.Errorf("commit batch: %w", err)
	}
	// Committed: now, and only now, the cache and the waiters may see it.
	for code, l := range touched {
		s.cache.Add(code, entryOf(l))
	}
	s.mu.Lock()
	s.checkpoints = cps
	s.halted = halted
	for origin, t := range beats {
		s.heartbeats[origin] = t
	}
	for reason, n := range rejected {
		s.rejected[reason] += n
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return applied, nil
}

// fold stores e and returns the new state of its code, or nil when e is a
// duplicate already stored.
//
// The code's row holds the (time, id) of the last event folded into it and
// is written in the same batch as every event row of the code, so an event
// strictly after it (the common case, and every event of a new code) cannot
// be stored yet: only the others are looked up by event key.
func (s *Store) fold(b *pebble.Batch, rows *linkReader, touched map[string]events.Link, e events.Envelope, raw []byte) (*events.Link, error) {
	ek := eventKey(e)
	l, err := link(rows, touched, e.Code)
	if err != nil {
		// A row that cannot be read: a duplicate is still just skipped.
		if dup, derr := stored(b, ek, e.ID); derr != nil || dup {
			return nil, derr
		}
		return nil, err
	}
	if !l.After(e) {
		if dup, err := stored(b, ek, e.ID); err != nil || dup {
			return nil, err // the same event, delivered again (from another stream, or resent)
		}
	}
	if err := b.Set(ek, raw, nil); err != nil {
		return nil, err
	}
	if l.After(e) {
		l = events.Apply(l, e)
		return &l, nil
	}
	// e belongs before events already folded: fold the code again from all
	// of its stored events, e included (the batch is indexed, so it sees e).
	evs, err := s.eventsOf(b, e.Code)
	if err != nil {
		return nil, err
	}
	l = events.Fold(evs)
	return &l, nil
}

// link returns the state of code as folded so far: from this batch, else
// from the store (the zero Link for a code without a row).
func link(rows *linkReader, touched map[string]events.Link, code string) (events.Link, error) {
	if l, ok := touched[code]; ok {
		return l, nil
	}
	var l events.Link
	v, found, err := rows.get(linkKey(code))
	if err != nil {
		return events.Link{}, fmt.Errorf("read link %s: %w", code, err)
	}
	if found {
		if err := json.Unmarshal(v, &l); err != nil {
			return events.Link{}, fmt.Errorf("decode link %s: %w", code, err)
		}
	}
	return l, nil
}

// linkReader reads committed link rows for one Apply, through one iterator
// that consults the tables' Bloom filters on every level: most lookups are
// of new codes, and a point Get skips the filters of the last level, where
// most tables are, so each miss read and decompressed blocks. Rows written
// by the batch are in Apply's touched map, which is consulted first.
type linkReader struct {
	db *pebble.DB
	it *pebble.Iterator
}

func (r *linkReader) get(key []byte) ([]byte, bool, error) {
	if r.it == nil {
		it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixLink), UpperBound: prefixEnd(prefixLink), UseL6Filters: true})
		if err != nil {
			return nil, false, err
		}
		r.it = it
	}
	if r.it.SeekPrefixGE(key) && bytes.Equal(r.it.Key(), key) {
		return r.it.Value(), true, nil // valid until the next seek: decoded at once
	}
	return nil, false, r.it.Error()
}

func (r *linkReader) close() {
	if r.it != nil {
		r.it.Close()
	}
}

// stored reports whether the event row ek is in the store or the batch.
func stored(b *pebble.Batch, ek []byte, id string) (bool, error) {
	_, closer, err := b.Get(ek)
	if err == nil {
		closer.Close()
		return true, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return false, fmt.Errorf("read event %s: %w", id, err)
	}
	return false, nil
}

type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func (s *Store) eventsOf(r reader, code string) ([]events.Envelope, error) {
	lo := append([]byte(prefixEvent+code), 0)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: append([]byte(prefixEvent+code), 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var evs []events.Envelope
	for it.First(); it.Valid(); it.Next() {
		e, err := events.DecodeUpTo(it.Value(), s.maxSchema)
		if err != nil {
			return nil, fmt.Errorf("stored event %q: %w", it.Key(), err)
		}
		evs = append(evs, e)
	}
	return evs, it.Error()
}

// Events returns the stored events of code in fold order (the store keys
// them by time, then id: events.Before).
func (s *Store) Events(code string) ([]events.Envelope, error) {
	evs, err := s.eventsOf(s.db, code)
	if err != nil {
		return nil, err
	}
	return evs, nil
}

func (s *Store) scan(prefix string, fn func(k, v []byte) error) error {
	return scanIn(s.db, prefix, fn)
}

// Count returns the number of links in the store (deleted ones included:
// a tombstone is still a row).
func (s *Store) Count() (int, error) {
	n := 0
	err := s.scan(prefixLink, func(_, _ []byte) error { n++; return nil })
	return n, err
}

// Digest returns a SHA-256 over every link row in code order: two stores
// that folded the same events have the same digest, whatever order the
// events arrived in.
func (s *Store) Digest() (string, error) {
	h := sha256.New()
	err := s.scan(prefixLink, func(k, v []byte) error {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(k)))
		h.Write(n[:])
		h.Write(k)
		binary.BigEndian.PutUint32(n[:], uint32(len(v)))
		h.Write(n[:])
		h.Write(v)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// Reset deletes everything, checkpoints included, so that the next feed
// rebuilds the projection from sequence zero.
func (s *Store) Reset() error {
	if err := s.db.DeleteRange([]byte{0}, []byte{0xff}, pebble.Sync); err != nil {
		return fmt.Errorf("reset store: %w", err)
	}
	s.cache.Purge()
	s.mu.Lock()
	s.checkpoints = map[string]uint64{}
	s.heartbeats = map[string]time.Time{}
	s.rejected = map[events.Reason]uint64{}
	s.halted = map[string]Halt{}
	s.mu.Unlock()
	return nil
}

func linkKey(code string) []byte { return []byte(prefixLink + code) }

func eventKey(e events.Envelope) []byte {
	k := make([]byte, 0, len(prefixEvent)+len(e.Code)+1+8+len(e.ID))
	k = append(k, prefixEvent...)
	k = append(k, e.Code...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(e.Time.UnixNano()))
	return append(k, e.ID...)
}

func prefixEnd(p string) []byte {
	end := []byte(p)
	end[len(end)-1]++
	return end
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf(format, args...))
}

// CheckpointTo writes a consistent copy of the store to dir, which must
// not exist (a Pebble checkpoint: hard links to the immutable tables where
// the file system allows, copies of the rest). The copy holds link rows,
// events and checkpoints of one commit, so it is the projection of the log
// up to exactly the checkpoints it holds. The store keeps serving
// meanwhile.
func (s *Store) CheckpointTo(dir string) error {
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint the store to %s: %w", dir, err)
	}
	return nil
}
