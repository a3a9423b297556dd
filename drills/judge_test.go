package drills

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shortener/chaos/load"
)

var threeRegions = []Region{{Name: "us-east"}, {Name: "eu-west"}, {Name: "ap-south"}}

// emptyRun is a drill run that saw nothing: no load operation, an empty
// history, nothing recorded by a method.
func emptyRun(t *testing.T, d *Drill, c *Cluster) *Run {
	t.Helper()
	o := Options{ReportDir: t.TempDir()}
	o.defaults(c)
	r := &Run{Cluster: c, Opts: o, Drill: d, Result: &DrillResult{Name: d.Name}, state: map[string]any{},
		started: time.Now(), hist: filepath.Join(o.ReportDir, d.Name+".history.jsonl")}
	if err := os.WriteFile(r.hist, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.live = newLiveCounter(&strings.Builder{})
	return r
}

// cancelled is a context already done: nothing a judge polls can answer.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Every drill's judge, fed a run that saw nothing, fails every criterion
// it measures (or fails as a whole): a criterion that passes on no sample
// tests nothing.
func TestJudgesFailOnNothing(t *testing.T) {
	for _, d := range Drills() {
		t.Run(d.Name, func(t *testing.T) {
			r := emptyRun(t, d, &Cluster{Regions: threeRegions, Stop: func(context.Context, string) (time.Time, time.Duration, bool, error) {
				return time.Time{}, 0, false, nil
			}})
			err := d.Judge(cancelled(), r)
			if err == nil && len(r.Result.Criteria) == 0 {
				t.Fatal("no error and no criterion")
			}
			for _, c := range r.Result.Criteria {
				if c.Pass {
					t.Errorf("passed on nothing: %+v", c)
				}
			}
		})
	}
}

// The backup drill's failure count fails with no request: a backup under
// no load showed nothing about serving.
func TestBackupJudgeNoRequests(t *testing.T) {
	d := backupDrill()
	r := emptyRun(t, d, &Cluster{})
	r.set("backup", &BackupOutcome{ID: "b", Size: 1, Streams: 1, Checks: []Criterion{{Name: "restored", Pass: true}}})
	if err := d.Judge(cancelled(), r); err != nil {
		t.Fatal(err)
	}
	c := criterion(t, r, "requests failed during the backup")
	if c.Pass {
		t.Fatalf("passed with no request: %+v", c)
	}
}

// allPresent fails when there is no acknowledged create to look for (or
// no region to look in).
func TestAllPresentNothingAcknowledged(t *testing.T) {
	for _, regions := range [][]Region{threeRegions, nil} {
		r := emptyRun(t, failoverDrill(), &Cluster{Regions: regions})
		allPresent(context.Background(), r, nil)
		if c := criterion(t, r, "no acknowledged create lost"); c.Pass {
			t.Fatalf("%d regions, no create: passed: %+v", len(regions), c)
		}
	}
}

// The failover judge with the victim's clients only in the history: the
// healthy regions' error rate and the RPO have nothing to measure.
func TestFailoverJudgeHealthyRegionsSilent(t *testing.T) {
	d := failoverDrill()
	r := emptyRun(t, d, &Cluster{Regions: threeRegions})
	killedAt := time.Now()
	f, err := os.Create(r.hist)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for i := range 20 {
		at := killedAt.Add(time.Duration(i-10) * 100 * time.Millisecond)
		_ = enc.Encode(map[string]any{"kind": "op", "seq": i, "op": "redirect", "target": "us-east", "region": "us-east",
			"intended": at, "start": at, "end": at.Add(time.Millisecond), "status": 302, "ok": i < 10})
	}
	f.Close()
	r.set("killedAt", killedAt)
	r.set("survivor", "eu-west")
	r.set("probe", &load.ProbeResult{}) // a probe of no code
	if err := d.Judge(cancelled(), r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"healthy regions' errors", "RPO: measured loss within the reported bound", "no acknowledged create lost"} {
		if c := criterion(t, r, name); c.Pass {
			t.Errorf("passed on nothing: %+v", c)
		}
	}
}

func TestHealthyErrors(t *testing.T) {
	fr := &load.FailoverReport{Clients: []load.ClientStats{
		{Client: "us-east", Ops: 100, OK: 50, SuccessRate: 0.5},
		{Client: "eu-west", Ops: 100, OK: 100, SuccessRate: 1},
		{Client: "ap-south", Ops: 100, OK: 100, SuccessRate: 1},
	}}
	if m, ok := healthyErrors(fr, threeRegions, "us-east", 0.9999); !ok {
		t.Errorf("every healthy client succeeded: %s", m)
	}
	fr.Clients[2] = load.ClientStats{Client: "ap-south", Ops: 100, OK: 99, SuccessRate: 0.99}
	if m, ok := healthyErrors(fr, threeRegions, "us-east", 0.9999); ok {
		t.Errorf("ap-south at 99%%: %s", m)
	}
	fr.Clients = fr.Clients[:2] // ap-south's clients: no operation
	if m, ok := healthyErrors(fr, threeRegions, "us-east", 0.9999); ok || !strings.Contains(m, "ap-south: no operation") {
		t.Errorf("ap-south without operations: %q %t", m, ok)
	}
	if m, ok := healthyErrors(fr, threeRegions[:1], "us-east", 0.9999); ok {
		t.Errorf("no healthy region: %q", m)
	}
}

func TestJudgeRPO(t *testing.T) {
	fr := &load.FailoverReport{Reported: []load.ReportedRPO{{Region: "eu-west", Found: true, OriginRPO: load.OriginRPO{RPOKnown: true, RPOEvents: 3}}}}
	fr.Probe = &load.ProbeResult{Checked: 10, Missing: 2}
	if rpo := judgeRPO(fr, "eu-west"); !rpo.Holds {
		t.Errorf("2 missing within 3: %+v", rpo)
	}
	fr.Probe = &load.ProbeResult{Checked: 10, Missing: 4}
	if rpo := judgeRPO(fr, "eu-west"); rpo.Holds {
		t.Errorf("4 missing beyond 3: %+v", rpo)
	}
	fr.Probe = &load.ProbeResult{}
	if rpo := judgeRPO(fr, "eu-west"); rpo.Holds {
		t.Errorf("nothing probed: %+v", rpo)
	}
	fr.Probe = nil
	if rpo := judgeRPO(fr, "eu-west"); rpo.Holds {
		t.Errorf("no probe: %+v", rpo)
	}
	fr.Probe = &load.ProbeResult{Checked: 10}
	fr.Reported[0].RPOKnown = false
	if rpo := judgeRPO(fr, "eu-west"); rpo.Holds {
		t.Errorf("bound unknown: %+v", rpo)
	}
}

func criterion(t *testing.T, r *Run, name string) Criterion {
	t.Helper()
	for _, c := range r.Result.Criteria {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no criterion %q in %+v", name, r.Result.Criteria)
	return Criterion{}
}
