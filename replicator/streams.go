package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// Fsync is the server-wide JetStream flush policy.
type Fsync string

// The fsync policies.
const (
	// FsyncAlways fsyncs every write before acknowledging it, so an
	// acknowledged event survives power loss. The default.
	FsyncAlways Fsync = "always"
	// FsyncInterval leaves flushing to JetStream's timer (2 minutes): an
	// acknowledged event survives a process crash but not power loss.
	FsyncInterval Fsync = "interval"
)

// ParseFsync reads a --fsync flag value.
func ParseFsync(s string) (Fsync, error) {
	switch Fsync(s) {
	case FsyncAlways, FsyncInterval:
		return Fsync(s), nil
	}
	return "", fmt.Errorf("fsync must be %q or %q, not %q", FsyncAlways, FsyncInterval, s)
}

// StreamName is the name of region's write stream: LINKS_US_EAST for us-east.
func StreamName(region string) string {
	return "LINKS_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
}

// Subject is the subject of events about code written in region. One
// subject per code lets an append require that no create came before it.
func Subject(region, code string) string { return "links." + region + "." + code }

// HeartbeatSubject is the subject of region's heartbeats; "_hb" can never be
// a code, which starts with a letter or digit.
func HeartbeatSubject(region string) string { return "links." + region + "._hb" }

// WaitReady polls the JetStream API until it answers (a meta leader exists),
// or ctx ends. ReadyForConnections is not enough: the API needs a meta
// leader, which takes seconds after start.
func WaitReady(ctx context.Context, js jetstream.JetStream) error {
	wait := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// StreamConfig is the configuration of region's write stream, placed in the
// NATS cluster named after the region.
func StreamConfig(region string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName(region),
		Description: "link events written in " + region,
		Subjects:    []string{"links." + region + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Duplicates:  2 * time.Minute,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Placement:   &jetstream.Placement{Cluster: region},
	}
}

// MirrorName is the name of the mirror of origin's stream held in region
// here: LINKS_US_EAST_AT_EU_WEST. Stream names are global across a
// supercluster, so a mirror cannot share its origin's name.
func MirrorName(origin, here string) string {
	return StreamName(origin) + "_AT_" + strings.TrimPrefix(StreamName(here), "LINKS_")
}

// MirrorConfig is the stream configuration of the mirror of origin's
// stream in region here without a source consumer: JetStream's ephemeral
// sourcing, as regions created it before durable sourcing. Same sequence
// numbers and timestamps as the origin, so lag is exact. Regions use
// DurableMirrorConfig; this is for tools and tests that want a mirror with
// nothing to set up on the origin.
func MirrorConfig(origin, here string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        MirrorName(origin, here),
		Description: "mirror of " + StreamName(origin) + " in " + here,
		Mirror:      &jetstream.StreamSource{Name: StreamName(origin)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Placement:   &jetstream.Placement{Cluster: here},
	}
}

// DurableMirrorConfig is the configuration of region here's mirror of
// origin's stream: MirrorConfig fed by the durable push consumer named
// consumer on the origin's stream (durable sourcing, nats-server >= 2.14;
// see SourceConsumerConfig). A mirror's Mirror settings cannot be updated:
// a mirror created with MirrorConfig is replaced, see EnsureMirror.
func DurableMirrorConfig(origin, here, consumer string) jetstream.StreamConfig {
	cfg := MirrorConfig(origin, here)
	cfg.Mirror.Consumer = &jetstream.StreamConsumerSource{Name: consumer, DeliverSubject: "_mirror." + consumer}
	return cfg
}

// NewSourceConsumerName names the source consumer of a mirror of origin in
// here about to be created: the mirror's name, "-" and a new id. Every
// mirror gets its own, so that a mirror created again (a region rebuilt
// from an empty disk, or the replacement of an old mirror) never resumes
// from an older mirror's consumer: a reset moves a mirror to its consumer's
// ack floor, and nats-server fills the sequences it skips with nothing.
// "-" cannot occur in a mirror name, so the prefix names the mirror.
func NewSourceConsumerName(origin, here string) string {
	return MirrorName(origin, here) + "-" + strconv.FormatInt(time.Now().UnixMicro(), 36)
}

// SourceConsumerConfig is the durable push consumer on origin's stream that
// feeds the mirror configured with DurableMirrorConfig(origin, here, name),
// starting at stream sequence start (1: from the beginning). nats-server
// requires for durable sourcing AckFlowControl (acknowledged by the
// mirror's flow-control replies), push with flow control, a 1 s idle
// heartbeat, MaxAckPending > 0 and no AckWait, BackOff or MaxDeliver
// (server/consumer.go, checkConsumerCfg).
//
// Unlike the ephemeral consumer a mirror makes for itself, it outlives the
// link: after an outage the origin's heartbeats reach the mirror, which asks
// for a reset at once instead of waiting out nats-server's 30 s create
// timeout and its retry backoff.
func SourceConsumerConfig(origin, here, name string, start uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "feeds " + MirrorName(origin, here),
		DeliverSubject: "_mirror." + name,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		FlowControl:    true,
		IdleHeartbeat:  time.Second,
		MaxAckPending:  10000,
	}
	if start > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	return cfg
}

