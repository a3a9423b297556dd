package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// Feed delivers the records of several streams to one projection through a
// durable pull consumer per stream, created at start-up. It implements the
// projection's source: Next, Get and Ack.
type Feed struct {
	js      jetstream.JetStream
	durable string

	msgs    chan delivery
	streams map[string]jetstream.Stream
	wg      sync.WaitGroup
	cancel  context.CancelFunc

	catchUps atomic.Int64 // times a puller switched to fetching (tests)

	backlog []events.Record          // delivered before a restart but never applied: fetched at Open
	unacked map[string]jetstream.Msg // per stream, the last message handed out and not yet acknowledged
}

// delivery is one record handed on by a stream's puller: a message of the
// consumer, or a record fetched by sequence where deliveries were lost.
type delivery struct {
	m   jetstream.Msg // nil for a fetched record
	rec events.Record // a fetched record
}

// A catch-up is how a stream's puller reads a stream being filled with old
// events (a mirror copying what its origin wrote while this region was
// down). Following such a stream's head with a waiting pull request costs
// its writer dearly: nats-server 2.15 drops the cache of the block a
// consumer reads the last message of, unless the block was written within
// 10 s, and takes a block's write time from the events' own timestamps,
// which a mirror keeps from its origin; so every read at the head made the
// mirror reload and re-index its whole block before its next write (26 to
// 30% of a restarted region's CPU, the mirror at 0.3x to 0.5x of a plain
// one: docs/benchmarks.md). The puller therefore, when an event it gets is
// at the head and older than catchupAge, cancels its waiting pull and
// fetches what is there every catchupEvery instead, until the events it
// gets are recent again (or there are none). Variables for tests.
var (
	catchupAge   = 2 * time.Second
	catchupEvery = 50 * time.Millisecond
)

const catchupFetch = 1000 // records per fetch while catching up

// NewFeed returns a Feed whose consumers are named durable. It does no I/O.
func NewFeed(c *Conn, durable string) *Feed { return newFeed(c.js, durable) }

func newFeed(js jetstream.JetStream, durable string) *Feed {
	return &Feed{js: js, durable: durable, msgs: make(chan delivery, 4096),
		streams: map[string]jetstream.Stream{}, unacked: map[string]jetstream.Msg{}}
}

// ConsumerConfig is the durable consumer a projection reads stream with,
// starting after the projection's checkpoint.
func ConsumerConfig(durable string, checkpoint uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "projection feed",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 20000,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if checkpoint > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = checkpoint + 1
	}
	return cfg
}

// Open finds or creates the consumer of every stream, positioned for a
// projection whose checkpoint for a stream is checkpoint(stream), and starts
// pulling. A consumer that acknowledged past the checkpoint (the projection
// lost writes, or was wiped for a rebuild) is re-created behind it. Records
// that a consumer delivered before a restart but the projection never
// applied are fetched directly, so catching up never waits for redelivery.
func (f *Feed) Open(ctx context.Context, streams []string, checkpoint func(stream string) uint64) error {
	rctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, name := range streams {
		s, err := f.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("open stream %s: %w", name, err)
		}
		f.streams[name] = s
		cp := checkpoint(name)
		cons, err := f.consumer(ctx, s, name, cp)
		if err != nil {
			return err
		}
		if info := cons.CachedInfo(); info.Delivered.Stream > cp {
			for seq := cp + 1; seq <= info.Delivered.Stream; seq++ {
				r, err := f.Get(ctx, name, seq)
				if err != nil {
					return fmt.Errorf("fetch undelivered %s #%d: %w", name, seq, err)
				}
				f.backlog = append(f.backlog, r)
			}
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1000))
		if err != nil {
			return fmt.Errorf("pull from %s: %w", name, err)
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			p := &puller{f: f, stream: s, name: name, cons: cons}
			p.run(rctx, it)
		}()
	}
	return nil
}

// puller hands on one stream's records to the feed, in stream order and
// without a gap: deliveries lost when a waiting pull is cancelled (a
// catch-up starts) are fetched by sequence.
type puller struct {
	f      *Feed
	stream jetstream.Stream
	name   string
	cons   jetstream.Consumer
	last   uint64 // stream sequence of the last record handed on; 0: none yet
}

func (p *puller) run(ctx context.Context, it jetstream.MessagesContext) {
	for {
		if it == nil {
			var err error
			if it, err = p.cons.Messages(jetstream.PullMaxMessages(1000)); err != nil {
				if !sleepCtx(ctx, 250*time.Millisecond) {
					return
				}
				continue
			}
		}
		// Live: a waiting pull request, each event delivered as it is stored.
		behind := false
		for !behind {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					it.Stop()
					return
				}
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					break
				}
				continue // heartbeats missed or a transient error: the iterator recovers
			}
			md, ok := p.handOn(ctx, m)
			if !ok {
				it.Stop()
				return
			}
			behind = old(md) && md.NumPending == 0
		}
		if behind {
			// Hand on what the iterator holds, then stop pulling.
			it.Drain()
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			for {
				m, err := it.Next(jetstream.NextContext(dctx))
				if err != nil {
					break
				}
				if _, ok := p.handOn(ctx, m); !ok {
					cancel()
					return
				}
			}
			cancel()
			if !p.catchUp(ctx) {
				return
			}
		}
		it = nil
	}
}

// catchUp fetches what the stream holds every catchupEvery while the
// records are old. It returns false when ctx ended.
func (p *puller) catchUp(ctx context.Context) bool {
	p.f.catchUps.Add(1)
	for {
		if !sleepCtx(ctx, catchupEvery) {
			return false
		}
		for {
			b, err := p.cons.FetchNoWait(catchupFetch)
			if err != nil {
				return ctx.Err() == nil // back to a waiting pull
			}
			n, recent := 0, false
			for m := range b.Messages() {
				md, ok := p.handOn(ctx, m)
				if !ok {
					return false
				}
				n++
				recent = md != nil && !old(md)
			}
			if n == 0 || recent {
				return true // nothing more, or up to date: a waiting pull again
			}
			if n < catchupFetch {
				break // all there was: wait for the stream to fill
			}
		}
	}
}

