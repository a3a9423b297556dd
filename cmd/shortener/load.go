package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos/load"
)

func loadCmd() *cobra.Command {
	var (
		targets     []string
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
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Open-loop load: redirects and creates at a fixed rate, latency from each request's intended send time",
		Long: `Send redirects and creates to one or more regions at a fixed total rate (open
loop: a slow server cannot slow the schedule down, so queueing shows in the
latency), print progress every second and a report at the end, and record
every operation to a history file for the checkers.

  shortener load --target us-east=http://127.0.1.1:8080 --rate 2000 --duration 30s \
      --create-ratio 0.05 --api-key-file var/dev/api-key --history var/load.jsonl

With --rate 0 every worker sends as fast as it can (peak throughput).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := load.Config{Rate: rate, Duration: duration, Workers: workers, CreateRatio: createRatio, Seed: seed}
			for _, t := range targets {
				name, url, ok := strings.Cut(t, "=")
				if !ok {
					name, url = "", t
				}
				if !strings.Contains(url, "://") {
					return usageError{fmt.Errorf("--target %q: want NAME=http://host:port", t)}
				}
				cfg.Targets = append(cfg.Targets, load.Target{Name: name, BaseURL: url})
			}
			if len(cfg.Targets) == 0 {
				return usageError{fmt.Errorf("give at least one --target NAME=http://host:port")}
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
	fl.StringArrayVar(&targets, "target", nil, "a region to load, NAME=http://host:port (repeatable)")
	fl.Float64Var(&rate, "rate", 1000, "total operations per second (0: closed loop, as fast as possible)")
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
	return cmd
}

func baselineCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:    "baseline",
		Short:  "Serve a fixed 301 from a bare net/http server (the benchmark baseline)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv := &http.Server{Addr: addr, Handler: load.BaselineHandler(), ReadHeaderTimeout: 5 * time.Second}
			go func() { <-cmd.Context().Done(); srv.Close() }()
			if err := srv.ListenAndServe(); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.9.1:8181", "listen address")
	return cmd
}