// EnsureStream creates region's write stream once JetStream is ready.
func EnsureStream(ctx context.Context, js jetstream.JetStream, region string) (jetstream.Stream, error) {
	return ensure(ctx, js, StreamConfig(region))
}

// FirstSourceWait bounds how long EnsureMirror tries to create a new
// mirror's source consumer before the mirror (afterwards it is left to
// EnsureSourceConsumers).
var FirstSourceWait = 3 * time.Second

// MigrateWait bounds how long EnsureMirror waits for the origin when it
// replaces a mirror created without a source consumer.
var MigrateWait = 20 * time.Second

// EnsureMirror makes sure region here holds its mirror of origin's stream,
// fed by a durable source consumer (DurableMirrorConfig). Like before, it
// needs only the local cluster and, to create a missing mirror, the meta
// leader: the origin need not be up. The source consumer is created on the
// origin by EnsureSourceConsumers, in the background; until it exists the
// mirror asks for it with a growing backoff, and the consumer's first
// heartbeat ends the wait.
//
// A mirror created by an earlier version, without a source consumer, is
// replaced: its source consumer is created first (so the origin is known to
// be up and the copy is missing only while it is copied again), then the
// mirror is deleted and created again. It keeps the origin's sequence
// numbers, so the projection's checkpoint for it stays valid; the
// projection's consumer on it goes with it and Feed.Open creates it again
// behind the checkpoint. If the origin cannot be reached within MigrateWait,
// the old mirror is kept as it is (it still works, with the old resume
// delays) and replaced at a later start.
func EnsureMirror(ctx context.Context, js jetstream.JetStream, origin, here string, log *slog.Logger) (jetstream.Stream, error) {
	name := MirrorName(origin, here)
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	s, err := js.Stream(lctx, name)
	cancel()
	if err != nil {
		// Missing, or not answering: ensure creates it, or finds it and
		// keeps its configuration. A new mirror asks for its consumer at
		// once, and a request that finds none is answered by nobody: the
		// mirror waits 5 s before it can retry. So the consumer is made
		// first if the origin answers within FirstSourceWait (a cluster
		// starting together: the peer's stream may be a moment away).
		consumer := NewSourceConsumerName(origin, here)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			fctx, cancel := context.WithTimeout(ctx, FirstSourceWait)
			for createSourceConsumer(fctx, js, origin, here, consumer, 1) != nil && fctx.Err() == nil {
				select {
				case <-fctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			cancel()
		}
		return ensure(ctx, js, DurableMirrorConfig(origin, here, consumer))
	}
	info := s.CachedInfo()
	if info.Config.Mirror == nil || info.Config.Mirror.Consumer != nil {
		return s, nil
	}
	consumer := NewSourceConsumerName(origin, here)
	mctx, cancel := context.WithTimeout(ctx, MigrateWait)
	err = createSourceConsumer(mctx, js, origin, here, consumer, 1)
	cancel()
	if err != nil {
		log.Warn("mirror without a source consumer kept: its origin cannot be reached; it is replaced at a later start",
			"mirror", name, "origin", StreamName(origin), "error", err)
		return s, nil
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		return nil, fmt.Errorf("replace mirror %s: delete: %w", name, err)
	}
	if s, err = ensure(ctx, js, DurableMirrorConfig(origin, here, consumer)); err != nil {
		return nil, fmt.Errorf("replace mirror %s: create: %w", name, err)
	}
	log.Warn("mirror replaced by one fed by a durable source consumer; it copies its origin again",
		"mirror", name, "origin", StreamName(origin), "consumer", consumer, "held", info.State.LastSeq)
	return s, nil
}

// EnsureSourceConsumers creates on every origin's stream the source
// consumer that region here's mirror of it names, unless it exists,
// retrying until it does or ctx ends, and then deletes the consumers of
// earlier mirrors of that origin in here. Creating a consumer needs the
// meta leader and the origin's server: run it in the background, never on a
// request path. A mirror without a source consumer (kept by EnsureMirror)
// is left alone. Errors are logged; it returns nil.
func EnsureSourceConsumers(ctx context.Context, js jetstream.JetStream, origins []string, here string, log *slog.Logger) error {
	var wg sync.WaitGroup
	for _, origin := range origins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := log.With("mirror", MirrorName(origin, here))
			wait := 250 * time.Millisecond
			for attempt := 1; ; attempt++ {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				consumer, err := ensureSourceConsumer(actx, js, origin, here)
				cancel()
				if err == nil {
					if attempt > 1 {
						log.Info("mirror source consumer ready", "consumer", consumer, "attempts", attempt)
					}
					if consumer != "" {
						dropOldSourceConsumers(ctx, js, origin, here, consumer, log)
					}
					return
				}
				if attempt == 1 || attempt%20 == 0 {
					log.Info("mirror source consumer not there yet; retrying in the background", "attempt", attempt, "error", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(wait*2, 5*time.Second)
			}
		}()
	}
	wg.Wait()
	return nil
}

// ensureSourceConsumer creates the source consumer named by here's mirror
// of origin unless it exists, and returns its name ("" for a mirror
// without one). A consumer missing under a mirror that holds events (it was
// deleted) starts after them.
func ensureSourceConsumer(ctx context.Context, js jetstream.JetStream, origin, here string) (string, error) {
	m, err := js.Stream(ctx, MirrorName(origin, here))
	if err != nil {
		return "", fmt.Errorf("mirror %s: %w", MirrorName(origin, here), err)
	}
	info := m.CachedInfo()
	if info.Config.Mirror == nil || info.Config.Mirror.Consumer == nil {
		return "", nil
	}
	name := info.Config.Mirror.Consumer.Name
	c, err := js.PushConsumer(ctx, StreamName(origin), name)
	switch {
	case err == nil:
		if cfg := c.CachedInfo().Config; cfg.AckPolicy != jetstream.AckFlowControlPolicy || cfg.DeliverSubject != info.Config.Mirror.Consumer.DeliverSubject {
			return name, fmt.Errorf("consumer %s on %s has another configuration (ack %s, deliver to %q)", name, StreamName(origin), cfg.AckPolicy, cfg.DeliverSubject)
		}
		return name, nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return name, err
	}
	return name, createSourceConsumer(ctx, js, origin, here, name, info.State.LastSeq+1)
}

func createSourceConsumer(ctx context.Context, js jetstream.JetStream, origin, here, name string, start uint64) error {
	_, err := js.CreatePushConsumer(ctx, StreamName(origin), SourceConsumerConfig(origin, here, name, start))
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", name, StreamName(origin), err)
	}
	return nil
}

