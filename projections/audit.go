package projections

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
	lru "github.com/hashicorp/golang-lru/v2"

	"shortener/events"
)

// DigestBuckets is how many buckets Digests splits the link rows into, by a
// hash of the code: two stores whose digests differ name the buckets that
// differ, and only those buckets' rows need comparing to name the codes.
const DigestBuckets = 256

// Bucket returns the digest bucket of code.
func Bucket(code string) int {
	h := fnv.New32a()
	h.Write([]byte(code))
	return int(h.Sum32() % DigestBuckets)
}

// Digests is a consistent picture of a store for an audit: the digest of
// every link row (Store.Digest's), a digest per bucket, and the checkpoints,
// all read from one snapshot, so that the digest is exactly the fold of the
// records up to the checkpoints.
type Digests struct {
	Digest      string            `json:"digest"`
	Links       int               `json:"links"`
	Checkpoints map[string]uint64 `json:"checkpoints"`
	Buckets     []string          `json:"buckets"` // DigestBuckets digests, in bucket order
}

// Digests reads the store's digests from one snapshot.
func (s *Store) Digests() (Digests, error) {
	d, _, err := s.DigestsAndRows(nil)
	return d, err
}

// DigestsAndRows reads the store's digests and, for the codes of the given
// buckets, a SHA-256 of each code's row, all from one snapshot: enough to
// name the codes whose rows differ between two stores without moving the
// rows.
func (s *Store) DigestsAndRows(buckets []int) (Digests, map[string]string, error) {
	want := make([]bool, DigestBuckets)
	for _, b := range buckets {
		if b < 0 || b >= DigestBuckets {
			return Digests{}, nil, events.FieldError("bucket", fmt.Sprintf("must be 0 to %d", DigestBuckets-1))
		}
		want[b] = true
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	d := Digests{Checkpoints: map[string]uint64{}, Buckets: make([]string, DigestBuckets)}
	err := scanIn(snap, prefixCheckpoint, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("checkpoint %q: %d bytes", k, len(v))
		}
		d.Checkpoints[string(k[len(prefixCheckpoint):])] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return Digests{}, nil, err
	}
	all := sha256.New()
	hs := make([]hash.Hash, DigestBuckets)
	for i := range hs {
		hs[i] = sha256.New()
	}
	var rows map[string]string
	if len(buckets) > 0 {
		rows = map[string]string{}
	}
	err = scanIn(snap, prefixLink, func(k, v []byte) error {
		code := string(k[len(prefixLink):])
		b := Bucket(code)
		writeRow(all, k, v)
		writeRow(hs[b], k, v)
		d.Links++
		if want[b] {
			sum := sha256.Sum256(v)
			rows[code] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		return Digests{}, nil, err
	}
	d.Digest = hex.EncodeToString(all.Sum(nil))
	for i, h := range hs {
		d.Buckets[i] = hex.EncodeToString(h.Sum(nil))
	}
	return d, rows, nil
}

// writeRow feeds one row to a digest exactly as Store.Digest does.
func writeRow(h hash.Hash, k, v []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(k)))
	h.Write(n[:])
	h.Write(k)
	binary.BigEndian.PutUint32(n[:], uint32(len(v)))
	h.Write(n[:])
	h.Write(v)
}

// BucketRows returns, for the codes of the given buckets, a SHA-256 of each
// code's row (see DigestsAndRows).
func (s *Store) BucketRows(buckets []int) (map[string]string, error) {
	_, rows, err := s.DigestsAndRows(buckets)
	return rows, err
}

func scanIn(r reader, prefix string, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// Links calls fn with every link row in code order (deleted ones too).
func (s *Store) Links(fn func(events.Link) error) error {
	return s.scan(prefixLink, func(k, v []byte) error {
		var l events.Link
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("decode link %s: %w", k[len(prefixLink):], err)
		}
		return fn(l)
	})
}

// OpenReadOnly opens an existing store without writing to it: the store of
// a stopped region, for an audit. A store in use by a running region is
// locked and cannot be opened.
func OpenReadOnly(dir string) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, ErrorIfNotExists: true,
		Logger: pebbleLogger{noLogger()}})
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only (a running region locks its store: stop it, or compare over HTTP): %w", dir, err)
	}
	s := &Store{db: db, log: noLogger(), changed: make(chan struct{}), write: pebble.NoSync}
	if s.cache, err = newCache(16); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// RowDiff is one code whose row differs between two stores.
type RowDiff struct {
	Code string `json:"code"`
	// What is "differs" (both have a row, not the same), "missing" (the
	// compared store has none) or "extra" (only the compared store has one).
	What string `json:"what"`
}

// CompareDigests returns the buckets whose digests differ.
func CompareDigests(want, got Digests) []int {
	var out []int
	for i := 0; i < DigestBuckets; i++ {
		var w, g string
		if i < len(want.Buckets) {
			w = want.Buckets[i]
		}
		if i < len(got.Buckets) {
			g = got.Buckets[i]
		}
		if w != g {
			out = append(out, i)
		}
	}
	return out
}

// CompareRows names the codes whose rows differ between want (a replay)
// and got (the store audited), sorted by code.
func CompareRows(want, got map[string]string) []RowDiff {
	var out []RowDiff
	for code, w := range want {
		g, ok := got[code]
		switch {
		case !ok:
			out = append(out, RowDiff{Code: code, What: "missing"})
		case g != w:
			out = append(out, RowDiff{Code: code, What: "differs"})
		}
	}
	for code := range got {
		if _, ok := want[code]; !ok {
			out = append(out, RowDiff{Code: code, What: "extra"})
		}
	}
	slices.SortFunc(out, func(a, b RowDiff) int { return strings.Compare(a.Code, b.Code) })
	return out
}

