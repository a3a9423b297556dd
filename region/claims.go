package region

import (
	"context"
	"time"
)

// Alias claims whose event was never written.
//
// A custom alias is claimed in the global register before its LinkCreated
// is appended. If the region crashes in between, or the append fails, the
// register holds a claim for a link that does not exist, and nobody could
// ever use that alias. Every claim is therefore also recorded in the
// region's store until its link is applied; the reconciler looks at the
// ones still there once they are older than ClaimGrace (every 30 s, or on
// ReconcileClaims), and:
//   - the event is in the projection: the link exists, the record goes;
//   - it is not, and the projection has applied the whole of this region's
//     stream (so the event is not merely late): the claim is released in
//     the register (only if it is still this claim: compare-and-delete),
//     then the record goes. No 201 was ever given for it, so no link is
//     taken from anybody (invariant 3 is about links that exist).
//   - the register cannot be reached: try again next round.

// claimsEvery is how often pending claims are looked at.
const claimsEvery = 30 * time.Second

func (r *Region) reconcileClaimsLoop(ctx context.Context) error {
	t := time.NewTicker(claimsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r.ReconcileClaims(ctx)
	}
}

// ReconcileClaims settles every pending claim older than ClaimGrace and
// returns how many claims it released.
func (r *Region) ReconcileClaims(ctx context.Context) int {
	claims, err := r.store.Claims()
	if err != nil {
		r.log.Error("pending alias claims unreadable", "err", err)
		return 0
	}
	if len(claims) == 0 {
		return 0
	}
	// Only once everything this region wrote is applied here can "not in
	// the projection" mean "never written".
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := r.js.State(ictx, r.stream)
	cancel()
	if err != nil || r.store.Checkpoint(r.stream) < st.LastSeq {
		return 0
	}
	released := 0
	now := r.cfg.Now()
	for _, c := range claims {
		if now.Sub(c.Time) < r.cfg.ClaimGrace {
			continue
		}
		evs, err := r.store.Events(c.Alias)
		if err != nil {
			continue
		}
		written := false
		for _, e := range evs {
			written = written || e.ID == c.EventID
		}
		if !written {
			ok, err := r.aliases.Release(ctx, c.Alias, c.EventID)
			if err != nil {
				r.log.Warn("alias claim without a link: register unreachable, will retry", "alias", c.Alias, "event", c.EventID, "err", err)
				continue
			}
			if ok {
				released++
				r.log.Warn("released an alias claim whose event was never written", "alias", c.Alias, "event", c.EventID, "claimed", c.Time)
			}
		}
		_ = r.store.DropClaim(c.Alias)
	}
	return released
}
