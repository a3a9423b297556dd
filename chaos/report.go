package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"shortener/chaos/load"
)

// Report is a chaos run: its seed and schedule, what each fault did and
// when, the load seen second by second, and the verdict of every checker.
type Report struct {
	Seed     int64     `json:"seed"`
	Duration Duration  `json:"duration"` // the schedule's requested length
	Kinds    []Kind    `json:"kinds"`
	Regions  []string  `json:"regions"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Replay is the command that runs the same schedule again.
	Replay string `json:"replay"`

	// Schedule is the schedule drawn from the seed; Steps what of it ran.
	Schedule []Step       `json:"schedule"`
	Steps    []StepRecord `json:"steps"`
	// Uncovered lists the kinds asked for that no step applied (a short
	// run may not schedule every kind).
	Uncovered []Kind `json:"uncovered,omitempty"`
	// Unapplied lists the kinds of the schedule that no step applied: the
	// run did not do what it set out to, and fails.
	Unapplied []Kind `json:"unapplied,omitempty"`
	// Excluded are the windows in which a region's clients do not count
	// against the success rate: their region was down on purpose.
	Excluded []Window `json:"excluded"`

	Load    LoadSummary `json:"load"`
	Seconds []Second    `json:"seconds"`

	Checks []Check `json:"checks"`
	// Problems are what went wrong with the run itself (a fault that could
	// not be applied, a region that did not come back): each fails it.
	Problems []string `json:"problems,omitempty"`
	Passed   bool     `json:"passed"`
}

// StepRecord is what one step of the schedule did.
type StepRecord struct {
	Step
	Start time.Time `json:"start"` // the fault applied
	End   time.Time `json:"end"`   // the fault lifted (for a kill: started again)
	// Recovered is when the region acted on answered ready again (zero for
	// faults that do not take it down, or if it never did).
	Recovered time.Time `json:"recovered,omitzero"`
	Note      string    `json:"note,omitempty"`
	Err       string    `json:"error,omitempty"`
}

// Window is a span in which one region's clients are not judged.
type Window struct {
	Region string    `json:"region"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Why    string    `json:"why"`
}

// Check is the verdict of one checker.
type Check struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Measured string   `json:"measured"`
	Want     string   `json:"want"`
	Details  []string `json:"details,omitempty"`
}

// LoadSummary is the load of the whole run.
type LoadSummary struct {
	Ops      int64   `json:"ops"`
	Failed   int64   `json:"failed"`
	Creates  int64   `json:"creates"`
	Acked    int64   `json:"acked"`
	Aliases  int64   `json:"aliases"`
	Success  float64 `json:"success"` // share of all operations, excluded windows included
	P99Milli float64 `json:"p99_ms"`
}

// Second is one second of the run as the picture shows it.
type Second struct {
	T        int     `json:"t"` // seconds since Started
	Ops      int     `json:"ops"`
	Failed   int     `json:"failed"`
	P99Milli float64 `json:"p99_ms"`
}

// Summarize fills Load and Seconds from the load history.
func (r *Report) Summarize(h *load.History) {
	type acc struct {
		ops, failed int
		lat         []float64
	}
	var secs []acc
	var all []float64
	for _, op := range h.Ops {
		if op.Cut {
			continue // cut off by the end of the run: not sent to completion
		}
		r.Load.Ops++
		if !op.OK {
			r.Load.Failed++
		}
		switch op.Op {
		case load.OpCreate:
			r.Load.Creates++
			if op.Ack {
				r.Load.Acked++
			}
		case load.OpAlias:
			r.Load.Aliases++
		}
		i := int(op.Start.Sub(r.Started) / time.Second)
		if i < 0 || op.Start.IsZero() {
			continue
		}
		for len(secs) <= i {
			secs = append(secs, acc{})
		}
		ms := float64(op.End.Sub(op.Start)) / float64(time.Millisecond)
		secs[i].ops++
		if !op.OK {
			secs[i].failed++
		}
		secs[i].lat = append(secs[i].lat, ms)
		all = append(all, ms)
	}
	if r.Load.Ops > 0 {
		r.Load.Success = float64(r.Load.Ops-r.Load.Failed) / float64(r.Load.Ops)
	}
	r.Load.P99Milli = quantile(all, 0.99)
	r.Seconds = r.Seconds[:0]
	for i, s := range secs {
		r.Seconds = append(r.Seconds, Second{T: i, Ops: s.ops, Failed: s.failed, P99Milli: quantile(s.lat, 0.99)})
	}
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	i := int(q * float64(len(v)-1))
	return float64(int(v[i]*10)) / 10
}

