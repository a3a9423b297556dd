package replicator_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"shortener/events"
	"shortener/replicator"
)

// lostStream writes n creates to us-east's stream, mirrors it as eu-west's
// copy, then deletes the stream and creates it again holding the first
// kept of the same events (a lost disk: kept 0; a lost tail: kept > 0),
// and returns the events and the mirror's name.
func lostStream(ctx context.Context, t *testing.T, c *replicator.Conn, js jetstream.JetStream, n, kept int) ([]events.Envelope, string) {
	t.Helper()
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	log := replicator.NewLog(c, "us-east", testSigner)
	var es []events.Envelope
	for i := 0; i < n; i++ {
		e := created(t, fmt.Sprintf("code%04d", i))
		if _, err := log.Append(ctx, e, true); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	mirror := mirrorOf(ctx, t, js, "eu-west", uint64(n))
	if err := js.DeleteStream(ctx, replicator.StreamName("us-east")); err != nil {
		t.Fatal(err)
	}
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	for _, e := range es[:kept] {
		if _, err := log.Append(ctx, e, true); err != nil {
			t.Fatal(err)
		}
	}
	return es, mirror
}

// monitored is what a lag monitor in eu-west says of us-east after a few
// rounds of samples.
func monitored(ctx context.Context, t *testing.T, c *replicator.Conn) replicator.OriginLag {
	t.Helper()
	m := replicator.NewMonitor(c, "eu-west", []string{"us-east"}, nil)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	for m.Rounds() < 3 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	o := m.Snapshot()[1]
	if !o.OriginReachable {
		t.Fatalf("the monitor did not reach us-east: %+v", o)
	}
	return o
}

// testSigner signs us-east's events in the repair tests: the signatures
// must survive the repair (the fold refuses an unsigned event).
var testSigner, testKeys = func() (events.Signer, *events.KeyRing) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		panic(err)
	}
	pub, _ := kp.PublicKey()
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(pub))
	if err != nil {
		panic(err)
	}
	ring, err := events.NewKeyRing(map[string]map[string]ed25519.PublicKey{"us-east": {pub: raw}})
	if err != nil {
		panic(err)
	}
	return nkeySigner{kp, pub}, ring
}()

type nkeySigner struct {
	kp  nkeys.KeyPair
	pub string
}

func (s nkeySigner) PublicKey() string                { return s.pub }
func (s nkeySigner) Sign(data []byte) ([]byte, error) { return s.kp.Sign(data) }

