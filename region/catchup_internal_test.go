package region

import (
	"strings"
	"testing"
	"time"

	"shortener/replicator"
)

// Readiness against the region's own stream: behind at start-up is not
// ready; once caught up, a few events in flight are normal; behind and not
// moving for stallAfter is not ready again.
func TestOwnStreamReadiness(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	var c catchUp
	if why := c.own(5, 10, t0); why == "" {
		t.Fatal("behind at start-up, yet ready")
	}
	if why := c.own(10, 10, t0.Add(time.Second)); why != "" {
		t.Fatalf("caught up, yet: %s", why)
	}
	for i := 1; i <= 20; i++ { // under load: always 3 behind, always moving
		at := t0.Add(time.Second + time.Duration(i)*time.Second)
		if why := c.own(uint64(10+i*100), uint64(13+i*100), at); why != "" {
			t.Fatalf("moving projection 3 behind: %s", why)
		}
	}
	last := t0.Add(21 * time.Second)
	if why := c.own(2010, 2020, last.Add(stallAfter-time.Millisecond)); why != "" {
		t.Fatalf("behind and still for less than %s: %s", stallAfter, why)
	}
	if why := c.own(2010, 2020, last.Add(stallAfter)); why == "" {
		t.Fatalf("behind and still for %s, yet ready", stallAfter)
	}
	if why := c.own(2011, 2020, last.Add(stallAfter+time.Millisecond)); why != "" {
		t.Fatalf("moving again: %s", why)
	}
}

// Readiness against the peers: a peer reached is waited for until the
// projection applied what it held when first seen; a peer never reached
// is given up on only peerReachGrace after another one was reached (until
// then the region cannot tell its peers down from its own connections not
// up yet), and everything after catchUpDeadline.
func TestPeerReadiness(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	at := func(d time.Duration) (time.Duration, time.Time) { return d, t0.Add(d) }
	lag := func(origin string, reachable bool, last uint64) replicator.OriginLag {
		return replicator.OriginLag{Origin: origin, OriginReachable: reachable, OriginLastSeq: last}
	}
	applied := map[string]uint64{}
	get := func(o string) uint64 { return applied[o] }
	self := replicator.OriginLag{Origin: "us-east", Local: true}

	// Nobody reached, long past the grace: still waiting (it is this
	// region that is not connected yet), until the deadline.
	var c catchUp
	for _, d := range []time.Duration{0, peerReachGrace, time.Minute, catchUpDeadline} {
		up, now := at(d)
		if w, _ := c.peers([]replicator.OriginLag{self, lag("eu-west", false, 0), lag("ap-south", false, 0)}, up, now, get); len(w) != 2 {
			t.Fatalf("%s after the start, no peer ever reached: waiting for %q; want both", d, w)
		}
	}
	up, now := at(catchUpDeadline + time.Second)
	if w, s := c.peers([]replicator.OriginLag{self, lag("eu-west", false, 0), lag("ap-south", false, 0)}, up, now, get); len(w) != 0 || len(s) != 2 {
		t.Fatalf("after the deadline: waiting %q, skipped %q; want both skipped", w, s)
	}

	// eu-west reached at 40 s with 7 events; ap-south never: eu-west is
	// waited for until its 7 events are applied, ap-south for the grace
	// from 40 s.
	c = catchUp{}
	up, now = at(40 * time.Second)
	lags := []replicator.OriginLag{self, lag("eu-west", true, 7), lag("ap-south", false, 0)}
	if w, _ := c.peers(lags, up, now, get); len(w) != 2 {
		t.Fatalf("eu-west just reached, 0 of 7 applied: waiting for %q; want both", w)
	}
	applied["eu-west"] = 7
	lags[1].OriginLastSeq = 9 // the target is what it held when first seen
	up, now = at(40*time.Second + peerReachGrace - time.Millisecond)
	if w, _ := c.peers(lags, up, now, get); len(w) != 1 || !strings.HasPrefix(w[0], "ap-south") {
		t.Fatalf("eu-west applied, ap-south within the grace: waiting for %q; want ap-south", w)
	}
	up, now = at(40*time.Second + peerReachGrace)
	if w, s := c.peers(lags, up, now, get); len(w) != 0 || len(s) != 1 || !strings.HasPrefix(s[0], "ap-south") {
		t.Fatalf("ap-south past the grace: waiting %q, skipped %q; want ap-south skipped", w, s)
	}
}
