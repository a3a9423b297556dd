package drills

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"shortener/chaos/load"
)

// Dur is a duration that reads as text in JSON ("1.03s").
type Dur time.Duration

func (d Dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Dur(v)
	return err
}

// Report is the DR report of one run of drills.
type Report struct {
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Duration Dur            `json:"duration"`
	Regions  []string       `json:"regions"`
	Region   string         `json:"region"` // the region acted on
	SLO      float64        `json:"slo"`
	Passed   bool           `json:"passed"`
	Drills   []*DrillResult `json:"drills"`
	// RTO and RPO of the failover drill, when it ran.
	RTO *Dur       `json:"rto,omitempty"`
	RPO *RPOResult `json:"rpo,omitempty"`
	// Budget is the error budget spent over all drills.
	Budget ErrorBudget `json:"error_budget"`
}

// DrillResult is one drill in the report.
type DrillResult struct {
	Name       string         `json:"name"`
	Title      string         `json:"title"`
	Hypothesis string         `json:"steady_state"`
	Status     string         `json:"status"` // pass, fail, aborted
	Started    time.Time      `json:"started"`
	Finished   time.Time      `json:"finished"`
	Duration   Dur            `json:"duration"`
	Criteria   []Criterion    `json:"criteria"`
	Issues     []string       `json:"issues,omitempty"`
	Error      string         `json:"error,omitempty"`
	Aborted    string         `json:"aborted,omitempty"`
	RTO        *Dur           `json:"rto,omitempty"`
	RPO        *RPOResult     `json:"rpo,omitempty"`
	Load       LoadSummary    `json:"load"`
	Budget     ErrorBudget    `json:"error_budget"`
	Journal    []JournalEntry `json:"journal"`
}

// Criterion is one success criterion with its measured value.
type Criterion struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Pass     bool   `json:"pass"`
}

// JournalEntry is one timestamped line of a drill's journal.
type JournalEntry struct {
	Time    time.Time `json:"time"`
	Phase   string    `json:"phase"`
	Message string    `json:"message"`
}

// RPOResult compares the RPO the survivors reported before the kill with
// what the dead region's clients actually missed.
type RPOResult struct {
	ReportedBy      string  `json:"reported_by"`
	ReportedEvents  uint64  `json:"reported_events"`
	ReportedSeconds float64 `json:"reported_seconds"`
	Acked           int     `json:"acked_before_kill"`
	Missing         int     `json:"measured_missing"`
	Holds           bool    `json:"bound_holds"`
}

// ErrorBudget is the redirect error budget of the healthy regions'
// clients: (1 - SLO) of their operations may fail.
type ErrorBudget struct {
	SLO            float64 `json:"slo"`
	Ops            int64   `json:"healthy_ops"`
	Failures       int64   `json:"healthy_failures"`
	Allowed        float64 `json:"allowed_failures"`
	SpentPct       float64 `json:"spent_pct"`
	Victim         string  `json:"victim,omitempty"`
	VictimOps      int64   `json:"victim_ops,omitempty"`
	VictimFailures int64   `json:"victim_failures,omitempty"`
}

// LoadSummary is the load a drill ran under.
type LoadSummary struct {
	Ops         int64   `json:"ops"`
	OK          int64   `json:"ok"`
	Missed      int64   `json:"missed"`
	SuccessRate float64 `json:"success_rate"`
	P50         Dur     `json:"p50"`
	P99         Dur     `json:"p99"`
	Max         Dur     `json:"max"`
}

func summarizeLoad(r *load.Report) LoadSummary {
	if r == nil {
		return LoadSummary{}
	}
	t := r.Total
	return LoadSummary{Ops: t.Sent + t.Missed, OK: t.OK, Missed: t.Missed, SuccessRate: t.SuccessRate(),
		P50: Dur(t.P50), P99: Dur(t.P99), Max: Dur(t.Max)}
}

func (rep *Report) summarize() {
	rep.Passed = len(rep.Drills) > 0
	b := ErrorBudget{SLO: rep.SLO}
	for _, d := range rep.Drills {
		if d.Status != "pass" {
			rep.Passed = false
		}
		if d.RTO != nil {
			rep.RTO = d.RTO
		}
		if d.RPO != nil {
			rep.RPO = d.RPO
		}
		b.Ops += d.Budget.Ops
		b.Failures += d.Budget.Failures
	}
	b.Allowed = float64(b.Ops) * (1 - b.SLO)
	if b.Allowed > 0 {
		b.SpentPct = 100 * float64(b.Failures) / b.Allowed
	}
	rep.Budget = b
}