func records(ctx context.Context, t *testing.T, c *replicator.Conn, stream string) []events.Record {
	t.Helper()
	var recs []events.Record
	if err := replicator.Read(ctx, c, stream, replicator.ReadOptions{}, func(rs []events.Record) error {
		recs = append(recs, rs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// A stream that came back empty or short is copied back from its mirror at
// the same sequences, with the same data and message ids; the mirror then
// takes the stream's new events; a peer without a mirror counts as holding
// nothing.
func TestRepairFromMirrors(t *testing.T) {
	for _, kept := range []int{0, 700} {
		t.Run(fmt.Sprintf("kept=%d", kept), func(t *testing.T) {
			c, js := startJS(t, "us-east")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const n = 1500
			es, mirror := lostStream(ctx, t, c, js, n, kept)

			if o := monitored(ctx, t, c); !o.OriginBehind || o.OriginDiverged {
				t.Fatalf("the lag monitor does not say that us-east holds fewer events than its mirror, and only that: %+v", o)
			}
			rep, err := replicator.RepairFromMirrors(ctx, c, "us-east", []string{"eu-west", "ap-south"}, replicator.RepairOptions{Wait: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if o := monitored(ctx, t, c); o.OriginBehind || o.OriginDiverged {
				t.Fatalf("the lag monitor says us-east is behind its mirror or differs from it after the repair: %+v", o)
			}
			if rep.Had != uint64(kept) || rep.Source != "eu-west" || rep.Copied != uint64(n-kept) || len(rep.Unasked) != 0 ||
				rep.Mirrors["eu-west"] != n || rep.Mirrors["ap-south"] != 0 {
				t.Fatalf("report %+v", rep)
			}
			own, copy := records(ctx, t, c, rep.Stream), records(ctx, t, c, mirror)
			if len(own) != n || len(copy) != n {
				t.Fatalf("%d records in the stream, %d in the mirror, want %d", len(own), len(copy), n)
			}
			for i := range own {
				if own[i].Seq != copy[i].Seq || string(own[i].Data) != string(copy[i].Data) {
					t.Fatalf("#%d: stream and mirror differ", own[i].Seq)
				}
				if rej := testKeys.Verify("us-east", own[i].Data, own[i].Signature); rej != nil {
					t.Fatalf("#%d after the repair: %v", own[i].Seq, rej)
				}
			}
			// Read through a consumer of the stream itself: a direct get
			// can be answered by the mirror (MirrorDirect).
			s, _ := js.Stream(ctx, rep.Stream)
			cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n})
			if err != nil {
				t.Fatal(err)
			}
			m, err := cons.Next()
			if err != nil || m.Headers().Get(jetstream.MsgIDHeader) != es[n-1].ID || m.Subject() != replicator.Subject("us-east", "code1499") {
				t.Fatalf("#%d after the repair: %v, id %q subject %q, want id %q", n, err, m.Headers().Get(jetstream.MsgIDHeader), m.Subject(), es[n-1].ID)
			}

			// Once repaired, nothing more to do; and the next event reaches
			// the mirror (a mirror takes only sequences beyond its last).
			// Checked once: the mirror resumes after nats-server's retry
			// (about 20 s after its source was deleted).
			again, err := replicator.RepairFromMirrors(ctx, c, "us-east", []string{"eu-west"}, replicator.RepairOptions{})
			if err != nil || again.Copied != 0 || again.Source != "" {
				t.Fatalf("second repair: %+v %v", again, err)
			}
			if kept > 0 {
				return
			}
			next := created(t, "after")
			seq, err := replicator.NewLog(c, "us-east", nil).Append(ctx, next, true)
			if err != nil || seq != n+1 {
				t.Fatalf("append after the repair: #%d %v", seq, err)
			}
			t0 := time.Now()
			defer func() { t.Logf("mirror took the new event after %v", time.Since(t0)) }()
			ms, _ := js.Stream(ctx, mirror)
			for {
				got, err := ms.GetMsg(ctx, n+1)
				if err == nil {
					if string(got.Data) != string(next.Encode()) {
						t.Fatalf("mirror #%d is not the new event", n+1)
					}
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("the mirror never took the event written after the repair: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A stream that took different events at sequences its mirror holds is
// not repaired, whether it is still behind the mirror or already past it:
// nothing is written, and the error says they diverged.
func TestRepairRefusesDivergedStream(t *testing.T) {
	for _, took := range []int{1, 25} {
		t.Run(fmt.Sprintf("took=%d", took), func(t *testing.T) {
			c, js := startJS(t, "us-east")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			lostStream(ctx, t, c, js, 20, 0)
			for i := 0; i < took; i++ {
				if _, err := replicator.NewLog(c, "us-east", nil).Append(ctx, created(t, fmt.Sprintf("other%d", i)), true); err != nil {
					t.Fatal(err)
				}
			}
			o := monitored(ctx, t, c)
			if o.OriginBehind != (took < 20) || !o.OriginDiverged || o.DivergedAt != uint64(min(took, 20)) {
				t.Fatalf("the lag monitor on a stream that took %d other events: %+v", took, o)
			}
			rep, err := replicator.RepairFromMirrors(ctx, c, "us-east", []string{"eu-west"}, replicator.RepairOptions{})
			if !errors.Is(err, replicator.ErrDiverged) {
				t.Fatalf("repair of a diverged stream: %+v %v", rep, err)
			}
			s, _ := js.Stream(ctx, replicator.StreamName("us-east"))
			if info, _ := s.Info(ctx); info.State.LastSeq != uint64(took) {
				t.Fatalf("the diverged stream was written: last #%d, want #%d", info.State.LastSeq, took)
			}
		})
	}
}
