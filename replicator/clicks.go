package replicator

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// Click streams carry click analytics: batches of the clicks one region
// served, mirrored to every other region like the link streams. They are
// not the event log: losing some never changes what a link points to, so
// they keep a week (ClickRetention), and a region that comes back after
// longer counts only what is left.

// ClickRetention is how long a click stream keeps its batches.
const ClickRetention = 7 * 24 * time.Hour

// ClickStreamName is the name of region's click stream: CLICKS_US_EAST.
func ClickStreamName(region string) string {
	return "CLICKS_" + strings.TrimPrefix(StreamName(region), "LINKS_")
}

// ClickMirrorName is the name of the mirror of origin's click stream held
// in here: CLICKS_US_EAST_AT_EU_WEST.
func ClickMirrorName(origin, here string) string {
	return ClickStreamName(origin) + "_AT_" + strings.TrimPrefix(StreamName(here), "LINKS_")
}

// ClickSubject is the subject of region's click batches.
func ClickSubject(region string) string { return "clicks." + region }

// ClickStreamConfig is region's click stream, in its own cluster.
func ClickStreamConfig(region string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        ClickStreamName(region),
		Description: "click batches served in " + region,
		Subjects:    []string{ClickSubject(region)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Discard:     jetstream.DiscardOld,
		MaxAge:      ClickRetention,
		MaxMsgSize:  1 << 20,
		Duplicates:  2 * time.Minute,
		Placement:   &jetstream.Placement{Cluster: region},
	}
}

// ClickMirrorConfig is here's mirror of origin's click stream (JetStream's
// own sourcing: clicks may wait for a mirror to resume).
func ClickMirrorConfig(origin, here string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        ClickMirrorName(origin, here),
		Description: "mirror of " + ClickStreamName(origin) + " in " + here,
		Mirror:      &jetstream.StreamSource{Name: ClickStreamName(origin)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		MaxAge:      ClickRetention,
		Placement:   &jetstream.Placement{Cluster: here},
	}
}

// EnsureClickStreams creates region here's click stream and its mirrors of
// every peer's, and returns the names of all of them (own first).
func EnsureClickStreams(ctx context.Context, c *Conn, here string, peers []string) ([]string, error) {
	if _, err := ensure(ctx, c.js, ClickStreamConfig(here)); err != nil {
		return nil, err
	}
	names := []string{ClickStreamName(here)}
	for _, p := range peers {
		if _, err := ensure(ctx, c.js, ClickMirrorConfig(p, here)); err != nil {
			return nil, err
		}
		names = append(names, ClickMirrorName(p, here))
	}
	return names, nil
}

// PublishClicks appends one click batch to region's click stream, with the
// batch id as Nats-Msg-Id (a retried batch counts once).
func PublishClicks(ctx context.Context, c *Conn, b events.ClickBatch, data []byte) error {
	msg := nats.NewMsg(ClickSubject(b.Region))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, b.ID)
	_, err := c.js.PublishMsg(ctx, msg)
	return err
}
