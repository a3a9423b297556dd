package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos/load"
	"shortener/region"
	"shortener/secrets"
)

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks measured as ratios against a baseline run side by side",
	}
	cmd.AddCommand(benchRedirectCmd(), benchCreateCmd(), benchReplicationCmd(), benchCatchupCmd(), benchReplayCmd())
	return cmd
}

type benchRedirectOpts struct {
	links     int
	peak      time.Duration
	fixed     time.Duration
	fixedRate float64
	rounds    int
	workers   int
	variants  []string
	dir       string
	jsonOut   string
}

func benchRedirectCmd() *cobra.Command {
	var o benchRedirectOpts
	cmd := &cobra.Command{
		Use:   "redirect",
		Short: "Redirect throughput and latency of a region (cache hits) against a bare net/http 301",
		Long: `Starts a bare net/http server answering a fixed 301 and a region, each as a
child process limited to one core (GOMAXPROCS=1, and pinned to CPU 0 with
taskset when it exists), preloads --links links into the region, and drives
both with shortener load from this process: peak throughput (closed loop,
--workers connections) and latency at a fixed rate (open loop, latency from
each request's intended send time). Baseline and region alternate, --rounds
times each, and the report gives the median of the rounds as a ratio.
--variant NAME=ENV[,ENV] adds a region run with extra environment (for
instance GOGC=400 or GOMEMLIMIT=512MiB) or region flags (items that start
with --, for instance --no-clicks).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchRedirect(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.links, "links", 20000, "links to preload (all are requested: every redirect is a cache hit)")
	fl.DurationVar(&o.peak, "peak", 5*time.Second, "duration of each peak-throughput round")
	fl.DurationVar(&o.fixed, "fixed", 10*time.Second, "duration of each fixed-rate round")
	fl.Float64Var(&o.fixedRate, "fixed-rate", 20000, "requests per second of the fixed-rate rounds")
	fl.IntVar(&o.rounds, "rounds", 2, "rounds of each measurement, alternating baseline and region")
	fl.IntVar(&o.workers, "workers", 64, "connections")
	fl.StringArrayVar(&o.variants, "variant", nil, "an extra region run: NAME=ENV[,ENV] (repeatable)")
	fl.StringVar(&o.dir, "dir", "var/bench", "scratch directory (wiped)")
	fl.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	return cmd
}

type benchResult struct {
	Name       string        `json:"name"`
	Env        []string      `json:"env,omitempty"`
	PeakRPS    float64       `json:"peak_rps"`
	PeakOK     float64       `json:"peak_success"`
	FixedRate  float64       `json:"fixed_rate"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	P999       time.Duration `json:"p999_ns"`
	FixedOK    float64       `json:"fixed_success"`
	RoundsPeak []float64     `json:"rounds_peak_rps"`
	RoundsP50  []float64     `json:"rounds_p50_ms"`
	RoundsP99  []float64     `json:"rounds_p99_ms"`
	RoundsP999 []float64     `json:"rounds_p999_ms"`
}

func benchRedirect(ctx context.Context, out, progress io.Writer, o benchRedirectOpts) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	secretsDir := filepath.Join(o.dir, "secrets")
	if err := secrets.Generate(secretsDir, secrets.Options{Regions: []string{"us-east"}}); err != nil {
		return err
	}
	key := "bench-key"
	type server struct {
		name string
		env  []string
		url  string
		args []string
	}
	servers := []server{{name: "bare net/http 301", url: "http://127.0.9.1:8181", args: []string{"baseline", "--addr", "127.0.9.1:8181"}}}
	addRegion := func(name string, env []string, n int) {
		host := fmt.Sprintf("127.0.9.%d", 10+2*n) // its global member takes the next address
		args := []string{"region",
			"--name", "us-east", "--http", host + ":8080", "--data", filepath.Join(o.dir, fmt.Sprint(n)), "--fsync", "interval",
			"--rate-limit", "-1", "--cache-size", fmt.Sprint(max(100000, o.links)), "--log-level", "warn",
			"--api-key-hash", region.HashAPIKey(key), "--secrets", secretsDir}
		var vars []string
		for _, e := range env { // a variant's "--flag" items are region flags, the rest environment
			if strings.HasPrefix(e, "--") {
				args = append(args, e)
			} else {
				vars = append(vars, e)
			}
		}
		servers = append(servers, server{name: name, env: vars, url: "http://" + host + ":8080", args: args})
	}
	addRegion("region", nil, 0)
	for i, v := range o.variants {
		name, env, ok := strings.Cut(v, "=")
		if !ok {
			return usageError{fmt.Errorf("--variant %q: want NAME=ENV[,ENV]", v)}
		}
		addRegion("region ("+name+")", strings.Split(env, ","), i+1)
	}
	taskset, _ := exec.LookPath("taskset")
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	for _, s := range servers {
		argv := append([]string{self}, s.args...)
		if taskset != "" {
			argv = append([]string{taskset, "-c", "0"}, argv...)
		}
		c := exec.Command(argv[0], argv[1:]...)
		c.Env = append(append(os.Environ(), "GOMAXPROCS=1"), s.env...)
		c.Stderr = progress
		if err := c.Start(); err != nil {
			return err
		}
		procs = append(procs, c)
	}
	for _, s := range servers {
		path, want := "/readyz", http.StatusOK
		if s.args[0] == "baseline" {
			path, want = "/", http.StatusMovedPermanently
		}
		if err := waitHTTP(ctx, s.url+path, nil, 60*time.Second, want); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if taskset != "" {
		// The load generator gets the other core.
		_ = exec.Command(taskset, "-p", "-a", "-c", "1", fmt.Sprint(os.Getpid())).Run()
	}
	codes := map[string][]string{}
	for _, s := range servers[1:] {
		fmt.Fprintf(progress, "preloading %d links into %s\n", o.links, s.name)
		cs, err := preload(ctx, s.url, key, o.links)
		if err != nil {
			return fmt.Errorf("preload %s: %w", s.name, err)
		}
		codes[s.url] = cs
	}
	codes[servers[0].url] = []string{"x1"}

	results := make([]*benchResult, len(servers))
	for i, s := range servers {
		results[i] = &benchResult{Name: s.name, Env: s.env, FixedRate: o.fixedRate, FixedOK: 1}
	}
	runOne := func(s server, rate float64, d time.Duration) (*load.Report, error) {
		return load.Run(ctx, load.Config{Targets: []load.Target{{Name: s.name, BaseURL: s.url}},
			Rate: rate, Duration: d, Workers: o.workers, Codes: codes[s.url], Seed: 7})
	}
	// Warm every cache and connection once.
	for _, s := range servers {
		if _, err := runOne(s, 0, time.Second); err != nil {
			return err
		}
	}
	for round := 0; round < o.rounds; round++ {
		for i, s := range servers {
			fmt.Fprintf(progress, "round %d/%d: peak %s\n", round+1, o.rounds, s.name)
			rep, err := runOne(s, 0, o.peak)
			if err != nil {
				return err
			}
			results[i].RoundsPeak = append(results[i].RoundsPeak, rep.Total.Throughput)
			results[i].PeakOK = rep.SuccessRate()
		}
		for i, s := range servers {
			fmt.Fprintf(progress, "round %d/%d: %.0f req/s %s\n", round+1, o.rounds, o.fixedRate, s.name)
			rep, err := runOne(s, o.fixedRate, o.fixed)
			if err != nil {
				return err
			}
			results[i].RoundsP50 = append(results[i].RoundsP50, float64(rep.Total.P50)/1e6)
			results[i].RoundsP99 = append(results[i].RoundsP99, float64(rep.Total.P99)/1e6)
			results[i].RoundsP999 = append(results[i].RoundsP999, float64(rep.Total.P999)/1e6)
			results[i].FixedOK = min(results[i].FixedOK, rep.SuccessRate())
		}
	}
	ms := func(x float64) time.Duration { return time.Duration(x * 1e6) }
	for _, r := range results {
		r.PeakRPS = median(r.RoundsPeak)
		r.P50, r.P99, r.P999 = ms(median(r.RoundsP50)), ms(median(r.RoundsP99)), ms(median(r.RoundsP999))
	}
	base := results[0]
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out, "medians over %d rounds\n", o.rounds)
	fmt.Fprintf(tw, "server\tpeak req/s\tx bare\tp50 @%.0f/s\tp99\tp999\tp99 x bare\tok%%\t\n", o.fixedRate)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t%s\t%s\t%.2f\t%.3f\t\n", r.Name, r.PeakRPS, r.PeakRPS/base.PeakRPS,
			fmtMS(r.P50), fmtMS(r.P99), fmtMS(r.P999), median(r.RoundsP99)/median(base.RoundsP99), 100*min(r.PeakOK, r.FixedOK))
	}
	tw.Flush()
	fmt.Fprintf(out, "\nrounds: peak req/s and p99 ms per round, in run order:\n")
	for _, r := range results {
		fmt.Fprintf(out, "  %-26s peak %v  p99 %v\n", r.Name, roundAll(r.RoundsPeak, 0), roundAll(r.RoundsP99, 2))
	}
	reg := results[1]
	fmt.Fprintf(out, "\ntargets: throughput >= 0.6x bare: %s (%.2fx); p99 at %.0f/s <= 2x bare: %s (%.2fx)\n",
		verdict(reg.PeakRPS/base.PeakRPS >= 0.6), reg.PeakRPS/base.PeakRPS, o.fixedRate,
		verdict(median(reg.RoundsP99) <= 2*median(base.RoundsP99)), median(reg.RoundsP99)/median(base.RoundsP99))
	fmt.Fprintf(out, "%s; servers GOMAXPROCS=1%s\n", runtime.Version(), map[bool]string{true: ", pinned to CPU 0, load on CPU 1", false: ""}[taskset != ""])
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(o.jsonOut, data, 0o644)
	}
	return nil
}

// preload creates n links with 32 concurrent clients and returns their codes.
func preload(ctx context.Context, base, key string, n int) ([]string, error) {
	var (
		mu    sync.Mutex
		codes []string
		next  atomic.Int64
		wg    sync.WaitGroup
		errc  = make(chan error, 32)
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				body := fmt.Sprintf(`{"url":"https://example.com/bench/%d"}`, i)
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
				if resp.StatusCode != http.StatusCreated || err != nil {
					errc <- fmt.Errorf("create: status %d", resp.StatusCode)
					return
				}
				mu.Lock()
				codes = append(codes, out.Code)
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
	return codes, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(xs []float64, digits int) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.*f", digits, x))
	}
	return out
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
