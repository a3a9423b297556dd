package replicator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/region/regiontest"
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
	regiontest.WaitFor(t, 30*time.Second, func() error {
		ci, err := js.PushConsumer(ctx, origin.Name, consumer)
		if err != nil {
			return err
		}
		floor = ci.CachedInfo().AckFloor.Stream
		if last := mirror().State.LastSeq; last != n || floor != n {
			return fmt.Errorf("the mirror holds up to #%d, its consumer's ack floor is #%d; want both at #%d", last, floor, n)
		}
		return nil
	})

	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, first); err != nil {
		t.Fatal(err)
	}
	regiontest.WaitFor(t, 30*time.Second, func() error {
		if first := mirror().State.FirstSeq; first != floor+1 {
			return fmt.Errorf("the mirror made again with its old consumer starts at #%d, want #%d (past the end)", first, floor+1)
		}
		return nil
	})

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
	regiontest.WaitFor(t, 30*time.Second, func() error {
		if st := mirror().State; st.FirstSeq != 1 || st.LastSeq != n || st.Msgs != n {
			return fmt.Errorf("the mirror made again holds %+v, want #1 to #%d", st, n)
		}
		return nil
	})
}
