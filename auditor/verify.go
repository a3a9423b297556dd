package auditor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"shortener/replicator"
)

// Verify checks every mirror of the log against its origin, a SHA-256 per
// range of rangeSize sequences on each side up to the last sequence both
// hold, and every region's live projection against a replay of the copies
// it folds up to its own checkpoints, writing what it found to out. It is
// an error when anything differs, could not be checked, or nothing was.
func (a *Auditor) Verify(ctx context.Context, out io.Writer, rangeSize int) error {
	var problems []string
	var reports []replicator.CopyReport
	fmt.Fprintf(out, "copies of the log: %d streams, origins %s, held in %s\n", len(a.log), strings.Join(a.log.Origins(), ", "), strings.Join(a.log.Regions(), ", "))
	for _, c := range a.log {
		if !c.Mirror {
			continue
		}
		origin := replicator.StreamName(c.Origin)
		if _, ok := a.log.Named(origin); !ok {
			problems = append(problems, fmt.Sprintf("%s: origin %s not reachable", c.Stream, origin))
			fmt.Fprintf(out, "%s: origin %s NOT REACHABLE: not verified\n", c.Stream, origin)
			continue
		}
		fmt.Fprintf(a.progress, "comparing %s with %s\n", c.Stream, origin)
		rep, err := replicator.CompareCopies(ctx, a.js, origin, c.Stream, rangeSize)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.Stream, err))
			fmt.Fprintf(out, "%s: NOT VERIFIED: %v\n", c.Stream, err)
			continue
		}
		reports = append(reports, rep)
		lag := ""
		if rep.OriginLast > rep.MirrorLast {
			lag = fmt.Sprintf(" (mirror %d behind)", rep.OriginLast-rep.MirrorLast)
		} else if rep.MirrorLast > rep.OriginLast {
			lag = fmt.Sprintf(" (mirror holds %d more than the origin answered: written meanwhile)", rep.MirrorLast-rep.OriginLast)
		}
		if rep.Equal() {
			fmt.Fprintf(out, "%s = %s up to #%d, %d ranges%s: OK\n", c.Stream, origin, rep.Common, rep.Ranges, lag)
			continue
		}
		problems = append(problems, fmt.Sprintf("%s differs from %s from #%d", c.Stream, origin, rep.FirstDiff))
		fmt.Fprintf(out, "%s differs from %s: %d of %d ranges differ; first differing sequence #%d%s: MISMATCH\n", c.Stream, origin, rep.RangesDiffer, rep.Ranges, rep.FirstDiff, lag)
		fmt.Fprintf(out, "    origin #%d: %s\n    mirror #%d: %s\n", rep.FirstDiff, rep.OriginEvent, rep.FirstDiff, orDash(rep.MirrorEvent))
	}
	var comps []comparison
	for _, reg := range a.log.Regions() {
		live, closeLive, err := a.liveOf(reg, "")
		if err != nil {
			problems = append(problems, fmt.Sprintf("projection of %s: %v", reg, err))
			fmt.Fprintf(out, "projection of %s: NOT VERIFIED: %v\n", reg, err)
			continue
		}
		c, err := a.compareRegion(ctx, reg, live)
		closeLive()
		if err != nil {
			problems = append(problems, fmt.Sprintf("projection of %s: %v", reg, err))
			fmt.Fprintf(out, "projection of %s: NOT VERIFIED: %v\n", reg, err)
			continue
		}
		comps = append(comps, c)
		printComparison(out, c)
		if !c.Match && len(c.Diffs) > 0 {
			problems = append(problems, fmt.Sprintf("projection of %s differs from the replay in %d codes (first %s)", reg, len(c.Diffs), c.Diffs[0].Code))
		}
	}
	if len(comps) == 0 && len(problems) == 0 {
		problems = append(problems, "no projection was compared with a replay of the log")
	}
	if a.json {
		_ = json.NewEncoder(out).Encode(struct {
			Copies      []replicator.CopyReport `json:"copies"`
			Projections []comparison            `json:"projections"`
			Problems    []string                `json:"problems"`
		}{reports, comps, problems})
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "VERIFY FAILED: %d problem(s)\n", len(problems))
		return fmt.Errorf("verify: %d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}
	fmt.Fprintf(out, "VERIFY OK: %d mirrors equal their origins, %d projections equal a replay of the log\n", len(reports), len(comps))
	return nil
}
