package bench

import (
	"fmt"
	"html"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// lagBucket is the width of one point of the lag-over-time picture: each
// point is the highest lag of the events a mirror delivered in it, so that
// a stall shows however short it was.
const lagBucket = 100 * time.Millisecond

// lagColors are the mirrors' colours, in the order they are listed.
var lagColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// lagSVG draws the replication lag over time: one panel per rate, one line
// per mirror, log scale 0.1 ms to 10 s, with the target line on the panel of
// lagTargetRate.
func lagSVG(results []*replicationResult, mirrors []string, duration time.Duration) []byte {
	const (
		width, left, right = 1200.0, 90.0, 20.0
		top, panelH, gapH  = 40.0, 170.0, 60.0
	)
	plotW := width - left - right
	// The panels share a time axis long enough for the last delivery of any.
	span := duration.Seconds()
	for _, r := range results {
		for _, s := range r.samples {
			span = math.Max(span, s.At.Seconds())
		}
	}
	span = math.Max(span, 1)
	xs := func(sec float64) float64 { return left + plotW*sec/span }
	// The legend, laid out first for its height: it wraps when a row is
	// full (8.5 px per character of a mirror's name).
	type legendItem struct{ x, row float64 }
	legend := make([]legendItem, len(mirrors))
	lx, row := left, 0.0
	for i, m := range mirrors {
		w := 16 + 8.5*float64(len(m)) + 24
		if lx+w > width-right && lx > left {
			lx, row = left, row+1
		}
		legend[i] = legendItem{lx, row}
		lx += w
	}
	legendTop := top + float64(len(results))*(panelH+gapH) + 4
	height := legendTop + 20*(row+1) + 6

	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">replication lag over time, per mirror: the highest lag in each %s (log scale)</text>`+"\n", left, lagBucket)

	color := map[string]string{}
	for i, m := range mirrors {
		color[m] = lagColors[i%len(lagColors)]
	}
	for n, r := range results {
		ptop := top + float64(n)*(panelH+gapH) + 10
		y := func(lag time.Duration) float64 {
			ms := math.Min(math.Max(float64(lag)/float64(time.Millisecond), 0.1), 10000)
			return ptop + panelH*(1-(math.Log10(ms)+1)/5)
		}
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-weight="bold">%.0f creates/s: lag p50 %s, p99 %s, max %s</text>`+"\n",
			left, ptop-8, r.Rate, html.EscapeString(fmtMS(r.LagP50)), html.EscapeString(fmtMS(r.LagP99)), html.EscapeString(fmtMS(r.LagMax)))
		fmt.Fprintf(b, `<rect x="%.0f" y="%.1f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, ptop, plotW, panelH)
		for _, ms := range []float64{0.1, 1, 10, 100, 1000, 10000} {
			yy := y(time.Duration(ms * float64(time.Millisecond)))
			label := fmt.Sprintf("%gms", ms)
			if ms >= 1000 {
				label = fmt.Sprintf("%gs", ms/1000)
			}
			fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end" font-size="10">%s</text>`+"\n",
				left, width-right, yy, yy, left-6, yy+3, label)
		}
		if r.Rate == lagTargetRate {
			yy := y(lagTarget)
			fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6,4"/><text x="%.0f" y="%.1f" text-anchor="end" font-size="10" fill="#d62728">target p99 at %d/s</text>`+"\n",
				left, width-right, yy, yy, width-right-4, yy-4, lagTargetRate)
		}
		// The highest lag per mirror and bucket.
		peak := map[string]map[int]time.Duration{}
		for _, s := range r.samples {
			if peak[s.Mirror] == nil {
				peak[s.Mirror] = map[int]time.Duration{}
			}
			k := int(s.At / lagBucket)
			peak[s.Mirror][k] = max(peak[s.Mirror][k], s.Lag)
		}
		for _, m := range mirrors {
			buckets := peak[m]
			if len(buckets) == 0 {
				continue
			}
			var pts []string
			for _, k := range slices.Sorted(maps.Keys(buckets)) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs((float64(k)+0.5)*lagBucket.Seconds()), y(buckets[k])))
			}
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"><title>%s</title></polyline>`+"\n", color[m], strings.Join(pts, " "), html.EscapeString(m))
		}
		// Time axis.
		step := math.Max(1, math.Ceil(span/20))
		for t := 0.0; t <= span; t += step {
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999"/><text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%gs</text>`+"\n",
				xs(t), xs(t), ptop+panelH, ptop+panelH+4, xs(t), ptop+panelH+16, t)
		}
	}
	// Legend.
	for i, m := range mirrors {
		x, y := legend[i].x, legendTop+20*legend[i].row
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`, x, y, color[m], x+16, y+10, html.EscapeString(m))
	}
	fmt.Fprintln(b, "\n</svg>")
	return []byte(b.String())
}
