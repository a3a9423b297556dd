package check

import (
	"fmt"
	"strings"
	"time"

	"shortener/chaos"
)

// Lost is what the death of a region's process left the other regions
// without, measured while it was down: the creates it acknowledged in the
// minute before, asked of every other region.
type Lost struct {
	Step   int       // the step of the schedule that killed it
	Region string    // the region lost
	At     time.Time // when its process died
	Acked  int       // creates it acknowledged in the minute before
	// Err is why nothing could be measured (the history unreadable).
	Err       string
	Survivors []Survivor
}

// Survivor is what one other region lacked of a lost region's creates,
// against the RPO bound it reported for that region at its last poll
// before the death.
type Survivor struct {
	Region string
	// ProbeErr is why the probe failed as a whole.
	ProbeErr string
	// Checked, Missing and Unanswered count the lost region's creates
	// asked of this region: all of them, those it did not have (404), and
	// those it did not answer.
	Checked, Missing, Unanswered int
	// Known: the region reported a bound, and said it was known (it had
	// seen the lost region's stream and its mirror live).
	Known        bool
	Bound        uint64    // the bound in events
	BoundSeconds float64   // and in seconds
	ReportedAt   time.Time // when it reported it
}

// judge returns whether every survivor's loss was measured and within a
// known bound, the number measured against a known bound, and a line per
// survivor.
func (l Lost) judge() (ok bool, known int, lines []string) {
	if l.Err != "" {
		return false, 0, []string{l.Err}
	}
	if len(l.Survivors) == 0 {
		return false, 0, []string{"no other region was measured"}
	}
	ok = l.Acked > 0
	if !ok {
		lines = append(lines, "it acknowledged no create in the minute before: nothing to measure")
	}
	for _, s := range l.Survivors {
		switch {
		case s.ProbeErr != "":
			ok = false
			lines = append(lines, fmt.Sprintf("%s: probe failed: %s", s.Region, s.ProbeErr))
		case s.Unanswered > 0:
			ok = false
			lines = append(lines, fmt.Sprintf("%s: %d of %d probes unanswered", s.Region, s.Unanswered, s.Checked))
		case !s.Known:
			// Nothing to hold it to: the bound that a failover would
			// have trusted was not there.
			ok = false
			lines = append(lines, fmt.Sprintf("%s lacked %d; it reported no known bound before the kill", s.Region, s.Missing))
		default:
			known++
			holds := uint64(s.Missing) <= s.Bound
			ok = ok && holds
			verdict := "within"
			if !holds {
				verdict = "ABOVE"
			}
			lines = append(lines, fmt.Sprintf("%s lacked %d of %d; reported bound %d events (%.2f s) at %s: %s",
				s.Region, s.Missing, s.Checked, s.Bound, s.BoundSeconds, s.ReportedAt.Format("15:04:05.000"), verdict))
		}
	}
	return ok, known, lines
}

// Summary is the measurement in one line, as the run's journal shows it.
func (l Lost) Summary() string {
	_, _, lines := l.judge()
	return strings.Join(lines, "; ")
}

// RPO checks that, for every region lost, every other region lacked no
// more of its creates than the RPO bound it reported before the loss. It
// fails with no region lost, for a lost region that had acknowledged no
// create in the minute before (nothing to measure), or whose loss could
// not be measured, and for a survivor whose bound was unknown.
func RPO(lost []Lost) chaos.Check {
	c := chaos.Check{Name: "measured RPO within the reported bound",
		Want: "for every region lost: what the survivors lacked ≤ the RPO they reported before", OK: len(lost) > 0}
	var known int
	for _, l := range lost {
		ok, k, lines := l.judge()
		c.OK = c.OK && ok
		known += k
		c.Details = append(c.Details, fmt.Sprintf("step %d, %s lost at %s, %d acknowledged in the minute before: %s",
			l.Step, l.Region, l.At.Format("15:04:05.000"), l.Acked, strings.Join(lines, "; ")))
	}
	c.Measured = fmt.Sprintf("%d regions lost, %d survivor measurements against a known bound", len(lost), known)
	if len(lost) == 0 {
		c.Measured = "no region was lost: nothing was measured"
	}
	return c
}
