package projections

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
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
	pend    clickPending
	written []counterValue // Commit's scratch
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

type counterValue struct {
	k counterKey
	v pair
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
	s := &ClickStore{db: db, log: log, checkpoints: map[string]uint64{}, newest: map[string]time.Time{}, counts: newCounterCache(clickCountsCached)}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
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
	return scanIn(s.db, "o/", func(k, v []byte) error {
		s.newest[string(k[2:])] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		return nil
	})
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

// commitYield is how many counters a commit handles between yields of its
// goroutine. A commit of a few seconds of clicks handles tens of thousands
// of counters; on a region with one core, the redirects runnable behind it
// then wait a fraction of a millisecond at a time instead of a scheduler
// slice (10 ms) each.
const commitYield = 512

func yieldEvery(n *int) {
	if *n++; *n%commitYield == 0 {
		runtime.Gosched()
	}
}

// Commit writes the pending counts with the streams' checkpoints in one
// synced batch and returns the clicks it counted. On an error nothing is
// written and the pending counts stay, for the next Commit.
func (s *ClickStore) Commit() (int, error) {
	p := &s.pend
	if p.cps == nil {
		return 0, nil
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	var buf [16]byte
	var key []byte
	counters := make(map[counterKey]pair, 2*len(p.delta))
	n := 0
	for k, d := range p.delta {
		yieldEvery(&n)
		for _, ck := range [...]counterKey{{kind: 't', code: k.code}, {kind: 'r', code: k.code, region: k.region}, {kind: 'd', code: k.code, day: k.day}} {
			c := counters[ck]
			counters[ck] = pair{c.people + d.people, c.bots + d.bots}
		}
	}
	written := s.written[:0]
	for k, d := range counters {
		yieldEvery(&n)
		key = k.appendTo(key[:0])
		cur, ok := s.counts.get(k)
		if !ok {
			var err error
			if cur, err = s.get(key); err != nil {
				return 0, err
			}
		}
		cur = pair{cur.people + d.people, cur.bots + d.bots}
		written = append(written, counterValue{k, cur}) // not into delta: a failed commit is retried from it
		binary.BigEndian.PutUint64(buf[:8], cur.people)
		binary.BigEndian.PutUint64(buf[8:], cur.bots)
		if err := batch.Set(key, buf[:], nil); err != nil {
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
	for _, w := range written {
		yieldEvery(&n)
		s.counts.put(w.k, w.v)
	}
	clear(written) // no codes kept alive by the scratch
	s.written = written[:0]
	s.mu.Lock()
	s.checkpoints = p.cps
	for o, t := range p.newest {
		if t.After(s.newest[o]) {
			s.newest[o] = t
		}
	}
	s.mu.Unlock()
	counted := p.counted
	p.cps, p.delta, p.newest, p.counted = nil, nil, nil, 0
	return counted, nil
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
