package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The targets of bench redirect (issue 22): the default region against
// the bare server, and clicks on against clicks off, same run, same core.
const (
	peakTarget      = 0.85 // region peak at least this times the bare server's
	p99Target       = 1.5  // region p99 at most this times the bare server's
	clicksTarget    = 0.95 // clicks on at least this times clicks off, at peak and at p99
	minPointSuccess = 0.99 // below this, a point's p99 is not the latency of its answers
)

// redirectRun is one run of bench redirect, as appended to --results.
type redirectRun struct {
	Date     string          `json:"date"`
	Commit   string          `json:"commit,omitempty"`
	Machine  machineInfo     `json:"machine"`
	Options  map[string]any  `json:"options"`
	Pinned   bool            `json:"pinned"` // servers on CPU 0, load on CPU 1
	Servers  []*serverResult `json:"servers"`
	Verdicts []check         `json:"verdicts"`
	Pass     bool            `json:"pass"`
}

func redirectOptionsJSON(o RedirectOptions) map[string]any {
	return map[string]any{"links": o.Links, "peak": o.Peak.String(), "fixed": o.Fixed.String(),
		"fixed_rates": o.FixedRates, "verdict_rates": o.VerdictRates, "rounds": o.Rounds,
		"workers": o.Workers, "variants": o.Variants, "min_busy": minBusy}
}

// redirectVerdicts judges the results: results[0] is the bare server,
// results[1] the default region, results[2] the region with clicks off
// (missing ones give failed verdicts, as does any target without samples).
func redirectVerdicts(results []*serverResult, verdictRates []float64) []check {
	at := func(i int) *serverResult {
		if i < len(results) {
			return results[i]
		}
		return &serverResult{Name: fmt.Sprintf("server %d (not run)", i)}
	}
	bare, reg, off := at(0), at(1), at(2)
	checks := []check{peakCheck(fmt.Sprintf("peak: region >= %.2fx bare", peakTarget), reg, bare, peakTarget)}
	for _, r := range verdictRates {
		checks = append(checks, p99Check(fmt.Sprintf("p99 at %.0f/s: region <= %.1fx bare", r, p99Target), reg, bare, r, p99Target))
	}
	checks = append(checks, peakCheck(fmt.Sprintf("peak: clicks on >= %.2fx clicks off", clicksTarget), reg, off, clicksTarget))
	for _, r := range verdictRates {
		checks = append(checks, p99Check(fmt.Sprintf("p99 at %.0f/s: clicks on <= %.3fx clicks off (%.2fx as fast)", r, 1/clicksTarget, clicksTarget),
			reg, off, r, 1/clicksTarget))
	}
	return checks
}

// peakCheck: a's peak at least want times base's, medians of the counted
// rounds only; no counted round on either side fails.
func peakCheck(name string, a, base *serverResult, want float64) check {
	for _, s := range []*serverResult{a, base} {
		if s.PeakCounted == 0 || s.PeakRPS <= 0 {
			return check{Name: name, Detail: fmt.Sprintf("no samples: %s has %d counted peak rounds of %d (a round counts when its core was %.0f%% busy)",
				s.Name, s.PeakCounted, len(s.Peak), 100*minBusy)}
		}
	}
	ratio := a.PeakRPS / base.PeakRPS
	return check{Name: name, Pass: ratio >= want, Ratio: ratio,
		Detail: fmt.Sprintf("%.2fx (%.0f against %.0f req/s; %d and %d rounds counted)", ratio, a.PeakRPS, base.PeakRPS, a.PeakCounted, base.PeakCounted)}
}

// p99Check: a's median p99 at rate at most most times base's. Either side
// without rounds at rate, or answering fewer than minPointSuccess, fails:
// a p99 that leaves out what was never answered says nothing.
func p99Check(name string, a, base *serverResult, rate, most float64) check {
	pa, pb := a.point(rate), base.point(rate)
	for _, x := range []struct {
		s *serverResult
		p *fixedPoint
	}{{a, pa}, {base, pb}} {
		if x.p == nil || len(x.p.Rounds) == 0 || x.p.P99 <= 0 {
			return check{Name: name, Detail: fmt.Sprintf("no samples: %s has no round at %.0f/s", x.s.Name, rate)}
		}
		if x.p.Success < minPointSuccess {
			return check{Name: name, Detail: fmt.Sprintf("%s answered only %.2f%% at %.0f/s (median of its rounds)", x.s.Name, 100*x.p.Success, rate)}
		}
	}
	ratio := pa.P99 / pb.P99
	return check{Name: name, Pass: ratio <= most, Ratio: ratio,
		Detail: fmt.Sprintf("%.2fx (%.2f against %.2f ms)", ratio, pa.P99, pb.P99)}
}

