package replicator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// A region's heartbeats ("beats") live in a stream of their own, BEATS_<R>,
// that keeps only the last BeatsMaxAge of them, mirrored to every other
// region like the link stream. Until 2026-12 they were events in the link
// stream itself (links.<region>._hb, one a second, kept for ever: about
// 13 MB a day per copy); they had to leave it, because everything that
// reads a link stream relies on its sequences being contiguous (the
// projector's gap fill, the audit replay and reader, the lost-disk repair),
// so the link stream cannot expire what it holds.
//
// What a heartbeat in the link stream proved, a beat proves on its own: each
// beat carries the link stream's last sequence as the region read it just
// before the beat's time. A mirror that holds that sequence held, at the
// beat's time, every event its origin had acknowledged (docs/decisions.md,
// "Heartbeats, lag and RPO").

// BeatsMaxAge is how long a beat is kept, in the origin's beats stream and in
// every mirror of it. Only the newest matters; the hour is there for a
// person looking at the history of a lag incident.
var BeatsMaxAge = time.Hour

// beatsMaxMsgs bounds a beats stream whatever the clock does: a beat a
// second for two hours.
const beatsMaxMsgs = 7200

// maxBeatLen bounds a beat as read: a beat is well under 200 bytes.
const maxBeatLen = 512

// BeatsStreamName is the name of region's beats stream: BEATS_US_EAST.
func BeatsStreamName(region string) string {
	return "BEATS_" + strings.TrimPrefix(StreamName(region), "LINKS_")
}

// BeatsMirrorName is the name of the mirror of origin's beats stream held in
// region here: BEATS_US_EAST_AT_EU_WEST.
func BeatsMirrorName(origin, here string) string {
	return BeatsStreamName(origin) + "_AT_" + strings.TrimPrefix(StreamName(here), "LINKS_")
}

// BeatsSubject is the subject of region's beats.
func BeatsSubject(region string) string { return "beats." + region }

// BeatsStreamConfig is the configuration of region's beats stream: bounded
// by age and count, oldest dropped first.
func BeatsStreamConfig(region string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        BeatsStreamName(region),
		Description: "heartbeats of " + region + ", the last " + BeatsMaxAge.String(),
		Subjects:    []string{BeatsSubject(region)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Discard:     jetstream.DiscardOld,
		MaxAge:      BeatsMaxAge,
		MaxMsgs:     beatsMaxMsgs,
		MaxBytes:    -1,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Placement:   &jetstream.Placement{Cluster: region},
	}
}

// BeatsMirrorConfig is the configuration of the mirror of origin's beats
// stream in region here, bounded like its origin.
func BeatsMirrorConfig(origin, here string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        BeatsMirrorName(origin, here),
		Description: "mirror of " + BeatsStreamName(origin) + " in " + here,
		Mirror:      &jetstream.StreamSource{Name: BeatsStreamName(origin)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Discard:     jetstream.DiscardOld,
		MaxAge:      BeatsMaxAge,
		MaxMsgs:     beatsMaxMsgs,
		MaxBytes:    -1,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Placement:   &jetstream.Placement{Cluster: here},
	}
}

// EnsureBeats creates here's beats stream and its mirrors of every peer's,
// retrying until they exist or ctx ends. Creating a stream needs the meta
// leader, which a region restarting while the others are down does not
// have, so it runs in the background: until the streams exist the region's
// peers see its mirrors as not live, which is the truth as far as they can
// tell.
func EnsureBeats(ctx context.Context, c *Conn, here string, peers []string) error {
	cfgs := []jetstream.StreamConfig{BeatsStreamConfig(here)}
	for _, p := range peers {
		cfgs = append(cfgs, BeatsMirrorConfig(p, here))
	}
	for _, cfg := range cfgs {
		if _, err := ensure(ctx, c.js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// Beat is one heartbeat of a region: at At, its link stream's last sequence
// was at least LogSeq. The region reads the sequence after taking the time,
// so every event it acknowledged before At has a sequence of at most
// LogSeq.
type Beat struct {
	Origin string    `json:"origin"`
	At     time.Time `json:"at"`
	LogSeq uint64    `json:"log_seq"`
}

// DecodeBeat reads a beat as stored: one JSON object with exactly Beat's
// fields, a valid region name and a time.
func DecodeBeat(data []byte) (Beat, error) {
	if len(data) > maxBeatLen {
		return Beat{}, fmt.Errorf("beat of %d bytes, more than %d", len(data), maxBeatLen)
	}
	var b Beat
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return Beat{}, fmt.Errorf("beat: %w", err)
	}
	if d.More() {
		return Beat{}, errors.New("beat: data after the object")
	}
	if err := events.ValidateRegion(b.Origin); err != nil {
		return Beat{}, fmt.Errorf("beat: origin: %w", err)
	}
	if b.At.IsZero() {
		return Beat{}, errors.New("beat: no time")
	}
	return b, nil
}

// Beats appends a signed Beat to region's beats stream every interval until
// ctx ends. A missed beat shows as lag in the other regions: nothing else is
// done about it.
func Beats(ctx context.Context, c *Conn, region string, signer events.Signer, interval time.Duration, now func() time.Time) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, interval)
		_ = beat(bctx, c, region, signer, now)
		cancel()
	}
}

func beat(ctx context.Context, c *Conn, region string, signer events.Signer, now func() time.Time) error {
	at := now() // before the read: see Beat
	s, err := c.js.Stream(ctx, StreamName(region))
	if err != nil {
		return err
	}
	data, err := json.Marshal(Beat{Origin: region, At: at.UTC(), LogSeq: s.CachedInfo().State.LastSeq})
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: BeatsSubject(region), Data: data}
	if signer != nil {
		sig, err := events.Sign(signer, data)
		if err != nil {
			return err
		}
		msg.Header = nats.Header{events.SignatureHeader: []string{sig}}
	}
	_, err = c.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(BeatsStreamName(region)))
	return err
}

// lastBeat reads the newest beat of origin held in stream (its beats stream
// or a mirror of it) and checks it: its signature by one of origin's keys
// (unless keys is nil) and its origin.
func lastBeat(ctx context.Context, js jetstream.JetStream, stream, origin string, keys *events.KeyRing) (Beat, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Beat{}, err
	}
	m, err := s.GetLastMsgForSubject(ctx, BeatsSubject(origin))
	if err != nil {
		return Beat{}, err
	}
	if keys != nil {
		if rej := keys.Verify(origin, m.Data, m.Header.Get(events.SignatureHeader)); rej != nil {
			return Beat{}, rej
		}
	}
	b, err := DecodeBeat(m.Data)
	if err != nil {
		return Beat{}, err
	}
	if b.Origin != origin {
		return Beat{}, fmt.Errorf("a beat of %s in %s", b.Origin, stream)
	}
	return b, nil
}
