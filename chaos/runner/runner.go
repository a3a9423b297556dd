package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shortener/chaos"
	"shortener/chaos/check"
	"shortener/chaos/load"
	"shortener/procs"
)

// Options are the settings of one chaos run.
type Options struct {
	Seed     int64
	Duration time.Duration // the schedule's length, recovery included
	Kinds    []chaos.Kind  // the kinds to draw from
	Dir      string        // runs go to Dir/seed-N
	Rate     float64       // load, in operations per second over all clients
	Warmup   time.Duration // load before the first fault
	Tail     time.Duration // load after the last fault, everything healed

	// The cluster: where its regions and DNS switch are and the name it
	// serves (Topology), where the clients of a region go when it is
	// unavailable (Prefer). Run starts it with NewSupervisor under
	// RunDir()/dev, fsync always and durability local.
	Topology procs.Topology
	Prefer   map[string][]string
	// Verify checks the cluster under dir at the end: every mirror
	// against its origin, every projection against a replay of the log
	// (audit verify). Its output is kept in audit-verify.txt.
	Verify func(ctx context.Context, dir string) (string, error)
}

// RunDir is the directory of the run: Dir/seed-N.
func (o Options) RunDir() string { return filepath.Join(o.Dir, fmt.Sprintf("seed-%d", o.Seed)) }

// availabilityTarget is the success rate the clients of regions that
// stayed up must see (issue "Chaos").
const availabilityTarget = 0.9999

// configureAliases adds alias claims to the chaos load: one operation in
// ten claims an alias, and each name is fought over by the claims of 30
// consecutive operations (about three, from the clients of every region).
func configureAliases(cfg *load.Config) {
	cfg.AliasRatio = 0.1
	cfg.AliasPrefix = "chaos-"
	cfg.AliasSpan = 30
}

// run is one run under way.
type run struct {
	o      Options
	out    io.Writer
	dir    string // the run's directory
	devDir string // its cluster's state
	key    string
	rep    *chaos.Report
	hc     *http.Client
	ops    *opCounter
	lost   []check.Lost // measured at every region lost (judge.go)
}

