package replicator_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"shortener/events"
	"shortener/replicator"
)

// snapshotOf is what m says of us-east once cond holds of it, or the test
// fails after 20 s with the last thing it said.
func snapshotOf(t *testing.T, m *replicator.Monitor, what string, cond func(replicator.OriginLag) bool) replicator.OriginLag {
	t.Helper()
	var o replicator.OriginLag
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if o = m.Snapshot()[1]; cond(o) {
			return o
		}
	}
	t.Fatalf("%s: never; last %+v", what, o)
	return o
}

// An origin that writes nothing is seen live through its beats, which live
// in a stream of their own that expires them; the link stream and its
// mirror stay contiguous, and the lost-disk repair and the copies'
// comparison work after the beats have expired. Beats not signed by a key
// of their origin do not count (negative control: a monitor that does not
// know the key sees the idle mirror go stale).
func TestBeatsKeepAnIdleMirrorLiveAndExpire(t *testing.T) {
	c, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	defer func(old time.Duration) { replicator.BeatsMaxAge = old }(replicator.BeatsMaxAge)
	replicator.BeatsMaxAge = time.Second

	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if _, err := replicator.NewLog(c, "us-east", testSigner).Append(ctx, created(t, fmt.Sprintf("idle%d", i)), true); err != nil {
			t.Fatal(err)
		}
	}
	mirror := mirrorOf(ctx, t, js, "eu-west", n)
	for _, cfg := range []jetstream.StreamConfig{replicator.BeatsStreamConfig("us-east"), replicator.BeatsMirrorConfig("us-east", "eu-west")} {
		cfg.Placement = nil // one server
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	bctx, stopBeats := context.WithCancel(ctx)
	beating := make(chan error, 1)
	go func() { beating <- replicator.Beats(bctx, c, "us-east", testSigner, 100*time.Millisecond, time.Now) }()
	defer func() { stopBeats(); <-beating }()

	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	raw, _ := nkeys.Decode(nkeys.PrefixByteUser, []byte(pub))
	otherKeys, err := events.NewKeyRing(map[string]map[string]ed25519.PublicKey{"us-east": {pub: raw}})
	if err != nil {
		t.Fatal(err)
	}
	monitors := map[string]*replicator.Monitor{}
	for name, keys := range map[string]*events.KeyRing{"right keys": testKeys, "wrong keys": otherKeys} {
		m := replicator.NewMonitor(c, "eu-west", []string{"us-east"}, keys, nil)
		mctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(mctx) }()
		defer func() { stop(); <-done }()
		monitors[name] = m
	}

	// The last link event more than 3 s old: only beats keep the mirror
	// live now.
	idle := func(o replicator.OriginLag) bool {
		return !o.LastEventTime.IsZero() && time.Since(o.LastEventTime) > 3500*time.Millisecond
	}
	o := snapshotOf(t, monitors["right keys"], "idle and live", func(o replicator.OriginLag) bool { return idle(o) && o.MirrorActive })
	if !o.RPOKnown || o.LagEvents != 0 || o.LagSeconds > 3 || o.CurrentAt.Before(o.LastEventTime) {
		t.Fatalf("an idle origin with beats: %+v", o)
	}
	snapshotOf(t, monitors["wrong keys"], "idle and not live without its origin's key", func(o replicator.OriginLag) bool { return idle(o) && !o.MirrorActive })
	if o := monitors["wrong keys"].Snapshot()[1]; o.LagSeconds < 3 {
		t.Fatalf("lag measured from beats signed by a key that is not us-east's: %+v", o)
	}

	// Beats expire from both copies of the beats stream.
	for _, name := range []string{replicator.BeatsStreamName("us-east"), replicator.BeatsMirrorName("us-east", "eu-west")} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			st, err := c.State(ctx, name)
			if err == nil && st.FirstSeq > 20 && st.Msgs < 20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: beats never expired: %+v %v", name, st, err)
			}
		}
	}
	// The link stream and its mirror hold their events, contiguous.
	for _, name := range []string{replicator.StreamName("us-east"), mirror} {
		st, err := c.State(ctx, name)
		if err != nil || st.FirstSeq != 1 || st.LastSeq != n || st.Msgs != n {
			t.Fatalf("%s after the beats expired: %+v %v", name, st, err)
		}
	}
	// The origin loses its disk; the repair copies its stream back from
	// the mirror, and the copies compare equal.
	if err := js.DeleteStream(ctx, replicator.StreamName("us-east")); err != nil {
		t.Fatal(err)
	}
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	rep, err := replicator.RepairFromMirrors(ctx, c, "us-east", []string{"eu-west"}, replicator.RepairOptions{Wait: 2 * time.Second})
	if err != nil || rep.Copied != n || rep.Source != "eu-west" {
		t.Fatalf("repair after the beats expired: %+v %v", rep, err)
	}
	cmp, err := replicator.CompareCopies(ctx, c, replicator.StreamName("us-east"), mirror, 4096)
	if err != nil || !cmp.Equal() || cmp.Common != n {
		t.Fatalf("the stream and its mirror after the repair: %+v %v", cmp, err)
	}
	for _, r := range records(ctx, t, c, replicator.StreamName("us-east")) {
		if rej := testKeys.Verify("us-east", r.Data, r.Signature); rej != nil {
			t.Fatalf("#%d after the repair: %v", r.Seq, rej)
		}
	}
}

// A beat is read as exactly its three fields; nothing else decodes.
func TestDecodeBeat(t *testing.T) {
	good := `{"origin":"us-east","at":"2026-12-07T10:00:00Z","log_seq":7}`
	b, err := replicator.DecodeBeat([]byte(good))
	if err != nil || b.Origin != "us-east" || b.LogSeq != 7 || b.At.IsZero() {
		t.Fatalf("%+v %v", b, err)
	}
	for _, bad := range []string{
		``, `{}`, `null`, `[]`,
		`{"origin":"us-east","log_seq":7}`,
		`{"origin":"US EAST","at":"2026-12-07T10:00:00Z","log_seq":7}`,
		`{"origin":"us-east","at":"2026-12-07T10:00:00Z","log_seq":-1}`,
		`{"origin":"us-east","at":"2026-12-07T10:00:00Z","log_seq":7,"extra":1}`,
		good + good,
		`{"id":"x","type":"RegionHeartbeat","origin":"us-east","time":"2026-12-07T10:00:00Z","payload":{}}`,
		`{"origin":"us-east","at":"2026-12-07T10:00:00Z","log_seq":7,"pad":"` + string(make([]byte, 600)) + `"}`,
	} {
		if b, err := replicator.DecodeBeat([]byte(bad)); err == nil {
			t.Errorf("%q decoded: %+v", bad, b)
		}
	}
}

func FuzzDecodeBeat(f *testing.F) {
	f.Add([]byte(`{"origin":"us-east","at":"2026-12-07T10:00:00Z","log_seq":7}`))
	f.Add([]byte(`{"origin":"eu-west","at":"0001-01-01T00:00:00Z","log_seq":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := replicator.DecodeBeat(data)
		if err != nil {
			return
		}
		if events.ValidateRegion(b.Origin) != nil || b.At.IsZero() || len(data) > 512 {
			t.Fatalf("accepted %q as %+v", data, b)
		}
	})
}
