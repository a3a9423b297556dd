package replicator

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// OriginLag is what one region knows, at one moment, of another region's
// stream: how far its mirror is behind, whether the mirror is live, and the
// RPO a failover of that origin's clients to this region would have now.
type OriginLag struct {
	Origin           string    `json:"origin"`
	Stream           string    `json:"stream"` // the local stream holding the origin's events
	Local            bool      `json:"local"`  // the origin is this region
	LastSeq          uint64    `json:"last_seq"`
	LastEventTime    time.Time `json:"last_event_time"` // time of the origin's last event held here
	OriginLastSeq    uint64    `json:"origin_last_seq"` // as last observed
	OriginObservedAt time.Time `json:"origin_observed_at"`
	OriginReachable  bool      `json:"origin_reachable"`
	MirrorActive     bool      `json:"mirror_active"`
	MirrorActiveAgo  float64   `json:"mirror_active_ago_seconds"` // -1: never
	MirrorError      string    `json:"mirror_error,omitempty"`
	LagEvents        uint64    `json:"lag_events"`
	LagSeconds       float64   `json:"lag_seconds"`
	WriteRate        float64   `json:"write_rate"`             // the origin's events per second over the last second
	PeakRate         float64   `json:"peak_write_rate"`        // the highest rate between two samples in the last 10 s
	LostSightAt      time.Time `json:"lost_sight_at,omitzero"` // the first failed look at the origin since it was last seen
	RPOEvents        uint64    `json:"rpo_events"`
	RPOSeconds       float64   `json:"rpo_seconds"`
	// RPOKnown is false until this region has both observed the origin's
	// stream and seen its mirror live: before that the RPO fields are no
	// bound at all, and nothing should fail over on them.
	RPOKnown bool `json:"rpo_known"`
	// MirrorCopying: the mirror's last sequence went up within the last
	// 3 s of this region's samples, so events are being copied whatever
	// MirrorActive (which also wants them recent) and MirrorError say. A
	// mirror catching up after a restart is copying and not yet active;
	// nats-server's "stalled on flow control" on a copying mirror warns of
	// a write backlog, not a stop (docs/runbooks/mirror-inactive.md).
	MirrorCopying bool `json:"mirror_copying"`
	// OriginBehind: the origin's stream was last seen holding fewer events
	// than its mirror here. A mirror never holds more than its origin
	// unless the origin lost events (a lost disk, a tail lost with fsync
	// off) and came back without being repaired from its mirrors: this
	// mirror then ignores the origin's next events up to its own last
	// sequence, so links created there do not reach this region
	// (docs/runbooks/origin-behind-mirror.md).
	OriginBehind bool `json:"origin_behind"`
	// OriginDiverged: the origin's stream and this mirror hold different
	// events at DivergedAt (latched until this region restarts): the
	// origin lost events and took new ones at their sequences. Checked
	// when the origin is first seen, when it is seen again after being out
	// of sight, and while it is behind the mirror.
	OriginDiverged bool   `json:"origin_diverged"`
	DivergedAt     uint64 `json:"diverged_at,omitempty"`
}

// Monitor samples, from region here, every origin's stream and its mirror
// here, and computes lag and the RPO bound.
type Monitor struct {
	js       jetstream.JetStream
	here     string
	peers    []string
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	state  map[string]*originState
	rounds int // sampling rounds completed
}

type originState struct {
	lag        OriginLag
	seen       []seqAt   // the origin's last sequence as sampled, oldest first, the last 10 s
	everSeenUp bool      // the origin's stream answered at least once
	everLive   bool      // the mirror was live at least once
	mirrorSeen bool      // the mirror answered at least once
	advancedAt time.Time // when a sample last found the mirror beyond the one before
	comparedAt uint64    // the sequence origin and mirror were last found alike at
}

// copyingWindow is how recently a mirror must have moved to be copying.
const copyingWindow = 3 * time.Second

