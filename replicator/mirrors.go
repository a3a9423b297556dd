package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A region's mirror of another region's stream is fed by a durable push
// consumer on the origin's stream that the mirror's region creates
// (nats-server's durable sourcing, API level 4). Unlike the ephemeral
// consumer nats-server makes for a mirror of its own, it outlives the link:
// after a restart or a cut the mirror asks the origin to reset it, waits at
// most 5 s for the answer (30 s for an ephemeral create), and a heartbeat of
// the consumer ends any backoff at once. docs/decisions.md, "Mirrors".

// SourceConsumerIdle is how long a mirror's source consumer may have no
// mirror listening before its origin deletes it: left behind by a mirror
// created again (a region rebuilt from an empty disk), it would otherwise
// stay for ever. A region down longer finds its consumer gone and
// EnsureSourceConsumers creates it again after what the mirror holds.
const SourceConsumerIdle = 72 * time.Hour

// DurableMirrorConfig is MirrorConfig fed by the durable push consumer
// named consumer on the origin's stream (SourceConsumerConfig). A mirror's
// Mirror settings cannot be changed once it exists.
func DurableMirrorConfig(origin, here, consumer string) jetstream.StreamConfig {
	cfg := MirrorConfig(origin, here)
	cfg.Mirror.Consumer = &jetstream.StreamConsumerSource{Name: consumer, DeliverSubject: sourceDeliverSubject(consumer)}
	return cfg
}

func sourceDeliverSubject(consumer string) string { return "_mirror." + consumer }

// NewSourceConsumerName names the source consumer of a mirror of origin in
// here about to be created: the mirror's name, "-" and a new id. Every
// mirror gets its own, so that a mirror created again never resumes from an
// earlier mirror's consumer: a reset moves a mirror to its consumer's ack
// floor, and nats-server fills the sequences it skips with nothing.
func NewSourceConsumerName(origin, here string) string {
	return MirrorName(origin, here) + "-" + strconv.FormatInt(time.Now().UnixMicro(), 36)
}

// SourceConsumerConfig is the durable push consumer on origin's stream that
// feeds the mirror DurableMirrorConfig(origin, here, name), from stream
// sequence start (1: from the beginning). nats-server requires for durable
// sourcing acknowledgement by flow control, push with flow control, a 1 s
// idle heartbeat and MaxAckPending > 0 (server/consumer.go,
// checkConsumerCfg).
func SourceConsumerConfig(origin, here, name string, start uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:           name,
		Description:       "feeds " + MirrorName(origin, here),
		DeliverSubject:    sourceDeliverSubject(name),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckFlowControlPolicy,
		FlowControl:       true,
		IdleHeartbeat:     time.Second,
		MaxAckPending:     10000,
		InactiveThreshold: SourceConsumerIdle,
	}
	if start > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	return cfg
}

// FirstSourceWait bounds how long EnsureMirror tries to create a new
// mirror's source consumer before it creates the mirror anyway. A mirror
// whose consumer does not exist yet is refused by the origin and retries
// after 10 s, 20 s, ... (at most 2 minutes), so the consumer comes first
// when the origin answers: in a cluster starting together the origin's
// stream is usually a moment away.
var FirstSourceWait = 10 * time.Second

