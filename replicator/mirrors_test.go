package replicator_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/replicator"
)

// A region that lost its disk finds its mirror made again by the meta
// layer, empty, with its old source consumer, whose ack floor is past
// nothing: nats-server resumes it there and skips what came before. Made
// here for real on one server: us-east's stream, eu-west's durable mirror
// of it copied whole, then deleted and created again with the same
// consumer. Without repair EnsureMirror keeps the mirror as it is (the
// skip is shown); with repair it is made again with a new consumer and
// holds the whole stream.
func TestEnsureMirrorRemakesAMirrorItsConsumerIsAheadOf(t *testing.T) {
	c, js := startJS(t, "eu-west")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	origin := replicator.StreamConfig("us-east")
	origin.Placement = nil
	if _, err := js.CreateStream(ctx, origin); err != nil {
		t.Fatal(err)
	}
	// Enough that the consumer asks for flow control, whose replies move
	// its ack floor (a handful of messages left it at 0 here).
	const n = 3000
	for range n {
		if _, err := js.Publish(ctx, "links.us-east.x", []byte("event")); err != nil {
			t.Fatal(err)
		}
	}
	if err := replicator.EnsureMirror(ctx, c, "us-east", "eu-west", true, log); err != nil {
		t.Fatal(err)
	}
	name := replicator.MirrorName("us-east", "eu-west")
	mirror := func() *jetstream.StreamInfo {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo()
	}
	first := mirror().Config
	consumer := first.Mirror.Consumer.Name
	var floor uint64
	waitFor(t, func() bool {
		ci, err := js.PushConsumer(ctx, origin.Name, consumer)
		if err != nil {
			return false
		}
		floor = ci.CachedInfo().AckFloor.Stream
		return mirror().State.LastSeq == n && floor == n
	}, "the mirror copied the stream and its consumer's ack floor reached its end")

	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return mirror().State.FirstSeq == floor+1 }, "the mirror made again with its old consumer resumed past its end")

	if err := replicator.EnsureMirror(ctx, c, "us-east", "eu-west", false, log); err != nil {
		t.Fatal(err)
	}
	if info := mirror(); info.State.FirstSeq != floor+1 || info.Config.Mirror.Consumer.Name != consumer {
		t.Fatalf("without repair the mirror changed: %+v, consumer %s", info.State, info.Config.Mirror.Consumer.Name)
	}

	if err := replicator.EnsureMirror(ctx, c, "us-east", "eu-west", true, log); err != nil {
		t.Fatal(err)
	}
	info := mirror()
	if info.Config.Mirror.Consumer.Name == consumer {
		t.Fatalf("the mirror kept its consumer %s", consumer)
	}
	waitFor(t, func() bool {
		st := mirror().State
		return st.FirstSeq == 1 && st.LastSeq == n && st.Msgs == n
	}, "the mirror made again holds the whole stream")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("not after 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
