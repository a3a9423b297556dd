package projections

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"shortener/events"
)

// ReplayOptions configures a Replay.
type ReplayOptions struct {
	// Until, when set, leaves out every event with a producer time after
	// it: the store then holds the state of every link at that moment.
	Until  time.Time
	Logger *slog.Logger
	// Expect is how many records the replay will be given, when known:
	// the map of codes is sized for them up front instead of growing (and
	// rehashing a million codes) as they come.
	Expect int
	// Rules and Unchecked are the live store's (Options): a replay checks
	// every event exactly as the projection does.
	Rules     events.Rules
	Unchecked bool
	// MaxSchema is the live store's (Options.MaxSchema): a replay stops a
	// stream where the projection does.
	MaxSchema int
}

// ReplayStats counts what a replay did.
type ReplayStats struct {
	Records    uint64 `json:"records"`    // records applied (every stream, heartbeats included)
	Events     uint64 `json:"events"`     // distinct link events folded
	Duplicates uint64 `json:"duplicates"` // link events already folded from another record
	Heartbeats uint64 `json:"heartbeats"` //
	Invalid    uint64 `json:"invalid"`    // records refused at the fold (skipped, as a projection does): the sum of Rejected
	// Rejected counts the refused records by reason (events.Reasons).
	Rejected map[events.Reason]uint64 `json:"rejected,omitempty"`
	// Halted names the streams stopped at a record this binary does not
	// understand (a newer schema, an unknown type), as a projection stops
	// them: nothing of the stream from there on is folded.
	Halted  map[string]Halt `json:"halted,omitempty"`
	Later   uint64          `json:"after_until"` // link events left out by Until
	Refolds uint64          `json:"refolds"`     // events that arrived before events already folded
}

// Replay rebuilds a projection from the event log into a fresh store, the
// way an auditor trusts: nothing of a live store is read. It folds exactly
// as Store.Apply does (same decoding, same skipping of invalid records,
// same dedupe by event key, same fold), so a replay of the records a live
// store applied has the live store's Digest; it is only faster: it folds
// in memory, writes the log's events without reading them back, decodes
// on every core, and writes no WAL (a replay that crashes is simply run
// again).
//
// Apply must be given each stream's records in sequence order, from 1;
// streams may interleave in any way. Finish writes the link rows and
// returns the store.
type Replay struct {
	dir   string
	db    *pebble.DB
	batch *pebble.Batch
	opts  ReplayOptions

	links map[string]replayLink // by code: its row as written
	row   []byte                // scratch for encoding rows
	slab  []byte                // rows are kept in slabs: one allocation per replayRowSlab, not per row
	cps   map[string]uint64
	beats map[string]time.Time
	stats ReplayStats

	decoded []decodedRecord // reused between batches
}

type decodedRecord struct {
	e     events.Envelope
	err   *events.Rejection
	unsup *events.UnsupportedError
}

// replayBatchBytes is the size at which a replay commits its batch of
// event rows.
const replayBatchBytes = 32 << 20

// replayRowSlab is the size of the slabs a replay keeps its rows in.
const replayRowSlab = 1 << 20

// NewReplay creates a fresh store in dir for a replay. dir must not exist
// or be empty: a replay never folds into an existing store.
func NewReplay(dir string, opts ReplayOptions) (*Replay, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("replay into %s: the directory is not empty", dir)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Write once, read once: no WAL, no compression, no compactions while
	// writing (the store is reopened with the defaults by Finish).
	popts := &pebble.Options{
		Logger:                      pebbleLogger{opts.Logger},
		DisableWAL:                  true,
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0StopWritesThreshold:       1 << 20,
		DisableAutomaticCompactions: true,
		ErrorIfExists:               true,
	}
	popts.Levels = make([]pebble.LevelOptions, 7)
	for i := range popts.Levels {
		popts.Levels[i].Compression = pebble.NoCompression
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open replay store %s: %w", dir, err)
	}
	return &Replay{dir: dir, db: db, batch: db.NewBatch(), opts: opts,
		links: make(map[string]replayLink, min(max(opts.Expect, 0), 1<<26)), cps: map[string]uint64{}, beats: map[string]time.Time{}}, nil
}

// Stats returns what the replay has done so far.
func (r *Replay) Stats() ReplayStats {
	st := r.stats
	if st.Rejected != nil {
		st.Rejected = maps.Clone(st.Rejected)
	}
	if st.Halted != nil {
		st.Halted = maps.Clone(st.Halted)
	}
	return st
}

