package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	"shortener/events"
)

// ClickStore is the click analytics read model: counts per link, per
// region and per day, people and bots apart, folded from every region's
// click stream. It is its own Pebble store, apart from the links: it is not
// critical, and nothing in it changes what a link points to.
//
// Keys (counts are two big-endian uint64s: people, bots):
//
//	k/<stream>               last applied sequence of that click stream
//	t/<code>                 totals
//	r/<code>\x00<region>     per region that served the clicks
//	d/<code>\x00<YYYY-MM-DD> per UTC day
//	o/<origin>               time of the newest batch applied from that region (unix ns)
//	j/                       the journal of the commit being applied, if any (see Commit)
//	p/                       how far the journal is applied (a byte offset)
//
// While a commit is being applied, a code's total, regions and days may
// disagree by that commit's clicks for a fraction of a second.
type ClickStore struct {
	db  *pebble.DB
	log *slog.Logger

	mu          sync.Mutex
	checkpoints map[string]uint64
	newest      map[string]time.Time

	// counts caches the counters the projector wrote last (key -> counts),
	// so that a commit reads Pebble only for counters it has not written
	// lately. Only Commit uses it (one goroutine: no lock), after its
	// commit succeeded.
	// Without it every distinct code of a batch cost three Pebble reads:
	// with 20,000 links redirected at random the click projection took
	// more CPU than serving the redirects did.
	counts counterCache

	// pend is what Fold added and Commit has not written yet (the
	// projector's goroutine only).
	pend clickPending

	// The journal being applied (see Commit): applied is the offset of
	// its first entry not yet applied, 0 when there is none.
	journal []byte
	applied int
	work    map[counterKey]pair // one chunk's counters (settle's scratch)
	key     []byte              // scratch
	paced   int                 // work done since the projector last rested (pace)
	worked  time.Time           // when the projector last rested

	stopping atomic.Bool // Stop: settle returns between chunks

	afterChunk func() // tests: called after each chunk's batch is committed
}

// counterCache holds the counters written last, up to about max of them,
// in two generations of plain maps: when the young one is full it becomes
// the old one and the old one is dropped. Cheaper than an LRU's list moves
// for the tens of thousands of counters a commit touches; a counter written
// in either of the last two generations is found.
type counterCache struct {
	young, old map[counterKey]pair
	half       int
}

func newCounterCache(bound int) counterCache {
	half := max(bound/2, 1)
	return counterCache{young: make(map[counterKey]pair, half), old: map[counterKey]pair{}, half: half}
}