// Judge sets Passed: there were checks and every one passed, the
// schedule was not empty and every kind in it was applied at least once,
// and the run itself had no problem. It also lists the kinds asked for
// that no step applied (Uncovered), which alone do not fail the run.
func (r *Report) Judge() {
	r.Uncovered = r.Uncovered[:0]
	for _, k := range r.Kinds {
		if !r.applied(k) {
			r.Uncovered = append(r.Uncovered, k)
		}
	}
	r.Unapplied = r.Unapplied[:0]
	for _, s := range r.Schedule {
		if !r.applied(s.Kind) && !slices.Contains(r.Unapplied, s.Kind) {
			r.Unapplied = append(r.Unapplied, s.Kind)
		}
	}
	r.Passed = len(r.Problems) == 0 && len(r.Checks) > 0 && len(r.Schedule) > 0 && len(r.Unapplied) == 0
	for _, c := range r.Checks {
		r.Passed = r.Passed && c.OK
	}
}

// applied reports whether a step of kind k was applied without error.
func (r *Report) applied(k Kind) bool {
	return slices.ContainsFunc(r.Steps, func(s StepRecord) bool { return s.Kind == k && s.Err == "" })
}

// WriteText writes the report in words.
func (r *Report) WriteText(w io.Writer) error {
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "chaos run, seed %d: %s\n", r.Seed, verdict)
	fmt.Fprintf(b, "  %s to %s (%v), regions %s\n", r.Started.Format(time.TimeOnly), r.Finished.Format(time.TimeOnly),
		r.Finished.Sub(r.Started).Round(time.Second), strings.Join(r.Regions, ", "))
	fmt.Fprintf(b, "  replay: %s\n", r.Replay)
	fmt.Fprintf(b, "\nfaults (%d):\n", len(r.Steps))
	for _, s := range r.Steps {
		at := s.Start.Sub(r.Started).Round(100 * time.Millisecond)
		line := fmt.Sprintf("  %2d  +%-7v %s", s.N, at, s.Step)
		if !s.Recovered.IsZero() {
			line += fmt.Sprintf("; ready again %v after the fault began", s.Recovered.Sub(s.Start).Round(100*time.Millisecond))
		}
		if s.Note != "" {
			line += "; " + s.Note
		}
		if s.Err != "" {
			line += "; ERROR: " + s.Err
		}
		fmt.Fprintln(b, line)
	}
	if len(r.Uncovered) > 0 {
		fmt.Fprintf(b, "  not covered: %v\n", r.Uncovered)
	}
	if len(r.Unapplied) > 0 {
		fmt.Fprintf(b, "  scheduled but never applied: %v\n", r.Unapplied)
	}
	if len(r.Schedule) == 0 {
		fmt.Fprintf(b, "  no schedule: nothing was tested\n")
	}
	fmt.Fprintf(b, "\nload: %d operations (%d creates, %d acknowledged; %d alias claims), %.4f%% succeeded overall, p99 %.1f ms\n",
		r.Load.Ops, r.Load.Creates, r.Load.Acked, r.Load.Aliases, 100*r.Load.Success, r.Load.P99Milli)
	fmt.Fprintf(b, "\nchecks:\n")
	for _, c := range r.Checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(b, "  %s  %s: %s (want %s)\n", mark, c.Name, c.Measured, c.Want)
		for _, d := range c.Details {
			fmt.Fprintf(b, "          %s\n", d)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(b, "\nproblems with the run:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(b, "  %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Write writes report.json, report.txt and report.svg into dir and returns
// their paths.
func (r *Report) Write(dir string) (paths []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"report.json", func(w io.Writer) error { _, err := w.Write(append(data, '\n')); return err }},
		{"report.txt", r.WriteText},
		{"report.svg", r.WriteSVG},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		fh, err := os.Create(p)
		if err != nil {
			return paths, err
		}
		err = f.write(fh)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
