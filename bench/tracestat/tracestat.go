// Package tracestat summarises an execution trace (runtime/trace) of a
// server under load, to find where its time goes and what stalls its
// requests: how much of a core each kind of goroutine ran (by the
// function it was started with), the garbage collector's phases and
// pauses, how long request goroutines waited to run once runnable, and
// every stretch over a millisecond that one goroutine ran without a break,
// grouped by what it was doing. A window of the trace (say the fixed-rate
// phase of a benchmark) can be picked by time; PerSecond finds the phases.
//
// What the trace cannot say: a goroutine "ran" while its thread held a P,
// also when the operating system had taken the CPU away (another process
// on the same core). Summaries of a busy host overstate every long slice.
package tracestat

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// Options pick the window and the request goroutines.
type Options struct {
	From, To time.Duration // the window, since the trace's first event; To 0: the end
	// Request marks the goroutines that serve requests by their root
	// function (default: net/http's per-connection goroutine).
	Request string
}

// Summary is what Summarize found in the window.
type Summary struct {
	From, To time.Duration
	Ran      time.Duration         // goroutines' run time in the window
	ByRoot   []Share               // run time by root function, largest first
	GC       map[string]Range      // GC phases and stop-the-world pauses by name
	Wait     Quantiles             // request goroutines, runnable to running
	Long     []LongSlices          // slices over 1 ms, grouped, largest sum first
	Seconds  map[int]time.Duration // request goroutines' run time per second of the whole trace
}

// Share is a root function's run time.
type Share struct {
	Root string
	Ran  time.Duration
}

// Range is a kind of range event (a GC phase, a pause): how many, in all,
// the longest.
type Range struct {
	N        int
	Sum, Max time.Duration
}

// Quantiles of a duration sample.
type Quantiles struct {
	N                   int
	P50, P99, P999, Max time.Duration
}

// LongSlices are run slices over a millisecond of goroutines with the same
// root that stopped in the same place (the innermost frames, the
// runtime's left out).
type LongSlices struct {
	Root, Where string
	N           int
	Sum, Max    time.Duration
}

// Summarize reads the trace from r.
func Summarize(r io.Reader, o Options) (*Summary, error) {
	if o.Request == "" {
		o.Request = "net/http.(*conn).serve"
	}
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	s := &Summary{From: o.From, To: o.To, GC: map[string]Range{}, Seconds: map[int]time.Duration{}}
	in := func(t time.Duration) bool { return t >= o.From && (o.To == 0 || t < o.To) }
	var t0, last trace.Time
	events := 0
	running := map[trace.GoID]trace.Time{}
	runnable := map[trace.GoID]trace.Time{}
	root := map[trace.GoID]string{}
	byRoot := map[string]time.Duration{}
	long := map[[2]string]*LongSlices{}
	rangeStart := map[string]trace.Time{}
	var waits []time.Duration
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		if events == 0 {
			t0 = ev.Time()
		}
		events++
		last = ev.Time()
		now := ev.Time().Sub(t0)
		switch ev.Kind() {
		case trace.EventRangeBegin:
			rangeStart[ev.Range().Name] = ev.Time()
		case trace.EventRangeEnd:
			name := ev.Range().Name
			if b, ok := rangeStart[name]; ok && in(now) {
				d := ev.Time().Sub(b)
				g := s.GC[name]
				g.N, g.Sum, g.Max = g.N+1, g.Sum+d, max(g.Max, d)
				s.GC[name] = g
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			_, to := st.Goroutine()
			fs := funcs(st.Stack)
			if r := rootOf(fs); r != "" {
				root[id] = r
			}
			rt := cmp.Or(root[id], "?")
			if b, ok := running[id]; ok && to != trace.GoRunning {
				d := ev.Time().Sub(b)
				if in(now) {
					byRoot[rt] += d
					if d > time.Millisecond {
						k := [2]string{rt, where(fs)}
						l := long[k]
						if l == nil {
							l = &LongSlices{Root: k[0], Where: k[1]}
							long[k] = l
						}
						l.N, l.Sum, l.Max = l.N+1, l.Sum+d, max(l.Max, d)
					}
				}
				if rt == o.Request {
					s.Seconds[int(b.Sub(t0)/time.Second)] += d
				}
				delete(running, id)
			}
			switch to {
			case trace.GoRunning:
				running[id] = ev.Time()
				if w, ok := runnable[id]; ok {
					if rt == o.Request && in(now) {
						waits = append(waits, ev.Time().Sub(w))
					}
					delete(runnable, id)
				}
			case trace.GoRunnable:
				runnable[id] = ev.Time()
			}
		}
	}
	if events == 0 {
		return nil, errors.New("trace: no events")
	}
	if s.To == 0 || s.To > last.Sub(t0) {
		s.To = last.Sub(t0)
	}
	if s.To <= s.From {
		return nil, fmt.Errorf("trace: the window %v..%v is outside the trace (%v long)", o.From, o.To, last.Sub(t0))
	}
	for r, d := range byRoot {
		s.ByRoot = append(s.ByRoot, Share{Root: r, Ran: d})
		s.Ran += d
	}
	sort.Slice(s.ByRoot, func(i, j int) bool { return s.ByRoot[i].Ran > s.ByRoot[j].Ran })
	for _, l := range long {
		s.Long = append(s.Long, *l)
	}
	sort.Slice(s.Long, func(i, j int) bool { return s.Long[i].Sum > s.Long[j].Sum })
	slices.Sort(waits)
	if n := len(waits); n > 0 {
		q := func(p float64) time.Duration { return waits[int(p*float64(n-1))] }
		s.Wait = Quantiles{N: n, P50: q(.5), P99: q(.99), P999: q(.999), Max: waits[n-1]}
	}
	return s, nil
}

