package drills

import (
	"context"
	"fmt"
	"strings"
	"time"

	"shortener/chaos/load"
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// failoverDrill: the seeds' database failover. A region is killed
// (SIGKILL, make region-down) under load; its clients must be served by
// another region within the RTO target while the others keep their SLO;
// it is started again (make region-up) and its clients return once it is
// ready and caught up; nothing acknowledged is lost, and every copy of the
// log and every projection agree.
func failoverDrill() *Drill {
	return &Drill{
		Name:  "failover",
		Title: "Region failover and failback",
		Hypothesis: "every region ready, the switch answers every region's clients with their home region, " +
			"every region holds a live mirror of every other (RPO known)",
		Steady: steady(90 * time.Second),
		Load: func(o Options) load.Config {
			return load.Config{Rate: o.Rate, CreateRatio: 0.2, Duration: 30 * time.Minute, Workers: 48, Seed: time.Now().UnixNano()}
		},
		Method:   failoverMethod,
		Rollback: failoverRollback,
		Judge:    failoverJudge,
	}
}

func failoverMethod(ctx context.Context, r *Run) error {
	c, victim := r.Cluster, r.Opts.Region
	vr, _ := c.Region(victim)
	r.set("victim", victim)
	r.Logf("method", "steady load for 8 s before the kill")
	if err := sleep(ctx, 8*time.Second); err != nil {
		return err
	}
	killedAt, err := c.Down(ctx, victim)
	if err != nil {
		return fmt.Errorf("region-down %s: %w", victim, err)
	}
	r.set("down", true)
	r.set("killedAt", killedAt)
	r.Logf("method", "%s killed with SIGKILL (make region-down) at %s", victim, killedAt.Format(time.RFC3339Nano))

	var survivor string
	if err := poll(ctx, 15*time.Second, 50*time.Millisecond, func() error {
		a, err := c.SwitchAnswer(ctx, victim)
		if err != nil {
			return err
		}
		if a == victim {
			return fmt.Errorf("still answered with %s", a)
		}
		survivor = a
		return nil
	}); err != nil {
		return fmt.Errorf("the switch did not move %s's clients: %w", victim, err)
	}
	r.set("survivor", survivor)
	r.Logf("method", "the switch answers %s's clients with %s (%.2f s after the kill)", victim, survivor, time.Since(killedAt).Seconds())

	r.Logf("method", "%s stays down for 6 s", victim)
	if err := sleep(ctx, 6*time.Second); err != nil {
		return err
	}
	// What the survivor lacks of what the victim acknowledged: measured
	// while the victim is still down (afterwards its mirror delivers).
	h, err := r.History()
	if err != nil {
		return err
	}
	mid, err := load.Failover(h, victim, killedAt, time.Time{})
	if err != nil {
		return err
	}
	sr, _ := c.Region(survivor)
	probe, err := load.Probe(ctx, sr.URL, mid.AckedCodes())
	if err != nil {
		return fmt.Errorf("probe of %s: %w", survivor, err)
	}
	r.set("probe", probe)
	r.Logf("method", "probe of %s: %d acknowledged by %s before the kill, %d present, %d missing, %d errors",
		survivor, probe.Checked, victim, probe.Present, probe.Missing, probe.Errors)

	upAt, err := c.Up(ctx, victim)
	if err != nil {
		return fmt.Errorf("region-up %s: %w", victim, err)
	}
	r.set("down", false)
	r.set("upAt", upAt)
	r.Logf("method", "%s started again on its state (make region-up) at %s", victim, upAt.Format(time.RFC3339Nano))
	if err := poll(ctx, 90*time.Second, 200*time.Millisecond, func() error {
		code, err := getJSON(ctx, vr.URL+"/readyz", "", nil)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("/readyz %d", code)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%s not ready again: %w", victim, err)
	}
	r.set("readyAfter", time.Since(upAt))
	r.Logf("method", "%s ready (caught up with the others) %.1f s after the start", victim, time.Since(upAt).Seconds())
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		a, err := c.SwitchAnswer(ctx, victim)
		if err == nil && a != victim {
			err = fmt.Errorf("still answered with %s", a)
		}
		return err
	}); err != nil {
		return fmt.Errorf("the switch did not give %s its clients back: %w", victim, err)
	}
	r.Logf("method", "the switch answers %s's clients with %s again (%.1f s after the start)", victim, victim, time.Since(upAt).Seconds())
	r.Logf("method", "load continues 5 s with the clients home")
	return sleep(ctx, 5*time.Second)
}