func (c *counterCache) get(k counterKey) (pair, bool) {
	if v, ok := c.young[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	return v, ok
}

func (c *counterCache) put(k counterKey, v pair) {
	if _, ok := c.young[k]; !ok && len(c.young) >= c.half {
		c.old, c.young = c.young, make(map[counterKey]pair, c.half)
	}
	c.young[k] = v
}

// clickCountsCached bounds the counters kept in memory (about 100 bytes
// each).
const clickCountsCached = 1 << 17

// OpenClicks opens (or creates) the click store in dir.
func OpenClicks(dir string, log *slog.Logger) (*ClickStore, error) {
	if log == nil {
		log = slog.Default()
	}
	// Bloom filters: a new code's counters are misses in every level. A
	// 16 MiB memtable: a commit of a few seconds of clicks (a few MB of
	// counters) stays an ordinary batch instead of a "large" one, which
	// Pebble turns into a memtable flush of its own each time.
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}, MemTableSize: 16 << 20,
		Levels: []pebble.LevelOptions{{FilterPolicy: bloom.FilterPolicy(10)}}})
	if err != nil {
		return nil, fmt.Errorf("open click store %s: %w", dir, err)
	}
	s := &ClickStore{db: db, log: log, checkpoints: map[string]uint64{}, newest: map[string]time.Time{}, counts: newCounterCache(clickCountsCached), work: map[counterKey]pair{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.settle(false); errors.Is(err, errBadJournal) {
		s.dropJournal(err) // counts are not critical: the region starts
	} else if err != nil { // a commit a crash interrupted
		db.Close()
		return nil, fmt.Errorf("open click store %s: finishing the last commit: %w", dir, err)
	}
	return s, nil
}

func (s *ClickStore) load() error {
	err := scanIn(s.db, "k/", func(k, v []byte) error {
		s.checkpoints[string(k[2:])] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return err
	}
	err = scanIn(s.db, "o/", func(k, v []byte) error {
		s.newest[string(k[2:])] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.loadJournal(); errors.Is(err, errBadJournal) {
		s.dropJournal(err)
	} else if err != nil {
		return err
	}
	return nil
}

// dropJournal deletes a journal that cannot be applied: the clicks of
// that one commit are lost (their records are past the checkpoints), which
// beats a region that cannot start over its click counts.
func (s *ClickStore) dropJournal(why error) {
	s.log.Error("click store: the journal of the last commit is damaged: its counts are dropped", "err", why)
	s.deleteJournal()
}

// deleteJournal deletes the journal and its progress.
func (s *ClickStore) deleteJournal() {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(journalKey, nil)
	_ = b.Delete(progressKey, nil)
	_ = b.Commit(pebble.Sync)
	s.journal, s.applied = nil, 0
}

// loadJournal reads the journal a crash left, and how far it was applied.
func (s *ClickStore) loadJournal() error {
	j, closer, err := s.db.Get(journalKey)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	s.journal = append([]byte(nil), j...)
	closer.Close()
	if len(s.journal) == 0 || s.journal[0] != journalVersion {
		return fmt.Errorf("%w: version %v", errBadJournal, s.journal[:min(1, len(s.journal))])
	}
	s.applied = 1
	p, closer, err := s.db.Get(progressKey)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(p) != 8 {
		return fmt.Errorf("%w: progress of %d bytes", errBadJournal, len(p))
	}
	at := binary.BigEndian.Uint64(p)
	if at < 1 || at > uint64(len(s.journal)) {
		return fmt.Errorf("%w: progress %d of %d bytes", errBadJournal, at, len(s.journal))
	}
	for rest := s.journal[1:]; len(s.journal)-len(rest) < int(at); { // the progress is an entry's start
		var err error
		if _, _, rest, err = readJournalEntry(rest); err != nil {
			return fmt.Errorf("%w at byte %d", err, len(s.journal)-len(rest))
		}
		if len(s.journal)-len(rest) > int(at) {
			return fmt.Errorf("%w: progress %d inside an entry", errBadJournal, at)
		}
	}
	s.applied = int(at)
	return nil
}

// Close closes the store.
func (s *ClickStore) Close() error { return s.db.Close() }

// Checkpoint returns the last applied sequence of a click stream.
func (s *ClickStore) Checkpoint(stream string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoints[stream]
}

// Newest returns, per origin region, the time of the newest click batch
// applied: how fresh the counts are.
func (s *ClickStore) Newest() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.newest))
	for k, v := range s.newest {
		out[k] = v
	}
	return out
}

type pair struct{ people, bots uint64 }

// foldKey is what Fold counts clicks by: the code, the region that served
// them and their UTC day (days since the Unix epoch); Commit adds each to
// the code's total, region and day counters.
type foldKey struct {
	code, region string
	day          int64
}

// unixDay is the UTC day of a time in Unix milliseconds.
func unixDay(ms int64) int64 {
	const msPerDay = 86_400_000
	if ms < 0 {
		return (ms - msPerDay + 1) / msPerDay // floor
	}
	return ms / msPerDay
}

// counterKey names one counter without building its Pebble key: kind 't'
// (total), 'r' (of region) or 'd' (of day). Folding a click allocates
// nothing for its counters.
type counterKey struct {
	kind   byte
	code   string
	region string // 'r'
	day    int64  // 'd'
}

// appendTo appends the counter's Pebble key: t/<code>, r/<code>\x00<region>
// or d/<code>\x00<YYYY-MM-DD>.
func (k counterKey) appendTo(b []byte) []byte {
	b = append(b, k.kind, '/')
	b = append(b, k.code...)
	switch k.kind {
	case 'r':
		b = append(b, 0)
		b = append(b, k.region...)
	case 'd':
		b = append(b, 0)
		b = time.UnixMilli(k.day*86_400_000).UTC().AppendFormat(b, time.DateOnly)
	}
	return b
}

func (p pair) add(bot bool) pair {
	if bot {
		p.bots++
	} else {
		p.people++
	}
	return p
}

// ApplyClicks folds click stream records into the counts and commits them
// (Fold, then Commit): each record counts exactly once. It returns the
// clicks counted.
func (s *ClickStore) ApplyClicks(recs []events.Record) (int, error) {
	s.Fold(recs)
	return s.Commit()
}

// clickPending is what Fold added since the last Commit.
type clickPending struct {
	delta   map[foldKey]pair     // clicks to add, by code, serving region and day
	cps     map[string]uint64    // stream -> last sequence folded; nil: nothing folded
	newest  map[string]time.Time // origin -> newest batch folded
	counted int
}

// Fold adds click stream records to the pending counts, in memory: nothing
// is stored, and nothing counts, until Commit. Records at or below a
// stream's checkpoint (committed or pending) are skipped; a record that is
// not a valid batch is skipped and logged (it counts nothing). Many feed
// batches folded into one commit write each busy counter once instead of
// once per batch. Fold and Commit belong to one goroutine (the projector).
func (s *ClickStore) Fold(recs []events.Record) {
	s.worked = time.Now()
	p := &s.pend
	if p.cps == nil {
		s.mu.Lock()
		p.cps = make(map[string]uint64, len(s.checkpoints))
		for k, v := range s.checkpoints {
			p.cps[k] = v
		}
		s.mu.Unlock()
		p.delta, p.newest, p.counted = map[foldKey]pair{}, map[string]time.Time{}, 0
	}
	for _, r := range recs {
		if r.Seq <= p.cps[r.Stream] {
			continue
		}
		p.cps[r.Stream] = r.Seq
		b, err := events.DecodeClickBatch(r.Data)
		if err != nil {
			s.log.Warn("click batch skipped", "stream", r.Stream, "seq", r.Seq, "err", err)
			continue
		}
		if b.Time.After(p.newest[b.Region]) {
			p.newest[b.Region] = b.Time
		}
		s.pace(len(b.Clicks))
		for _, c := range b.Clicks {
			k := foldKey{c.Code, b.Region, unixDay(c.UnixMs)} // one map update per click; its three counters at Commit
			p.delta[k] = p.delta[k].add(c.Bot)
			p.counted++
		}
	}
}

// Pending returns whether records were folded since the last Commit, and
// how many (code, serving region, day) counts they hold.
func (s *ClickStore) Pending() (bool, int) {
	return s.pend.cps != nil, len(s.pend.delta)
}

// A commit is two steps, so that the one core a region may have is never
// held for long (see "Where the clicks' tail comes from" in
// docs/benchmarks.md):
//
//  1. The journal: the pending counts, encoded as one value (j/), written
//     with the streams' checkpoints in one synced batch. From then on the
//     clicks are durable and counted exactly once: the feed may be
//     acknowledged.
//  2. The counters: the journal's entries applied in chunks of
//     clickChunk entries, each chunk one batch that also records how far
//     the journal is applied (p/); the last chunk deletes the journal.
//
// A crash between chunks leaves the journal and its progress: OpenClicks
// finishes it, from the first chunk not applied, before anything else.
// Every chunk is atomic with its progress, so no entry is added twice or
// lost.
//
// The projector also keeps to a share of the core (see rest): a commit of
// two seconds of clicks at 10,000/s is about 80 ms of work, and run
// straight through, or with runtime.Gosched between chunks, it took the
// one core a benchmarked region has for those 80 ms, and the redirects
// waiting behind it all answered 50 to 100 ms late (p99 at 10,000/s 44 to
// 65 ms against 2 ms with the commits held back). A goroutine woken from a
// sleep runs before the goroutines already runnable, so a short pause
// between chunks is not enough either: it must be long beside the chunk.

// clickChunk is how many journal entries (each three counters) one chunk
// applies: a few hundred keys into the memtable, a fraction of a
// millisecond.
const clickChunk = 128

// clickPaceEvery is how many clicks folded or journal entries encoded (a
// map update each) the projector handles between rests.
const clickPaceEvery = 1024

// clickRest is how long the projector rests after a stretch of work, as a
// multiple of the stretch: 3 keeps it to a quarter of a core at most.
const clickRest = 3

// pace rests every clickPaceEvery units of work.
func (s *ClickStore) pace(units int) {
	if s.paced += units; s.paced >= clickPaceEvery {
		s.paced = 0
		s.rest()
	}
}

// rest parks the projector for clickRest times as long as it worked since
// it last rested or began (Fold, Commit), at least 50 µs (in practice a
// timer of Go's rounds an idle wait up to about a millisecond). The
// stretch is wall time, so on a busy core it counts time the projector
// waited to run: it is capped at 2 ms, or the projector would fall behind
// the clicks exactly when the region is busiest.
func (s *ClickStore) rest() {
	if s.stopping.Load() {
		return
	}
	worked := time.Since(s.worked)
	if worked < 0 || worked > 2*time.Millisecond {
		worked = 2 * time.Millisecond
	}
	time.Sleep(max(clickRest*worked, 50*time.Microsecond))
	s.worked = time.Now()
}

// Stop makes a commit being applied stop between chunks (Commit returns
// errStopped; the rest of the journal is applied at the next OpenClicks)
// and the projector stop resting: for a prompt shutdown. Close the store
// only after the goroutine that commits has returned.
func (s *ClickStore) Stop() { s.stopping.Store(true) }

var errStopped = errors.New("click store: stopped")

// Commit makes the pending counts durable and then writes them to the
// counters; it returns the clicks it counted. On an error before the
// journal is written, nothing is counted and the pending counts stay for
// the next Commit. With a journal written and an error after it, it
// returns the clicks counted and the error: the counts are durable, and
// the next Commit (or the next OpenClicks) finishes writing them.
func (s *ClickStore) Commit() (int, error) {
	s.worked = time.Now()
	if err := s.settle(true); err != nil {
		return 0, err
	}
	p := &s.pend
	if p.cps == nil {
		return 0, nil
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	if len(p.delta) > 0 { // else only checkpoints moved (records delivered again, or no clicks)
		jour := s.journal[:0]
		jour = append(jour, journalVersion)
		for k, d := range p.delta {
			s.pace(1)
			jour = appendJournalEntry(jour, k, d)
		}
		s.journal = jour
		if err := batch.Set(journalKey, jour, nil); err != nil {
			return 0, err
		}
		if err := batch.Delete(progressKey, nil); err != nil {
			return 0, err
		}
	}
	for stream, seq := range p.cps {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], seq)
		if err := batch.Set([]byte("k/"+stream), b[:], nil); err != nil {
			return 0, err
		}
	}
	for origin, t := range p.newest {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
		if err := batch.Set([]byte("o/"+origin), b[:], nil); err != nil {
			return 0, err
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("click store: %w", err)
	}
	s.mu.Lock()
	s.checkpoints = p.cps
	for o, t := range p.newest {
		if t.After(s.newest[o]) {
			s.newest[o] = t
		}
	}
	s.mu.Unlock()
	counted := p.counted
	if len(p.delta) > 0 {
		s.applied = 1 // past the version byte
	}
	p.cps, p.delta, p.newest, p.counted = nil, nil, nil, 0
	return counted, s.settle(true)
}

// journalVersion is the first byte of a journal.
const journalVersion = 1

var (
	journalKey  = []byte("j/")
	progressKey = []byte("p/")
)

// appendJournalEntry appends one (code, serving region, day) count:
// uvarint-prefixed code and region, the day as a varint, people and bots
// as uvarints.
func appendJournalEntry(b []byte, k foldKey, d pair) []byte {
	b = binary.AppendUvarint(b, uint64(len(k.code)))
	b = append(b, k.code...)
	b = binary.AppendUvarint(b, uint64(len(k.region)))
	b = append(b, k.region...)
	b = binary.AppendVarint(b, k.day)
	b = binary.AppendUvarint(b, d.people)
	return binary.AppendUvarint(b, d.bots)
}

// readJournalEntry decodes the entry at the start of b and returns the rest.
func readJournalEntry(b []byte) (foldKey, pair, []byte, error) {
	var k foldKey
	var d pair
	str := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	num := func() (uint64, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 {
			return 0, false
		}
		b = b[w:]
		return n, true
	}
	var ok bool
	if k.code, ok = str(); !ok {
		return k, d, nil, errBadJournal
	}
	if k.region, ok = str(); !ok {
		return k, d, nil, errBadJournal
	}
	day, w := binary.Varint(b)
	if w <= 0 {
		return k, d, nil, errBadJournal
	}
	k.day, b = day, b[w:]
	if d.people, ok = num(); !ok {
		return k, d, nil, errBadJournal
	}
	if d.bots, ok = num(); !ok {
		return k, d, nil, errBadJournal
	}
	return k, d, b, nil
}

var errBadJournal = errors.New("click store: damaged journal")

// settle applies the rest of the journal, if one is being applied, in
// chunks (see Commit), resting between them when paced (not at open:
// nothing is served yet).
func (s *ClickStore) settle(paced bool) error {
	if s.applied == 0 {
		return nil
	}
	if s.applied == len(s.journal) { // applied whole, not deleted (the last chunk deletes it: not expected)
		s.deleteJournal()
		return nil
	}
	work := s.work
	for s.applied < len(s.journal) {
		if s.stopping.Load() {
			return errStopped
		}
		rest := s.journal[s.applied:]
		clear(work)
		for i := 0; i < clickChunk && len(rest) > 0; i++ {
			k, d, next, err := readJournalEntry(rest)
			if err != nil { // loadJournal checked it up to the progress; past it, a bug
				s.dropJournal(fmt.Errorf("%w at byte %d", err, len(s.journal)-len(rest)))
				return nil
			}
			rest = next
			for _, ck := range [...]counterKey{{kind: 't', code: k.code}, {kind: 'r', code: k.code, region: k.region}, {kind: 'd', code: k.code, day: k.day}} {
				cur, ok := work[ck]
				if !ok {
					if cur, ok = s.counts.get(ck); !ok {
						var err error
						if cur, err = s.get(ck.appendTo(s.key[:0])); err != nil {
							return err
						}
					}
				}
				work[ck] = pair{cur.people + d.people, cur.bots + d.bots}
			}
		}
		applied := len(s.journal) - len(rest)
		batch := s.db.NewBatch()
		var buf [16]byte
		for k, v := range work {
			s.key = k.appendTo(s.key[:0])
			binary.BigEndian.PutUint64(buf[:8], v.people)
			binary.BigEndian.PutUint64(buf[8:], v.bots)
			_ = batch.Set(s.key, buf[:], nil) // a batch being built fails only when closed
		}
		if applied == len(s.journal) {
			_ = batch.Delete(journalKey, nil)
			_ = batch.Delete(progressKey, nil)
		} else {
			binary.BigEndian.PutUint64(buf[:8], uint64(applied))
			_ = batch.Set(progressKey, buf[:8], nil)
		}
		// Not synced: a chunk lost with the power is in the journal, whose
		// progress is lost with it (Pebble's log keeps a prefix).
		err := batch.Commit(pebble.NoSync)
		batch.Close()
		if err != nil {
			return fmt.Errorf("click store: %w", err)
		}
		for k, v := range work {
			s.counts.put(k, v)
		}
		s.applied = applied
		if s.afterChunk != nil {
			s.afterChunk()
		}
		if paced && applied < len(s.journal) {
			s.rest()
		}
	}
	clear(work)
	s.applied = 0
	s.journal = s.journal[:0]
	if cap(s.journal) > 1<<20 { // a burst's journal is not kept for ever
		s.journal = nil
	}
	return nil
}

func (s *ClickStore) get(k []byte) (pair, error) {
	v, closer, err := s.db.Get(k)
	if err == pebble.ErrNotFound {
		return pair{}, nil
	}
	if err != nil {
		return pair{}, err
	}
	defer closer.Close()
	if len(v) != 16 {
		return pair{}, fmt.Errorf("click store: bad count at %q", k)
	}
	return pair{binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])}, nil
}

