package chaos

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// kindColor is the colour of kind k in the picture.
func kindColor(k Kind) string {
	f, _ := Lookup(k)
	return f.Color
}

// WriteSVG draws the run: the faults on a timeline, one lane per region,
// above the success rate and the p99 latency of every second, with the
// windows in which a region was down on purpose shaded.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, left, right = 1200.0, 110.0, 20.0
		laneH, top         = 22.0, 40.0
		panelH, gapH       = 150.0, 40.0
	)
	span := r.Finished.Sub(r.Started).Seconds()
	if n := float64(len(r.Seconds)); n > span {
		span = n
	}
	if span <= 0 {
		span = 1
	}
	plotW := width - left - right
	x := func(t time.Time) float64 { return left + plotW*t.Sub(r.Started).Seconds()/span }
	xs := func(s float64) float64 { return left + plotW*s/span }
	lanes := len(r.Regions)
	lanesTop := top
	succTop := lanesTop + float64(lanes)*laneH + gapH
	latTop := succTop + panelH + gapH
	height := latTop + panelH + 70

	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	verdict, vcol := "PASSED", "#2ca02c"
	if !r.Passed {
		verdict, vcol = "FAILED", "#d62728"
	}
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">chaos run, seed %d, %s, %d faults</text>`, left, r.Seed, r.Started.UTC().Format("2006-01-02 15:04 UTC"), len(r.Steps))
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold" fill="%s" text-anchor="end">%s</text>`+"\n", width-right, vcol, verdict)

	// Fault lanes.
	lane := map[string]int{}
	for i, name := range r.Regions {
		lane[name] = i
		y := lanesTop + float64(i)*laneH
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-8, y+15, html.EscapeString(name))
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, y+laneH, y+laneH)
	}
	for _, s := range r.Steps {
		if s.Start.IsZero() {
			continue
		}
		end := s.End
		if !s.Recovered.IsZero() && s.Recovered.After(end) {
			end = s.Recovered
		}
		if end.Before(s.Start) {
			end = s.Start
		}
		col := kindColor(s.Kind)
		for _, name := range []string{s.Region, s.Peer} {
			i, ok := lane[name]
			if !ok {
				continue
			}
			y := lanesTop + float64(i)*laneH + 3
			x0, x1 := x(s.Start), x(end)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.85"><title>%d. %s</title></rect>`,
				x0, y, math.Max(x1-x0, 2), laneH-6, col, s.N, html.EscapeString(s.Step.String()))
			if !s.Recovered.IsZero() && s.Recovered.After(s.End) { // recovery part, lighter
				fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="white" opacity="0.45"/>`, x(s.End), y, math.Max(x(s.Recovered)-x(s.End), 0), laneH-6)
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="#000">%d</text>`+"\n", x0+2, y+12, s.N)
		}
	}

	// Shaded windows in both panels.
	for _, win := range r.Excluded {
		for _, ptop := range []float64{succTop, latTop} {
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#000" opacity="0.05"><title>%s: %s</title></rect>`+"\n",
				x(win.From), ptop, math.Max(x(win.To)-x(win.From), 1), panelH, html.EscapeString(win.Region), html.EscapeString(win.Why))
		}
	}

	// Success rate panel: 0 to 100 %.
	panel := func(ptop float64, title string, ticks []float64, label func(float64) string, y func(float64) float64) {
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-weight="bold">%s</text>`+"\n", left, ptop-8, title)
		fmt.Fprintf(b, `<rect x="%.0f" y="%.1f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, ptop, plotW, panelH)
		for _, t := range ticks {
			yy := y(t)
			fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end" font-size="10">%s</text>`+"\n",
				left, width-right, yy, yy, left-6, yy+3, label(t))
		}
	}
	ySucc := func(v float64) float64 { return succTop + panelH*(1-v/100) }
	panel(succTop, "success rate per second, all clients (%)", []float64{0, 25, 50, 75, 90, 100},
		func(v float64) string { return fmt.Sprintf("%g%%", v) }, ySucc)
	var pts []string
	for _, s := range r.Seconds {
		if s.Ops == 0 {
			continue
		}
		v := 100 * float64(s.Ops-s.Failed) / float64(s.Ops)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(float64(s.T)+0.5), ySucc(v)))
		if s.Failed > 0 {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#d62728"><title>+%ds: %d of %d failed</title></circle>`, xs(float64(s.T)+0.5), ySucc(v), s.T, s.Failed, s.Ops)
		}
	}
	fmt.Fprintf(b, "\n"+`<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))

	// p99 panel: log scale 1 ms to 10 s.
	yLat := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, 1), 10000)
		return latTop + panelH*(1-math.Log10(ms)/4)
	}
	panel(latTop, "p99 latency per second (log scale)", []float64{1, 10, 100, 1000, 10000},
		func(v float64) string {
			if v >= 1000 {
				return fmt.Sprintf("%gs", v/1000)
			}
			return fmt.Sprintf("%gms", v)
		}, yLat)
	pts = pts[:0]
	for _, s := range r.Seconds {
		if s.Ops == 0 {
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(float64(s.T)+0.5), yLat(s.P99Milli)))
	}
	fmt.Fprintf(b, `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))

	// Time axis.
	step := 30.0
	if span > 600 {
		step = 60
	}
	for t := 0.0; t <= span; t += step {
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999"/><text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%gs</text>`+"\n",
			xs(t), xs(t), latTop+panelH, latTop+panelH+4, xs(t), latTop+panelH+16, t)
	}

	// Legend.
	lx, ly := left, latTop+panelH+40
	for _, k := range Kinds() {
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`, lx, ly, kindColor(k), lx+16, ly+10, k)
		lx += 16 + 8*float64(len(k)) + 20
	}
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="#000" opacity="0.1"/><text x="%.0f" y="%.0f" font-size="11">region down on purpose (not judged)</text>`, lx, ly, lx+16, ly+10)
	fmt.Fprintln(b, "\n</svg>")
	_, err := io.WriteString(w, b.String())
	return err
}
