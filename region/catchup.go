package region

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"shortener/replicator"
)

// catchUpDeadline is how long a starting region waits for its peers'
// events before it serves without those that still have not arrived.
const catchUpDeadline = 2 * time.Minute

// peerReachGrace is how long a starting region tries to reach a peer,
// once it reached another, before it stops waiting for that peer's events.
const peerReachGrace = 15 * time.Second

// catchUp is the start-up half of readiness: a region that comes back
// after an outage must not take its clients back before it holds what the
// other regions wrote meanwhile, or links created elsewhere would answer
// 404 there. It latches: once caught up, lag later on is the lag monitor's
// business, not readiness's.
type catchUp struct {
	mu      sync.Mutex
	done    bool
	note    string            // how it ended, for /readyz
	targets map[string]uint64 // per peer: its last sequence when first seen
	// reachedAt is when a peer was first reached (zero: none yet).
	reachedAt time.Time

	ownDone  bool      // the own stream was applied up to its end once
	applied  uint64    // the own stream's applied sequence at the last check
	advanced time.Time // when it last moved, or was last at the end
}

// stallAfter is how long the projection may stay behind its own stream
// without applying anything before readiness fails.
const stallAfter = 5 * time.Second

// own checks the projection against the region's own stream: at start-up
// it must reach the end once; after that, under load, it is always a few
// events behind (events in flight), so only a projection that stays behind
// without moving for stallAfter is not ready.
func (c *catchUp) own(applied, last uint64, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if applied >= last || applied != c.applied || c.advanced.IsZero() {
		c.applied, c.advanced = applied, now
	}
	if applied >= last {
		c.ownDone = true
		return ""
	}
	if !c.ownDone {
		return fmt.Sprintf("catching up: applied %d of %d", applied, last)
	}
	if stuck := now.Sub(c.advanced); stuck >= stallAfter {
		return fmt.Sprintf("stalled: applied %d of %d, nothing applied for %s", applied, last, stuck.Round(time.Second))
	}
	return ""
}

// caughtUpWithPeers returns "" once the projection holds everything every
// reachable peer held when this region first saw it, and otherwise what it
// is waiting for. A peer that cannot be reached is not waited for: one dead
// region must not keep a returning one out of service.
func (r *Region) caughtUpWithPeers() string {
	if len(r.cfg.Peers) == 0 {
		return ""
	}
	c := &r.catchup
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return ""
	}
	if r.monitor.Rounds() == 0 {
		return "peers not looked at yet"
	}
	now := r.cfg.Now()
	waiting, skipped := c.peers(r.monitor.Snapshot(), now.Sub(r.opened), now, func(origin string) uint64 {
		return r.store.Checkpoint(replicator.MirrorName(origin, r.cfg.Name))
	})
	if len(waiting) > 0 {
		return "catching up with " + strings.Join(waiting, "; ")
	}
	c.done = true
	c.note = "caught up"
	if len(skipped) > 0 {
		c.note = "caught up, not waited for: " + strings.Join(skipped, "; ")
		r.log.Warn("serving without having caught up with every peer", "skipped", skipped)
	}
	r.log.Info("caught up with peers", "after", now.Sub(r.opened).Round(time.Millisecond), "targets", c.targets)
	return ""
}

// peers judges the peers' lags at now, up (time since the region opened)
// after the start: waiting lists the peers still waited for, skipped the
// ones given up on. applied is how far the projection applied a peer's
// mirror. Called with c.mu held.
//
// A peer never reached is taken for down only peerReachGrace after this
// region reached another one: until it reached any, it cannot tell its
// peers being down from its own gateways and JetStream not having joined
// the supercluster yet, and a grace counted from its own start let a
// restarted region of the compose stack take its clients back before the
// links made elsewhere during its outage resolved there. After
// catchUpDeadline, nothing is waited for.
func (c *catchUp) peers(lags []replicator.OriginLag, up time.Duration, now time.Time, applied func(origin string) uint64) (waiting, skipped []string) {
	if c.targets == nil {
		c.targets = map[string]uint64{}
	}
	late := up > catchUpDeadline
	if c.reachedAt.IsZero() && slices.ContainsFunc(lags, func(o replicator.OriginLag) bool { return !o.Local && o.OriginReachable }) {
		c.reachedAt = now
	}
	for _, o := range lags {
		if o.Local {
			continue
		}
		target, ok := c.targets[o.Origin]
		if !ok {
			if !o.OriginReachable {
				if !late && (c.reachedAt.IsZero() || now.Sub(c.reachedAt) < peerReachGrace) {
					waiting = append(waiting, o.Origin+": not reached yet")
					continue
				}
				skipped = append(skipped, o.Origin+" unreachable")
				continue
			}
			target = o.OriginLastSeq
			c.targets[o.Origin] = target
		}
		got := applied(o.Origin)
		if got >= target {
			continue
		}
		if late {
			skipped = append(skipped, fmt.Sprintf("%s at %d of %d after %s", o.Origin, got, target, catchUpDeadline))
			continue
		}
		waiting = append(waiting, fmt.Sprintf("%s: applied %d of %d (mirror holds %d, live %t)", o.Origin, got, target, o.LastSeq, o.MirrorActive))
	}
	return waiting, skipped
}
