package load

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"
)

// Report is the result of a Run.
type Report struct {
	// Start is when the first operation was due.
	Start time.Time
	// Duration is the wall time from Start until the last operation
	// completed (slightly more than Config.Duration).
	Duration time.Duration
	// Targets holds one report per target, keyed by Target.Name.
	Targets map[string]*TargetReport
	// Total aggregates all targets.
	Total Summary
}

// Summary aggregates the operations of one target or of the whole run.
// Latencies include failed operations (a timeout is a 5 s latency, not a
// missing sample) and exclude missed ones. In open loop a latency runs from
// the operation's intended send time to its completion; in closed loop from
// the actual send.
type Summary struct {
	// Sent counts operations that were sent and completed (OK + Failed).
	Sent int64
	// OK counts successes: a 301/302/307/308 for a redirect (or what
	// Config.AcceptRedirect accepts, when set), a 201 with a code in the
	// body for a create.
	OK int64
	// Failed counts every other outcome, including transport errors and
	// timeouts (status 0).
	Failed int64
	// Missed counts operations that were due but never sent: the open-loop
	// backlog was full, the run was cancelled, or the op was still queued
	// Timeout after the end of the run.
	Missed int64
	// Throughput is completed operations (Sent) per second over
	// Report.Duration.
	Throughput float64
	// P50, P90, P99 and P999 are latency quantiles from a log-linear
	// histogram (error below 0.4%); Max is exact.
	P50, P90, P99, P999, Max time.Duration
	// ByStatus counts completed operations by HTTP status; 0 is a transport
	// error or timeout.
	ByStatus map[int]int64
}

// SuccessRate returns OK / (Sent + Missed), or 0 when nothing was due.
// Missed operations count against success.
func (s Summary) SuccessRate() float64 {
	d := s.Sent + s.Missed
	if d == 0 {
		return 0
	}
	return float64(s.OK) / float64(d)
}

// TargetReport is the report for one target.
type TargetReport struct {
	Summary
	// Seconds has one entry per second of the run (the last may be partial).
	Seconds []Second
	// Addr and Region are where the target's requests went at the end of
	// the run (Region "" when no Config.Regions entry is at Addr).
	Addr, Region string
	// DNS counts the resolves of a DNS target; nil for a fixed one.
	DNS *DNSStats `json:",omitempty"`
}

// Second summarizes the operations of one target that completed during one
// second of the run.
type Second struct {
	// T is the second's index since Report.Start (0-based).
	T int
	// Sent, OK and Failed count operations completed during the second.
	Sent, OK, Failed int64
	// Missed counts operations dropped during the second.
	Missed int64
	// P50, P99 and P999 are the latency quantiles of those operations.
	P50, P99, P999 time.Duration
	// Addr and Region are where the target's requests went at the end of
	// the second: the address and the region behind it ("" unknown).
	Addr, Region string
}

// SuccessRate returns OK / (Sent + Missed) of the second, 0 when nothing
// was due.
func (s Second) SuccessRate() float64 {
	d := s.Sent + s.Missed
	if d == 0 {
		return 0
	}
	return float64(s.OK) / float64(d)
}

// SuccessRate returns the success rate of the whole run, as
// Summary.SuccessRate of Total.
func (r *Report) SuccessRate() float64 { return r.Total.SuccessRate() }

// WriteText writes a human-readable table: one row per target (sorted by
// name) and a total row with sent, ok%, missed, throughput and latency
// quantiles, followed by the status counts.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', tabwriter.AlignRight)
	names := make([]string, 0, len(r.Targets))
	for n := range r.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	io.WriteString(tw, "target\tsent\tok%\tmissed\treq/s\tp50\tp90\tp99\tp999\tmax\t\n")
	row := func(name string, s *Summary) {
		b := make([]byte, 0, 128)
		b = append(b, name...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, s.Sent, 10)
		b = append(b, '\t')
		b = strconv.AppendFloat(b, 100*s.SuccessRate(), 'f', 2, 64)
		b = append(b, "%\t"...)
		b = strconv.AppendInt(b, s.Missed, 10)
		b = append(b, '\t')
		b = strconv.AppendFloat(b, s.Throughput, 'f', 1, 64)
		for _, d := range []time.Duration{s.P50, s.P90, s.P99, s.P999, s.Max} {
			b = append(b, '\t')
			b = append(b, fmtDur(d)...)
		}
		b = append(b, "\t\n"...)
		tw.Write(b)
	}
	for _, n := range names {
		row(n, &r.Targets[n].Summary)
	}
	row("total", &r.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	b := []byte("status:")
	codes := make([]int, 0, len(r.Total.ByStatus))
	for c := range r.Total.ByStatus {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		b = append(b, ' ')
		if c == 0 {
			b = append(b, "error"...)
		} else {
			b = strconv.AppendInt(b, int64(c), 10)
		}
		b = append(b, '=')
		b = strconv.AppendInt(b, r.Total.ByStatus[c], 10)
	}
	b = append(b, "  duration: "...)
	b = append(b, fmtDur(r.Duration)...)
	b = append(b, '\n')
	if r.Total.Missed > 0 {
		b = append(b, "WARNING: missed operations were due but never sent; latency quantiles exclude them\n"...)
	}
	bw.Write(b)
	return bw.Flush()
}

// fmtDur formats d with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d >= 100*time.Second:
		d = d.Round(time.Second)
	case d >= 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		d = d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		d = d.Round(time.Microsecond)
	case d >= 10*time.Microsecond:
		d = d.Round(100 * time.Nanosecond)
	case d >= time.Microsecond:
		d = d.Round(10 * time.Nanosecond)
	}
	return d.String()
}

// WriteSeconds writes the per-second report: one row per second of the
// run, and per target (sorted by name) its ok%, p50, p99, p999 and the
// region (else the address) serving it at the end of that second.
func (r *Report) WriteSeconds(w io.Writer) error {
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 1, ' ', 0)
	names := slices.Sorted(maps.Keys(r.Targets))
	rows := 0
	b := []byte("sec")
	for _, n := range names {
		rows = max(rows, len(r.Targets[n].Seconds))
		b = append(b, '\t')
		b = append(b, n...)
		b = append(b, " ok%\tp50\tp99\tp999\tserved by"...)
	}
	b = append(b, '\n')
	tw.Write(b)
	for i := range rows {
		b = strconv.AppendInt(b[:0], int64(i), 10)
		for _, n := range names {
			ss := r.Targets[n].Seconds
			if i >= len(ss) {
				b = append(b, "\t\t\t\t\t"...)
				continue
			}
			s := ss[i]
			b = append(b, '\t')
			b = strconv.AppendFloat(b, 100*s.SuccessRate(), 'f', 2, 64)
			for _, d := range []time.Duration{s.P50, s.P99, s.P999} {
				b = append(b, '\t')
				b = append(b, fmtDur(d)...)
			}
			b = append(b, '\t')
			if s.Region != "" {
				b = append(b, s.Region...)
			} else {
				b = append(b, s.Addr...)
			}
		}
		b = append(b, '\n')
		tw.Write(b)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}