// sawMirror records the mirror's last sequence as sampled at at. The first
// answer is where the mirror stands, not a movement.
func (st *originState) sawMirror(seq uint64, at time.Time) {
	if st.mirrorSeen && seq > st.lag.LastSeq {
		st.advancedAt = at
	}
	st.mirrorSeen = true
	st.lag.LastSeq = seq
}

// seqAt is an origin's last sequence as it stood at (no later than) at.
type seqAt struct {
	seq uint64
	at  time.Time
}

// rateWindow is how far back the peak write rate looks.
const rateWindow = 10 * time.Second

// observe records a sample of the origin's last sequence taken at at and
// updates the write rates from the samples of the last rateWindow.
func (st *originState) observe(seq uint64, at time.Time) {
	st.seen = append(st.seen, seqAt{seq, at})
	drop := 0
	for drop < len(st.seen)-2 && at.Sub(st.seen[drop].at) > rateWindow {
		drop++
	}
	st.seen = st.seen[drop:]
	l := &st.lag
	l.WriteRate, l.PeakRate = 0, 0
	for i := 1; i < len(st.seen); i++ {
		a, b := st.seen[i-1], st.seen[i]
		if dt := b.at.Sub(a.at).Seconds(); dt > 0 && b.seq > a.seq {
			l.PeakRate = math.Max(l.PeakRate, float64(b.seq-a.seq)/dt)
		}
	}
	for i := len(st.seen) - 2; i >= 0; i-- {
		if a := st.seen[i]; at.Sub(a.at) >= time.Second || i == 0 {
			if dt := at.Sub(a.at).Seconds(); dt > 0 && seq > a.seq {
				l.WriteRate = float64(seq-a.seq) / dt
			}
			break
		}
	}
}

// NewMonitor returns a monitor of peers as seen from here. It does no I/O.
func NewMonitor(c *Conn, here string, peers []string, now func() time.Time) *Monitor {
	if now == nil {
		now = time.Now
	}
	m := &Monitor{js: c.js, here: here, peers: peers, interval: 250 * time.Millisecond, now: now, state: map[string]*originState{}}
	m.state[here] = &originState{lag: OriginLag{Origin: here, Stream: StreamName(here), Local: true, OriginReachable: true, MirrorActive: true, RPOKnown: true}}
	for _, p := range peers {
		m.state[p] = &originState{lag: OriginLag{Origin: p, Stream: MirrorName(p, here), MirrorActiveAgo: -1}}
	}
	return m
}

// Run samples every 250 ms until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *Monitor) sample(ctx context.Context) {
	var wg sync.WaitGroup
	for _, origin := range append([]string{m.here}, m.peers...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.sampleOne(ctx, origin)
		}()
	}
	wg.Wait()
	m.mu.Lock()
	m.rounds++
	m.mu.Unlock()
}

// Rounds returns how many times every origin has been looked at.
func (m *Monitor) Rounds() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rounds
}

