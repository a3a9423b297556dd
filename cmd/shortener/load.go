package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos/load"
	"shortener/procs"
	"shortener/telemetry"
)

func loadCmd() *cobra.Command {
	var (
		targets     []string
		clients     []string
		clientsDev  bool
		dnsServer   string
		dnsName     string
		port        int
		regions     []string
		pollRegions time.Duration
		rate        float64
		duration    time.Duration
		workers     int
		createRatio float64
		codesFile   string
		keyFile     string
		historyFile string
		jsonFile    string
		seed        int64
		minSuccess  float64
		quiet       bool
		perSecond   bool
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Open-loop load as the clients of every region: redirects and creates at a fixed rate through the DNS switch",
		Long: `Send redirects and creates at a fixed total rate (open loop: a slow server
cannot slow the schedule down, so queueing shows in the latency), print
progress every second and a report at the end, and record every operation to
a history file for the checkers.

As the clients of regions, through the DNS switch: each --client resolves
--name at --dns from its source address (so the switch sees its home region),
honours the answer's TTL and follows a changed answer; the rate is spread
evenly over the clients. --clients-dev is the three dev regions' clients.

  shortener load --clients-dev --rate 600 --create-ratio 0.1 --duration 60s --history var/load.jsonl
  shortener load --dns 127.0.0.1:8053 --name short.test --client us-east=127.0.1.10 \
      --client eu-west=127.0.2.10 --client ap-south=127.0.3.10 --rate 600 --duration 60s

Or straight at fixed regions:

  shortener load --target us-east=http://127.0.1.1:8080 --rate 2000 --duration 30s \
      --create-ratio 0.05 --api-key-file var/dev/api-key --history var/load.jsonl

With --history, every --poll-regions the answer of each region's
GET /api/v1/regions (its lag and RPO per origin) goes to the history too
(the regions: --region, else the dev regions for --client, else the
targets). With --rate 0 every worker sends as fast as it can (peak
throughput). "shortener load analyze" measures a failover from a history.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := load.Config{Rate: rate, Duration: duration, Workers: workers, CreateRatio: createRatio, Seed: seed,
				RegionsInterval: pollRegions}
			if pollRegions <= 0 {
				cfg.RegionsInterval = -1
			}
			if clientsDev {
				for _, r := range devRegions {
					clients = append(clients, r.Name+"=127.0."+string(r.Digit)+".10")
				}
			}
			if len(clients) > 0 && len(targets) > 0 {
				return usageError{fmt.Errorf("give either --target or --client/--clients-dev, not both")}
			}
			var err error
			if cfg.Targets, cfg.Regions, err = load.ParseTargets(targets); err != nil {
				return usageError{err}
			}
			if len(clients) > 0 {
				if cfg.Targets, err = load.ClientTargets(clients, dnsServer, dnsName, port); err != nil {
					return usageError{err}
				}
				for _, r := range devRegions {
					cfg.Regions = append(cfg.Regions, load.Region{Name: r.Name,
						BaseURL: "http://" + net.JoinHostPort(r.Host, strconv.Itoa(port))})
				}
			}
			if len(cfg.Targets) == 0 {
				return usageError{fmt.Errorf("give --clients-dev, --client REGION=SOURCE-IP or --target NAME=http://host:port")}
			}
			if len(regions) > 0 {
				if cfg.Regions, err = load.ParseRegions(regions); err != nil {
					return usageError{err}
				}
			}
			if codesFile != "" {
				data, err := os.ReadFile(codesFile)
				if err != nil {
					return usageError{err}
				}
				cfg.Codes = strings.Fields(string(data))
			}
			if createRatio > 0 {
				key, err := apiKey(keyFile, false)
				if err != nil {
					return err
				}
				cfg.APIKey = key
			}
			if historyFile != "" {
				f, err := os.Create(historyFile)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				defer bw.Flush()
				cfg.History = bw
			}
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			rep, err := load.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
				return err
			}
			if perSecond {
				fmt.Fprintln(cmd.OutOrStdout())
				if err := rep.WriteSeconds(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			if jsonFile != "" {
				data, _ := json.MarshalIndent(rep, "", "  ")
				if err := os.WriteFile(jsonFile, data, 0o644); err != nil {
					return err
				}
			}
			if minSuccess > 0 && rep.SuccessRate() < minSuccess {
				return fmt.Errorf("success rate %.4f%% under the required %.4f%%", 100*rep.SuccessRate(), 100*minSuccess)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&targets, "target", nil, "a fixed region to load, NAME=http://host:port (repeatable)")
	fl.StringArrayVar(&clients, "client", nil, "the clients of a region, REGION=SOURCE-IP, resolving --name at --dns (repeatable)")
	fl.BoolVar(&clientsDev, "clients-dev", false, "the dev regions' clients: us-east=127.0.1.10, eu-west=127.0.2.10, ap-south=127.0.3.10")
	fl.StringVar(&dnsServer, "dns", "127.0.0.1:8053", "the DNS switch the clients ask (UDP, TCP when truncated)")
	fl.StringVar(&dnsName, "name", "short.test", "the service's name the clients resolve")
	fl.IntVar(&port, "port", 8080, "the regions' HTTP port behind the resolved address")
	fl.StringArrayVar(&regions, "region", nil, "a region to poll and name addresses by, NAME=http://host:port (repeatable)")
	fl.DurationVar(&pollRegions, "poll-regions", load.DefaultRegionsInterval, "record each region's GET /api/v1/regions this often in the history (0: never)")
	fl.Float64Var(&rate, "rate", 1000, "total operations per second, spread evenly (0: closed loop, as fast as possible)")
	fl.DurationVar(&duration, "duration", 10*time.Second, "how long to send")
	fl.IntVar(&workers, "workers", 64, "concurrent requests")
	fl.Float64Var(&createRatio, "create-ratio", 0, "share of operations that are creates (0 to 1)")
	fl.StringVar(&codesFile, "codes", "", "file of codes to redirect, whitespace-separated")
	fl.StringVar(&keyFile, "api-key-file", "var/dev/api-key", "API key for creates (or $SHORTENER_API_KEY)")
	fl.StringVar(&historyFile, "history", "", "record every operation to this JSON-lines file")
	fl.StringVar(&jsonFile, "json", "", "write the report as JSON to this file")
	fl.Int64Var(&seed, "seed", 1, "seed of the operation mix")
	fl.Float64Var(&minSuccess, "min-success", 0, "exit non-zero when the success rate is under this (0 to 1)")
	fl.BoolVar(&quiet, "quiet", false, "no progress lines")
	fl.BoolVar(&perSecond, "per-second", true, "end the report with one row per second")
	cmd.AddCommand(loadAnalyzeCmd())
	return cmd
}

func loadAnalyzeCmd() *cobra.Command {
	var (
		historyFile, region, killedAt, upAt, probe, jsonFile, devDir string
		maxRTO                                                       time.Duration
		minSuccess                                                   float64
	)
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Measure a failover from a load history: RTO, failures per client region, creates at risk, reported and measured RPO",
		Long: `Read a history written by "shortener load --history" and measure the loss of
--region at --killed-at (by default the last make region-down of it, from
the dev cluster's journal, and the make region-up after it): the RTO (from the kill to the first success of its
clients through another region), the longest run of failures and the success
rate of every client region, the creates it acknowledged before the kill,
the RPO the other regions reported for it at their last poll before the
kill, and when its clients came back after --up-at. With --probe, HEAD every
one of those creates at that region and count the 404s: the measured RPO.

  shortener load analyze --history var/load.jsonl --region us-east \
      --killed-at 2026-01-02T15:04:05.123Z --up-at 2026-01-02T15:04:35Z --probe http://127.0.2.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if historyFile == "" || region == "" {
				return usageError{fmt.Errorf("--history and --region are required")}
			}
			var killed, up time.Time
			var err error
			if killedAt == "" {
				// The last region-down of the dev cluster, and its region-up.
				if killed, up, err = procs.LastOutage(devDir, region); err != nil {
					return usageError{err}
				}
			} else if killed, err = time.Parse(time.RFC3339Nano, killedAt); err != nil {
				return usageError{fmt.Errorf("--killed-at %q: want RFC 3339, e.g. 2026-01-02T15:04:05.123Z", killedAt)}
			}
			if upAt != "" {
				if up, err = time.Parse(time.RFC3339Nano, upAt); err != nil {
					return usageError{fmt.Errorf("--up-at %q: want RFC 3339, e.g. 2026-01-02T15:04:35Z", upAt)}
				}
			}
			f, err := os.Open(historyFile)
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			h, err := load.ReadHistory(f)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", historyFile, err)}
			}
			fr, err := load.Failover(h, region, killed, up)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", historyFile, err)}
			}
			if probe != "" {
				p, err := load.Probe(cmd.Context(), probe, fr.AckedCodes())
				if err != nil {
					return usageError{err}
				}
				p.Region = h.RegionOfURL(probe)
				fr.Probe = p
			}
			if jsonFile == "-" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(fr); err != nil {
					return err
				}
			} else {
				if err := fr.WriteText(cmd.OutOrStdout()); err != nil {
					return err
				}
				if jsonFile != "" {
					data, _ := json.MarshalIndent(fr, "", "  ")
					if err := os.WriteFile(jsonFile, append(data, '\n'), 0o644); err != nil {
						return err
					}
				}
			}
			if maxRTO > 0 && (!fr.Recovered || fr.RTO > maxRTO) {
				return fmt.Errorf("RTO over the allowed %s", maxRTO)
			}
			if minSuccess > 0 {
				for _, c := range fr.Clients {
					if c.Client != region && c.SuccessRate < minSuccess {
						return fmt.Errorf("%s's clients: success rate %.4f%% under the required %.4f%%",
							c.Client, 100*c.SuccessRate, 100*minSuccess)
					}
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&historyFile, "history", "", "the history file of a load run (required)")
	fl.StringVar(&region, "region", "", "the region that was killed (required)")
	fl.StringVar(&killedAt, "killed-at", "", "when it was killed, RFC 3339 (default: the last make region-down of --region in --dev-dir's journal)")
	fl.StringVar(&upAt, "up-at", "", "when it was started again, RFC 3339 (default: the make region-up after that kill)")
	fl.StringVar(&devDir, "dev-dir", "var/dev", "the dev cluster whose journal.jsonl gives the kill and restart times")
	fl.StringVar(&probe, "probe", "", "base URL of a surviving region to ask for the creates at risk, e.g. http://127.0.2.1:8080")
	fl.StringVar(&jsonFile, "json", "", "also write the analysis as JSON to this file (\"-\": only JSON, on stdout)")
	fl.DurationVar(&maxRTO, "max-rto", 0, "exit non-zero when the RTO is over this (or unknown)")
	fl.Float64Var(&minSuccess, "min-success", 0, "exit non-zero when another region's clients succeeded less than this (0 to 1)")
	return cmd
}

func baselineCmd() *cobra.Command {
	var addr, cpuProfile string
	cmd := &cobra.Command{
		Use:    "baseline",
		Short:  "Serve a fixed 301 from a bare net/http server (the benchmark baseline)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				stop, err := telemetry.StartCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			srv := &http.Server{Addr: addr, Handler: load.BaselineHandler(), ReadHeaderTimeout: 5 * time.Second}
			go func() { <-cmd.Context().Done(); srv.Close() }()
			if err := srv.ListenAndServe(); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.9.1:8181", "listen address")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file (at a graceful stop), to set beside a region's")
	return cmd
}