// Write writes the report as dr-report.json and dr-report.md in dir and
// returns their paths.
func (rep *Report) Write(dir string) (jsonPath, mdPath string, err error) {
	jsonPath, mdPath = filepath.Join(dir, "dr-report.json"), filepath.Join(dir, "dr-report.md")
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return "", "", err
	}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	return jsonPath, mdPath, os.WriteFile(mdPath, []byte(md.String()), 0o644)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**FAIL**"
}

// WriteMarkdown writes the report for people.
func (rep *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# DR report %s\n\n", rep.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Regions %s; drills acted on **%s**. Started %s, finished %s (%s).\n\n",
		strings.Join(rep.Regions, ", "), rep.Region, rep.Started.Format(time.RFC3339), rep.Finished.Format(time.RFC3339), time.Duration(rep.Duration).Round(time.Second))
	fmt.Fprintf(w, "**Result: %s**\n\n", map[bool]string{true: "all drills passed", false: "FAILED"}[rep.Passed])
	fmt.Fprintf(w, "| drill | result | duration | criteria passed |\n|---|---|---|---|\n")
	for _, d := range rep.Drills {
		n := 0
		for _, c := range d.Criteria {
			if c.Pass {
				n++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d of %d |\n", d.Name, strings.ToUpper(d.Status), time.Duration(d.Duration).Round(100*time.Millisecond), n, len(d.Criteria))
	}
	fmt.Fprintln(w)
	if rep.RTO != nil {
		fmt.Fprintf(w, "- **RTO** (kill to the first success of the region's clients elsewhere): %s\n", time.Duration(*rep.RTO).Round(time.Millisecond))
	}
	if p := rep.RPO; p != nil {
		fmt.Fprintf(w, "- **RPO**: reported by %s before the kill ≤ %d events (%.2f s); measured: %d of %d acknowledged creates missing there (bound holds: %t)\n",
			p.ReportedBy, p.ReportedEvents, p.ReportedSeconds, p.Missing, p.Acked, p.Holds)
	}
	fmt.Fprintf(w, "- **Error budget** (healthy regions' clients, SLO %.2f%%): %d failures of %d operations, %.1f allowed: %.1f%% spent\n\n",
		100*rep.SLO, rep.Budget.Failures, rep.Budget.Ops, rep.Budget.Allowed, rep.Budget.SpentPct)
	for _, d := range rep.Drills {
		fmt.Fprintf(w, "## %s: %s — %s\n\n", d.Name, d.Title, strings.ToUpper(d.Status))
		fmt.Fprintf(w, "Steady state: %s\n\n", d.Hypothesis)
		if d.Aborted != "" {
			fmt.Fprintf(w, "**Aborted:** %s\n\n", d.Aborted)
		}
		if d.Error != "" {
			fmt.Fprintf(w, "**Error:** %s\n\n", d.Error)
		}
		fmt.Fprintf(w, "| criterion | target | measured | result |\n|---|---|---|---|\n")
		for _, c := range d.Criteria {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.Name, c.Target, c.Measured, verdict(c.Pass))
		}
		fmt.Fprintln(w)
		l := d.Load
		fmt.Fprintf(w, "Load: %d operations, %.4f%% ok, %d missed, p50 %s, p99 %s, max %s. Error budget: %d of %d healthy operations failed (%.1f%% of the budget)",
			l.Ops, 100*l.SuccessRate, l.Missed, time.Duration(l.P50).Round(10*time.Microsecond), time.Duration(l.P99).Round(10*time.Microsecond), time.Duration(l.Max).Round(time.Millisecond),
			d.Budget.Failures, d.Budget.Ops, d.Budget.SpentPct)
		if d.Budget.Victim != "" {
			fmt.Fprintf(w, "; %s's clients: %d of %d failed", d.Budget.Victim, d.Budget.VictimFailures, d.Budget.VictimOps)
		}
		fmt.Fprintf(w, ".\n\n")
		if len(d.Issues) > 0 {
			fmt.Fprintf(w, "Issues found:\n\n")
			for _, i := range d.Issues {
				fmt.Fprintf(w, "- %s\n", i)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "<details><summary>Journal (%d entries)</summary>\n\n```\n", len(d.Journal))
		j := append([]JournalEntry(nil), d.Journal...)
		sort.SliceStable(j, func(a, b int) bool { return j[a].Time.Before(j[b].Time) })
		for _, e := range j {
			fmt.Fprintf(w, "%s  %-9s %s\n", e.Time.Format("15:04:05.000"), e.Phase, e.Message)
		}
		fmt.Fprintf(w, "```\n\n</details>\n\n")
	}
}
