package replicator

import (
	"testing"
	"time"
)

// The RPO bound counts what the origin may have written since it was last
// seen at its peak rate of the last 10 s, not an average that a quiet
// second drags down, and stops counting at the first failed look.
func TestRPOBoundUsesPeakRateAndFreezesOutOfSight(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	now := t0
	m := NewMonitor(&Conn{}, "eu-west", []string{"us-east"}, func() time.Time { return now })
	st := m.state["us-east"]
	st.everSeenUp, st.everLive = true, true
	st.lag.OriginReachable = true
	st.lag.LastEventTime = t0

	// Quiet for 3 s, then one burst of 100 events in 250 ms, then quiet.
	seq := uint64(10)
	for i := 0; i <= 12; i++ {
		st.observe(seq, t0.Add(time.Duration(i)*250*time.Millisecond))
	}
	seq += 100
	burst := t0.Add(13 * 250 * time.Millisecond)
	st.observe(seq, burst)
	for i := 1; i <= 8; i++ {
		st.observe(seq, burst.Add(time.Duration(i)*250*time.Millisecond))
	}
	last := burst.Add(8 * 250 * time.Millisecond)
	if st.lag.PeakRate < 399 || st.lag.PeakRate > 401 {
		t.Fatalf("peak rate %v, want 400/s", st.lag.PeakRate)
	}
	if st.lag.WriteRate != 0 {
		t.Fatalf("write rate over the last second %v, want 0", st.lag.WriteRate)
	}
	st.lag.OriginLastSeq, st.lag.OriginObservedAt = seq, last
	st.lag.LastSeq = seq - 5

	now = last.Add(200 * time.Millisecond)
	o := m.Snapshot()[1]
	// 5 behind + 1.5 x 400/s x (0.2 s + 0.1 s) = 5 + 180.
	if o.RPOEvents != 185 {
		t.Fatalf("reachable: RPO %d events, want 185 (%+v)", o.RPOEvents, o)
	}

	// Lost sight 300 ms after the last look; the bound stops growing there.
	st.lag.OriginReachable, st.lag.LostSightAt = false, last.Add(300*time.Millisecond)
	for _, later := range []time.Duration{time.Second, time.Minute} {
		now = last.Add(later)
		o = m.Snapshot()[1]
		// 5 + 1.5 x 400 x 0.4 = 245.
		if o.RPOEvents != 245 {
			t.Fatalf("%v after the last look: RPO %d events, want 245", later, o.RPOEvents)
		}
		if want := last.Add(300 * time.Millisecond).Sub(t0).Seconds(); o.RPOSeconds != want {
			t.Fatalf("RPO %v s, want %v", o.RPOSeconds, want)
		}
	}

	// Samples older than the window no longer count towards the peak.
	for i := 1; i <= 44; i++ {
		st.observe(seq, last.Add(time.Duration(i)*250*time.Millisecond))
	}
	if st.lag.PeakRate != 0 {
		t.Fatalf("peak rate %v 11 s after the burst, want 0", st.lag.PeakRate)
	}
}

// A mirror is copying while samples find it moving, and not for its first
// answer (that is where it stood at start-up, not a movement).
func TestMirrorCopying(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	now := t0
	m := NewMonitor(&Conn{}, "eu-west", []string{"us-east"}, func() time.Time { return now })
	st := m.state["us-east"]
	copying := func() bool { return m.Snapshot()[1].MirrorCopying }

	st.sawMirror(5000, t0)
	if copying() {
		t.Fatal("copying after the first answer")
	}
	now = t0.Add(250 * time.Millisecond)
	st.sawMirror(5000, now)
	if copying() {
		t.Fatal("copying without moving")
	}
	moved := t0.Add(500 * time.Millisecond)
	now = moved
	st.sawMirror(5300, now)
	if !copying() || st.lag.LastSeq != 5300 {
		t.Fatalf("not copying after a move (last seq %d)", st.lag.LastSeq)
	}
	now = moved.Add(copyingWindow - time.Millisecond)
	st.sawMirror(5300, now)
	if !copying() {
		t.Fatal("not copying within the window after the last move")
	}
	now = moved.Add(copyingWindow)
	if copying() {
		t.Fatal("still copying a window after the last move")
	}
}
