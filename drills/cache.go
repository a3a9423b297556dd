package drills

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"shortener/chaos/load"
)

// cacheDrill: the seeds' Redis drill. A region's redirect cache is emptied
// under load (POST /api/v1/admin/cache/purge); redirects read from Pebble
// meanwhile, so nothing fails, and the hit rate (the region's /metrics
// counters) must be back above 80 % within the target.
func cacheDrill() *Drill {
	return &Drill{
		Name:       "cache",
		Title:      "Cache flush and refill",
		Hypothesis: "as for failover, and the region's cache hit rate above 80 % under load",
		Steady:     steady(90 * time.Second),
		Load: func(o Options) load.Config {
			return load.Config{Rate: o.Rate, CreateRatio: 0.05, Duration: 30 * time.Minute, Workers: 32, Seed: time.Now().UnixNano()}
		},
		Method: cacheMethod,
		Rollback: func(ctx context.Context, r *Run) error {
			r.Logf("rollback", "nothing to undo: the cache refills from Pebble by itself")
			return nil
		},
		Judge: cacheJudge,
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

	// The hit rate per second from the counters, until it is back above
	// 80 % (and at most twice the target).
	prev, err := sample()
	if err != nil {
		return err
	}
	lowest := 1.0
	for time.Since(purgedAt) < 2*r.Opts.RefillTarget {
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		cur, err := sample()
		if err != nil {
			return err
		}
		rate, n := rateBetween(prev, cur)
		prev = cur
		if n == 0 {
			continue
		}
		lowest = min(lowest, rate)
		r.Logf("method", "hit rate of %s %.1f s after the flush: %.1f%% of %.0f lookups", rg.Name, cur.at.Sub(purgedAt).Seconds(), 100*rate, n)
		if rate > 0.8 {
			r.set("refill", cur.at.Sub(purgedAt))
			break
		}
	}
	r.set("lowest", lowest)
	r.Logf("method", "load continues 3 s")
	return sleep(ctx, 3*time.Second)
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
	codes, err := r.acknowledged()
	if err != nil {
		return err
	}
	allPresent(ctx, r, codes)
	digestsAndAudit(ctx, r)
	return nil
}