// Checkpoints returns the last sequence applied of every stream.
func (r *Replay) Checkpoints() map[string]uint64 {
	out := make(map[string]uint64, len(r.cps))
	for k, v := range r.cps {
		out[k] = v
	}
	return out
}

// Apply folds records in. A record at or below its stream's last applied
// sequence is skipped; one beyond the next is a *GapError and nothing of
// recs is applied.
func (r *Replay) Apply(recs []events.Record) error {
	next := map[string]uint64{}
	for _, rec := range recs {
		want, ok := next[rec.Stream]
		if !ok {
			want = r.cps[rec.Stream] + 1
		}
		if rec.Seq >= want && rec.Seq != want {
			return &GapError{Stream: rec.Stream, Want: want, Got: rec.Seq}
		}
		next[rec.Stream] = max(want, rec.Seq+1)
	}
	r.decode(recs)
	for i, rec := range recs {
		if rec.Seq <= r.cps[rec.Stream] {
			continue
		}
		if _, ok := r.stats.Halted[rec.Stream]; ok {
			continue // stopped at an earlier record
		}
		if u := r.decoded[i].unsup; u != nil {
			if r.stats.Halted == nil {
				r.stats.Halted = map[string]Halt{}
			}
			r.stats.Halted[rec.Stream] = Halt{Seq: rec.Seq, Schema: u.Schema, Type: string(u.Type), Reason: u.Err.Error()}
			r.opts.Logger.Error("replay: stopping the stream at an event this binary does not understand: upgrade the binary",
				"stream", rec.Stream, "seq", rec.Seq, "err", u.Err)
			continue
		}
		r.cps[rec.Stream] = rec.Seq
		r.stats.Records++
		d := &r.decoded[i]
		if d.err != nil {
			r.stats.Invalid++
			if r.stats.Rejected == nil {
				r.stats.Rejected = map[events.Reason]uint64{}
			}
			r.stats.Rejected[d.err.Reason]++
			r.opts.Logger.Error("replay: refusing to fold a record", "stream", rec.Stream, "seq", rec.Seq, "subject", rec.Subject,
				"reason", string(d.err.Reason), "err", d.err.Message)
			continue
		}
		if err := r.fold(d.e, rec.Data); err != nil {
			return err
		}
	}
	if r.batch.Len() >= replayBatchBytes {
		return r.commit()
	}
	return nil
}

// decode decodes recs into r.decoded, on every core for large batches.
func (r *Replay) decode(recs []events.Record) {
	if cap(r.decoded) < len(recs) {
		r.decoded = make([]decodedRecord, len(recs))
	}
	r.decoded = r.decoded[:len(recs)]
	workers := runtime.GOMAXPROCS(0)
	if len(recs) < 64 || workers == 1 {
		for i, rec := range recs {
			r.decoded[i].e, r.decoded[i].err, r.decoded[i].unsup = check(r.opts.Rules, r.opts.Unchecked, r.opts.MaxSchema, rec)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				r.decoded[i].e, r.decoded[i].err, r.decoded[i].unsup = check(r.opts.Rules, r.opts.Unchecked, r.opts.MaxSchema, recs[i])
			}
		}()
	}
	wg.Wait()
}

func (r *Replay) fold(e events.Envelope, raw []byte) error {
	if e.Type == events.TypeRegionHeartbeat {
		r.stats.Heartbeats++
		if e.Time.After(r.beats[e.Origin]) {
			r.beats[e.Origin] = e.Time
		}
		return nil
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		r.stats.Later++
		return nil
	}
	l, err := r.link(e.Code)
	if err != nil {
		return err
	}
	if l.After(e) {
		// Strictly after everything folded for the code: a new event.
		if err := r.batch.Set(eventKey(e), raw, nil); err != nil {
			return err
		}
		r.stats.Events++
		return r.setLink(e.Code, events.Apply(l, e))
	}
	// At or before the last event folded: the same event again (from
	// another copy, or resent), or one that arrived late. The store says
	// which; a late one re-folds the code from all its events, as
	// Store.Apply does.
	if err := r.commit(); err != nil {
		return err
	}
	ek := eventKey(e)
	if _, closer, err := r.db.Get(ek); err == nil {
		closer.Close()
		r.stats.Duplicates++
		return nil
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("read event %s: %w", e.ID, err)
	}
	if err := r.db.Set(ek, raw, pebble.NoSync); err != nil {
		return fmt.Errorf("write event %s: %w", e.ID, err)
	}
	evs, err := (&Store{db: r.db, maxSchema: r.opts.MaxSchema}).eventsOf(r.db, e.Code)
	if err != nil {
		return err
	}
	r.stats.Events++
	r.stats.Refolds++
	return r.setLink(e.Code, events.Fold(evs))
}

