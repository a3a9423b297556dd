package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos"
	"shortener/chaos/load"
)

// chaosOptions are the settings of one chaos run.
type chaosOptions struct {
	seed     int64
	duration time.Duration
	kinds    []chaos.Kind
	dir      string // runs go to dir/seed-N
	net      string // network prefix of the run's own dev cluster
	rate     float64
	warmup   time.Duration
	tail     time.Duration
}

// chaosCmd is `shortener chaos`: a seeded schedule of faults against a dev
// cluster of its own under load, then the checkers (make chaos).
func chaosCmd() *cobra.Command {
	var o chaosOptions
	var kinds string
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run a seeded chaos run: faults against a fresh three-region dev cluster under load, then judge the history",
		Long: `Starts a fresh dev cluster of three regions (fault proxies on every NATS link,
fault injection on) under --dir/seed-N, runs load through the DNS switch, and
applies a schedule of faults drawn from --seed, one after the other: SIGKILL
of a region, SIGSTOP/SIGCONT, a partition between two regions, a slow link, a
lossy link, a full disk under a region's store, a skewed clock, the projector
killed in the middle of a batch. Then it heals everything, waits for the
regions to converge and judges the history: acknowledged creates lost,
redirects to something never created, aliases with two winners
(linearizability), projections equal across regions and to a replay, the
success rate of the clients whose region stayed up, reported RPO against
measured. The report goes to --dir/seed-N/report.{txt,json,svg}; exit 1 when
an invariant was violated or a fault could not be applied. The same seed
replays the same schedule.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.kinds, err = chaos.ParseKinds(kinds); err != nil {
				return usageError{err}
			}
			if !regexp.MustCompile(`^127\.\d{1,3}$`).MatchString(o.net) {
				return usageError{fmt.Errorf("--net %q: want 127.X", o.net)}
			}
			if o.duration < 10*time.Second || o.duration > 24*time.Hour {
				return usageError{fmt.Errorf("--duration %v: want 10s to 24h", o.duration)}
			}
			if o.rate <= 0 || o.rate > 5000 {
				return usageError{fmt.Errorf("--rate %v: want 1 to 5000 operations per second", o.rate)}
			}
			if !cmd.Flags().Changed("seed") {
				o.seed = rand.Int64N(1_000_000)
			}
			rep, err := runChaos(cmd.Context(), cmd.OutOrStdout(), o)
			if err != nil {
				return err
			}
			if !rep.Passed {
				return fmt.Errorf("chaos run with seed %d failed (report %s)", o.seed, filepath.Join(chaosRunDir(o), "report.txt"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.seed, "seed", 0, "seed of the schedule (default: a random one, printed)")
	f.DurationVar(&o.duration, "duration", 4*time.Minute, "length of the schedule of faults (recovery included)")
	f.StringVar(&kinds, "faults", "all", "the kinds of faults to draw from, comma-separated: "+strings.Join(kindNames(), ", "))
	f.StringVar(&o.dir, "dir", "var/chaos", "where runs go (each in seed-N, its cluster's state included)")
	f.StringVar(&o.net, "net", "127.7", "network prefix of the run's cluster: region N on PREFIX.N.1, the switch on PREFIX.0.1")
	f.Float64Var(&o.rate, "rate", 150, "load in operations per second over all clients")
	f.DurationVar(&o.warmup, "warmup", 10*time.Second, "load before the first fault")
	f.DurationVar(&o.tail, "tail", 15*time.Second, "load after the last fault, everything healed")
	return cmd
}

func kindNames() []string {
	var s []string
	for _, k := range chaos.Kinds() {
		s = append(s, string(k))
	}
	return s
}

func chaosRunDir(o chaosOptions) string { return filepath.Join(o.dir, fmt.Sprintf("seed-%d", o.seed)) }

// chaosRun is one run under way.
type chaosRun struct {
	o      chaosOptions
	out    io.Writer
	dir    string // the run's directory
	devDir string // its dev cluster's state
	topo   devTopology
	key    string
	rep    *chaos.Report
	hc     *http.Client
	ops    *opCounter
	rpo    []rpoProbe // measured at every region lost (chaos_judge.go)
}

func runChaos(ctx context.Context, out io.Writer, o chaosOptions) (*chaos.Report, error) {
	c := &chaosRun{o: o, out: out, dir: chaosRunDir(o), topo: topologyOn(o.net, 3), hc: &http.Client{Timeout: 10 * time.Second}}
	c.devDir = filepath.Join(c.dir, "dev")
	var names []string
	for _, r := range c.topo.Regions {
		names = append(names, r.Name)
	}
	steps, err := chaos.Plan(o.seed, names, o.kinds, o.duration)
	if err != nil {
		return nil, err
	}
	replay := fmt.Sprintf("make chaos SEED=%d DURATION=%v", o.seed, o.duration)
	if len(o.kinds) != len(chaos.Kinds()) {
		replay = fmt.Sprintf("shortener chaos --seed %d --duration %v --faults %s", o.seed, o.duration, strings.Join(kindStrings(o.kinds), ","))
	}
	c.rep = &chaos.Report{Seed: o.seed, Duration: chaos.Duration(o.duration), Kinds: o.kinds, Regions: names, Replay: replay}
	c.logf("chaos run, seed %d (replay: %s), in %s", o.seed, replay, c.dir)
	c.logf("schedule: %d faults over about %v", len(steps), o.duration)
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
	devCtx, stopDev := context.WithCancel(context.Background())
	ready := make(chan struct{})
	devDone := make(chan error, 1)
	go func() {
		devDone <- runDev(devCtx, devLog, devOptions{dir: c.devDir, fsync: "always", durability: "local", chaos: true, ready: ready}, c.topo)
	}()
	defer func() {
		stopDev()
		if err := <-devDone; err != nil {
			c.logf("dev cluster: %v", err)
		}
	}()
	c.logf("starting a dev cluster with fault proxies on %s.N.x (log %s)", o.net, devLog.Name())
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
	if c.key, err = apiKey(filepath.Join(c.devDir, "api-key"), false); err != nil {
		return nil, err
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
	cfg := load.Config{Rate: o.rate, Duration: 24 * time.Hour, CreateRatio: 0.2, APIKey: c.key, Seed: o.seed,
		History: c.ops, Progress: progress, Timeout: 3 * time.Second}
	configureAliases(&cfg)
	for _, r := range c.topo.Regions {
		cfg.Targets = append(cfg.Targets, load.Target{Name: r.Name, BaseURL: "http://" + c.topo.Zone + ":8080",
			DNS: c.topo.SwitchDNS, LocalAddr: strings.TrimSuffix(r.Host, ".1") + ".10"})
		cfg.Regions = append(cfg.Regions, load.Region{Name: r.Name, BaseURL: "http://" + r.Host + ":8080"})
	}
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	loadDone := make(chan error, 1)
	c.rep.Started = time.Now()
	go func() { _, err := load.Run(loadCtx, cfg); loadDone <- err }()
	c.logf("load: %.0f ops/s from the clients of %d regions through the switch (history %s)", o.rate, len(names), hist.Name())
	stopTicker := c.tick(ctx)

	c.sleep(ctx, o.warmup)
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		c.apply(ctx, s)
		c.sleep(ctx, time.Duration(s.Gap))
	}
	c.healAll(context.Background())
	c.sleep(ctx, o.tail)
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

func kindStrings(k []chaos.Kind) []string {
	var s []string
	for _, x := range k {
		s = append(s, string(x))
	}
	return s
}

// logf prints one line of the run's journal, stamped with the time since
// the load started (or the wall clock before).
func (c *chaosRun) logf(format string, args ...any) {
	at := time.Now().Format("15:04:05")
	if !c.rep.Started.IsZero() {
		at = fmt.Sprintf("+%6.1fs", time.Since(c.rep.Started).Seconds())
	}
	fmt.Fprintf(c.out, "%-9s  %s\n", at, fmt.Sprintf(format, args...))
}

// problem records something that went wrong with the run itself.
func (c *chaosRun) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.rep.Problems = append(c.rep.Problems, msg)
	c.logf("PROBLEM: %s", msg)
}

func (c *chaosRun) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// tick prints what the load saw every 10 s until stopped.
func (c *chaosRun) tick(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	}()
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

func (c *chaosRun) region(name string) devRegion {
	r, _ := devRegionNamed(c.topo.Regions, name)
	return r
}

// admin calls a region's fault injection endpoint.
func (c *chaosRun) admin(ctx context.Context, name, path string, body any) error {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.region(name).Host+":8080/api/v1/admin/faults/"+path, bytes.NewReader(data))
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

func (c *chaosRun) control(ctx context.Context, path string) error {
	return controlDo(ctx, c.devDir, http.MethodPost, path, nil)
}

// running reports whether the supervisor sees name's process running.
func (c *chaosRun) running(ctx context.Context, name string) (bool, error) {
	var procs []procInfo
	if err := controlDo(ctx, c.devDir, http.MethodGet, "/procs", &procs); err != nil {
		return false, err
	}
	for _, p := range procs {
		if p.Name == name {
			return p.Running, nil
		}
	}
	return false, nil
}

// waitReady waits until name answers ready and returns when.
func (c *chaosRun) waitReady(ctx context.Context, name string) (time.Time, error) {
	err := waitHTTPReady(ctx, "http://"+c.region(name).Host+":8080/readyz", nil, 3*time.Minute)
	return time.Now(), err
}

// apply runs one step: the fault, its hold, its end, and the wait for the
// region to be ready again.
func (c *chaosRun) apply(ctx context.Context, s chaos.Step) {
	rec := chaos.StepRecord{Step: s}
	hold := time.Duration(s.Hold)
	c.logf("%d. %s", s.N, s)
	fail := func(format string, args ...any) {
		rec.Err = fmt.Sprintf(format, args...)
		c.problem("step %d (%s): %s", s.N, s.Kind, rec.Err)
	}
	rec.Start = time.Now()
	var err error
	switch s.Kind {
	case chaos.Kill:
		p, err := control(ctx, c.devDir, "/down/"+s.Region)
		if err != nil {
			fail("%v", err)
			break
		}
		c.measureRPO(ctx, s.N, s.Region, p.At)
		c.sleep(ctx, hold-time.Since(rec.Start))
		rec.End = time.Now()
		if err = c.control(ctx, "/up/"+s.Region); err != nil {
			fail("start it again: %v", err)
		}
	case chaos.Pause:
		if err = c.control(ctx, "/pause/"+s.Region); err != nil {
			fail("%v", err)
			break
		}
		c.sleep(ctx, hold)
		rec.End = time.Now()
		if err = c.control(ctx, "/resume/"+s.Region); err != nil {
			fail("resume: %v", err)
		}
	case chaos.Partition:
		if err = c.control(ctx, "/net/cut/"+s.Region+"/"+s.Peer); err != nil {
			fail("%v", err)
			break
		}
		c.sleep(ctx, hold)
		rec.End = time.Now()
		if err = c.control(ctx, "/net/heal/"+s.Region+"/"+s.Peer); err != nil {
			fail("heal: %v", err)
		}
	case chaos.SlowLink, chaos.LossyLink:
		q := fmt.Sprintf("?latency=%v&jitter=%v&reset=%v", time.Duration(s.Latency), time.Duration(s.Jitter), time.Duration(s.ResetEvery))
		if err = c.control(ctx, "/net/degrade/"+s.Region+"/"+s.Peer+q); err != nil {
			fail("%v", err)
			break
		}
		c.sleep(ctx, hold)
		rec.End = time.Now()
		if err = c.control(ctx, "/net/restore/"+s.Region+"/"+s.Peer); err != nil {
			fail("restore: %v", err)
		}
	case chaos.DiskFull:
		if err = c.admin(ctx, s.Region, "disk-full", map[string]bool{"on": true}); err != nil {
			fail("%v", err)
			break
		}
		c.sleep(ctx, hold)
		rec.End = time.Now()
		if err = c.admin(ctx, s.Region, "disk-full", map[string]bool{"on": false}); err != nil {
			fail("free the disk: %v", err)
		}
	case chaos.ClockSkew:
		if err = c.admin(ctx, s.Region, "clock", map[string]string{"skew": time.Duration(s.Skew).String()}); err != nil {
			fail("%v", err)
			break
		}
		c.sleep(ctx, hold)
		rec.End = time.Now()
		if err = c.admin(ctx, s.Region, "clock", map[string]string{"skew": "0s"}); err != nil {
			fail("set the clock back: %v", err)
		}
	case chaos.ProjectorCrash:
		if err = c.admin(ctx, s.Region, "projector-crash", struct{}{}); err != nil {
			fail("%v", err)
			break
		}
		// The region kills itself at its projector's next batch: the
		// load's creates bring one within moments.
		crashed := time.Time{}
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
			if up, err := c.running(ctx, s.Region); err == nil && !up {
				crashed = time.Now()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if crashed.IsZero() {
			fail("armed, but the region did not crash within 30 s")
			break
		}
		rec.Note = fmt.Sprintf("crashed %v after being armed", crashed.Sub(rec.Start).Round(10*time.Millisecond))
		c.measureRPO(ctx, s.N, s.Region, crashed)
		c.sleep(ctx, hold-time.Since(crashed))
		rec.End = time.Now()
		if err = c.control(ctx, "/up/"+s.Region); err != nil {
			fail("start it again: %v", err)
		}
	}
	if rec.End.IsZero() {
		rec.End = time.Now()
	}
	if s.Kind.TakesRegionDown() && rec.Err == "" {
		at, err := c.waitReady(ctx, s.Region)
		if err != nil {
			fail("%s not ready again: %v", s.Region, err)
		} else {
			rec.Recovered = at
			c.logf("%d. %s ready again, %v after the fault began", s.N, s.Region, at.Sub(rec.Start).Round(100*time.Millisecond))
		}
	}
	if s.Kind.TakesRegionDown() {
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
func (c *chaosRun) healAll(ctx context.Context) {
	if err := c.control(ctx, "/net/heal-all"); err != nil {
		c.problem("heal all links: %v", err)
	}
	for _, r := range c.topo.Regions {
		for _, o := range c.topo.Regions {
			if r.Name < o.Name {
				_ = c.control(ctx, "/net/restore/"+r.Name+"/"+o.Name)
			}
		}
		_ = c.control(ctx, "/resume/"+r.Name)
		if up, err := c.running(ctx, r.Name); err == nil && !up {
			c.problem("%s was still down at the end: started again", r.Name)
			_ = c.control(ctx, "/up/"+r.Name)
		}
	}
	for _, r := range c.topo.Regions {
		if _, err := c.waitReady(ctx, r.Name); err != nil {
			c.problem("%s not ready after the run: %v", r.Name, err)
			continue
		}
		_ = c.admin(ctx, r.Name, "disk-full", map[string]bool{"on": false})
		_ = c.admin(ctx, r.Name, "clock", map[string]string{"skew": "0s"})
	}
	c.logf("everything healed; every region ready")
}
