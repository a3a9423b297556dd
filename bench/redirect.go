package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shortener/chaos/load"
	"shortener/procs"
	"shortener/region"
	"shortener/secrets"
)

// RedirectOptions are the flags of bench redirect.
type RedirectOptions struct {
	Links        int           // links to preload (all are requested: every redirect is a cache hit)
	Peak         time.Duration // duration of each peak-throughput round
	Fixed        time.Duration // duration of each fixed-rate point
	FixedRates   []float64     // requests per second of the fixed-rate points
	VerdictRates []float64     // the fixed rates whose p99 has a target (each one of FixedRates)
	Rounds       int           // rounds; in each, every server in turn
	Workers      int           // connections
	Variants     []string      // extra region runs: NAME=ENV[,ENV]
	Dir          string        // scratch directory (wiped)
	JSON         string        // write the results as JSON to this file, when not empty
	Results      string        // append the run as one JSON line to this file, when not empty
}

// clicksOff is the standard variant the clicks on/off targets compare
// against; --variant may not take its name.
const clicksOff = "clicks-off"

// Validate reports options that cannot make a run: a variant that is not
// NAME=ENV[,ENV] or takes a name twice, no fixed rate, a rate that is not
// a positive number, a verdict rate that is not measured, nothing to run.
func (o RedirectOptions) Validate() error {
	if o.Links < 1 || o.Rounds < 1 || o.Workers < 1 {
		return errors.New("--links, --rounds and --workers must be at least 1")
	}
	if o.Peak <= 0 || o.Fixed <= 0 {
		return errors.New("--peak and --fixed must be positive")
	}
	if len(o.FixedRates) == 0 {
		return errors.New("--fixed-rates needs at least one rate")
	}
	for i, r := range o.FixedRates {
		if !(r > 0) || math.IsInf(r, 0) {
			return fmt.Errorf("--fixed-rates: %v is not a rate", r)
		}
		if slices.Contains(o.FixedRates[:i], r) {
			return fmt.Errorf("--fixed-rates: %v twice", r)
		}
	}
	for _, r := range o.VerdictRates {
		if !slices.Contains(o.FixedRates, r) {
			return fmt.Errorf("--verdict-rates: %v is not one of --fixed-rates", r)
		}
	}
	names := map[string]bool{clicksOff: true}
	for _, v := range o.Variants {
		name, env, ok := strings.Cut(v, "=")
		if !ok || name == "" || env == "" {
			return fmt.Errorf("--variant %q: want NAME=ENV[,ENV]", v)
		}
		if names[name] {
			return fmt.Errorf("--variant %q: the name %s is taken (%s is always run)", v, name, clicksOff)
		}
		names[name] = true
	}
	return nil
}

// The results of a run: per server, the peak rounds and the fixed-rate
// points, each with its rounds and their medians. Latencies in ms.
type (
	serverResult struct {
		Name  string   `json:"name"`
		Env   []string `json:"env,omitempty"`
		Flags []string `json:"flags,omitempty"`
		// PeakRPS is the median of the counted peak rounds (0 when none).
		PeakRPS     float64      `json:"peak_rps"`
		PeakCounted int          `json:"peak_counted"`
		Peak        []peakRound  `json:"peak_rounds"`
		Fixed       []fixedPoint `json:"fixed"`
	}
	peakRound struct {
		// RPS counts successful answers only: a 301 with the link's Location.
		RPS     float64 `json:"rps"`
		Success float64 `json:"success"`
		busyRound
		Counted bool `json:"counted"`
	}
	fixedPoint struct {
		Rate float64 `json:"rate"`
		// The medians of the rounds.
		P50     float64      `json:"p50_ms"`
		P99     float64      `json:"p99_ms"`
		P999    float64      `json:"p999_ms"`
		Success float64      `json:"success"`
		Rounds  []fixedRound `json:"rounds"`
	}
	fixedRound struct {
		P50     float64 `json:"p50_ms"`
		P99     float64 `json:"p99_ms"`
		P999    float64 `json:"p999_ms"`
		Success float64 `json:"success"`
	}
)

// point is the fixed-rate point at rate, nil when there is none.
func (r *serverResult) point(rate float64) *fixedPoint {
	for i := range r.Fixed {
		if r.Fixed[i].Rate == rate {
			return &r.Fixed[i]
		}
	}
	return nil
}

