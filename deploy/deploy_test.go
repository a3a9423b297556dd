// Package deploy holds the deployment's monitoring: Prometheus rules with
// their unit tests, the scrape configuration, and the Grafana dashboard.
// This test runs promtool (Debian package prometheus) on them.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: CI installs the Debian package prometheus")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	return p
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestPrometheusRules(t *testing.T) {
	p := promtool(t)
	run(t, "prometheus", p, "check", "rules", "shortener.rules.yml")
	run(t, "prometheus", p, "check", "config", "prometheus.yml")
	run(t, "prometheus", p, "test", "rules", "shortener.rules.test.yml", "shortener.rules.slow.test.yml")
}

// Every alert names a runbook that exists; every runbook is named by an alert.
func TestEveryAlertHasItsRunbook(t *testing.T) {
	rules, err := os.ReadFile("prometheus/shortener.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	blocks := regexp.MustCompile(`(?m)^      - alert: `).Split(string(rules), -1)[1:]
	for _, b := range blocks {
		name := strings.Fields(b)[0]
		m := regexp.MustCompile(`runbook: (docs/runbooks/[a-z0-9-]+\.md)`).FindStringSubmatch(b)
		if m == nil {
			t.Errorf("alert %s names no runbook", name)
			continue
		}
		if _, err := os.Stat("../" + m[1]); err != nil {
			t.Errorf("alert %s: runbook %s: %v", name, m[1], err)
		}
		named[m[1]] = true
	}
	if len(blocks) < 14 {
		t.Errorf("%d alerts, want at least 14", len(blocks))
	}
	files, _ := os.ReadDir("../docs/runbooks")
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".md") && f.Name() != "README.md" && !named["docs/runbooks/"+f.Name()] {
			t.Errorf("runbook %s is named by no alert", f.Name())
		}
	}
}

// The dashboard is valid JSON and every metric it queries is one the
// region exports (or a recording rule).
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/shortener.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	rules, _ := os.ReadFile("prometheus/shortener.rules.yml")
	known := regexp.MustCompile(`^(shortener_[a-z_]+|go_[a-z_]+|process_[a-z_]+|up)$`)
	metric := regexp.MustCompile(`\b(shortener:[a-z_0-9:]+|shortener_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			n++
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				if strings.HasPrefix(m, "shortener:") {
					if !strings.Contains(string(rules), "record: "+m) {
						t.Errorf("panel %q: no recording rule %s", p.Title, m)
					}
				} else if !known.MatchString(m) {
					t.Errorf("panel %q: metric %s", p.Title, m)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("%d queries in the dashboard; want the golden signals, lag, RPO and SLO burn", n)
	}
}