// old says whether a delivered record is old enough to mean a catch-up.
func old(md *jetstream.MsgMetadata) bool {
	return md != nil && time.Since(md.Timestamp) > catchupAge
}

// handOn passes m to the feed, after fetching by sequence any record
// between the last one handed on and m; a redelivered record already handed
// on is skipped. It returns m's metadata (nil if it has none), and false
// when ctx ended.
func (p *puller) handOn(ctx context.Context, m jetstream.Msg) (*jetstream.MsgMetadata, bool) {
	md, err := m.Metadata()
	if err != nil {
		return nil, true // not a JetStream message: cannot happen on a consumer's subject
	}
	seq := md.Sequence.Stream
	if seq <= p.last {
		return md, true
	}
	if p.last != 0 { // the first delivery has no known predecessor here
		for want := p.last + 1; want < seq; want++ {
			rec, ok := p.fetch(ctx, want)
			if !ok {
				return md, false
			}
			if rec.Data != nil && !p.send(ctx, delivery{rec: rec}) {
				return md, false
			}
		}
	}
	p.last = seq
	return md, p.send(ctx, delivery{m: m})
}

// fetch gets record seq, retrying until it succeeds or ctx ends; a
// sequence the stream no longer holds gives a record without data.
func (p *puller) fetch(ctx context.Context, seq uint64) (events.Record, bool) {
	wait := 50 * time.Millisecond
	for {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rec, err := getRecord(gctx, p.stream, p.name, seq)
		cancel()
		switch {
		case err == nil:
			return rec, true
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return events.Record{Stream: p.name, Seq: seq}, true
		}
		if !sleepCtx(ctx, wait) {
			return events.Record{}, false
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (p *puller) send(ctx context.Context, d delivery) bool {
	select {
	case p.f.msgs <- d:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f *Feed) consumer(ctx context.Context, s jetstream.Stream, name string, cp uint64) (jetstream.Consumer, error) {
	cons, err := s.Consumer(ctx, f.durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return nil, fmt.Errorf("consumer %s on %s: %w", f.durable, name, err)
	case cons.CachedInfo().AckFloor.Stream <= cp:
		return cons, nil
	default:
		if err := s.DeleteConsumer(ctx, f.durable); err != nil {
			return nil, fmt.Errorf("reset consumer %s on %s: %w", f.durable, name, err)
		}
	}
	cons, err = s.CreateConsumer(ctx, ConsumerConfig(f.durable, cp))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", f.durable, name, err)
	}
	return cons, nil
}

// Next returns at least one and at most max records, waiting for the first.
func (f *Feed) Next(ctx context.Context, max int) ([]events.Record, error) {
	if len(f.backlog) > 0 {
		n := min(max, len(f.backlog))
		out := f.backlog[:n:n]
		f.backlog = f.backlog[n:]
		return out, nil
	}
	var out []events.Record
	add := func(d delivery) {
		if d.m == nil {
			out = append(out, d.rec)
			return
		}
		md, err := d.m.Metadata()
		if err != nil {
			return // not a JetStream message: cannot happen on a consumer's subject
		}
		f.unacked[md.Stream] = d.m
		out = append(out, events.Record{Stream: md.Stream, Seq: md.Sequence.Stream, Subject: d.m.Subject(), Data: d.m.Data(), Signature: d.m.Headers().Get(events.SignatureHeader)})
	}
	select {
	case m := <-f.msgs:
		add(m)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < max {
		select {
		case m := <-f.msgs:
			add(m)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Get fetches one record by sequence, to fill a gap in what was delivered.
func (f *Feed) Get(ctx context.Context, stream string, seq uint64) (events.Record, error) {
	s, ok := f.streams[stream]
	if !ok {
		return events.Record{}, fmt.Errorf("unknown stream %s", stream)
	}
	return getRecord(ctx, s, stream, seq)
}

// getRecord reads record seq of stream s, named name.
func getRecord(ctx context.Context, s jetstream.Stream, name string, seq uint64) (events.Record, error) {
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return events.Record{}, fmt.Errorf("get %s #%d: %w", name, seq, err)
	}
	return events.Record{Stream: name, Seq: m.Sequence, Subject: m.Subject, Data: m.Data, Signature: m.Header.Get(events.SignatureHeader)}, nil
}

// Ack acknowledges everything handed out by Next so far: call it once the
// records are durably applied. The streams held (held(stream) true; held
// may be nil) are not acknowledged: a projection stopped at a record of
// it (projections.Halt) leaves the consumer's ack floor at or below its
// checkpoint, so that after a restart (an upgrade) the records from the
// halt on are fetched again (Open's backlog) instead of being lost behind
// an ack floor. Their deliveries are redelivered after AckWait and
// dropped by the puller as already handed on.
func (f *Feed) Ack(ctx context.Context, held func(stream string) bool) error {
	var errs []error
	for stream, m := range f.unacked {
		if held != nil && held(stream) {
			delete(f.unacked, stream)
			continue
		}
		if err := m.Ack(); err != nil {
			errs = append(errs, fmt.Errorf("ack %s: %w", stream, err))
		}
		delete(f.unacked, stream)
	}
	return errors.Join(errs...)
}

// Close stops pulling.
func (f *Feed) Close() {
	if f.cancel != nil {
		f.cancel() // each puller stops its pulling
	}
	f.wg.Wait()
}