// Run runs the chaos run o, journalling to out, and returns its report
// (written to o.RunDir() too). An error is a run that could not be made;
// a run that was made and failed is a report that did not pass.
func Run(ctx context.Context, out io.Writer, o Options) (*chaos.Report, error) {
	if len(o.Topology.Regions) == 0 || o.Verify == nil {
		return nil, errors.New("chaos run: Options.Topology and Options.Verify are required")
	}
	c := &run{o: o, out: out, dir: o.RunDir(), hc: &http.Client{Timeout: 10 * time.Second}}
	c.devDir = filepath.Join(c.dir, "dev")
	var names []string
	for _, r := range o.Topology.Regions {
		names = append(names, r.Name)
	}
	steps, err := chaos.Plan(o.Seed, names, o.Kinds, o.Duration)
	if err != nil {
		return nil, err
	}
	replay := fmt.Sprintf("make chaos SEED=%d DURATION=%v", o.Seed, o.Duration)
	if len(o.Kinds) != len(chaos.Kinds()) {
		replay = fmt.Sprintf("shortener chaos --seed %d --duration %v --faults %s", o.Seed, o.Duration, strings.Join(kindStrings(o.Kinds), ","))
	}
	c.rep = &chaos.Report{Seed: o.Seed, Duration: chaos.Duration(o.Duration), Kinds: o.Kinds, Regions: names, Replay: replay, Schedule: steps}
	c.logf("chaos run, seed %d (replay: %s), in %s", o.Seed, replay, c.dir)
	c.logf("schedule: %d faults over about %v", len(steps), o.Duration)
	for _, s := range steps {
		fmt.Fprintf(out, "            %2d. %s\n", s.N, s)
	}

	// A fresh cluster: the same seed must meet the same starting state.
	if err := os.RemoveAll(c.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.devDir, 0o755); err != nil {
		return nil, err
	}
	devLog, err := os.Create(filepath.Join(c.dir, "dev.log"))
	if err != nil {
		return nil, err
	}
	defer devLog.Close()
	if c.key, err = procs.APIKey(filepath.Join(c.devDir, "api-key"), true); err != nil {
		return nil, err
	}
	devCtx, stopDev := context.WithCancel(context.Background())
	ready := make(chan struct{})
	devDone := make(chan error, 1)
	sv := NewSupervisor(procs.Options{Dir: c.devDir, Key: c.key, Topology: o.Topology, Prefer: o.Prefer,
		Fsync: "always", Durability: "local", Out: devLog, Ready: ready})
	go func() { devDone <- sv.Run(devCtx) }()
	defer func() {
		stopDev()
		if err := <-devDone; err != nil {
			c.logf("dev cluster: %v", err)
		}
	}()
	c.logf("starting a dev cluster with fault proxies on %s (log %s)", proxyNet(o.Topology.Regions), devLog.Name())
	select {
	case <-ready:
	case err := <-devDone:
		devDone <- err
		return nil, fmt.Errorf("dev cluster did not start: %v (see %s)", err, devLog.Name())
	case <-time.After(3 * time.Minute):
		return nil, fmt.Errorf("dev cluster not ready after 3 min (see %s)", devLog.Name())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.logf("cluster ready")

	// Load through the switch, as the clients of each region.
	hist, err := os.Create(filepath.Join(c.dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	defer hist.Close()
	progress, err := os.Create(filepath.Join(c.dir, "load.log"))
	if err != nil {
		return nil, err
	}
	defer progress.Close()
	c.ops = &opCounter{w: hist}
	cfg := load.Config{Rate: o.Rate, Duration: 24 * time.Hour, CreateRatio: 0.2, APIKey: c.key, Seed: o.Seed,
		History: c.ops, Progress: progress, Timeout: 3 * time.Second}
	configureAliases(&cfg)
	for _, r := range o.Topology.Regions {
		cfg.Targets = append(cfg.Targets, load.Target{Name: r.Name, BaseURL: "http://" + o.Topology.Zone + ":8080",
			DNS: o.Topology.SwitchDNS, LocalAddr: strings.TrimSuffix(r.Host, ".1") + ".10"})
		cfg.Regions = append(cfg.Regions, load.Region{Name: r.Name, BaseURL: r.URL()})
	}
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	loadDone := make(chan error, 1)
	c.rep.Started = time.Now()
	go func() { _, err := load.Run(loadCtx, cfg); loadDone <- err }()
	c.logf("load: %.0f ops/s from the clients of %d regions through the switch (history %s)", o.Rate, len(names), hist.Name())
	stopTicker := c.tick(ctx)

	c.sleep(ctx, o.Warmup)
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		c.apply(ctx, s)
		c.sleep(ctx, time.Duration(s.Gap))
	}
	c.healAll(context.Background())
	c.sleep(ctx, o.Tail)
	stopTicker()
	stopLoad()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) {
		c.problem("load: %v", err)
	}
	c.rep.Finished = time.Now()
	if err := hist.Sync(); err != nil {
		return nil, err
	}

	// Judge.
	f, err := os.Open(hist.Name())
	if err != nil {
		return nil, err
	}
	h, err := load.ReadHistory(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read the history: %w", err)
	}
	c.rep.Summarize(h)
	c.logf("load stopped: %d operations; judging the run", c.rep.Load.Ops)
	jctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.rep.Checks = c.judge(jctx, h)
	c.rep.Judge()
	paths, err := c.rep.Write(c.dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out)
	_ = c.rep.WriteText(out)
	fmt.Fprintf(out, "\nreport: %s\n", strings.Join(paths, ", "))
	return c.rep, nil
}

// proxyNet names the addresses of the cluster's fault proxies for the
// journal: "127.7.N.x" for regions on 127.7.N.1.
func proxyNet(regions []procs.Region) string {
	if len(regions) == 0 {
		return "?"
	}
	parts := strings.Split(regions[0].Host, ".")
	if len(parts) != 4 {
		return regions[0].Host
	}
	return parts[0] + "." + parts[1] + ".N.x"
}

func kindStrings(k []chaos.Kind) []string {
	var s []string
	for _, x := range k {
		s = append(s, string(x))
	}
	return s
}

// logf prints one line of the run's journal, stamped with the time since
// the load started (or the wall clock before).
func (c *run) logf(format string, args ...any) {
	at := time.Now().Format("15:04:05")
	if !c.rep.Started.IsZero() {
		at = fmt.Sprintf("+%6.1fs", time.Since(c.rep.Started).Seconds())
	}
	fmt.Fprintf(c.out, "%-9s  %s\n", at, fmt.Sprintf(format, args...))
}

// problem records something that went wrong with the run itself.
func (c *run) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.rep.Problems = append(c.rep.Problems, msg)
	c.logf("PROBLEM: %s", msg)
}

func (c *run) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// tick prints what the load saw every 10 s until stopped.
func (c *run) tick(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		var lastOps, lastFailed int64
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ops, failed := c.ops.ops.Load(), c.ops.failed.Load()
			c.logf("load: %d operations in the last 10 s, %d failed (total %d, %d failed)", ops-lastOps, failed-lastFailed, ops, failed)
			lastOps, lastFailed = ops, failed
		}
	})
	return func() { close(done); wg.Wait() }
}

// opCounter passes the history through to its file and counts operations
// and failures for the progress lines.
type opCounter struct {
	w           io.Writer
	ops, failed atomic.Int64
}

func (o *opCounter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.ops.Add(int64(bytes.Count(p[:n], []byte(`{"kind":"op"`))))
	o.failed.Add(int64(bytes.Count(p[:n], []byte(`"ok":false`))))
	return n, err
}

