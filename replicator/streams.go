package replicator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
func StreamName(region string) string { return events.LogStream(region) }

// Subject is the subject of events about code written in region. One
// subject per code lets an append require that no create came before it.
func Subject(region, code string) string { return events.LinkSubject(region, code) }

// HeartbeatSubject is the subject of region's heartbeats; "_hb" can never be
// a code, which starts with a letter or digit.
func HeartbeatSubject(region string) string { return events.HeartbeatSubject(region) }

// waitReady polls the JetStream API until it answers (a meta leader exists),
// or ctx ends. ReadyForConnections is not enough: the API needs a meta
// leader, which takes seconds after start.
func waitReady(ctx context.Context, js jetstream.JetStream) error {
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

// MirrorConfig is the configuration of the mirror of origin's stream in
// region here that nats-server feeds through an ephemeral consumer of its
// own: same sequence numbers and timestamps as the origin, so lag is exact.
// Regions create DurableMirrorConfig; mirrors made before 2026-12-07 have
// this one and keep it (see EnsureMirror).
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

// EnsureStream creates region's write stream once JetStream is ready.
func EnsureStream(ctx context.Context, c *Conn, region string) error {
	_, err := ensure(ctx, c.js, StreamConfig(region))
	return err
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
	if err := waitReady(ctx, js); err != nil {
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
	signer events.Signer
}

// NewLog returns a Log for region's stream that signs every event with
// signer (events.SignatureHeader); a nil signer writes unsigned events,
// which a cluster with keys refuses at the fold. It does no I/O.
func NewLog(c *Conn, region string, signer events.Signer) *Log {
	return &Log{js: c.js, region: region, signer: signer}
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
	msg := &nats.Msg{Subject: subject, Data: e.Encode()}
	if l.signer != nil {
		sig, err := events.Sign(l.signer, msg.Data)
		if err != nil {
			return 0, err
		}
		msg.Header = nats.Header{events.SignatureHeader: []string{sig}}
	}
	ack, err := l.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10071 || apiErr.ErrorCode == 10164) {
			return 0, &events.Error{Kind: events.Conflict, Field: "code", Message: "code already taken", Err: err}
		}
		return 0, &events.Error{Kind: events.Unavailable, Message: "event log unavailable", RetryAfter: time.Second, Err: err}
	}
	return ack.Sequence, nil
}