func (m *Monitor) sampleOne(ctx context.Context, origin string) {
	ctx, cancel := context.WithTimeout(ctx, 750*time.Millisecond)
	defer cancel()
	// The origin's answer describes its stream at some moment after this:
	// counting what it wrote since from here on errs on the safe side.
	asked := m.now()
	local := origin == m.here
	var mirror *jetstream.StreamInfo
	if s, err := m.js.Stream(ctx, m.streamOf(origin)); err == nil {
		mirror = s.CachedInfo()
	}
	var originInfo *jetstream.StreamInfo
	if local {
		originInfo = mirror
	} else if s, err := m.js.Stream(ctx, StreamName(origin)); err == nil {
		originInfo = s.CachedInfo()
	}
	if !local && mirror != nil && originInfo != nil {
		m.checkSame(ctx, origin, mirror.State.LastSeq, originInfo.State.LastSeq)
	}
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state[origin]
	l := &st.lag
	if mirror != nil {
		st.sawMirror(mirror.State.LastSeq, now)
		l.LastEventTime = mirror.State.LastTime
		if mirror.Mirror != nil {
			l.MirrorActiveAgo = -1
			if mirror.Mirror.Active >= 0 {
				l.MirrorActiveAgo = mirror.Mirror.Active.Seconds()
			}
			// Live means events are arriving, not merely that the mirror is
			// trying: while its source request is stuck in nats-server's
			// start-up retry, Active looks fresh but nothing flows. The
			// origin's heartbeats make a live mirror's newest event at most
			// about a second old.
			l.MirrorActive = mirror.Mirror.Active >= 0 && mirror.Mirror.Active < 3*time.Second &&
				!l.LastEventTime.IsZero() && now.Sub(l.LastEventTime) < 3*time.Second
			st.everLive = st.everLive || l.MirrorActive
			l.MirrorError = ""
			if mirror.Mirror.Error != nil {
				l.MirrorError = mirror.Mirror.Error.Description
			}
		}
	}
	if originInfo == nil {
		if l.OriginReachable || l.LostSightAt.IsZero() {
			l.LostSightAt = asked
		}
		l.OriginReachable = false
		return
	}
	l.OriginReachable = true
	l.LostSightAt = time.Time{}
	l.OriginLastSeq, l.OriginObservedAt = originInfo.State.LastSeq, asked
	st.observe(l.OriginLastSeq, asked)
	st.everSeenUp = true
}

// checkSame compares the origin's stream with its mirror here at the last
// sequence both hold when there is cause: the origin first seen, seen
// again after being out of sight, or seen behind the mirror (then at each
// new sequence it reaches, so a repair copying the events back is seen to
// agree). Both copies are immutable (the log denies deletes), so one
// differing event means the origin lost its stream and took other events
// at the same sequences.
func (m *Monitor) checkSame(ctx context.Context, origin string, mirrorLast, originLast uint64) {
	at := min(mirrorLast, originLast)
	m.mu.Lock()
	st := m.state[origin]
	cause := !st.everSeenUp || !st.lag.OriginReachable || originLast < mirrorLast
	skip := at == 0 || !cause || at == st.comparedAt || st.lag.OriginDiverged
	m.mu.Unlock()
	if skip {
		return
	}
	// Through consumers: a direct get of the origin's stream can be
	// answered by a mirror of it (MirrorDirect).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	same, err := sameAt(cctx, m.js, StreamName(origin), MirrorName(origin, m.here), at)
	cancel()
	if err != nil {
		return // looked at again next round
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if same {
		st.comparedAt = at
	} else {
		st.lag.OriginDiverged, st.lag.DivergedAt = true, at
	}
}

func (m *Monitor) streamOf(origin string) string {
	if origin == m.here {
		return StreamName(m.here)
	}
	return MirrorName(origin, m.here)
}

// Snapshot returns the lag of every origin, this region first, with the
// RPO bound computed for now.
//
// The RPO bound in events is the events the origin was last seen to hold
// beyond the mirror, plus what it may have written since: 1.5 times its peak
// write rate of the last 10 s over the time since it was last seen, plus
// 100 ms. Once the origin cannot be reached, that time stops at the first
// failed look: the bound assumes an origin out of sight stopped writing
// then (true of a dead region; a partitioned one that keeps taking writes
// holds them until the partition heals). The bound in seconds is the age of
// the newest origin event held here, up to the same moment.
func (m *Monitor) Snapshot() []OriginLag {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]OriginLag, 0, len(m.state))
	for _, origin := range append([]string{m.here}, m.peers...) {
		st := m.state[origin]
		l := st.lag
		if l.Local {
			l.OriginLastSeq, l.OriginObservedAt = l.LastSeq, now
			l.LagEvents, l.RPOEvents, l.RPOSeconds, l.LagSeconds = 0, 0, 0, 0
			out = append(out, l)
			continue
		}
		if l.OriginLastSeq > l.LastSeq {
			l.LagEvents = l.OriginLastSeq - l.LastSeq
		}
		// The mirror is sampled before the origin, so a healthy origin is
		// never seen behind it.
		l.OriginBehind = l.OriginReachable && l.OriginLastSeq < l.LastSeq
		if !l.LastEventTime.IsZero() {
			l.LagSeconds = math.Max(0, now.Sub(l.LastEventTime).Seconds())
		}
		until := now
		if !l.OriginReachable && !l.LostSightAt.IsZero() {
			until = l.LostSightAt
		}
		if !l.OriginObservedAt.IsZero() {
			unseen := until.Sub(l.OriginObservedAt) + 100*time.Millisecond
			rate := math.Max(l.PeakRate, l.WriteRate)
			l.RPOEvents = l.LagEvents + uint64(math.Ceil(1.5*rate*math.Max(0, unseen.Seconds())))
		}
		if !l.LastEventTime.IsZero() {
			l.RPOSeconds = math.Max(0, until.Sub(l.LastEventTime).Seconds())
		}
		l.RPOKnown = st.everSeenUp && st.everLive
		l.MirrorCopying = !st.advancedAt.IsZero() && now.Sub(st.advancedAt) < copyingWindow
		out = append(out, l)
	}
	return out
}