// Counts is people and bots.
type Counts struct {
	People uint64 `json:"people"`
	Bots   uint64 `json:"bots"`
}

// ClickStats is what GET /api/v1/links/{code}/stats serves.
type ClickStats struct {
	Code     string            `json:"code"`
	Total    Counts            `json:"total"`
	ByRegion map[string]Counts `json:"by_region"`
	ByDay    []DayCounts       `json:"by_day"`
}

// DayCounts is one UTC day.
type DayCounts struct {
	Day string `json:"day"` // YYYY-MM-DD
	Counts
}

// Stats returns the counts of code.
func (s *ClickStore) Stats(code string) (ClickStats, error) {
	st := ClickStats{Code: code, ByRegion: map[string]Counts{}, ByDay: []DayCounts{}}
	t, err := s.get([]byte("t/" + code))
	if err != nil {
		return st, err
	}
	st.Total = Counts{t.people, t.bots}
	scan := func(prefix string, fn func(rest string, p pair)) error {
		lo := []byte(prefix + code + "\x00")
		hi := []byte(prefix + code + "\x01")
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			v := it.Value()
			if len(v) == 16 {
				fn(string(it.Key()[len(lo):]), pair{binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])})
			}
		}
		return it.Error()
	}
	if err := scan("r/", func(region string, p pair) { st.ByRegion[region] = Counts{p.people, p.bots} }); err != nil {
		return st, err
	}
	if err := scan("d/", func(day string, p pair) { st.ByDay = append(st.ByDay, DayCounts{day, Counts{p.people, p.bots}}) }); err != nil {
		return st, err
	}
	sort.Slice(st.ByDay, func(i, j int) bool { return st.ByDay[i].Day < st.ByDay[j].Day })
	return st, nil
}
