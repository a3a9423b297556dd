package bench

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
	"text/tabwriter"
	"time"

	"shortener/chaos/load"
	"shortener/procs"
	"shortener/region"
	"shortener/secrets"
)

// RedirectOptions are the flags of bench redirect.
type RedirectOptions struct {
	Links     int           // links to preload (all are requested: every redirect is a cache hit)
	Peak      time.Duration // duration of each peak-throughput round
	Fixed     time.Duration // duration of each fixed-rate round
	FixedRate float64       // requests per second of the fixed-rate rounds
	Rounds    int           // rounds of each measurement, alternating baseline and region
	Workers   int           // connections
	Variants  []string      // extra region runs: NAME=ENV[,ENV]
	Dir       string        // scratch directory (wiped)
	JSON      string        // write the results as JSON to this file, when not empty
}

// Validate reports a variant that is not NAME=ENV[,ENV].
func (o RedirectOptions) Validate() error {
	for _, v := range o.Variants {
		if _, _, ok := strings.Cut(v, "="); !ok {
			return fmt.Errorf("--variant %q: want NAME=ENV[,ENV]", v)
		}
	}
	return nil
}

// redirectResult is one server's medians and rounds (the JSON file).
type redirectResult struct {
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

// Redirect runs bench redirect: the table to out, progress to progress.
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
		cfg := procs.RegionConfig{Name: "us-east", HTTP: host + ":8080", Data: filepath.Join(o.Dir, fmt.Sprint(n)), Fsync: "interval",
			NoRateLimit: true, LogLevel: "warn", APIKeyHash: region.HashAPIKey(key), Secrets: secretsDir,
			Extra: []string{"--cache-size", fmt.Sprint(max(100000, o.Links))}}
		var vars []string
		for _, e := range env { // a variant's "--flag" items are region flags, the rest environment
			if strings.HasPrefix(e, "--") {
				cfg.Extra = append(cfg.Extra, e)
			} else {
				vars = append(vars, e)
			}
		}
		servers = append(servers, server{name: name, env: vars, url: "http://" + host + ":8080", args: cfg.Args()})
	}
	addRegion("region", nil, 0)
	for i, v := range o.Variants {
		name, env, _ := strings.Cut(v, "=")
		addRegion("region ("+name+")", strings.Split(env, ","), i+1)
	}
	// Each server is limited to one core (GOMAXPROCS=1) and, with taskset,
	// pinned to CPU 0; their output goes to progress.
	taskset, _ := exec.LookPath("taskset")
	var running []*procs.Proc
	defer func() { procs.StopAll(progress, running, 10*time.Second) }()
	for _, s := range servers {
		spec := procs.Spec{Name: s.name, Bin: self, Args: s.args, Env: append([]string{"GOMAXPROCS=1"}, s.env...),
			Output: progress, Group: true, DieWithParent: true}
		if taskset != "" {
			spec.Bin, spec.Args = taskset, append([]string{"-c", "0", self}, s.args...)
		}
		p, err := procs.Start(spec)
		if err != nil {
			return err
		}
		running = append(running, p)
	}
	for i, s := range servers {
		path, want := "/readyz", http.StatusOK
		if s.args[0] == "baseline" {
			path, want = "/", http.StatusMovedPermanently
		}
		if err := procs.WaitHTTP(ctx, s.url+path, running[i].Done(), 60*time.Second, want); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if taskset != "" {
		// The load generator gets the other core.
		_ = exec.Command(taskset, "-p", "-a", "-c", "1", fmt.Sprint(os.Getpid())).Run()
	}
	codes := map[string][]string{}
	for _, s := range servers[1:] {
		fmt.Fprintf(progress, "preloading %d links into %s\n", o.Links, s.name)
		cs, err := preload(ctx, s.url, key, o.Links)
		if err != nil {
			return fmt.Errorf("preload %s: %w", s.name, err)
		}
		codes[s.url] = cs
	}
	codes[servers[0].url] = []string{"x1"}

	results := make([]*redirectResult, len(servers))
	for i, s := range servers {
		results[i] = &redirectResult{Name: s.name, Env: s.env, FixedRate: o.FixedRate, FixedOK: 1}
	}
	runOne := func(s server, rate float64, d time.Duration) (*load.Report, error) {
		return load.Run(ctx, load.Config{Targets: []load.Target{{Name: s.name, BaseURL: s.url}},
			Rate: rate, Duration: d, Workers: o.Workers, Codes: codes[s.url], Seed: 7})
	}
	// Warm every cache and connection once.
	for _, s := range servers {
		if _, err := runOne(s, 0, time.Second); err != nil {
			return err
		}
	}
	for round := 0; round < o.Rounds; round++ {
		for i, s := range servers {
			fmt.Fprintf(progress, "round %d/%d: peak %s\n", round+1, o.Rounds, s.name)
			rep, err := runOne(s, 0, o.Peak)
			if err != nil {
				return err
			}
			results[i].RoundsPeak = append(results[i].RoundsPeak, rep.Total.Throughput)
			results[i].PeakOK = rep.SuccessRate()
		}
		for i, s := range servers {
			fmt.Fprintf(progress, "round %d/%d: %.0f req/s %s\n", round+1, o.Rounds, o.FixedRate, s.name)
			rep, err := runOne(s, o.FixedRate, o.Fixed)
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
	fmt.Fprintf(out, "medians over %d rounds\n", o.Rounds)
	fmt.Fprintf(tw, "server\tpeak req/s\tx bare\tp50 @%.0f/s\tp99\tp999\tp99 x bare\tok%%\t\n", o.FixedRate)
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
		verdict(reg.PeakRPS/base.PeakRPS >= 0.6), reg.PeakRPS/base.PeakRPS, o.FixedRate,
		verdict(median(reg.RoundsP99) <= 2*median(base.RoundsP99)), median(reg.RoundsP99)/median(base.RoundsP99))
	fmt.Fprintf(out, "%s; servers GOMAXPROCS=1%s\n", runtime.Version(), map[bool]string{true: ", pinned to CPU 0, load on CPU 1", false: ""}[taskset != ""])
	if o.JSON != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(o.JSON, data, 0o644)
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
