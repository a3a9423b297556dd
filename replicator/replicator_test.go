package replicator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/replicator"
)

// startJS starts a real embedded JetStream server on a random port and
// returns replicator's handle on it and a plain JetStream client of the
// same connection, to set up and inspect streams. The stream placement
// names the region's cluster, so the server carries that cluster name.
func startJS(t *testing.T, cluster string) (*replicator.Conn, jetstream.JetStream) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, ServerName: "t",
		Cluster: server.ClusterOpts{Name: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := replicator.Connect(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c, js
}

func created(t *testing.T, code string) events.Envelope {
	t.Helper()
	e, err := events.New(events.TypeLinkCreated, code, "us-east", "k", time.Now(), events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAppend(t *testing.T) {
	c, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	log := replicator.NewLog(c, "us-east", nil)
	e := created(t, "launch")
	seq, err := log.Append(ctx, e, true)
	if err != nil || seq != 1 {
		t.Fatalf("first create: seq %d, %v", seq, err)
	}
	// The same event again (a retried publish) is deduplicated by its id.
	if seq, err := log.Append(ctx, e, false); err != nil || seq != 1 {
		t.Fatalf("resend: seq %d, %v; want the original sequence 1", seq, err)
	}
	// Another create of the same code is a conflict.
	if _, err := log.Append(ctx, created(t, "launch"), true); events.KindOf(err) != events.Conflict {
		t.Fatalf("second create of a code: %v, want Conflict", err)
	}
	// Updates of the code are not creates.
	u := "https://b.example/"
	up, _ := events.New(events.TypeLinkUpdated, "launch", "us-east", "k", time.Now(), events.LinkUpdated{URL: &u})
	if seq, err := log.Append(ctx, up, false); err != nil || seq != 2 {
		t.Fatalf("update: seq %d, %v", seq, err)
	}
	// The stream's state, as a region's readiness reads it.
	if st, err := c.State(ctx, replicator.StreamName("us-east")); err != nil || st.Msgs != 2 || st.FirstSeq != 1 || st.LastSeq != 2 || st.LastTime.IsZero() {
		t.Fatalf("state: %+v, %v; want messages #1..#2", st, err)
	}
	if _, err := c.State(ctx, replicator.StreamName("eu-west")); err == nil {
		t.Fatal("the state of a stream that does not exist: no error")
	}
	// The log is append-only.
	s, _ := js.Stream(ctx, replicator.StreamName("us-east"))
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("a message could be deleted from the event log")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("the event log could be purged")
	}
}

func TestFeedPositionsBehindTheCheckpoint(t *testing.T) {
	c, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := streamWith(ctx, t, c, 10)
	read := func(f *replicator.Feed, n int) []uint64 {
		var seqs []uint64
		for len(seqs) < n {
			recs, err := f.Next(ctx, n-len(seqs))
			if err != nil {
				t.Fatalf("next after %v: %v", seqs, err)
			}
			for _, r := range recs {
				seqs = append(seqs, r.Seq)
			}
		}
		return seqs
	}
	// A first projection applies 1..6 and acknowledges them.
	f := replicator.NewFeed(c, "proj-test")
	if err := f.Open(ctx, []string{stream}, func(string) uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	if got := read(f, 6); got[0] != 1 || got[5] != 6 {
		t.Fatalf("first read: %v", got)
	}
	if err := f.Ack(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Let the ack land before closing.
	cons, _ := js.Consumer(ctx, stream, "proj-test")
	for deadline := time.Now().Add(5 * time.Second); ; {
		info, err := cons.Info(ctx)
		if err == nil && info.AckFloor.Stream == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor never reached 6: %+v %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()

	// Its store lost everything after 2 (a crash with writes not synced, or
	// a rebuild): the feed must start again at 3, not at 7.
	f2 := replicator.NewFeed(c, "proj-test")
	if err := f2.Open(ctx, []string{stream}, func(string) uint64 { return 2 }); err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	got := read(f2, 8)
	for i, seq := range got {
		if seq != uint64(3+i) {
			t.Fatalf("after reset: %v, want 3..10", got)
		}
	}
}

// TestFeedFetchesWhatWasDeliveredButNotApplied: a projection that crashed
// after records were delivered but before it applied them gets them again
// at once, without waiting for the consumer's redelivery timer.
func TestFeedFetchesWhatWasDeliveredButNotApplied(t *testing.T) {
	c, _ := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := streamWith(ctx, t, c, 5)
	f := replicator.NewFeed(c, "proj-crash")
	if err := f.Open(ctx, []string{stream}, func(string) uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < 5 {
		recs, err := f.Next(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	f.Close() // never acknowledged: the "crash"

	f2 := replicator.NewFeed(c, "proj-crash")
	if err := f2.Open(ctx, []string{stream}, func(string) uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second) // far below the 30 s AckWait
	defer cancelShort()
	var seqs []uint64
	for len(seqs) < 5 {
		recs, err := f2.Next(short, 5)
		if err != nil {
			t.Fatalf("records 1..5 not delivered again promptly: got %v, %v", seqs, err)
		}
		for _, r := range recs {
			seqs = append(seqs, r.Seq)
		}
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("redelivered %v, want 1..5", seqs)
		}
	}
}

// streamWith creates us-east's stream holding n LinkCreated events and
// returns its name.
func streamWith(ctx context.Context, t *testing.T, c *replicator.Conn, n int) string {
	t.Helper()
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	log := replicator.NewLog(c, "us-east", nil)
	for i := 0; i < n; i++ {
		if _, err := log.Append(ctx, created(t, "code"+string(rune('a'+i))+"xx"), true); err != nil {
			t.Fatal(err)
		}
	}
	return replicator.StreamName("us-east")
}

// A feed at the head of a stream whose events count as old (a mirror
// copying what its origin wrote while this region was down) stops
// following the head and fetches in batches. Here every event counts as
// old, so the feed switches between a waiting pull and fetching all along
// while a writer fills the stream in bursts: every record must be handed
// on once, in order, without a gap (deliveries lost when the waiting pull
// is cancelled are fetched by sequence).
func TestFeedCatchesUpInBatches(t *testing.T) {
	defer replicator.SetCatchUp(0, 5*time.Millisecond)() // after the feed's Close
	c, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 3000
	stream := streamWith(ctx, t, c, 0)
	f := replicator.NewFeed(c, "proj-catchup")
	if err := f.Open(ctx, []string{stream}, func(string) uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			code := fmt.Sprintf("c%05d", i)
			if _, err := js.PublishAsync(replicator.Subject("us-east", code), created(t, code).Encode()); err != nil {
				wrote <- err
				return
			}
			if i%100 == 99 {
				<-js.PublishAsyncComplete()
				time.Sleep(20 * time.Millisecond) // the fetches find nothing: back to a waiting pull
			}
		}
		<-js.PublishAsyncComplete()
		wrote <- nil
	}()
	var want uint64 = 1
	for want <= n {
		recs, err := f.Next(ctx, 512)
		if err != nil {
			t.Fatalf("got up to #%d of %d: %v", want-1, n, err)
		}
		for _, r := range recs {
			if r.Stream != stream || r.Seq != want || len(r.Data) == 0 {
				t.Fatalf("record %s #%d (%d bytes), want %s #%d", r.Stream, r.Seq, len(r.Data), stream, want)
			}
			want++
		}
		if err := f.Ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if f.CatchUps() < 5 {
		t.Fatalf("%d switches to fetching, want several", f.CatchUps())
	}
	t.Logf("%d switches to fetching", f.CatchUps())

	// Then a waiting pull hands on what comes.
	if _, err := replicator.NewLog(c, "us-east", nil).Append(ctx, created(t, "fresh"), true); err != nil {
		t.Fatal(err)
	}
	recs, err := f.Next(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].Seq != n+1 {
		t.Fatalf("after the catch-up: %v, %v", recs, err)
	}
}

// A puller hands on the records between the last one it handed on and the
// next delivery, fetched by sequence (deliveries lost when a waiting pull
// is cancelled; a sequence the stream no longer holds is skipped), and
// skips a delivery it already handed on.
func TestPullerFillsGapsAndSkipsRepeats(t *testing.T) {
	_, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		if _, err := js.Publish(ctx, "s.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteMsg(ctx, 4); err != nil {
		t.Fatal(err)
	}
	at := func(seq uint64) jetstream.Msg {
		c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	got, last, err := replicator.HandOn(ctx, st, 2, at(6), at(5)) // #5 delivered again: already handed on
	want := []string{"fetched #3 m3", "fetched #5 m5", "delivered #6 m6"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || last != 6 {
		t.Fatalf("handed on %q (last %d, %v), want %q (last 6)", got, last, err, want)
	}
}