// summarize fills the medians from the rounds.
func (r *serverResult) summarize() {
	var counted []float64
	for _, p := range r.Peak {
		if p.Counted {
			counted = append(counted, p.RPS)
		}
	}
	r.PeakCounted, r.PeakRPS = len(counted), median(counted)
	for i := range r.Fixed {
		f := &r.Fixed[i]
		pick := func(g func(fixedRound) float64) float64 {
			var xs []float64
			for _, x := range f.Rounds {
				xs = append(xs, g(x))
			}
			return median(xs)
		}
		f.P50 = pick(func(x fixedRound) float64 { return x.P50 })
		f.P99 = pick(func(x fixedRound) float64 { return x.P99 })
		f.P999 = pick(func(x fixedRound) float64 { return x.P999 })
		f.Success = pick(func(x fixedRound) float64 { return x.Success })
	}
}

// redirectServer is one server bench redirect measures, started for each
// of its rounds and stopped after it.
type redirectServer struct {
	name   string
	args   []string // after the binary
	env    []string // a variant's environment
	flags  []string // a variant's region flags
	url    string
	region bool
	codes  []string          // what the load requests
	want   map[string]string // the Location of each code
	res    *serverResult
}

// accept is the load's AcceptRedirect: a 301 to the code's own URL.
func (s *redirectServer) accept(code string, status int, loc []byte) bool {
	want, ok := s.want[code]
	return ok && status == http.StatusMovedPermanently && string(loc) == want
}

// The CPUs of a pinned run: the servers on serverCPU, the load on loadCPU.
const serverCPU, loadCPU = 0, 1

// Redirect runs bench redirect: the table and the verdicts to out, progress
// to progress. It returns an error when a target is missed, after printing
// everything and appending the run to o.Results.
//
// Only the server being measured runs: each is started for its round and
// stopped before the next one's, so that no idle region's background work
// (heartbeats, embedded NATS, click commits) lands on the measured core.
// The bare net/http 301 it measures against is shortener baseline, started
// like the regions from this process's own binary.
func Redirect(ctx context.Context, out, progress io.Writer, o RedirectOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return err
	}
	secretsDir := filepath.Join(o.Dir, "secrets")
	if err := secrets.Generate(secretsDir, secrets.Options{Regions: []string{"us-east"}}); err != nil {
		return err
	}
	mach, commit := readMachine(), gitCommit(o.Results) // at the start: the checkout the binary was built from
	// Pinned: each server on CPU 0, this process (the load) on CPU 1. The
	// servers are started through taskset, so they do not inherit CPU 1.
	taskset, _ := exec.LookPath("taskset")
	pinned := taskset != "" && mach.NProc >= 2
	if pinned {
		if err := exec.Command(taskset, "-p", "-a", "-c", fmt.Sprint(loadCPU), fmt.Sprint(os.Getpid())).Run(); err != nil {
			fmt.Fprintf(progress, "taskset could not pin the load to CPU %d (%v): the servers run unpinned\n", loadCPU, err)
			pinned = false
		}
	}

	servers := []*redirectServer{{name: "bare net/http 301", url: "http://127.0.9.1:8181",
		args: []string{"baseline", "--addr", "127.0.9.1:8181"}, codes: []string{"x1"},
		want: map[string]string{"x1": "https://example.com/"}}}
	addRegion := func(name string, env []string) {
		n := len(servers)
		host := fmt.Sprintf("127.0.9.%d", 10+2*n) // its global member takes the next address
		// The region as make run starts it (fsync always, clicks on, Go's GC
		// settings, log level info), but for the rate limit, which would
		// refuse the load, and a cache that holds every link.
		cfg := procs.RegionConfig{Name: "us-east", Digit: '1', HTTP: host + ":8080", Data: filepath.Join(o.Dir, fmt.Sprint(n)), Fsync: "always",
			NoRateLimit: true, APIKeyHash: region.HashAPIKey(benchKey), Secrets: secretsDir}
		if o.Links > 100_000 {
			cfg.Extra = append(cfg.Extra, "--cache-size", fmt.Sprint(o.Links))
		}
		s := &redirectServer{name: name, url: "http://" + host + ":8080", region: true}
		for _, e := range env { // a variant's "--flag" items are region flags, the rest environment
			if strings.HasPrefix(e, "--") {
				cfg.Extra = append(cfg.Extra, e)
				s.flags = append(s.flags, e)
			} else {
				s.env = append(s.env, e)
			}
		}
		s.args = cfg.Args()
		servers = append(servers, s)
	}
	addRegion("region", nil)
	addRegion("region ("+clicksOff+")", []string{"--no-clicks"})
	for _, v := range o.Variants {
		name, env, _ := strings.Cut(v, "=")
		addRegion("region ("+name+")", strings.Split(env, ","))
	}
	for _, s := range servers {
		if err := addressFree(s.url); err != nil {
			return err
		}
		s.res = &serverResult{Name: s.name, Env: s.env, Flags: s.flags}
		for _, r := range o.FixedRates {
			s.res.Fixed = append(s.res.Fixed, fixedPoint{Rate: r})
		}
	}

	m := &redirectMeasure{o: o, self: self, taskset: taskset, pinned: pinned, progress: progress}
	for round := 1; round <= o.Rounds; round++ {
		for _, s := range servers {
			fmt.Fprintf(progress, "round %d/%d: %s\n", round, o.Rounds, s.name)
			if err := m.round(ctx, s); err != nil {
				return fmt.Errorf("round %d, %s: %w", round, s.name, err)
			}
		}
	}
	results := make([]*serverResult, len(servers))
	for i, s := range servers {
		s.res.summarize()
		results[i] = s.res
	}
	checks := redirectVerdicts(results, o.VerdictRates)
	writeRedirectReport(out, o, results, checks, pinned)

	run := redirectRun{Date: time.Now().UTC().Format(time.RFC3339), Commit: commit, Machine: mach,
		Options: redirectOptionsJSON(o), Pinned: pinned, Servers: results, Verdicts: checks, Pass: allPass(checks)}
	if err := writeJSON(o.JSON, run); err != nil {
		return err
	}
	if o.Results != "" {
		if err := appendJSONLine(o.Results, run); err != nil {
			return fmt.Errorf("--results: %w", err)
		}
		fmt.Fprintf(out, "appended to %s\n", o.Results)
	}
	if !run.Pass {
		return fmt.Errorf("%d of %d targets missed", countMissed(checks), len(checks))
	}
	return nil
}

