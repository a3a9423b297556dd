package chaos

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
	"time"

	"shortener/chaos/load"
)

var regions = []string{"us-east", "eu-west", "ap-south"}

func TestPlanReplaysFromItsSeed(t *testing.T) {
	a, err := Plan(42, regions, nil, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Plan(42, regions, nil, 4*time.Minute)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the same seed gave two schedules:\n%v\n%v", a, b)
	}
	c, _ := Plan(43, regions, nil, 4*time.Minute)
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
}

func TestPlanCoversEveryKindFirst(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		steps, err := Plan(seed, regions, nil, 4*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[Kind]bool{}
		for i, s := range steps {
			if i < len(Kinds()) {
				if seen[s.Kind] {
					t.Fatalf("seed %d: %s twice among the first %d steps", seed, s.Kind, len(Kinds()))
				}
			}
			seen[s.Kind] = true
			if s.N != i+1 || s.Hold <= 0 || s.Gap <= 0 {
				t.Fatalf("seed %d: step %+v", seed, s)
			}
			if s.Kind.Link() && (s.Peer == "" || s.Peer == s.Region) {
				t.Fatalf("seed %d: link fault %+v has no other end", seed, s)
			}
			if s.Kind == ClockSkew && s.Skew == 0 {
				t.Fatalf("seed %d: clock skew of 0", seed)
			}
		}
		if len(seen) != len(Kinds()) {
			t.Fatalf("seed %d: a 4 min schedule covers only %v", seed, seen)
		}
	}
}

func TestPlanKeepsToItsKindsAndLength(t *testing.T) {
	steps, err := Plan(7, regions, []Kind{Partition}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, s := range steps {
		if s.Kind != Partition {
			t.Fatalf("asked for partitions only, got %s", s.Kind)
		}
		total += s.expected()
	}
	if total > 2*time.Minute || len(steps) < 3 {
		t.Fatalf("%d steps expected to take %v for a 2 min schedule", len(steps), total)
	}
	if one, _ := Plan(7, regions, nil, time.Second); len(one) != 1 {
		t.Fatalf("a schedule shorter than any fault has %d steps, want 1", len(one))
	}
	if _, err := Plan(7, regions[:1], nil, time.Minute); err == nil {
		t.Fatal("a schedule over one region was accepted")
	}
	if _, err := ParseKinds("kill,flood"); err == nil || !strings.Contains(err.Error(), "flood") {
		t.Fatalf("ParseKinds(kill,flood) = %v", err)
	}
	if k, err := ParseKinds("kill, pause,kill"); err != nil || !reflect.DeepEqual(k, []Kind{Kill, Pause}) {
		t.Fatalf("ParseKinds = %v, %v", k, err)
	}
}

// A report is judged by its checks, its run's problems and its coverage,
// and its picture is well-formed SVG showing every fault.
func TestReportJudgesAndDraws(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	steps, _ := Plan(1, regions, nil, 4*time.Minute)
	r := &Report{Seed: 1, Kinds: Kinds(), Regions: regions, Started: start, Finished: start.Add(3 * time.Minute), Schedule: steps}
	for i, s := range steps {
		at := start.Add(time.Duration(i) * 20 * time.Second)
		r.Steps = append(r.Steps, StepRecord{Step: s, Start: at, End: at.Add(time.Duration(s.Hold))})
	}
	h := &load.History{}
	for i := 0; i < 180*10; i++ {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		h.Ops = append(h.Ops, load.Op{Op: "redirect", Start: at, End: at.Add(3 * time.Millisecond), OK: i%100 != 0})
	}
	r.Summarize(h)
	if r.Load.Ops != 1800 || r.Load.Failed != 18 || len(r.Seconds) != 180 {
		t.Fatalf("summary %+v, %d seconds", r.Load, len(r.Seconds))
	}
	r.Checks = []Check{{Name: "acknowledged creates lost", OK: true}}
	r.Judge()
	if !r.Passed || len(r.Uncovered) != 0 {
		t.Fatalf("passed %v, uncovered %v", r.Passed, r.Uncovered)
	}
	r.Checks = append(r.Checks, Check{Name: "aliases with more than one winner", OK: false})
	if r.Judge(); r.Passed {
		t.Fatal("a failed check passed the run")
	}
	r.Checks = r.Checks[:1]
	r.Steps[0].Err = "could not apply"
	again := false
	for _, s := range steps[1:] {
		again = again || s.Kind == steps[0].Kind
	}
	if r.Judge(); again == (len(r.Uncovered) != 0) {
		t.Fatalf("step 1 (%s) failed to apply, the kind appears again: %v; uncovered %v", steps[0].Kind, again, r.Uncovered)
	}
	r.Problems = []string{"eu-west not ready after the run"}
	if r.Judge(); r.Passed {
		t.Fatal("a run with a problem passed")
	}

	var svg, txt bytes.Buffer
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&svg)
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the picture is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < len(r.Steps) {
		t.Fatalf("%d rects for %d faults", rects, len(r.Steps))
	}
	if err := r.WriteText(&txt); err != nil || !strings.Contains(txt.String(), "FAILED") || !strings.Contains(txt.String(), "could not apply") {
		t.Fatalf("text report:\n%s", txt.String())
	}
	data, _ := json.Marshal(r)
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || back.Steps[0].Hold != r.Steps[0].Hold {
		t.Fatalf("JSON round trip: %v", err)
	}
}