func failoverRollback(ctx context.Context, r *Run) error {
	victim := r.Opts.Region
	if down, _ := r.get("down").(bool); down {
		r.Logf("rollback", "%s is still down: make region-up", victim)
		if _, err := r.Cluster.Up(ctx, victim); err != nil {
			return err
		}
		r.set("down", false)
	}
	vr, _ := r.Cluster.Region(victim)
	return poll(ctx, 60*time.Second, 250*time.Millisecond, func() error {
		if code, err := getJSON(ctx, vr.URL+"/readyz", "", nil); err != nil || code != 200 {
			return fmt.Errorf("%s not ready (%d, %v)", victim, code, err)
		}
		a, err := r.Cluster.SwitchAnswer(ctx, victim)
		if err == nil && a != victim {
			err = fmt.Errorf("the switch answers %s's clients with %s", victim, a)
		}
		return err
	})
}

func failoverJudge(ctx context.Context, r *Run) error {
	victim := r.Opts.Region
	killedAt, _ := r.get("killedAt").(time.Time)
	upAt, _ := r.get("upAt").(time.Time)
	if killedAt.IsZero() {
		return fmt.Errorf("%s was never killed", victim)
	}
	h, err := r.History()
	if err != nil {
		return err
	}
	fr, err := load.Failover(h, victim, killedAt, upAt)
	if err != nil {
		return err
	}
	if p, ok := r.get("probe").(*load.ProbeResult); ok {
		fr.Probe = p
	}
	var text strings.Builder
	_ = fr.WriteText(&text)
	for _, line := range strings.Split(strings.TrimSpace(text.String()), "\n") {
		r.Logf("analysis", "%s", line)
	}

	// 1. Served again within the target.
	if fr.Recovered {
		rto := Dur(fr.RTO)
		r.Result.RTO = &rto
		by := ""
		if fr.FirstElsewhere != nil {
			by = " (served by " + fr.FirstElsewhere.Region + ")"
		}
		r.Check("RTO: "+victim+"'s clients served again", "≤ "+r.Opts.RTOTarget.String(), fr.RTO.Round(time.Millisecond).String()+by, fr.RTO <= r.Opts.RTOTarget)
	} else {
		r.Check("RTO: "+victim+"'s clients served again", "≤ "+r.Opts.RTOTarget.String(), "never", false)
	}
	// 2. Healthy regions' errors.
	measured, healthyOK := healthyErrors(fr, r.Cluster.Regions, victim, r.Opts.SLO)
	r.Check("healthy regions' errors", fmt.Sprintf("< %.2f%%", 100*(1-r.Opts.SLO)), measured, healthyOK)
	// 3. Failback.
	ra := "never"
	if fr.Returned {
		ra = fmt.Sprintf("%s after region-up", fr.ReturnAfter.Round(100*time.Millisecond))
		if d, ok := r.get("readyAfter").(time.Duration); ok {
			ra += fmt.Sprintf(" (ready after %s)", d.Round(100*time.Millisecond))
		}
	}
	r.Check("failback: "+victim+"'s clients home again", "≤ 3m after region-up", ra, fr.Returned && fr.ReturnAfter <= 3*time.Minute)
	// 4. RPO: the bound reported before the kill against what the survivor lacked.
	survivor, _ := r.get("survivor").(string)
	rpo := judgeRPO(fr, survivor)
	r.Result.RPO = rpo
	r.Check("RPO: measured loss within the reported bound", fmt.Sprintf("missing ≤ RPO %s reported before the kill", survivor),
		fmt.Sprintf("%d of %d missing in %s; reported ≤ %d events (%.2f s)", rpo.Missing, rpo.Acked, survivor, rpo.ReportedEvents, rpo.ReportedSeconds), rpo.Holds)
	// 5. No data lost: every acknowledged create of the run resolves everywhere.
	codes, err := r.acknowledged()
	if err != nil {
		return err
	}
	allPresent(ctx, r, codes)
	// 6. Digests and audit.
	digestsAndAudit(ctx, r)
	return nil
}

