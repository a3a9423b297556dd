package region

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"shortener/replicator"
)

// catchUpDeadline is how long a starting region waits for its peers'
// events before it serves without those that still have not arrived.
const catchUpDeadline = 2 * time.Minute

// peerReachGrace is how long a starting region tries to reach a peer
// before it stops waiting for that peer's events.
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
	if c.targets == nil {
		c.targets = map[string]uint64{}
	}
	var waiting, skipped []string
	late := r.cfg.Now().Sub(r.opened) > catchUpDeadline
	for _, o := range r.monitor.Snapshot() {
		if o.Local {
			continue
		}
		target, ok := c.targets[o.Origin]
		if !ok {
			if !o.OriginReachable {
				// Right after a start the gateways may not be up yet: a peer
				// not reached at the first looks is waited for a while
				// before it counts as down (found by the compose test: a
				// restarted region ready after 1 s, without the links made
				// elsewhere during its outage).
				if r.cfg.Now().Sub(r.opened) < peerReachGrace {
					waiting = append(waiting, o.Origin+": not reached yet")
					continue
				}
				skipped = append(skipped, o.Origin+" unreachable")
				continue
			}
			target = o.OriginLastSeq
			c.targets[o.Origin] = target
		}
		applied := r.store.Checkpoint(replicator.MirrorName(o.Origin, r.cfg.Name))
		if applied >= target {
			continue
		}
		if late {
			skipped = append(skipped, fmt.Sprintf("%s at %d of %d after %s", o.Origin, applied, target, catchUpDeadline))
			continue
		}
		waiting = append(waiting, fmt.Sprintf("%s: applied %d of %d (mirror holds %d, live %t)", o.Origin, applied, target, o.LastSeq, o.MirrorActive))
	}
	if len(waiting) > 0 {
		return "catching up with " + strings.Join(waiting, "; ")
	}
	c.done = true
	c.note = "caught up"
	if len(skipped) > 0 {
		c.note = "caught up, not waited for: " + strings.Join(skipped, "; ")
		r.log.Warn("serving without having caught up with every peer", "skipped", skipped)
	}
	r.log.Info("caught up with peers", "after", r.cfg.Now().Sub(r.opened).Round(time.Millisecond), "targets", c.targets)
	return ""
}