// addressFree fails when something already answers at url's address: a
// stale server would be benchmarked instead of ours.
func addressFree(url string) error {
	addr := strings.TrimPrefix(url, "http://")
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("%s is already in use: is an earlier benchmark still running?", addr)
	}
	return nil
}

// redirectMeasure runs the rounds of bench redirect.
type redirectMeasure struct {
	o        RedirectOptions
	self     string
	taskset  string
	pinned   bool
	progress io.Writer
}

// round starts s (GOMAXPROCS=1; pinned to serverCPU when pinned), preloads
// it the first time, checks and warms every link, measures the peak with
// the busy check and every fixed rate, and stops it.
func (m *redirectMeasure) round(ctx context.Context, s *redirectServer) error {
	o := m.o
	spec := procs.Spec{Name: s.name, Bin: m.self, Args: s.args, Env: append([]string{"GOMAXPROCS=1"}, s.env...),
		Log: filepath.Join(o.Dir, slug(s.name)+".log"), Group: true, DieWithParent: true}
	if m.pinned {
		spec.Bin, spec.Args = m.taskset, append([]string{"-c", fmt.Sprint(serverCPU), m.self}, s.args...)
	}
	p, err := procs.Start(spec)
	if err != nil {
		return err
	}
	defer func() {
		if forced, err := p.Stop(30 * time.Second); forced || err != nil {
			fmt.Fprintf(m.progress, "%s did not stop on SIGTERM in 30 s (killed; %v)\n", s.name, err)
		}
	}()
	ready, want := s.url+"/readyz", http.StatusOK
	if !s.region {
		ready, want = s.url+"/", http.StatusMovedPermanently
	}
	if err := procs.WaitHTTP(ctx, ready, p.Done(), 90*time.Second, want); err != nil {
		return fmt.Errorf("%w (see %s)", err, spec.Log)
	}
	if s.region && s.codes == nil {
		fmt.Fprintf(m.progress, "  preloading %d links\n", o.Links)
		if s.want, err = preload(ctx, s.url, benchKey, o.Links); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		for c := range s.want {
			s.codes = append(s.codes, c)
		}
		slices.Sort(s.codes) // the load draws from them by a seeded index
	}
	// Every link once, checked: a wrong answer is a broken benchmark, not a
	// slow server. Then a second of load warms the connections.
	if err := checkLinks(ctx, s); err != nil {
		return err
	}
	runLoad := func(rate float64, d time.Duration) (*load.Report, error) {
		return load.Run(ctx, load.Config{Targets: []load.Target{{Name: s.name, BaseURL: s.url}},
			Rate: rate, Duration: d, Workers: o.Workers, Codes: s.codes, Seed: 7, AcceptRedirect: s.accept})
	}
	if _, err := runLoad(0, time.Second); err != nil {
		return err
	}

	probe := busyProbe{cpu: -1, pid: p.PID()}
	if m.pinned {
		probe.cpu = serverCPU
	}
	before, err := probe.sample()
	if err != nil {
		return fmt.Errorf("busy check: %w", err)
	}
	t0 := time.Now()
	rep, err := runLoad(0, o.Peak)
	if err != nil {
		return err
	}
	wall := time.Since(t0).Seconds()
	after, err := probe.sample()
	if err != nil {
		return fmt.Errorf("busy check: %w", err)
	}
	busy, err := probe.measure(before, after, wall)
	if err != nil {
		return fmt.Errorf("busy check: %w", err)
	}
	pr := peakRound{RPS: okPerSecond(rep), Success: rep.SuccessRate(), busyRound: busy, Counted: busy.counts()}
	s.res.Peak = append(s.res.Peak, pr)
	fmt.Fprintf(m.progress, "  peak %.0f req/s answered right, %s\n", pr.RPS, busyText(pr))

	for i, rate := range o.FixedRates {
		rep, err := runLoad(rate, o.Fixed)
		if err != nil {
			return err
		}
		fr := fixedRound{P50: ms(rep.Total.P50), P99: ms(rep.Total.P99), P999: ms(rep.Total.P999), Success: rep.SuccessRate()}
		s.res.Fixed[i].Rounds = append(s.res.Fixed[i].Rounds, fr)
		fmt.Fprintf(m.progress, "  %.0f req/s: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, %.2f%% ok\n", rate, fr.P50, fr.P99, fr.P999, 100*fr.Success)
	}
	return nil
}