// WriteText writes the summary, the top rows of each table.
func (s *Summary) WriteText(w io.Writer, rows int) {
	win := s.To - s.From
	share := func(d time.Duration) float64 { return 100 * d.Seconds() / win.Seconds() }
	fmt.Fprintf(w, "window %v..%v: goroutines ran %v, %.0f%% of one core\n", s.From, s.To, s.Ran.Round(time.Millisecond), share(s.Ran))
	for _, r := range s.ByRoot[:min(rows, len(s.ByRoot))] {
		fmt.Fprintf(w, "  %6.2f%%  %s\n", share(r.Ran), r.Root)
	}
	fmt.Fprintln(w, "garbage collector:")
	var names []string
	for n := range s.GC {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := s.GC[n]
		fmt.Fprintf(w, "  %-40s %5d  sum %-10v max %v\n", n, g.N, g.Sum.Round(time.Microsecond), g.Max.Round(time.Microsecond))
	}
	q, us := s.Wait, func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	fmt.Fprintf(w, "request goroutines, runnable to running: n %d  p50 %v  p99 %v  p999 %v  max %v\n", q.N, us(q.P50), us(q.P99), us(q.P999), us(q.Max))
	fmt.Fprintf(w, "run slices over 1 ms, by root and where they stopped:\n")
	for _, l := range s.Long[:min(rows, len(s.Long))] {
		fmt.Fprintf(w, "  %4d  sum %-10v max %-10v %s  [%s]\n", l.N, l.Sum.Round(time.Microsecond), l.Max.Round(time.Microsecond), l.Root, l.Where)
	}
}

// WriteSeconds writes the request goroutines' share of a core in each
// second of the trace: the load's phases stand out.
func (s *Summary) WriteSeconds(w io.Writer) {
	var secs []int
	for k := range s.Seconds {
		secs = append(secs, k)
	}
	sort.Ints(secs)
	for _, k := range secs {
		fmt.Fprintf(w, "%5ds  %5.1f%%\n", k, 100*s.Seconds[k].Seconds())
	}
}

func funcs(st trace.Stack) []string {
	var fs []string
	for f := range st.Frames() {
		fs = append(fs, f.Func)
	}
	return fs
}

// rootOf is the function a goroutine was started with: the outermost
// frame below runtime.goexit. A goroutine's last stack (runtime.goexit1,
// as it ends) names no root: "" keeps the one it had, and its last slice
// is counted with the rest of it.
func rootOf(fs []string) string {
	for i := len(fs) - 1; i >= 0; i-- {
		if !strings.HasPrefix(fs[i], "runtime.goexit") {
			return fs[i]
		}
	}
	return ""
}

// where are the three innermost frames outside the runtime.
func where(fs []string) string {
	var out []string
	for _, f := range fs {
		if len(out) == 0 && strings.HasPrefix(f, "runtime.") {
			continue
		}
		if out = append(out, f); len(out) == 3 {
			break
		}
	}
	return strings.Join(out, " < ")
}