// Step is one event of a link's history in fold order, with the link's
// state once it is folded in.
type Step struct {
	Stream    string          `json:"stream"`
	Seq       uint64          `json:"seq"`
	Event     events.Envelope `json:"event"`
	Duplicate bool            `json:"duplicate,omitempty"` // the same event already folded from another record
	Refused   string          `json:"refused,omitempty"`   // why the checks refused it (events.Rejection): not folded
	Changed   bool            `json:"changed"`             // the fold rules let it change the link
	State     events.Link     `json:"state"`               // the link after it
}

// History folds the records of one code (from any streams, in any order)
// and returns every event in fold order with the state after it. Records
// that are not valid events, or are about another code, are returned as
// errors in skipped, as a projection skips them. An event that rules
// refuse (events.Rules.CheckRecord: misplaced, or not signed by its
// origin) is listed, marked Refused, and not folded, as a projection does.
func History(code string, recs []events.Record, rules events.Rules) (steps []Step, skipped []error) {
	type item struct {
		rec events.Record
		e   events.Envelope
	}
	var items []item
	for _, r := range recs {
		e, err := events.Decode(r.Data)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%s #%d: %w", r.Stream, r.Seq, err))
			continue
		}
		if e.Code != code {
			skipped = append(skipped, fmt.Errorf("%s #%d: event of code %q, not %q", r.Stream, r.Seq, e.Code, code))
			continue
		}
		items = append(items, item{r, e})
	}
	slices.SortStableFunc(items, func(a, b item) int {
		switch {
		case events.Before(a.e, b.e):
			return -1
		case events.Before(b.e, a.e):
			return 1
		}
		return strings.Compare(a.rec.Stream, b.rec.Stream)
	})
	var l events.Link
	folded := map[string]bool{} // event IDs folded so far
	for _, it := range items {
		if rej := rules.CheckRecord(it.e, it.rec); rej != nil {
			steps = append(steps, Step{Stream: it.rec.Stream, Seq: it.rec.Seq, Event: it.e, Refused: rej.Error(), State: l})
			continue
		}
		dup := folded[it.e.ID]
		folded[it.e.ID] = true
		before := l
		if !dup {
			l = events.Apply(l, it.e)
		}
		steps = append(steps, Step{Stream: it.rec.Stream, Seq: it.rec.Seq, Event: it.e, Duplicate: dup,
			Changed: !dup && changed(before, l), State: l})
	}
	return steps, skipped
}

// changed reports whether folding an event changed the link itself, not
// only the fold position.
func changed(a, b events.Link) bool {
	a.LastTime, a.LastID, a.Events = time.Time{}, "", 0
	b.LastTime, b.LastID, b.Events = time.Time{}, "", 0
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) != string(y)
}

// LinkState is what a link pointed to at one moment.
type LinkState string

// The states of a link at a moment.
const (
	StateAbsent  LinkState = "absent"  // not created yet (or never)
	StateActive  LinkState = "active"  // redirected
	StateExpired LinkState = "expired" // created, but past its expiry: 410
	StateDeleted LinkState = "deleted" // deleted: 410
)

// StateAt returns the state of l at t, l being the fold of the events up
// to t.
func StateAt(l events.Link, t time.Time) LinkState {
	switch {
	case !l.Exists():
		return StateAbsent
	case l.Deleted:
		return StateDeleted
	case l.Expired(t):
		return StateExpired
	}
	return StateActive
}

// At folds the steps of a history up to and including t and returns the
// link as it was then.
func At(steps []Step, t time.Time) events.Link {
	var l events.Link
	for _, s := range steps {
		if s.Event.Time.After(t) {
			break
		}
		l = s.State
	}
	return l
}

// Until bounds a replay: by producer time, or by stream sequence.
type Until struct {
	Time time.Time // zero: no time bound
	Seq  uint64    // 0: no sequence bound
}

// IsZero reports whether u bounds nothing.
func (u Until) IsZero() bool { return u.Time.IsZero() && u.Seq == 0 }

// String returns u in the form ParseUntil reads.
func (u Until) String() string {
	switch {
	case u.Seq > 0:
		return strconv.FormatUint(u.Seq, 10)
	case !u.Time.IsZero():
		return u.Time.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// ParseUntil reads a bound given as TIME or SEQ: a positive decimal stream
// sequence, or a time in RFC 3339 (2026-11-22T12:00:00Z, with fractional
// seconds and any offset), also without the offset (taken as UTC) or as a
// date alone (midnight UTC). It returns an Invalid error naming the input
// otherwise, and never panics.
func ParseUntil(s string) (Until, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Until{}, events.FieldError("until", "empty: want a time (RFC 3339) or a sequence number")
	}
	if s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, "-:T") {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return Until{}, events.FieldError("until", fmt.Sprintf("%q: a sequence must be a whole number from 1", s))
		}
		return Until{Seq: n}, nil
	}
	t, err := ParseTime(s)
	if err != nil {
		var e *events.Error
		if errors.As(err, &e) {
			e.Field = "until"
		}
		return Until{}, err
	}
	return Until{Time: t}, nil
}

// ParseTime reads a moment in the forms ParseUntil accepts for a time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1970 || t.Year() > 2261 {
				return time.Time{}, events.FieldError("time", fmt.Sprintf("%q: out of range (1970 to 2261)", s))
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, events.FieldError("time", fmt.Sprintf("%q: want RFC 3339, e.g. 2026-11-22T12:00:00Z, or a date 2026-11-22", s))
}

func newCache(size int) (*lru.Cache[string, Entry], error) {
	c, err := lru.New[string, Entry](size)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return c, nil
}

func noLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