// healthyErrors measures the success rate of the clients of every region
// but the victim against the SLO. It fails when a healthy region's clients
// have no operation in the history (a rate of nothing is no rate), and
// when there is no healthy region at all.
func healthyErrors(fr *load.FailoverReport, regions []Region, victim string, slo float64) (measured string, ok bool) {
	var parts []string
	worst, healthy, ok := 1.0, 0, true
	for _, rg := range regions {
		if rg.Name == victim {
			continue
		}
		healthy++
		cs, found := fr.Client(rg.Name)
		if !found {
			ok = false
			parts = append(parts, fmt.Sprintf("%s: no operation", rg.Name))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %d failed of %d", cs.Client, cs.Ops-cs.OK, cs.Ops))
		worst = min(worst, cs.SuccessRate)
	}
	if cs, found := fr.Client(victim); found {
		parts = append(parts, fmt.Sprintf("(%s: %.4f%%, longest failure run %d ops / %s)", cs.Client, 100*cs.SuccessRate, cs.LongestFailures, cs.LongestFailLasted.Round(time.Millisecond)))
	}
	if healthy == 0 {
		return "no healthy region", false
	}
	if !ok {
		return "a healthy region without operations: " + strings.Join(parts, ", "), false
	}
	return fmt.Sprintf("%.4f%% worst; %s", 100*(1-worst), strings.Join(parts, ", ")), worst >= slo
}

// judgeRPO compares what the survivor lacked of the victim's
// acknowledged creates (fr.Probe) with the RPO bound it reported before
// the kill. The bound holds only when it was known, the probe had no
// errors and checked at least one acknowledged create: a probe of
// nothing measured no loss.
func judgeRPO(fr *load.FailoverReport, survivor string) *RPOResult {
	rep, ok := fr.ReportedBy(survivor)
	known := ok && rep.Found && rep.RPOKnown
	rpo := &RPOResult{ReportedBy: survivor}
	if known {
		rpo.ReportedEvents, rpo.ReportedSeconds = rep.RPOEvents, rep.RPOSeconds
	}
	if p := fr.Probe; p != nil {
		rpo.Acked, rpo.Missing = p.Checked, p.Missing
		rpo.Holds = known && p.Checked > 0 && uint64(p.Missing) <= rep.RPOEvents && p.Errors == 0
	}
	return rpo
}

// allPresent checks invariant 1: every acknowledged create resolves in
// every region (waiting up to a minute for the mirrors).
func allPresent(ctx context.Context, r *Run, codes []string) {
	if len(codes) == 0 || len(r.Cluster.Regions) == 0 {
		r.Check("no acknowledged create lost", "every 201 resolves in every region",
			fmt.Sprintf("%d acknowledged, %d regions: nothing was tested", len(codes), len(r.Cluster.Regions)), false)
		return
	}
	var parts []string
	ok := true
	deadline := time.Now().Add(45 * time.Second) // for all regions together
	for _, rg := range r.Cluster.Regions {
		var last *load.ProbeResult
		err := poll(ctx, max(time.Until(deadline), time.Second), time.Second, func() error {
			p, err := load.Probe(ctx, rg.URL, codes)
			if err != nil {
				return err
			}
			last = p
			if p.Present != len(codes) {
				return fmt.Errorf("%d of %d present", p.Present, len(codes))
			}
			return nil
		})
		if err != nil {
			ok = false
			if last != nil {
				parts = append(parts, fmt.Sprintf("%s: %d present, %d missing, %d gone, %d errors", rg.Name, last.Present, last.Missing, last.Gone, last.Errors))
			} else {
				parts = append(parts, fmt.Sprintf("%s: %v", rg.Name, err))
			}
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: all", rg.Name))
	}
	r.Check("no acknowledged create lost", "every 201 resolves in every region",
		fmt.Sprintf("%d acknowledged; %s", len(codes), strings.Join(parts, "; ")), ok)
}

// digestsAndAudit checks invariant 4: the regions' projections have one
// digest, and audit verify finds every mirror equal to its origin and
// every projection equal to a replay of the log.
func digestsAndAudit(ctx context.Context, r *Run) {
	seen, ok := digestsEqual(ctx, r.Cluster, 30*time.Second)
	r.Check("projection digests equal in every region", "one digest", seen, ok)
	if r.Cluster.Verify == nil {
		return
	}
	start := time.Now()
	out, err := r.Cluster.Verify(ctx)
	summary := lastLine(out)
	if err != nil {
		summary = err.Error()
	}
	r.Check("audit verify (mirrors = origins, projections = replay)", "VERIFY OK",
		fmt.Sprintf("%s (%.1f s)", summary, time.Since(start).Seconds()), err == nil)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