// writeRedirectReport prints the medians, every round and the verdicts.
func writeRedirectReport(out io.Writer, o RedirectOptions, results []*serverResult, checks []check, pinned bool) {
	base := results[0]
	fmt.Fprintf(out, "\npeak, closed loop, %d connections: successful answers per second, median of the counted rounds\n", o.Workers)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "server\tpeak req/s\tx bare\tcounted\trounds (core busy; other processes on it; server wanted a CPU; got)\t\n")
	for _, r := range results {
		var rounds []string
		for _, p := range r.Peak {
			s := fmt.Sprintf("%.0f (%s)", p.RPS, busyPercent(p))
			if !p.Counted {
				s += " " + notCounted(p.busyRound)
			}
			rounds = append(rounds, s)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%d/%d\t%s\t\n", r.Name, r.PeakRPS, ratioText(r.PeakRPS, base.PeakRPS), r.PeakCounted, len(r.Peak), strings.Join(rounds, ", "))
	}
	tw.Flush()
	for _, rate := range o.FixedRates {
		fmt.Fprintf(out, "\nat %.0f req/s, open loop, %s per round: medians of the rounds\n", rate, o.Fixed)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "server\tp50\tp99\tp999\tp99 x bare\tok%%\tp99 per round (ms)\t\n")
		bp := base.point(rate)
		for _, r := range results {
			p := r.point(rate)
			var rounds []string
			for _, x := range p.Rounds {
				rounds = append(rounds, fmt.Sprintf("%.2f", x.P99))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t\n", r.Name, fmtMS(msDur(p.P50)), fmtMS(msDur(p.P99)), fmtMS(msDur(p.P999)),
				ratioText(p.P99, bp.P99), 100*p.Success, strings.Join(rounds, " "))
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "\ntargets (issue 22):\n")
	for _, c := range checks {
		fmt.Fprintf(out, "  %s  %s: %s\n", verdict(c.Pass), c.Name, c.Detail)
	}
	where := fmt.Sprintf("not pinned (no taskset or one CPU): a peak counts when the server wanted a CPU %.0f%% of the time", 100*minBusy)
	if pinned {
		where = fmt.Sprintf("pinned to CPU %d, load on CPU %d; a peak counts when CPU %d was %.0f%% busy, the server wanted a CPU %.0f%% of the time "+
			"(else client-limited) and other processes took at most %.0f%% of CPU %d (else contended)",
			serverCPU, loadCPU, serverCPU, 100*minBusy, 100*minBusy, 100*(1-minBusy), serverCPU)
	}
	fmt.Fprintf(out, "%d rounds; one server at a time, GOMAXPROCS=1, %s\n", o.Rounds, where)
	if limited, contended := notCountedRounds(results); limited+contended > 0 {
		fmt.Fprintf(out, "WARNING: %d peak rounds client-limited and %d contended (other work on the measured core), left out of the medians\n", limited, contended)
	}
	if missed := countMissed(checks); missed > 0 {
		fmt.Fprintf(out, "\nTARGETS MISSED: %d of %d (exit status 1)\n", missed, len(checks))
	}
}

// busyPercent is a peak round's busy check in short: the core's busy
// share, the server's demand and the share of a core it got.
func busyPercent(p peakRound) string {
	var parts []string
	if p.Core >= 0 {
		parts = append(parts, fmt.Sprintf("core %.0f%%", 100*p.Core), fmt.Sprintf("others %.0f%%", 100*p.others()))
	}
	if p.Demand >= 0 {
		parts = append(parts, fmt.Sprintf("wanted %.0f%%", 100*p.Demand))
	}
	parts = append(parts, fmt.Sprintf("got %.0f%%", 100*p.Server))
	return strings.Join(parts, ", ")
}

func ratioText(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func msDur(x float64) time.Duration { return time.Duration(x * 1e6) }

// notCountedRounds counts the peak rounds left out, by reason.
func notCountedRounds(results []*serverResult) (limited, contended int) {
	for _, r := range results {
		for _, p := range r.Peak {
			switch {
			case p.Counted:
			case p.clientLimited():
				limited++
			default:
				contended++
			}
		}
	}
	return limited, contended
}
