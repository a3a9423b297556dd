//go:build regions

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shortener/drills"
)

// TestClusterDrills: the DR drills (make drills) against a dev cluster of
// their own: the default drills, region failover and failback, cache
// flush and refill, backup and restore into staging, and the rolling
// restart (graceful stop, every region ready within 30 s). Every drill
// passes, and the report is written in Markdown and JSON.
func TestClusterDrills(t *testing.T) {
	start := time.Now()
	d := startDev(t)
	t.Logf("dev cluster up in %.1f s", time.Since(start).Seconds())
	t.Setenv("SHORTENER_API_KEY", d.key)
	reportDir := filepath.Join(d.dir, "drills")
	var out bytes.Buffer
	begin := time.Now()
	code := run([]string{"drills", "--dir", d.dir, "--report-dir", reportDir}, &out, &out)
	t.Logf("shortener drills (exit %d, %.1f s):\n%s", code, time.Since(begin).Seconds(), out.String())
	if code != 0 {
		t.Errorf("shortener drills exited %d; want 0", code)
	}
	for _, f := range []string{"dr-report.md", "dr-report.json", "failover.history.jsonl", "cache.history.jsonl", "backup.history.jsonl", "restart.history.jsonl"} {
		if fi, err := os.Stat(filepath.Join(reportDir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (want a non-empty file)", f, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(reportDir, "dr-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep drills.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("dr-report.json: %v", err)
	}
	if !rep.Passed || len(rep.Drills) != 4 {
		t.Errorf("report: passed %t with %d drills; want 4 drills passed", rep.Passed, len(rep.Drills))
	}
	for _, dr := range rep.Drills {
		if dr.Status != "pass" {
			t.Errorf("drill %s: %s (%s%s)", dr.Name, dr.Status, dr.Error, dr.Aborted)
		}
		for _, c := range dr.Criteria {
			if !c.Pass {
				t.Errorf("drill %s: criterion %q: %s (target %s)", dr.Name, c.Name, c.Measured, c.Target)
			}
		}
		if len(dr.Journal) == 0 {
			t.Errorf("drill %s: empty journal", dr.Name)
		}
	}
	if rep.RTO == nil || rep.RPO == nil {
		t.Errorf("report without RTO (%v) or RPO (%v)", rep.RTO, rep.RPO)
	}
	if md, _ := os.ReadFile(filepath.Join(reportDir, "dr-report.md")); len(md) > 0 {
		t.Logf("dr-report.md:\n%s", md)
	}
	t.Logf("whole test %.1f s", time.Since(start).Seconds())
}
