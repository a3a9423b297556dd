package chaos

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorder is a Target that records what the faults ask of it; its
// supervisor sees no process running (a projector crash is seen at once).
type recorder struct {
	calls []string
	fail  string // a call starting with this fails
}

func (r *recorder) do(call string) error {
	r.calls = append(r.calls, call)
	if r.fail != "" && strings.HasPrefix(call, r.fail) {
		return errors.New("refused")
	}
	return nil
}

func (r *recorder) Control(_ context.Context, path string) (time.Time, error) {
	return time.Now(), r.do("control " + path)
}

func (r *recorder) Running(context.Context, string) (bool, error) { return false, nil }

func (r *recorder) Inject(_ context.Context, region, name string, body any) error {
	return r.do("inject " + region + " " + name)
}

// Every kind has one entry in the table, and its inject and heal ask the
// supervisor or the region for what the kind says, and only that.
func TestFaultTable(t *testing.T) {
	want := map[Kind][2][]string{
		Kill:           {{"control /down/us-east"}, {"control /up/us-east"}},
		Pause:          {{"control /pause/us-east"}, {"control /resume/us-east"}},
		Partition:      {{"control /net/cut/us-east/eu-west"}, {"control /net/heal/us-east/eu-west"}},
		SlowLink:       {{"control /net/degrade/us-east/eu-west?latency=200ms&jitter=50ms&reset=0s"}, {"control /net/restore/us-east/eu-west"}},
		LossyLink:      {{"control /net/degrade/us-east/eu-west?latency=20ms&jitter=0s&reset=2s"}, {"control /net/restore/us-east/eu-west"}},
		DiskFull:       {{"inject us-east disk-full"}, {"inject us-east disk-full"}},
		ClockSkew:      {{"inject us-east clock"}, {"inject us-east clock"}},
		ProjectorCrash: {{"inject us-east projector-crash"}, {"control /up/us-east"}},
	}
	if len(Faults()) != len(want) || !reflect.DeepEqual(Kinds(), []Kind{Kill, Pause, Partition, SlowLink, LossyLink, DiskFull, ClockSkew, ProjectorCrash}) {
		t.Fatalf("the table has %v", Kinds())
	}
	ctx := context.Background()
	for _, f := range Faults() {
		s := Step{Kind: f.Kind, Region: "us-east", Hold: Duration(time.Second)}
		if f.Link {
			s.Peer = "eu-west"
		}
		switch f.Kind {
		case SlowLink:
			s.Latency, s.Jitter = Duration(200*time.Millisecond), Duration(50*time.Millisecond)
		case LossyLink:
			s.Latency, s.ResetEvery = Duration(20*time.Millisecond), Duration(2*time.Second)
		}
		r := &recorder{}
		a, err := f.Inject(ctx, r, s)
		if err != nil || !reflect.DeepEqual(r.calls, want[f.Kind][0]) {
			t.Errorf("%s: inject asked %q (%v), want %q", f.Kind, r.calls, err, want[f.Kind][0])
		}
		if f.Lost != !a.Lost.IsZero() {
			t.Errorf("%s: Lost %v but the injection reports the region lost at %v", f.Kind, f.Lost, a.Lost)
		}
		r.calls = nil
		if err := f.Heal(ctx, r, s); err != nil || !reflect.DeepEqual(r.calls, want[f.Kind][1]) {
			t.Errorf("%s: heal asked %q (%v), want %q", f.Kind, r.calls, err, want[f.Kind][1])
		}
		if f.MinRegions < 2 || f.Color == "" || s.String() == string(f.Kind) {
			t.Errorf("%s: entry %+v incomplete", f.Kind, f)
		}
		if f.Lost && !f.Down {
			t.Errorf("%s: a fault that kills its region takes it down", f.Kind)
		}
	}
	// A refused heal names what it was lifting.
	r := &recorder{fail: "control /resume/"}
	f, _ := Lookup(Pause)
	if err := f.Heal(ctx, r, Step{Kind: Pause, Region: "us-east"}); err == nil || err.Error() != "resume: refused" {
		t.Fatalf("refused resume: %v", err)
	}
	if _, ok := Lookup("flood"); ok || Kind("flood").Link() || Kind("flood").TakesRegionDown() {
		t.Fatal("an unknown kind found in the table")
	}
}

// A run fails when a kind of its schedule was never applied (no step of it
// ran, or every one failed), when it had no schedule, or no checks.
func TestJudgeFailsOnUnappliedKind(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	schedule := []Step{{N: 1, Kind: Pause, Region: "us-east"}, {N: 2, Kind: Kill, Region: "eu-west"}}
	ok := []Check{{Name: "acknowledged writes lost", OK: true}}
	applied := func(kinds ...Kind) []StepRecord {
		var out []StepRecord
		for i, k := range kinds {
			out = append(out, StepRecord{Step: Step{N: i + 1, Kind: k}, Start: start, End: start})
		}
		return out
	}
	r := &Report{Kinds: Kinds(), Schedule: schedule, Steps: applied(Pause, Kill), Checks: ok}
	if r.Judge(); !r.Passed || len(r.Unapplied) != 0 {
		t.Fatalf("every scheduled kind applied: passed %v, unapplied %v", r.Passed, r.Unapplied)
	}
	if !slices.Contains(r.Uncovered, Partition) {
		t.Fatalf("partition was asked for and not scheduled: uncovered %v", r.Uncovered)
	}
	r.Steps = applied(Pause)
	if r.Judge(); r.Passed || !reflect.DeepEqual(r.Unapplied, []Kind{Kill}) {
		t.Fatalf("the kill never ran: passed %v, unapplied %v", r.Passed, r.Unapplied)
	}
	r.Steps = applied(Pause, Kill)
	r.Steps[1].Err = "no dev cluster is running"
	if r.Judge(); r.Passed || !reflect.DeepEqual(r.Unapplied, []Kind{Kill}) {
		t.Fatalf("the kill failed: passed %v, unapplied %v", r.Passed, r.Unapplied)
	}
	var txt strings.Builder
	if err := r.WriteText(&txt); err != nil || !strings.Contains(txt.String(), "scheduled but never applied: [kill]") {
		t.Fatalf("text report:\n%s", txt.String())
	}
	r = &Report{Kinds: Kinds(), Checks: ok}
	if r.Judge(); r.Passed {
		t.Fatal("a run with no schedule passed")
	}
	r = &Report{Kinds: Kinds(), Schedule: schedule, Steps: applied(Pause, Kill)}
	if r.Judge(); r.Passed {
		t.Fatal("a run with no checks passed")
	}
}