// replayLink is what a replay keeps of a code between its events: the row
// it wrote, which is also the state the next event folds into. Rows are
// plain bytes, so a million codes cost the garbage collector little, and
// each row is written while its link is fresh in the cache instead of all
// at the end. link holds the state instead when it has no row (json.Marshal
// fails on a time outside RFC 3339's years; the row is then empty, as the
// live projection writes it).
type replayLink struct {
	row  []byte
	link *events.Link
}

// link returns the state of code folded so far; the zero Link for a code
// not seen yet.
func (r *Replay) link(code string) (events.Link, error) {
	s, ok := r.links[code]
	switch {
	case !ok:
		return events.Link{}, nil
	case s.link != nil:
		return *s.link, nil
	}
	// A code's later event: its state from its row, as the live
	// projection reads it back.
	var l events.Link
	if err := json.Unmarshal(s.row, &l); err != nil {
		return events.Link{}, fmt.Errorf("decode link %s: %w", code, err)
	}
	return l, nil
}

// setLink records the new state of code and writes its row. A code's row
// may thus be written several times; the last write is the state after
// every event folded, which is the row Finish used to write.
func (r *Replay) setLink(code string, l events.Link) error {
	var err error
	r.row, err = l.AppendJSON(r.row[:0])
	var s replayLink
	if err != nil {
		kept := l // only this rare case puts a Link on the heap
		s = replayLink{row: []byte{}, link: &kept}
	} else {
		s = replayLink{row: r.keep(r.row)}
	}
	r.links[code] = s
	return r.batch.Set(linkKey(code), s.row, nil)
}

// keep returns a copy of row that lives in r's slabs. A row written again
// leaves its old copy behind in its slab, unused.
func (r *Replay) keep(row []byte) []byte {
	if len(row) > replayRowSlab/8 {
		return slices.Clone(row)
	}
	if cap(r.slab)-len(r.slab) < len(row) {
		r.slab = make([]byte, 0, replayRowSlab)
	}
	n := len(r.slab)
	r.slab = append(r.slab, row...)
	return r.slab[n:len(r.slab):len(r.slab)]
}

func (r *Replay) commit() error {
	if r.batch.Empty() {
		return nil
	}
	// The next batch is likely as large as this one: sized for it, it
	// does not copy itself over and over while growing (a batch committed
	// early, before a late event is read back, sizes the next one small).
	// Measured before the commit: a committed batch's Len is its header's.
	size := min(2*r.batch.Len(), replayBatchBytes+replayBatchBytes/8)
	if err := r.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit replay batch: %w", err)
	}
	r.batch.Close()
	r.batch = r.db.NewBatchWithSize(size)
	return nil
}

// Finish writes the checkpoints and the heartbeats (the link rows are
// written as codes fold), flushes everything to disk and returns the store,
// open: its Digest can be compared with a live store's. The Replay must not be used afterwards.
func (r *Replay) Finish() (*Store, error) {
	var buf [8]byte
	for stream, seq := range r.cps {
		binary.BigEndian.PutUint64(buf[:], seq)
		if err := r.batch.Set([]byte(prefixCheckpoint+stream), buf[:], nil); err != nil {
			return nil, err
		}
	}
	for origin, t := range r.beats {
		binary.BigEndian.PutUint64(buf[:], uint64(t.UnixNano()))
		if err := r.batch.Set([]byte(prefixHeartbeat+origin), buf[:], nil); err != nil {
			return nil, err
		}
	}
	for reason, n := range r.stats.Rejected {
		binary.BigEndian.PutUint64(buf[:], n)
		if err := r.batch.Set([]byte(prefixRejected+string(reason)), buf[:], nil); err != nil {
			return nil, err
		}
	}
	if err := r.commit(); err != nil {
		return nil, err
	}
	r.batch.Close()
	r.links, r.slab = nil, nil
	if err := r.db.Flush(); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("flush replay store: %w", err)
	}
	if err := r.db.Close(); err != nil {
		return nil, fmt.Errorf("close replay store: %w", err)
	}
	return Open(r.dir, Options{Logger: r.opts.Logger, CacheSize: 16, Rules: r.opts.Rules, Unchecked: r.opts.Unchecked, MaxSchema: r.opts.MaxSchema})
}

// Abort closes the replay's store without finishing it.
func (r *Replay) Abort() error {
	r.batch.Close()
	return r.db.Close()
}