// dropOldSourceConsumers deletes the source consumers of earlier mirrors of
// origin in here, best effort: left alone they only send heartbeats nobody
// reads.
func dropOldSourceConsumers(ctx context.Context, js jetstream.JetStream, origin, here, current string, log *slog.Logger) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(lctx, StreamName(origin))
	if err != nil {
		return
	}
	names := s.ConsumerNames(lctx)
	var old []string
	for n := range names.Name() {
		if strings.HasPrefix(n, MirrorName(origin, here)+"-") && n != current {
			old = append(old, n)
		}
	}
	for _, n := range old {
		if err := s.DeleteConsumer(lctx, n); err != nil {
			log.Warn("could not delete an earlier mirror's source consumer", "consumer", n, "error", err)
			continue
		}
		log.Info("deleted an earlier mirror's source consumer", "consumer", n)
	}
}

// ensure returns the stream named in cfg, creating it if it does not exist.
// An existing stream is used as it is: looking it up needs only its own
// server, while creating needs the meta leader, which a region restarting
// while two others are down does not have.
func ensure(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	s, err := js.Stream(lctx, cfg.Name)
	cancel()
	if err == nil {
		return s, nil
	}
	if err := WaitReady(ctx, js); err != nil {
		return nil, err
	}
	for {
		s, err = js.CreateStream(ctx, cfg)
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				s, err = js.Stream(ctx, cfg.Name)
			}
			if err == nil {
				return s, nil
			}
		}
		// A meta leader change during start-up answers with a transient
		// error: try again until ctx ends.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create stream %s: %w (%v)", cfg.Name, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Log appends events to one region's write stream.
type Log struct {
	js     jetstream.JetStream
	region string
}

// NewLog returns a Log for region's stream. It does no I/O.
func NewLog(js jetstream.JetStream, region string) *Log {
	return &Log{js: js, region: region}
}

// Append publishes e to the region's stream with e.ID as Nats-Msg-Id and
// returns its stream sequence once JetStream has acknowledged it. With
// create set, the append is refused unless no event for e.Code was written
// in this region before: Conflict. A JetStream that does not answer is
// Unavailable; the event may or may not have been stored, and retrying with
// the same envelope is safe within the stream's duplicate window.
func (l *Log) Append(ctx context.Context, e events.Envelope, create bool) (uint64, error) {
	subject := HeartbeatSubject(l.region)
	if e.Code != "" {
		subject = Subject(l.region, e.Code)
	}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(StreamName(l.region))}
	if create {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(0))
	}
	ack, err := l.js.Publish(ctx, subject, e.Encode(), opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10071 || apiErr.ErrorCode == 10164) {
			return 0, &events.Error{Kind: events.Conflict, Field: "code", Message: "code already taken", Err: err}
		}
		return 0, &events.Error{Kind: events.Unavailable, Message: "event log unavailable", RetryAfter: time.Second, Err: err}
	}
	return ack.Sequence, nil
}