func (c *run) host(name string) string {
	r, _ := c.o.Topology.Region(name)
	return r.Host
}

// waitReady waits until name answers ready and returns when.
func (c *run) waitReady(ctx context.Context, name string) (time.Time, error) {
	err := procs.WaitHTTP(ctx, "http://"+c.host(name)+":8080/readyz", nil, 3*time.Minute, http.StatusOK)
	return time.Now(), err
}

// The run is the faults' chaos.Target.

// Control posts path to the cluster's supervisor and returns when it
// acted.
func (c *run) Control(ctx context.Context, path string) (time.Time, error) {
	var p struct {
		At time.Time `json:"at"`
	}
	err := procs.Call(ctx, c.devDir, http.MethodPost, path, &p)
	return p.At, err
}

// Running reports whether the supervisor sees name's process running.
func (c *run) Running(ctx context.Context, name string) (bool, error) {
	var ps []procs.ProcInfo
	if err := procs.Call(ctx, c.devDir, http.MethodGet, "/procs", &ps); err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.Name == name {
			return p.Running, nil
		}
	}
	return false, nil
}

// Inject calls a region's fault injection endpoint.
func (c *run) Inject(ctx context.Context, name, path string, body any) error {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.host(name)+":8080/api/v1/admin/faults/"+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// control posts path to the supervisor, the answer discarded.
func (c *run) control(ctx context.Context, path string) error {
	return procs.Call(ctx, c.devDir, http.MethodPost, path, nil)
}

// apply runs one step: the fault, its hold, its end, and the wait for the
// region to be ready again.
func (c *run) apply(ctx context.Context, s chaos.Step) {
	rec := chaos.StepRecord{Step: s}
	c.logf("%d. %s", s.N, s)
	fail := func(format string, args ...any) {
		rec.Err = fmt.Sprintf(format, args...)
		c.problem("step %d (%s): %s", s.N, s.Kind, rec.Err)
	}
	f, known := chaos.Lookup(s.Kind)
	rec.Start = time.Now()
	if !known {
		fail("unknown fault kind")
	} else if a, err := f.Inject(ctx, c, s); err != nil {
		fail("%v", err)
	} else {
		from := a.From
		if from.IsZero() {
			from = time.Now()
		}
		rec.Note = a.Note
		if !a.Lost.IsZero() {
			c.measureRPO(ctx, s.N, s.Region, a.Lost)
		}
		c.sleep(ctx, time.Duration(s.Hold)-time.Since(from))
		rec.End = time.Now()
		if err := f.Heal(ctx, c, s); err != nil {
			fail("%v", err)
		}
	}
	if rec.End.IsZero() {
		rec.End = time.Now()
	}
	if f.Down && rec.Err == "" {
		at, err := c.waitReady(ctx, s.Region)
		if err != nil {
			fail("%s not ready again: %v", s.Region, err)
		} else {
			rec.Recovered = at
			c.logf("%d. %s ready again, %v after the fault began", s.N, s.Region, at.Sub(rec.Start).Round(100*time.Millisecond))
		}
	}
	if f.Down {
		to := rec.Recovered
		if to.IsZero() {
			to = time.Now()
		}
		// The switch answers a region again after 3 s of passing checks;
		// the clients follow within their 1 s TTL.
		c.rep.Excluded = append(c.rep.Excluded, chaos.Window{Region: s.Region, From: rec.Start, To: to.Add(5 * time.Second), Why: s.String()})
	}
	c.rep.Steps = append(c.rep.Steps, rec)
}

// healAll lifts whatever a failed step may have left: every link healed and
// restored, every region resumed, running, with its clock and disk back.
func (c *run) healAll(ctx context.Context) {
	if err := c.control(ctx, "/net/heal-all"); err != nil {
		c.problem("heal all links: %v", err)
	}
	regions := c.o.Topology.Regions
	for _, r := range regions {
		for _, o := range regions {
			if r.Name < o.Name {
				_ = c.control(ctx, "/net/restore/"+r.Name+"/"+o.Name)
			}
		}
		_ = c.control(ctx, "/resume/"+r.Name)
		if up, err := c.Running(ctx, r.Name); err == nil && !up {
			c.problem("%s was still down at the end: started again", r.Name)
			_ = c.control(ctx, "/up/"+r.Name)
		}
	}
	for _, r := range regions {
		if _, err := c.waitReady(ctx, r.Name); err != nil {
			c.problem("%s not ready after the run: %v", r.Name, err)
			continue
		}
		_ = c.Inject(ctx, r.Name, "disk-full", map[string]bool{"on": false})
		_ = c.Inject(ctx, r.Name, "clock", map[string]string{"skew": "0s"})
	}
	c.logf("everything healed; every region ready")
}
