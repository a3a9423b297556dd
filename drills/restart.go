package drills

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"shortener/chaos/load"
)

// restartDrill: a rolling restart. One region after the other is drained
// at the switch (its clients go elsewhere within the 1 s TTL; 3 s are left
// for them to follow), stopped gracefully (SIGTERM: the app stops taking
// connections and finishes the requests in flight within 5 s, then closes
// its store and NATS servers), started again, and undrained once ready.
// Criteria: no request dropped, p99 under 150 ms, every app stopped within
// 5 s without being forced, every region healthy again within 30 s of its
// restart.
//
// A restarted region is ready once its mirrors have caught up: about 2 s
// (region/resume.go; 17 s and 42 s before, docs/decisions.md "Mirrors").
// The report gives
// each region's time to ready and the median (the figure bench restart
// measures under a SIGKILL).
func restartDrill() *Drill {
	return &Drill{
		Name:       "restart",
		Title:      "Rolling restart",
		Hypothesis: "as for failover",
		Steady:     steady(90 * time.Second),
		Load: func(o Options) load.Config {
			return load.Config{Rate: o.Rate, CreateRatio: 0.1, Duration: 30 * time.Minute, Workers: 48, Seed: time.Now().UnixNano()}
		},
		Method:   restartMethod,
		Rollback: restartRollback,
		Judge:    restartJudge,
	}
}

func waitAnswer(ctx context.Context, c *Cluster, home string, want func(string) bool, timeout time.Duration) (string, error) {
	var got string
	err := poll(ctx, timeout, 50*time.Millisecond, func() error {
		a, err := c.SwitchAnswer(ctx, home)
		if err != nil {
			return err
		}
		got = a
		if !want(a) {
			return fmt.Errorf("answered with %s", a)
		}
		return nil
	})
	return got, err
}

