package drills

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"shortener/chaos/load"
)

// cacheDrill: the seeds' Redis drill, in two parts. First a region's
// redirect cache is emptied under load (POST /api/v1/admin/cache/purge);
// redirects read from Pebble meanwhile, so nothing fails, and the hit rate
// (the region's /metrics counters) must be back above 80 % within the
// target. Then its Pebble projection is rebuilt from the log: the region
// is drained at the switch, stopped gracefully, its projection moved aside,
// and started again; it rebuilds the projection from its stream and its
// mirrors before it is ready, gets its clients back, and its cold cache
// must again be above 80 % within the target (applying events fills the
// LRU, so a rebuilt region starts with its most recent links cached). The
// digests must be equal after the rebuild.
func cacheDrill() *Drill {
	return &Drill{
		Name:       "cache",
		Title:      "Cache flush and refill, projection rebuilt from the log",
		Hypothesis: "as for failover, and the region's cache hit rate above 80 % under load",
		Steady:     steady(90 * time.Second),
		Load: func(o Options) load.Config {
			return load.Config{Rate: o.Rate, CreateRatio: 0.05, Duration: 30 * time.Minute, Workers: 32, Seed: time.Now().UnixNano()}
		},
		Method:   cacheMethod,
		Rollback: cacheRollback,
		Judge:    cacheJudge,
	}
}

type hitSample struct {
	at           time.Time
	hits, misses float64
}

func rateBetween(a, b hitSample) (float64, float64) {
	dh, dm := b.hits-a.hits, b.misses-a.misses
	if dh+dm <= 0 {
		return 0, 0
	}
	return dh / (dh + dm), dh + dm
}