// EnsureMirror makes sure region here holds its mirror of origin's stream.
// A missing one is created fed by a new durable source consumer, created on
// the origin first if it answers within FirstSourceWait (afterwards
// EnsureSourceConsumers keeps trying). An existing mirror is kept as it is,
// also one made before durable sourcing: it works, but after a restart it
// resumes only when nats-server's 30 s wait for its lost request ends. A
// region started on an empty disk makes durable ones.
//
// Except, when repair is set (the instance that embeds the region's
// server; never a second instance, whose feed reads the same mirrors), a
// durable mirror that cannot resume from its consumer: a mirror asks its
// consumer to resume from the consumer's ack floor, and when that is past
// the mirror's last sequence (the region lost its disk, and the cluster's
// meta layer made the mirror again, empty, with its old consumer)
// nats-server skips the difference and fills it with nothing. Such a
// mirror (mirrorDamage) is deleted and made again with a new consumer when
// that loses nothing: it is empty, or its origin answers holding all of
// it (a mirror is what a region that lost its log is repaired from).
// Otherwise it is kept, logged at error, and judged again at the next
// start. The projection's consumer on a mirror made again is made again
// behind its checkpoint (Feed.Open).
func EnsureMirror(ctx context.Context, c *Conn, origin, here string, repair bool, log *slog.Logger) error {
	name := MirrorName(origin, here)
	s, err := lookupStream(ctx, c.js, name)
	switch {
	case err == nil:
		m := s.CachedInfo().Config.Mirror
		if m != nil && m.Consumer == nil {
			log.Warn("mirror made before durable sourcing: after a restart it resumes up to 40 s late (docs/decisions.md, \"Mirrors\")", "mirror", name)
			return nil
		}
		if !repair {
			return nil
		}
		why, safe, err := mirrorDamage(ctx, c.js, s, origin)
		if err != nil || why == "" {
			return err
		}
		if !safe {
			log.Error("mirror cannot resume from its source consumer, and is kept: its origin does not answer holding everything it holds; judged again at the next start",
				"mirror", name, "why", why)
			return nil
		}
		// Not found: it is gone already (the meta layer, or an answer lost
		// to a leader change), which is what the delete was for.
		if err := c.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Error("mirror cannot resume from its source consumer, and could not be made again; judged again at the next start", "mirror", name, "why", why, "error", err)
			return nil
		}
		log.Warn("mirror made again: it could not resume from its source consumer", "mirror", name, "why", why)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	}
	consumer := NewSourceConsumerName(origin, here)
	fctx, cancel := context.WithTimeout(ctx, FirstSourceWait)
	for createSourceConsumer(fctx, c.js, origin, here, consumer, 1) != nil && fctx.Err() == nil {
		select {
		case <-fctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	cancel()
	_, err = ensure(ctx, c.js, DurableMirrorConfig(origin, here, consumer))
	return err
}

// lookupStream returns the stream name, or ErrStreamNotFound, asking again
// while the server does not answer (a JetStream that is starting) until
// ctx ends: a mirror taken for missing would be made again, a mirror taken
// for sound would not be judged.
func lookupStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	for {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.Stream(lctx, name)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("look up stream %s: %w (%v)", name, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// mirrorDamage says why durable mirror s cannot resume from its source
// consumer ("" when it can), and whether making it again loses nothing.
// The consumer is read before the mirror: the consumer's ack floor never
// passes what the mirror has processed, so a mirror read later can only
// hold more.
func mirrorDamage(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, origin string) (why string, safe bool, err error) {
	var ackFloor uint64
	consumerKnown := false
	consumer := s.CachedInfo().Config.Mirror.Consumer.Name
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cons, cerr := js.PushConsumer(cctx, StreamName(origin), consumer)
	cancel()
	switch {
	case cerr == nil:
		ackFloor, consumerKnown = cons.CachedInfo().AckFloor.Stream, true
	case errors.Is(cerr, jetstream.ErrConsumerNotFound):
		consumerKnown = true // EnsureSourceConsumers makes it after what the mirror holds
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
	info, err := s.Info(ictx)
	cancel()
	if err != nil {
		return "", false, fmt.Errorf("mirror %s: %w", s.CachedInfo().Config.Name, err)
	}
	st := info.State
	if why = damage(st, ackFloor); why == "" && st.LastSeq == 0 && !consumerKnown {
		why = "it is empty and its consumer cannot be read: it could resume past #1"
	}
	if why == "" {
		return "", false, nil
	}
	if st.Msgs == 0 {
		return why, true, nil
	}
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	o, err := js.Stream(octx, StreamName(origin))
	if err != nil {
		return why, false, nil
	}
	ost := o.CachedInfo().State
	return why, ost.FirstSeq <= 1 && ost.LastSeq >= st.LastSeq, nil
}

// damage judges a durable mirror's state against its consumer's ack floor
// (0: unknown).
func damage(st jetstream.StreamState, ackFloor uint64) string {
	switch {
	case st.LastSeq > 0 && st.FirstSeq > 1:
		return fmt.Sprintf("it starts at #%d, the log at #1", st.FirstSeq)
	case st.NumDeleted > 0:
		return fmt.Sprintf("%d sequences missing below #%d", st.NumDeleted, st.LastSeq)
	case ackFloor > st.LastSeq:
		return fmt.Sprintf("it holds up to #%d, its consumer has delivered up to #%d", st.LastSeq, ackFloor)
	}
	return ""
}

// SourceCheckInterval is how often EnsureSourceConsumers looks again at
// every source consumer once all exist: one can go while the region runs
// (SourceConsumerIdle during a long cut).
var SourceCheckInterval = 30 * time.Second

// EnsureSourceConsumers creates on every origin's stream the source consumer
// that region here's mirror of it names, unless it exists, retrying with a
// growing wait until it does, and looks again every SourceCheckInterval,
// until ctx ends. Creating a consumer needs the meta leader and the
// origin's server: it runs in the background, never on a request path.
// Errors are logged; it returns nil.
func EnsureSourceConsumers(ctx context.Context, c *Conn, origins []string, here string, log *slog.Logger) error {
	var wg sync.WaitGroup
	for _, origin := range origins {
		wg.Go(func() {
			log := log.With("mirror", MirrorName(origin, here))
			wait, failures := 250*time.Millisecond, 0
			for {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				consumer, created, err := ensureSourceConsumer(actx, c.js, origin, here)
				cancel()
				next := SourceCheckInterval
				switch {
				case errors.Is(err, errMirrorDamaged):
					failures++
					if failures == 1 || failures%20 == 0 {
						log.Error("mirror cannot resume from its source consumer; judged again at the region's next start", "error", err)
					}
				case err != nil:
					failures++
					if failures == 1 || failures%20 == 0 {
						log.Info("mirror source consumer not there yet; retrying in the background", "attempt", failures, "error", err)
					}
					next, wait = wait, min(wait*2, 5*time.Second)
				case created:
					log.Info("mirror source consumer created", "consumer", consumer, "attempts", failures+1)
					failures, wait = 0, 250*time.Millisecond
				default:
					failures, wait = 0, 250*time.Millisecond
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(next):
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// errMirrorDamaged: a mirror that cannot resume from its source consumer,
// found while the region runs (it skipped sequences after the start-up
// check, or its consumer was replaced by another): EnsureMirror judges it
// at the next start.
var errMirrorDamaged = errors.New("mirror damaged")

// ensureSourceConsumer creates the source consumer named by here's mirror
// of origin unless it exists; created says it did. A mirror without one
// (made before durable sourcing) needs nothing. A consumer missing under a
// mirror that holds events (it went idle too long) starts after them.
func ensureSourceConsumer(ctx context.Context, js jetstream.JetStream, origin, here string) (name string, created bool, err error) {
	m, err := js.Stream(ctx, MirrorName(origin, here))
	if err != nil {
		return "", false, fmt.Errorf("mirror %s: %w", MirrorName(origin, here), err)
	}
	info := m.CachedInfo()
	if info.Config.Mirror == nil || info.Config.Mirror.Consumer == nil {
		return "", false, nil
	}
	name = info.Config.Mirror.Consumer.Name
	if why := damage(info.State, 0); why != "" {
		return name, false, fmt.Errorf("%w: %s", errMirrorDamaged, why)
	}
	c, err := js.PushConsumer(ctx, StreamName(origin), name)
	switch {
	case err == nil:
		if cfg := c.CachedInfo().Config; cfg.AckPolicy != jetstream.AckFlowControlPolicy || cfg.DeliverSubject != info.Config.Mirror.Consumer.DeliverSubject {
			return name, false, fmt.Errorf("%w: consumer %s on %s has another configuration (ack %s, deliver to %q)", errMirrorDamaged, name, StreamName(origin), cfg.AckPolicy, cfg.DeliverSubject)
		}
		return name, false, nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return name, false, err
	}
	return name, true, createSourceConsumer(ctx, js, origin, here, name, info.State.LastSeq+1)
}

func createSourceConsumer(ctx context.Context, js jetstream.JetStream, origin, here, name string, start uint64) error {
	if _, err := js.CreatePushConsumer(ctx, StreamName(origin), SourceConsumerConfig(origin, here, name, start)); err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", name, StreamName(origin), err)
	}
	return nil
}