func restartMethod(ctx context.Context, r *Run) error {
	c := r.Cluster
	r.Logf("method", "steady load for 5 s")
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	var readies, stops []string
	var times []time.Duration
	worst, slowStop, anyForced := time.Duration(0), time.Duration(0), false
	for _, rg := range c.Regions {
		name := rg.Name
		cy, err := cycleRegion(ctx, r, rg, nil)
		if err != nil {
			return err
		}
		if cy.stopped {
			stops = append(stops, fmt.Sprintf("%s %.2fs", name, cy.stopTook.Seconds()))
			slowStop = max(slowStop, cy.stopTook)
			anyForced = anyForced || cy.forced
		}
		worst = max(worst, cy.ready)
		times = append(times, cy.ready)
		readies = append(readies, fmt.Sprintf("%s %.1fs", name, cy.ready.Seconds()))
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	if len(times) > 0 {
		slices.Sort(times)
		readies = append(readies, fmt.Sprintf("median %.1fs", times[len(times)/2].Seconds()))
	}
	r.set("readies", strings.Join(readies, ", "))
	if len(stops) > 0 {
		r.set("stops", strings.Join(stops, ", "))
		r.set("slowStop", slowStop)
		r.set("forced", anyForced)
	}
	r.set("worstReady", worst)
	return nil
}

func restartRollback(ctx context.Context, r *Run) error {
	c := r.Cluster
	for _, rg := range c.Regions {
		if down, _ := r.get("down:" + rg.Name).(bool); down {
			r.Logf("rollback", "%s is down: starting it", rg.Name)
			if _, err := c.Up(ctx, rg.Name); err != nil {
				return err
			}
			r.set("down:"+rg.Name, false)
		}
		if drained, _ := r.get("drained:" + rg.Name).(bool); drained {
			r.Logf("rollback", "%s is drained: undraining it", rg.Name)
			if err := c.Drain(ctx, rg.Name, false); err != nil {
				return err
			}
			r.set("drained:"+rg.Name, false)
		}
	}
	return nil
}

func restartJudge(ctx context.Context, r *Run) error {
	ops, failed := r.live.healthy("")
	r.Check("zero dropped requests", "0 failed", fmt.Sprintf("%d failed of %d sent", failed, ops), failed == 0 && ops > 0)
	p99 := time.Duration(r.Result.Load.P99)
	r.Check("p99 latency", "< 150ms", p99.Round(10*time.Microsecond).String(), p99 > 0 && p99 < 150*time.Millisecond)
	if stops, ok := r.get("stops").(string); ok {
		slow, _ := r.get("slowStop").(time.Duration)
		forced, _ := r.get("forced").(bool)
		measured := stops
		if forced {
			measured += " (one was SIGKILLed: it did not exit within 15 s)"
		}
		r.Check("drained: in-flight requests finished, app exited", "within 5 s of SIGTERM, none forced", measured, !forced && slow <= 5*time.Second)
	} else if r.Cluster.Stop != nil {
		r.Check("drained: in-flight requests finished, app exited", "within 5 s of SIGTERM, none forced", "no region was stopped", false)
	}
	worst, _ := r.get("worstReady").(time.Duration)
	readies, _ := r.get("readies").(string)
	r.Check("healthy after restart: process start to ready", "≤ 30s each", readies, readies != "" && worst <= 30*time.Second)
	codes, err := r.acknowledged()
	if err != nil {
		return err
	}
	allPresent(ctx, r, codes)
	digestsAndAudit(ctx, r)
	return nil
}

// cycle is what cycleRegion measured.
type cycle struct {
	stopped  bool          // stopped gracefully (false: SIGKILLed, the cluster cannot stop)
	stopTook time.Duration // SIGTERM to exit
	forced   bool          // SIGKILLed after not exiting in time
	ready    time.Duration // start to ready
}

// cycleRegion takes a region out and back the way an operator would: drain
// it at the switch (3 s for its clients to follow the 1 s TTL and for
// in-flight requests to finish), stop it gracefully (or kill it when the
// cluster cannot stop), run between while it is down (nil for nothing),
// start it, wait until it is ready, undrain it, and wait until the switch
// answers its clients with it again. It keeps "drained:" and "down:" state
// for the rollbacks (rollbackRegions).
func cycleRegion(ctx context.Context, r *Run, rg Region, between func() error) (cycle, error) {
	c, name := r.Cluster, rg.Name
	var cy cycle
	if c.Drain == nil {
		return cy, fmt.Errorf("this cluster cannot drain regions")
	}
	if err := c.Drain(ctx, name, true); err != nil {
		return cy, fmt.Errorf("drain %s: %w", name, err)
	}
	r.set("drained:"+name, true)
	to, err := waitAnswer(ctx, c, name, func(a string) bool { return a != name }, 10*time.Second)
	if err != nil {
		return cy, fmt.Errorf("the switch did not move %s's clients: %w", name, err)
	}
	r.Logf("method", "%s drained: its clients answered with %s; 3 s for them to follow (TTL 1 s) and for in-flight requests to finish", name, to)
	if err := sleep(ctx, 3*time.Second); err != nil {
		return cy, err
	}
	r.set("down:"+name, true)
	if c.Stop != nil {
		_, took, forced, err := c.Stop(ctx, name)
		if err != nil {
			return cy, fmt.Errorf("stop %s: %w", name, err)
		}
		cy.stopped, cy.stopTook, cy.forced = true, took, forced
		r.Logf("method", "%s stopped with SIGTERM: exited after %.2f s (forced: %t)", name, took.Seconds(), forced)
	} else {
		if _, err := c.Down(ctx, name); err != nil {
			return cy, fmt.Errorf("stop %s: %w", name, err)
		}
		r.Logf("method", "%s killed (this cluster cannot stop a region gracefully)", name)
	}
	if between != nil {
		if err := between(); err != nil {
			return cy, err
		}
	}
	upAt, err := c.Up(ctx, name)
	if err != nil {
		return cy, fmt.Errorf("start %s: %w", name, err)
	}
	r.set("down:"+name, false)
	r.Logf("method", "%s started", name)
	if err := poll(ctx, 2*time.Minute, 100*time.Millisecond, func() error {
		code, err := getJSON(ctx, rg.URL+"/readyz", "", nil)
		if err == nil && code != 200 {
			err = fmt.Errorf("/readyz %d", code)
		}
		return err
	}); err != nil {
		return cy, fmt.Errorf("%s not ready after its start: %w", name, err)
	}
	cy.ready = time.Since(upAt)
	r.Logf("method", "%s ready %.1f s after its start", name, cy.ready.Seconds())
	if err := c.Drain(ctx, name, false); err != nil {
		return cy, fmt.Errorf("undrain %s: %w", name, err)
	}
	r.set("drained:"+name, false)
	if _, err := waitAnswer(ctx, c, name, func(a string) bool { return a == name }, 30*time.Second); err != nil {
		return cy, fmt.Errorf("the switch did not give %s its clients back: %w", name, err)
	}
	r.Logf("method", "%s undrained: its clients are home again", name)
	return cy, nil
}