func cacheMethod(ctx context.Context, r *Run) error {
	rg, _ := r.Cluster.Region(r.Opts.Region)
	sample := func() (hitSample, error) {
		h, m, err := cacheCounters(ctx, rg.URL)
		return hitSample{time.Now(), h, m}, err
	}
	r.Logf("method", "steady load for 8 s, then the hit rate of %s over 2 s", rg.Name)
	if err := sleep(ctx, 8*time.Second); err != nil {
		return err
	}
	s0, err := sample()
	if err != nil {
		return err
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	s1, err := sample()
	if err != nil {
		return err
	}
	before, n := rateBetween(s0, s1)
	r.set("before", before)
	r.Logf("method", "hit rate of %s before the flush: %.1f%% of %.0f lookups", rg.Name, 100*before, n)

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, rg.URL+"/api/v1/admin/cache/purge", nil)
	req.Header.Set("X-Api-Key", r.Cluster.APIKey)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cache purge: %w", err)
	}
	var pr struct {
		Purged int `json:"purged"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&pr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cache purge: %s", resp.Status)
	}
	purgedAt := time.Now()
	r.set("purged", pr.Purged)
	r.Logf("method", "cache of %s flushed (POST /api/v1/admin/cache/purge): %d entries dropped", rg.Name, pr.Purged)

	if err := watchRefill(ctx, r, rg, purgedAt, "the flush", ""); err != nil {
		return err
	}
	return rebuildProjection(ctx, r, rg)
}

// watchRefill waits for the hit rate to come back (waitHitRate), records
// the lowest rate and the refill time under "lowest"+suffix and
// "refill"+suffix for the judge, and lets the load go on 3 s.
func watchRefill(ctx context.Context, r *Run, rg Region, since time.Time, what, suffix string) error {
	lowest, refill, err := waitHitRate(ctx, r, rg, since, what)
	if err != nil {
		return err
	}
	r.set("lowest"+suffix, lowest)
	if refill > 0 {
		r.set("refill"+suffix, refill)
	}
	r.Logf("method", "load continues 3 s")
	return sleep(ctx, 3*time.Second)
}

// waitHitRate samples the region's hit rate every second from since until
// it is back above 80 % (or twice the target has passed) and returns the
// lowest rate seen and how long it took (0: not within).
func waitHitRate(ctx context.Context, r *Run, rg Region, since time.Time, what string) (lowest float64, took time.Duration, err error) {
	sample := func() (hitSample, error) {
		h, m, err := cacheCounters(ctx, rg.URL)
		if errors.Is(err, errNoCacheLookups) { // a restarted region before its first lookup
			err = nil
		}
		return hitSample{time.Now(), h, m}, err
	}
	prev, err := sample()
	if err != nil {
		return 0, 0, err
	}
	lowest = 1.0
	for time.Since(since) < 2*r.Opts.RefillTarget {
		if err := sleep(ctx, time.Second); err != nil {
			return lowest, 0, err
		}
		cur, err := sample()
		if err != nil {
			return lowest, 0, err
		}
		rate, n := rateBetween(prev, cur)
		if n < 20 {
			continue // too few lookups to judge (clients still coming back): a longer window
		}
		prev = cur
		lowest = min(lowest, rate)
		r.Logf("method", "hit rate of %s %.1f s after %s: %.1f%% of %.0f lookups", rg.Name, cur.at.Sub(since).Seconds(), what, 100*rate, n)
		if rate > 0.8 {
			return lowest, cur.at.Sub(since), nil
		}
	}
	return lowest, 0, nil
}

// rebuildProjection is the drill's second part: the region drained,
// stopped, its projection moved aside, started again (it rebuilds from the
// log before it is ready), undrained, and its cold cache watched.
func rebuildProjection(ctx context.Context, r *Run, rg Region) error {
	c, name := r.Cluster, rg.Name
	if c.Stop == nil || c.ResetProjection == nil {
		return fmt.Errorf("this cluster cannot rebuild a region's projection (stop, reset)")
	}
	cy, err := cycleRegion(ctx, r, rg, func() error {
		if err := c.ResetProjection(ctx, name); err != nil {
			return fmt.Errorf("reset %s's projection: %w", name, err)
		}
		r.Logf("method", "%s's projection moved aside (projection.old): it rebuilds it from the log when it starts", name)
		return nil
	})
	if err != nil {
		return err
	}
	home := time.Now()
	var p projectionInfo
	if _, err := getJSON(ctx, rg.URL+"/api/v1/projection", c.APIKey, &p); err != nil {
		return err
	}
	r.set("rebuilt", cy.ready)
	r.set("rebuiltLinks", p.Links)
	r.Logf("method", "%s's projection rebuilt from the log: %d links, digest %.12s; its clients are home, on a cold cache", name, p.Links, p.Digest)
	return watchRefill(ctx, r, rg, home, "its clients came back", "2")
}

func cacheRollback(ctx context.Context, r *Run) error {
	if err := restartRollback(ctx, r); err != nil {
		return err
	}
	r.Logf("rollback", "the cache refills from Pebble by itself")
	return nil
}

func cacheJudge(ctx context.Context, r *Run) error {
	// Failures among the operations sent (from the history); operations
	// the load generator never sent because the run was stopped under them
	// ("missed") are not the service's.
	ops, failed := r.live.healthy("")
	r.Check("no errors", "0 failed operations", fmt.Sprintf("%d failed of %d sent (%d not sent: load stopped)", failed, ops, r.Result.Load.Missed), failed == 0 && ops > 0)
	purged, _ := r.get("purged").(int)
	lowest, _ := r.get("lowest").(float64)
	before, _ := r.get("before").(float64)
	r.Check("steady state: hit rate before the flush", "> 80%", fmt.Sprintf("%.1f%%", 100*before), before > 0.8)
	r.Check("cache emptied", "entries dropped > 0", fmt.Sprintf("%d entries dropped; hit rate %.1f%% before, lowest %.1f%% after", purged, 100*before, 100*lowest), purged > 0)
	if d, ok := r.get("refill").(time.Duration); ok {
		r.Check("hit rate back above 80%", "≤ "+r.Opts.RefillTarget.String(), d.Round(10*time.Millisecond).String()+" after the flush", d <= r.Opts.RefillTarget)
	} else {
		r.Check("hit rate back above 80%", "≤ "+r.Opts.RefillTarget.String(), "not within "+(2*r.Opts.RefillTarget).String(), false)
	}
	if d, ok := r.get("rebuilt").(time.Duration); ok {
		links, _ := r.get("rebuiltLinks").(int)
		r.Check("projection rebuilt from the log", "ready within 60s of the start", fmt.Sprintf("%d links, ready %.1f s after the start", links, d.Seconds()), d <= time.Minute)
	} else {
		r.Check("projection rebuilt from the log", "ready within 60s of the start", "not rebuilt", false)
	}
	lowest2, _ := r.get("lowest2").(float64)
	if d, ok := r.get("refill2").(time.Duration); ok {
		r.Check("hit rate back above 80% after the rebuild", "≤ "+r.Opts.RefillTarget.String(), fmt.Sprintf("%s after its clients came back (lowest %.1f%%)", d.Round(10*time.Millisecond), 100*lowest2), d <= r.Opts.RefillTarget)
	} else {
		r.Check("hit rate back above 80% after the rebuild", "≤ "+r.Opts.RefillTarget.String(), "not within "+(2*r.Opts.RefillTarget).String(), false)
	}
	codes, err := r.acknowledged()
	if err != nil {
		return err
	}
	allPresent(ctx, r, codes)
	digestsAndAudit(ctx, r)
	return nil
}
