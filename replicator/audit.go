package replicator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// Copy is one stream holding a region's events: the origin's own stream or
// one of its mirrors. Every copy of an origin has the origin's sequence
// numbers, so any copy can stand in for another up to its last sequence.
type Copy struct {
	Stream   string `json:"stream"`
	Origin   string `json:"origin"` // the region whose events it holds
	Region   string `json:"region"` // the region (NATS cluster) holding it
	Mirror   bool   `json:"mirror"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// LogCopies is every copy of every region's event log found in a supercluster.
type LogCopies []Copy

// Origins returns the origin regions, sorted.
func (l LogCopies) Origins() []string {
	var out []string
	for _, c := range l {
		if !slices.Contains(out, c.Origin) {
			out = append(out, c.Origin)
		}
	}
	slices.Sort(out)
	return out
}

// Regions returns every region holding a copy, sorted.
func (l LogCopies) Regions() []string {
	var out []string
	for _, c := range l {
		if !slices.Contains(out, c.Region) {
			out = append(out, c.Region)
		}
	}
	slices.Sort(out)
	return out
}

// OriginStream returns the origin's own stream, if it was found.
func (l LogCopies) OriginStream(origin string) (Copy, bool) {
	for _, c := range l {
		if c.Origin == origin && !c.Mirror {
			return c, true
		}
	}
	return Copy{}, false
}

// HeldBy returns the copies region holds: its own stream and its mirrors of
// the others, what its projection folds.
func (l LogCopies) HeldBy(region string) LogCopies {
	var out LogCopies
	for _, c := range l {
		if c.Region == region {
			out = append(out, c)
		}
	}
	return out
}

// Named returns the copy called stream.
func (l LogCopies) Named(stream string) (Copy, bool) {
	for _, c := range l {
		if c.Stream == stream {
			return c, true
		}
	}
	return Copy{}, false
}

// Alternatives returns the copies of the same origin as stream, other than
// stream itself, that hold at least up to seq: the origin first.
func (l LogCopies) Alternatives(stream string, seq uint64) LogCopies {
	c, ok := l.Named(stream)
	if !ok {
		return nil
	}
	var out LogCopies
	for _, o := range l {
		if o.Origin == c.Origin && o.Stream != stream && o.LastSeq >= seq {
			out = append(out, o)
		}
	}
	slices.SortStableFunc(out, func(a, b Copy) int {
		switch {
		case !a.Mirror && b.Mirror:
			return -1
		case a.Mirror && !b.Mirror:
			return 1
		}
		return 0
	})
	return out
}

// DiscoverLog lists the streams of the supercluster and returns every copy
// of every region's log (the streams named LINKS_*), sorted by region, then
// origin stream first. A stream's region is the NATS cluster it is placed
// in (for a mirror, the region its name ends with: MirrorName); a
// mirror's origin is the region of the stream it mirrors. Discovery
// needs a JetStream meta leader, as listing streams does.
func DiscoverLog(ctx context.Context, c *Conn) (LogCopies, error) {
	infos := map[string]*jetstream.StreamInfo{}
	lister := c.js.ListStreams(ctx)
	for info := range lister.Info() {
		if strings.HasPrefix(info.Config.Name, "LINKS_") {
			infos[info.Config.Name] = info
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	originOf := map[string]string{} // origin stream -> region
	for name, info := range infos {
		if info.Config.Mirror != nil {
			continue
		}
		region, ok := subjectRegion(info.Config.Subjects)
		if !ok || StreamName(region) != name {
			continue // not a region's log
		}
		originOf[name] = region
	}
	var out LogCopies
	for name, info := range infos {
		c := Copy{Stream: name, Region: clusterOf(info), FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
		if info.Config.Mirror != nil {
			origin, ok := originOf[info.Config.Mirror.Name]
			if !ok {
				origin, ok = regionOfStream(info.Config.Mirror.Name)
			}
			if !ok {
				continue
			}
			c.Origin, c.Mirror = origin, true
		} else {
			region, ok := originOf[name]
			if !ok {
				continue
			}
			c.Origin, c.Region = region, region // LINKS_<X> is placed in X's cluster
		}
		if c.Mirror {
			// MirrorName says where a mirror is held, also where no
			// placement or cluster tells (a lone server).
			if _, here, ok := strings.Cut(name, "_AT_"); ok {
				if r := strings.ToLower(strings.ReplaceAll(here, "_", "-")); events.ValidateRegion(r) == nil {
					c.Region = r
				}
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Copy) int {
		if a.Region != b.Region {
			return strings.Compare(a.Region, b.Region)
		}
		if a.Mirror != b.Mirror {
			if !a.Mirror {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Origin, b.Origin)
	})
	return out, nil
}

func clusterOf(info *jetstream.StreamInfo) string {
	if info.Config.Placement != nil && info.Config.Placement.Cluster != "" {
		return info.Config.Placement.Cluster
	}
	if info.Cluster != nil {
		return info.Cluster.Name
	}
	return ""
}

// subjectRegion reads the region out of an origin stream's subjects,
// links.<region>.>.
func subjectRegion(subjects []string) (string, bool) {
	if len(subjects) != 1 {
		return "", false
	}
	s, ok := strings.CutPrefix(subjects[0], "links.")
	if !ok {
		return "", false
	}
	region, ok := strings.CutSuffix(s, ".>")
	if !ok || events.ValidateRegion(region) != nil {
		return "", false
	}
	return region, true
}

// regionOfStream guesses the region of an origin stream from its name, for
// a mirror whose origin is not reachable to read its subjects.
func regionOfStream(name string) (string, bool) {
	s, ok := strings.CutPrefix(name, "LINKS_")
	if !ok || s == "" || strings.Contains(s, "_AT_") {
		return "", false
	}
	region := strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	return region, events.ValidateRegion(region) == nil
}

// ReadOptions bounds what Read delivers.
type ReadOptions struct {
	From    uint64 // first sequence; 0 or 1 for the start
	To      uint64 // last sequence; 0 for the stream's last sequence when Read starts
	Subject string // only messages on this subject (a code's events); "" for all
	// Batch is how many records each call of the callback gets at most;
	// default 1024.
	Batch int
}

// Read delivers the records of stream in sequence order through an ordered
// (ephemeral, in-memory, unacknowledged) consumer: JetStream's fastest way
// to read a stream, and one that leaves no durable state on the server.
// It calls fn with batches and stops at opts.To, at the end of the stream
// as it was when Read started, or at the first error fn returns. The
// callback may keep the records' Data. A subject filter can skip
// sequences; without one a gap is reported as an error, since the log
// denies deletes.
func Read(ctx context.Context, c *Conn, stream string, opts ReadOptions, fn func([]events.Record) error) error {
	batch := opts.Batch
	if batch <= 0 {
		batch = 1024
	}
	recs := make([]events.Record, 0, batch)
	err := scan(ctx, c.js, stream, opts, batch, func(m jetstream.Msg, seq uint64, last bool) error {
		recs = append(recs, events.Record{Stream: stream, Seq: seq, Subject: m.Subject(), Data: m.Data(), Signature: m.Headers().Get(events.SignatureHeader)})
		if len(recs) < batch && !last {
			return nil
		}
		err := fn(recs)
		recs = make([]events.Record, 0, batch)
		return err
	})
	if err == nil && len(recs) > 0 {
		return fn(recs)
	}
	return err
}

// scan calls each with every message of stream within opts, in sequence
// order, through an ordered consumer pulling up to 4 x batch ahead; last is
// set on the final one. It stops at the first error each returns.
func scan(ctx context.Context, js jetstream.JetStream, stream string, opts ReadOptions, batch int, each func(m jetstream.Msg, seq uint64, last bool) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", stream, err)
	}
	info := s.CachedInfo()
	to := opts.To
	if to == 0 || to > info.State.LastSeq {
		to = info.State.LastSeq
	}
	from := max(opts.From, 1, info.State.FirstSeq)
	if from > to {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	if opts.Subject != "" {
		cfg.FilterSubjects = []string{opts.Subject}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if opts.Subject != "" && cons.CachedInfo().NumPending == 0 {
		return nil // nothing on the subject
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4 * batch))
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	want := from
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s after #%d: %w", stream, want-1, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		seq, pending := md.Sequence.Stream, md.NumPending
		if seq < want {
			continue // an ordered consumer reset redelivers what it already gave
		}
		if opts.Subject == "" && seq != want {
			return fmt.Errorf("read %s: gap: want #%d, got #%d", stream, want, seq)
		}
		if seq > to {
			return nil
		}
		want = seq + 1
		last := seq == to || pending == 0
		if err := each(m, seq, last); err != nil || last {
			return err
		}
	}
}

// recordHash is what two copies must agree on for one sequence: the
// sequence and the stored event. Headers are left out (JetStream adds its
// own to mirrored messages) and so is the store time (a mirror keeps the
// origin's, but the event carries its own producer time anyway).
func recordHash(seq uint64, data []byte) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// RangeDigest is a SHA-256 over the records First..Last of one copy.
type RangeDigest struct {
	First, Last uint64
	Sum         string
}

// RangeDigests reads stream from 1 to upTo and returns a digest of every
// range of size sequences (the last range may be shorter).
func RangeDigests(ctx context.Context, c *Conn, stream string, upTo uint64, size int) ([]RangeDigest, error) {
	if size <= 0 {
		return nil, fmt.Errorf("range size %d", size)
	}
	var out []RangeDigest
	h := sha256.New()
	var cur RangeDigest
	flush := func() {
		cur.Sum = hex.EncodeToString(h.Sum(nil))
		out = append(out, cur)
		h.Reset()
		cur = RangeDigest{}
	}
	err := Read(ctx, c, stream, ReadOptions{From: 1, To: upTo, Batch: 1024}, func(recs []events.Record) error {
		for _, r := range recs {
			if cur.First == 0 {
				cur.First = r.Seq
			}
			rh := recordHash(r.Seq, r.Data)
			h.Write(rh[:])
			cur.Last = r.Seq
			if int(cur.Last-cur.First+1) == size {
				flush()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cur.First != 0 {
		flush()
	}
	if got := lastOf(out); got != upTo {
		return nil, fmt.Errorf("%s: read up to #%d, want #%d", stream, got, upTo)
	}
	return out, nil
}

func lastOf(ds []RangeDigest) uint64 {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1].Last
}

// CopyReport is the comparison of a mirror with its origin.
type CopyReport struct {
	Origin       string `json:"origin"`        // the origin stream
	Mirror       string `json:"mirror"`        // the mirror stream
	OriginLast   uint64 `json:"origin_last"`   // last sequence of each, when compared
	MirrorLast   uint64 `json:"mirror_last"`   //
	Common       uint64 `json:"common"`        // compared up to this sequence
	Ranges       int    `json:"ranges"`        // range digests compared
	RangesDiffer int    `json:"ranges_differ"` // of which differ
	// FirstDiff is the first sequence whose record differs, 0 when the
	// copies agree up to Common.
	FirstDiff uint64 `json:"first_diff,omitempty"`
	// OriginEvent and MirrorEvent describe the records at FirstDiff.
	OriginEvent string `json:"origin_event,omitempty"`
	MirrorEvent string `json:"mirror_event,omitempty"`
}

// Equal reports whether the copies agree up to their common sequence.
func (r CopyReport) Equal() bool { return r.FirstDiff == 0 }

// CompareCopies checks that mirror holds what origin holds, up to the
// last sequence both have: digests over ranges of size sequences first,
// computed for both streams at once, then, in the first range that
// differs, record by record for the first differing sequence.
func CompareCopies(ctx context.Context, c *Conn, origin, mirror string, size int) (CopyReport, error) {
	rep := CopyReport{Origin: origin, Mirror: mirror}
	for _, x := range []struct {
		name string
		last *uint64
	}{{origin, &rep.OriginLast}, {mirror, &rep.MirrorLast}} {
		s, err := c.js.Stream(ctx, x.name)
		if err != nil {
			return rep, fmt.Errorf("open stream %s: %w", x.name, err)
		}
		*x.last = s.CachedInfo().State.LastSeq
	}
	rep.Common = min(rep.OriginLast, rep.MirrorLast)
	if rep.Common == 0 {
		return rep, nil
	}
	var a, b []RangeDigest
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a, errA = RangeDigests(ctx, c, origin, rep.Common, size) }()
	go func() { defer wg.Done(); b, errB = RangeDigests(ctx, c, mirror, rep.Common, size) }()
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		return rep, err
	}
	rep.Ranges = len(a)
	var first *RangeDigest
	for i := range a {
		if a[i] != b[i] {
			rep.RangesDiffer++
			if first == nil {
				first = &a[i]
			}
		}
	}
	if first == nil {
		return rep, nil
	}
	ra, err := readRange(ctx, c, origin, first.First, first.Last)
	if err != nil {
		return rep, err
	}
	rb, err := readRange(ctx, c, mirror, first.First, first.Last)
	if err != nil {
		return rep, err
	}
	for i := range ra {
		if i >= len(rb) || ra[i].Seq != rb[i].Seq || !bytes.Equal(ra[i].Data, rb[i].Data) {
			rep.FirstDiff = ra[i].Seq
			rep.OriginEvent = Describe(ra[i].Data)
			if i < len(rb) {
				rep.MirrorEvent = Describe(rb[i].Data)
			}
			return rep, nil
		}
	}
	return rep, fmt.Errorf("%s and %s: range #%d..#%d digests differ but no record does (the copies changed while read?)",
		origin, mirror, first.First, first.Last)
}

func readRange(ctx context.Context, c *Conn, stream string, from, to uint64) ([]events.Record, error) {
	var out []events.Record
	err := Read(ctx, c, stream, ReadOptions{From: from, To: to}, func(recs []events.Record) error {
		out = append(out, recs...)
		return nil
	})
	return out, err
}

// Describe summarises a stored record for a report: the event's type,
// code, id and time, or why it is not an event.
func Describe(data []byte) string {
	e, err := events.Decode(data)
	if err != nil {
		return fmt.Sprintf("not a valid event (%v), sha256 %x", err, sha256.Sum256(data))
	}
	desc := fmt.Sprintf("%s %s id %s at %s", e.Type, e.Code, e.ID, e.Time.Format(time.RFC3339Nano))
	if len(e.Payload) > 0 && e.Type != events.TypeRegionHeartbeat {
		desc += " " + string(e.Payload)
	}
	return desc
}
