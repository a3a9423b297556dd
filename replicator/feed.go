package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

	msgs    chan jetstream.Msg
	streams map[string]jetstream.Stream
	iters   []jetstream.MessagesContext
	wg      sync.WaitGroup
	cancel  context.CancelFunc

	backlog []events.Record          // delivered before a restart but never applied: fetched at Open
	unacked map[string]jetstream.Msg // per stream, the last message handed out and not yet acknowledged
}

// NewFeed returns a Feed whose consumers are named durable. It does no I/O.
func NewFeed(js jetstream.JetStream, durable string) *Feed {
	return &Feed{js: js, durable: durable, msgs: make(chan jetstream.Msg, 4096),
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
		f.iters = append(f.iters, it)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				m, err := it.Next(jetstream.NextContext(rctx))
				if err != nil {
					if errors.Is(err, jetstream.ErrMsgIteratorClosed) || rctx.Err() != nil {
						return
					}
					continue // heartbeats missed or a transient error: the iterator recovers
				}
				select {
				case f.msgs <- m:
				case <-rctx.Done():
					return
				}
			}
		}()
	}
	return nil
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
	add := func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return // not a JetStream message: cannot happen on a consumer's subject
		}
		f.unacked[md.Stream] = m
		out = append(out, events.Record{Stream: md.Stream, Seq: md.Sequence.Stream, Data: m.Data()})
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
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return events.Record{}, fmt.Errorf("get %s #%d: %w", stream, seq, err)
	}
	return events.Record{Stream: stream, Seq: m.Sequence, Data: m.Data}, nil
}

// Ack acknowledges everything handed out by Next so far: call it once the
// records are durably applied.
func (f *Feed) Ack(ctx context.Context) error {
	var errs []error
	for stream, m := range f.unacked {
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
		f.cancel()
	}
	for _, it := range f.iters {
		it.Stop()
	}
	f.wg.Wait()
}
