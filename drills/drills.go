package drills

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"shortener/chaos/load"
)

// Region is one region of the cluster a drill runs against.
type Region struct {
	Name string
	// URL is the region's own base URL, e.g. "http://127.0.1.1:8080".
	URL string
	// ClientAddr is the source address of the region's clients, e.g.
	// "127.0.1.10": the switch answers them with their home region.
	ClientAddr string
}

// Cluster is what the drills drive: the same interfaces an operator uses
// (make region-down/up through the dev supervisor, the switch's admin API,
// the regions' HTTP API, audit verify), given as functions so that the
// package knows nothing of how the cluster is run.
type Cluster struct {
	Regions   []Region
	Zone      string // DNS zone of the switch, e.g. "short.test"
	SwitchDNS string // host:port of the DNS switch; "" sends each region's clients to its URL
	APIKey    string

	// Down SIGKILLs a region (make region-down) and returns when.
	Down func(ctx context.Context, region string) (time.Time, error)
	// Stop stops a region gracefully (make region-stop: SIGTERM, in-flight
	// requests finish within 5 s) and returns when it was asked, how long
	// it took to exit, and whether it had to be SIGKILLed; nil when the
	// cluster cannot.
	Stop func(ctx context.Context, region string) (at time.Time, took time.Duration, forced bool, err error)
	// ResetProjection moves a stopped region's projection aside so that it
	// rebuilds it from the log when it starts; nil when the cluster cannot.
	ResetProjection func(ctx context.Context, region string) error
	// Up starts it again on its state (make region-up) and returns when;
	// it does not wait for readiness.
	Up func(ctx context.Context, region string) (time.Time, error)
	// Drain drains a region at the switch (on) or ends the drain.
	Drain func(ctx context.Context, region string, on bool) error
	// SwitchAnswer is the region the switch answers home's clients with.
	SwitchAnswer func(ctx context.Context, home string) (string, error)
	// Verify runs audit verify (mirrors against origins, projections
	// against a replay) and returns its output; an error is a mismatch or
	// something that could not be checked.
	Verify func(ctx context.Context) (string, error)
	// BackupRestore takes a backup of every stream and projection into
	// root (shortener backup), restores it into a fresh staging region
	// and runs the consistency checks against it and the live cluster
	// (shortener restore --staging); progress goes to log.
	BackupRestore func(ctx context.Context, root string, log io.Writer) (*BackupOutcome, error)
}

// BackupOutcome is what a backup and its restore into staging showed.
type BackupOutcome struct {
	ID, Dir, Staging string
	Size, Growth     int64
	Previous         string // the backup the growth is against; "" for the first
	Streams          int
	Messages         uint64
	Projections      int
	Took, StageTook  time.Duration
	Checks           []Criterion // the consistency checks on the restored copy
}