// Heartbeats appends a RegionHeartbeat to region's stream every interval
// until ctx ends, so that every mirror of it has a recent event even when
// nobody writes: the lag in time is measured from them.
func Heartbeats(ctx context.Context, log *Log, region string, interval time.Duration, now func() time.Time) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		e, err := events.New(events.TypeRegionHeartbeat, "", region, "", now(), events.RegionHeartbeat{})
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, interval)
		_, _ = log.Append(actx, e, false) // a missed heartbeat shows as lag: nothing else to do
		cancel()
	}
}

// Replication waits until another region's mirror holds a given sequence of
// this region's stream: the `replicated` durability mode. One poller serves
// every waiter.
type Replication struct {
	js    jetstream.JetStream
	here  string
	peers []string

	mu      sync.Mutex
	best    uint64
	waiting int
	changed chan struct{}
	kick    chan struct{}
}

// NewReplication returns a waiter for here's stream mirrored in peers. It
// does no I/O; Run polls.
func NewReplication(c *Conn, here string, peers []string) *Replication {
	return &Replication{js: c.js, here: here, peers: peers, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Wait blocks until at least one other region's mirror holds seq, or ctx
// ends (Unavailable).
func (r *Replication) Wait(ctx context.Context, seq uint64) error {
	if len(r.peers) == 0 {
		return &events.Error{Kind: events.Unavailable, Message: "no other region to replicate to", RetryAfter: time.Second}
	}
	r.mu.Lock()
	r.waiting++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.waiting--
		r.mu.Unlock()
	}()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	for {
		r.mu.Lock()
		best, ch := r.best, r.changed
		r.mu.Unlock()
		if best >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return &events.Error{Kind: events.Unavailable, RetryAfter: time.Second, Err: ctx.Err(),
				Message: "the link is stored in this region but no other region holds it yet; it will be replicated when they are reachable"}
		}
	}
}

// Run polls the mirrors of this region's stream while anyone waits.
func (r *Replication) Run(ctx context.Context) error {
	for {
		r.mu.Lock()
		idle := r.waiting == 0
		r.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				return nil
			case <-r.kick:
			}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		best := uint64(0)
		for _, p := range r.peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				s, err := r.js.Stream(pctx, MirrorName(r.here, p))
				if err != nil {
					return
				}
				mu.Lock()
				best = max(best, s.CachedInfo().State.LastSeq)
				mu.Unlock()
			}()
		}
		wg.Wait()
		r.mu.Lock()
		if best > r.best {
			r.best = best
			close(r.changed)
			r.changed = make(chan struct{})
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Millisecond):
		}
	}
}