// okPerSecond is the throughput of successful answers only.
func okPerSecond(rep *load.Report) float64 {
	if rep.Duration <= 0 {
		return 0
	}
	return float64(rep.Total.OK) / rep.Duration.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// busyText says what the busy check saw in a peak round.
func busyText(p peakRound) string {
	s := fmt.Sprintf("server got %.0f%% of a core", 100*p.Server)
	if p.Demand >= 0 {
		s = fmt.Sprintf("server wanted a CPU %.0f%% of the time, got %.0f%% of a core", 100*p.Demand, 100*p.Server)
	}
	if p.Core >= 0 {
		s = fmt.Sprintf("core %.0f%% busy (interrupts %.0f%%, other processes %.0f%%), ", 100*p.Core, 100*p.IRQ, 100*p.others()) + s
	}
	if !p.Counted {
		s += ": " + notCounted(p.busyRound) + ", not counted"
	}
	return s
}

// notCounted says why a peak round does not count.
func notCounted(b busyRound) string {
	if b.clientLimited() {
		return "client-limited"
	}
	return "contended"
}

// slug turns a server's name into a file name.
func slug(name string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(name)), "-")
}

// checkLinks requests every link of s once (16 at a time) and fails at
// the first answer that is not a 301 to the link's URL.
func checkLinks(ctx context.Context, s *redirectServer) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(s.codes)) || ctx.Err() != nil {
					return
				}
				code := s.codes[i]
				resp, err := client.Get(s.url + "/" + code)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if loc := resp.Header.Get("Location"); !s.accept(code, resp.StatusCode, []byte(loc)) {
						err = fmt.Errorf("GET /%s: %d to %q, want 301 to %q", code, resp.StatusCode, loc, s.want[code])
					}
				}
				if err != nil {
					once.Do(func() { first = err })
					next.Store(int64(len(s.codes)))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// preload creates n links with 32 concurrent clients, each a 301 (the bare
// server's status) to its own URL, and returns their codes and URLs.
func preload(ctx context.Context, base, key string, n int) (map[string]string, error) {
	var (
		mu    sync.Mutex
		links = map[string]string{}
		next  atomic.Int64
		wg    sync.WaitGroup
		errc  = make(chan error, 32)
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				url := fmt.Sprintf("https://example.com/bench/%d", i)
				body := fmt.Sprintf(`{"url":%q,"redirect_status":301}`, url)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/links", bytes.NewBufferString(body))
				req.Header.Set("X-Api-Key", key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				var out struct{ Code string }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated || err != nil || out.Code == "" {
					errc <- fmt.Errorf("create: status %d", resp.StatusCode)
					return
				}
				mu.Lock()
				links[out.Code] = url
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(links) != n {
		return nil, fmt.Errorf("%d distinct codes for %d links", len(links), n)
	}
	return links, nil
}

// readMachine describes this machine for the results: online CPUs (from
// /proc/stat, whatever this process's affinity), the CPU model, Go.
func readMachine() machineInfo {
	m := machineInfo{Go: runtime.Version(), LoadAvg: readLoadavg(), NProc: runtime.NumCPU()}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		if cpus, err := parseProcStat(string(data)); err == nil {
			m.NProc = len(cpus)
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
