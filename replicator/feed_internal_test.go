package replicator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A puller hands on the records between the last one it handed on and the
// next delivery, fetched by sequence (deliveries lost when a waiting pull
// is cancelled), and skips a delivery it already handed on.
func TestPullerFillsGapsAndSkipsRepeats(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, ServerName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
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
	if err := st.DeleteMsg(ctx, 4); err != nil { // a sequence the stream no longer holds
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
	f := NewFeed(js, "d")
	p := &puller{f: f, stream: st, name: "S", last: 2}
	if _, ok := p.handOn(ctx, at(6)); !ok {
		t.Fatal("handOn stopped")
	}
	if _, ok := p.handOn(ctx, at(5)); !ok { // delivered again: already handed on
		t.Fatal("handOn stopped")
	}
	var got []string
	for len(f.msgs) > 0 {
		d := <-f.msgs
		if d.m != nil {
			md, _ := d.m.Metadata()
			got = append(got, fmt.Sprintf("delivered #%d %s", md.Sequence.Stream, d.m.Data()))
		} else {
			got = append(got, fmt.Sprintf("fetched #%d %s", d.rec.Seq, d.rec.Data))
		}
	}
	want := []string{"fetched #3 m3", "fetched #5 m5", "delivered #6 m6"}
	if fmt.Sprint(got) != fmt.Sprint(want) || p.last != 6 {
		t.Fatalf("handed on %q (last %d), want %q (last 6)", got, p.last, want)
	}
}
