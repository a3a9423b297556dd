package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLagSVG draws two mirrors' lags, one with an 800 ms stall, and checks
// that the picture is well-formed XML with one line per delivering mirror
// and exactly one point of the stalled mirror above the 100 ms target line.
func TestLagSVG(t *testing.T) {
	mirrors := []string{"links-us-east-mirror-eu-west", "links-eu-west-mirror-us-east", "links-ap-south-mirror-us-east"}
	r := &replicationResult{Rate: 500, LagP50: 2 * time.Millisecond, LagP99: 5 * time.Millisecond, LagMax: 800 * time.Millisecond}
	for i := range 50 {
		at := time.Duration(i) * 20 * time.Millisecond
		r.samples = append(r.samples, lagSample{Mirror: mirrors[0], At: at, Lag: 2 * time.Millisecond})
		lag := 3 * time.Millisecond
		if i == 25 {
			lag = 800 * time.Millisecond
		}
		r.samples = append(r.samples, lagSample{Mirror: mirrors[1], At: at, Lag: lag})
	}
	svg := lagSVG([]*replicationResult{r}, mirrors, time.Second)
	if bytes.Contains(svg, []byte("NaN")) || bytes.Contains(svg, []byte("Inf")) {
		t.Fatalf("the picture has a NaN or Inf coordinate:\n%s", svg)
	}

	var target float64 = -1
	lines := map[string][]float64{} // mirror -> y of each point
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var inPolyline []float64
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch {
			case el.Name.Local == "line" && attr["stroke-dasharray"] != "":
				target, _ = strconv.ParseFloat(attr["y1"], 64)
			case el.Name.Local == "polyline":
				inPolyline = nil
				for _, p := range strings.Fields(attr["points"]) {
					_, ys, _ := strings.Cut(p, ",")
					y, err := strconv.ParseFloat(ys, 64)
					if err != nil {
						t.Fatalf("point %q: %v", p, err)
					}
					inPolyline = append(inPolyline, y)
				}
			}
		case xml.CharData:
			if inPolyline != nil {
				lines[strings.TrimSpace(string(el))] = inPolyline
			}
		case xml.EndElement:
			if el.Name.Local == "polyline" {
				inPolyline = nil
			}
		}
	}
	if target < 0 {
		t.Fatal("no target line at 500/s")
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per delivering mirror (2): %v", len(lines), lines)
	}
	above := func(ys []float64) int {
		n := 0
		for _, y := range ys {
			if y < target { // SVG's y grows downwards
				n++
			}
		}
		return n
	}
	if n := above(lines[mirrors[0]]); n != 0 {
		t.Errorf("%s: %d points above the target, want 0", mirrors[0], n)
	}
	if n := above(lines[mirrors[1]]); n != 1 {
		t.Errorf("%s: %d points above the target, want 1 (the stall)", mirrors[1], n)
	}
	if got := len(lines[mirrors[0]]); got != 10 {
		t.Errorf("%s: %d points, want 10 (1 s in 100 ms buckets)", mirrors[0], got)
	}
}