// Region returns the region named name.
func (c *Cluster) Region(name string) (Region, bool) {
	for _, r := range c.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// Options tune a run of drills.
type Options struct {
	// Region is the region a drill acts on (failover victim, cache
	// flushed); default the first.
	Region string
	// Rate is the load in operations per second over all clients.
	Rate float64
	// RTOTarget bounds the time until a dead region's clients are served
	// again; HitRateTarget the time until the cache hit rate is back above
	// 80 %.
	RTOTarget, RefillTarget time.Duration
	// SLO is the redirect success objective of the healthy regions
	// (invariant 7: 99.99 %); the error budget is 1 - SLO of their
	// operations. A drill aborts when the budget burns BurnAbort times
	// faster than allowed (at least MinAbortFailures failures).
	SLO              float64
	BurnAbort        float64
	MinAbortFailures int64
	// MethodTimeout bounds a drill's method (then it fails and rolls
	// back); default 4 minutes.
	MethodTimeout time.Duration
	// ReportDir receives the histories, the journal and the report.
	ReportDir string
	// Log receives the journal as it happens.
	Log io.Writer
}

func (o *Options) defaults(c *Cluster) {
	if o.Region == "" && len(c.Regions) > 0 {
		o.Region = c.Regions[0].Name
	}
	if o.Rate == 0 {
		o.Rate = 240
	}
	if o.RTOTarget == 0 {
		o.RTOTarget = 5 * time.Second
	}
	if o.RefillTarget == 0 {
		o.RefillTarget = 10 * time.Second
	}
	if o.SLO == 0 {
		o.SLO = 0.9999
	}
	if o.BurnAbort == 0 {
		o.BurnAbort = 10
	}
	if o.MinAbortFailures == 0 {
		o.MinAbortFailures = 20
	}
	if o.MethodTimeout == 0 {
		o.MethodTimeout = 4 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Drill is one DR drill: a steady-state hypothesis checked before and
// after, a method run under load, a rollback that always runs (also after
// an abort or a failed method), and a judgement of the criteria once the
// load stopped.
type Drill struct {
	Name, Title string
	// OptIn drills run only when named (--drill NAME), not by default.
	OptIn bool
	// Hypothesis describes the steady state in words; Steady checks it.
	Hypothesis string
	Steady     func(ctx context.Context, r *Run) error
	// Load is the load the drill runs under (Targets, Regions, History
	// and APIKey are filled in).
	Load func(o Options) load.Config
	// Method does the drill while the load runs; ctx is cancelled on an
	// abort.
	Method func(ctx context.Context, r *Run) error
	// Rollback puts the cluster back as it was; it runs always.
	Rollback func(ctx context.Context, r *Run) error
	// Judge measures the criteria after the load stopped.
	Judge func(ctx context.Context, r *Run) error
}

// Drills are the drills in the order `shortener drills` runs them.
func Drills() []*Drill {
	return []*Drill{failoverDrill(), cacheDrill(), backupDrill(), restartDrill()}
}

// Names returns the names of the drills.
func Names() []string {
	var n []string
	for _, d := range Drills() {
		n = append(n, d.Name)
	}
	return n
}

// Run is one drill being run: the cluster, the options, and what the
// drill records.
type Run struct {
	Cluster *Cluster
	Opts    Options
	Drill   *Drill
	Result  *DrillResult

	mu      sync.Mutex
	live    *liveCounter
	hist    string // path of the load history
	state   map[string]any
	started time.Time
}

// Logf appends a line to the drill's journal (and prints it).
func (r *Run) Logf(phase, format string, args ...any) {
	e := JournalEntry{Time: time.Now().UTC(), Phase: phase, Message: fmt.Sprintf(format, args...)}
	r.mu.Lock()
	r.Result.Journal = append(r.Result.Journal, e)
	r.mu.Unlock()
	fmt.Fprintf(r.Opts.Log, "%s  %-12s %-9s %s\n", e.Time.Format("15:04:05.000"), r.Drill.Name, phase, e.Message)
}

// Check records a criterion.
func (r *Run) Check(name, target, measured string, pass bool) {
	r.mu.Lock()
	r.Result.Criteria = append(r.Result.Criteria, Criterion{Name: name, Target: target, Measured: measured, Pass: pass})
	r.mu.Unlock()
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	r.Logf("criterion", "%s: %s (target %s): %s", name, measured, target, verdict)
}

// Issue records a problem found that is not a criterion.
func (r *Run) Issue(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.Result.Issues = append(r.Result.Issues, msg)
	r.mu.Unlock()
	r.Logf("issue", "%s", msg)
}

// History reads the load history written so far.
func (r *Run) History() (*load.History, error) {
	f, err := os.Open(r.hist)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return load.ReadHistory(f)
}

func (r *Run) set(k string, v any) { r.mu.Lock(); r.state[k] = v; r.mu.Unlock() }
func (r *Run) get(k string) any    { r.mu.Lock(); defer r.mu.Unlock(); return r.state[k] }

// RunDrills runs the drills named (all when empty) one after the other
// and returns the report; Report.Passed tells whether every drill passed.
func RunDrills(ctx context.Context, c *Cluster, names []string, o Options) (*Report, error) {
	o.defaults(c)
	if _, ok := c.Region(o.Region); !ok {
		return nil, fmt.Errorf("no region %q in the cluster", o.Region)
	}
	var todo []*Drill
	if len(names) == 0 {
		for _, d := range Drills() {
			if !d.OptIn {
				todo = append(todo, d)
			}
		}
	}
	for _, n := range names {
		found := false
		for _, d := range Drills() {
			if d.Name == n {
				todo, found = append(todo, d), true
			}
		}
		if !found {
			return nil, fmt.Errorf("no drill %q (drills: %v)", n, Names())
		}
	}
	if err := os.MkdirAll(o.ReportDir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now().UTC(), Region: o.Region, SLO: o.SLO}
	for _, r := range c.Regions {
		rep.Regions = append(rep.Regions, r.Name)
	}
	for _, d := range todo {
		rep.Drills = append(rep.Drills, runOne(ctx, c, d, o))
		if ctx.Err() != nil {
			break
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Duration = Dur(rep.Finished.Sub(rep.Started))
	rep.summarize()
	return rep, nil
}

func runOne(ctx context.Context, c *Cluster, d *Drill, o Options) *DrillResult {
	res := &DrillResult{Name: d.Name, Title: d.Title, Hypothesis: d.Hypothesis, Started: time.Now().UTC()}
	r := &Run{Cluster: c, Opts: o, Drill: d, Result: res, state: map[string]any{}, started: time.Now(),
		hist: filepath.Join(o.ReportDir, d.Name+".history.jsonl")}
	defer func() {
		res.Finished = time.Now().UTC()
		res.Duration = Dur(res.Finished.Sub(res.Started))
		res.Status = "pass"
		for _, cr := range res.Criteria {
			if !cr.Pass {
				res.Status = "fail"
			}
		}
		if res.Error != "" {
			res.Status = "fail"
		}
		if res.Aborted != "" {
			res.Status = "aborted"
		}
		if len(res.Criteria) == 0 && res.Status == "pass" {
			res.Status = "fail"
			res.Error = "no criterion was measured"
		}
		r.Logf("end", "%s in %s", res.Status, time.Duration(res.Duration).Round(time.Millisecond))
	}()

	r.Logf("start", "%s; steady state: %s", d.Title, d.Hypothesis)
	if err := d.Steady(ctx, r); err != nil {
		res.Error = "steady state not met before the drill: " + err.Error()
		r.Logf("steady", "NOT MET: %v (the drill does not run)", err)
		return res
	}
	r.Logf("steady", "met before the drill")

	// Load, with a live count of the healthy clients' errors for the abort
	// condition.
	hf, err := os.Create(r.hist)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	r.live = newLiveCounter(hf)
	cfg := d.Load(o)
	cfg.APIKey, cfg.History = c.APIKey, r.live
	if cfg.RegionsInterval == 0 {
		cfg.RegionsInterval = 250 * time.Millisecond
	}
	cfg.Targets, cfg.Regions = nil, nil
	for _, rg := range c.Regions {
		t := load.Target{Name: rg.Name, BaseURL: rg.URL, LocalAddr: rg.ClientAddr}
		if c.SwitchDNS != "" { // the region's clients find it through the switch
			t.BaseURL, t.DNS = "http://"+c.Zone+":8080", c.SwitchDNS
		}
		cfg.Targets = append(cfg.Targets, t)
		cfg.Regions = append(cfg.Regions, load.Region{Name: rg.Name, BaseURL: rg.URL})
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type loadDone struct {
		rep *load.Report
		err error
	}
	done := make(chan loadDone, 1)
	go func() { rep, err := load.Run(loadCtx, cfg); done <- loadDone{rep, err} }()
	r.Logf("load", "started: %.0f ops/s from the clients of %d regions through the switch, %.0f%% creates, history %s",
		cfg.Rate, len(c.Regions), 100*cfg.CreateRatio, r.hist)

	// Method, watched by the abort condition.
	mctx, cancelMethod := context.WithTimeout(ctx, o.MethodTimeout)
	var abortMu sync.Mutex
	abortWhy := ""
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-mctx.Done():
				return
			case <-t.C:
			}
			if why := r.burning(); why != "" {
				abortMu.Lock()
				abortWhy = why
				abortMu.Unlock()
				cancelMethod()
				return
			}
		}
	}()
	r.Logf("method", "begins")
	merr := d.Method(mctx, r)
	cancelMethod()
	<-watchDone
	abortMu.Lock()
	res.Aborted = abortWhy
	abortMu.Unlock()
	switch {
	case res.Aborted != "":
		r.Logf("abort", "%s", res.Aborted)
	case merr != nil:
		res.Error = "method: " + merr.Error()
		r.Logf("method", "failed: %v", merr)
	default:
		r.Logf("method", "done")
	}

	// Rollback, always, on a context of its own.
	rctx, cancelR := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	if err := d.Rollback(rctx, r); err != nil {
		r.Issue("rollback failed: %v", err)
		if res.Error == "" {
			res.Error = "rollback: " + err.Error()
		}
	} else {
		r.Logf("rollback", "done")
	}
	cancelR()

	stopLoad()
	ld := <-done
	hf.Close()
	if ld.err != nil && !(errors.Is(ld.err, context.Canceled) && ld.rep != nil) {
		res.Error = "load: " + ld.err.Error()
		return res
	}
	res.Load = summarizeLoad(ld.rep)
	res.Budget = r.live.budget(o, r.get("victim"))
	r.Logf("load", "stopped: %d ops, %.4f%% ok; healthy clients %d ops, %d failed: %.1f%% of the error budget spent",
		ld.rep.Total.Sent+ld.rep.Total.Missed, 100*ld.rep.SuccessRate(), res.Budget.Ops, res.Budget.Failures, res.Budget.SpentPct)

	if res.Aborted == "" {
		jctx, cancelJ := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		if err := d.Judge(jctx, r); err != nil {
			res.Error = "judge: " + err.Error()
			r.Logf("judge", "failed: %v", err)
		}
		cancelJ()
	}
	sctx, cancelS := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancelS()
	if err := d.Steady(sctx, r); err != nil {
		r.Issue("steady state not met after the drill: %v", err)
		if res.Error == "" {
			res.Error = "steady state not met after the drill: " + err.Error()
		}
	} else {
		r.Logf("steady", "met after the drill")
	}
	return res
}

// burning returns why the drill must stop, "" while it may go on: the
// healthy clients' redirect errors burn the error budget BurnAbort times
// faster than the SLO allows.
func (r *Run) burning() string {
	victim, _ := r.get("victim").(string)
	ops, failed := r.live.healthy(victim)
	allowed := float64(ops) * (1 - r.Opts.SLO) * r.Opts.BurnAbort
	if failed >= r.Opts.MinAbortFailures && float64(failed) > allowed {
		return fmt.Sprintf("error budget burning too fast: the healthy regions' clients failed %d of %d operations (%.3f%%), more than %.0f× the %.2f%% budget",
			failed, ops, 100*float64(failed)/float64(max(ops, 1)), r.Opts.BurnAbort, 100*(1-r.Opts.SLO))
	}
	return ""
}
