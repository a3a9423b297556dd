package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos"
	"shortener/chaos/runner"
)

// chaosCmd is `shortener chaos`: a seeded schedule of faults against a dev
// cluster of its own under load, then the checkers (make chaos).
func chaosCmd() *cobra.Command {
	var o runner.Options
	var kinds, netPrefix string
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
			if o.Kinds, err = chaos.ParseKinds(kinds); err != nil {
				return usageError{err}
			}
			if !regexp.MustCompile(`^127\.\d{1,3}$`).MatchString(netPrefix) {
				return usageError{fmt.Errorf("--net %q: want 127.X", netPrefix)}
			}
			if o.Duration < 10*time.Second || o.Duration > 24*time.Hour {
				return usageError{fmt.Errorf("--duration %v: want 10s to 24h", o.Duration)}
			}
			if o.Rate <= 0 || o.Rate > 5000 {
				return usageError{fmt.Errorf("--rate %v: want 1 to 5000 operations per second", o.Rate)}
			}
			if !cmd.Flags().Changed("seed") {
				o.Seed = rand.Int64N(1_000_000)
			}
			o.Topology, o.Prefer, o.Verify = topologyOn(netPrefix, 3), devPrefer, verifyDev
			rep, err := runner.Run(cmd.Context(), cmd.OutOrStdout(), o)
			if err != nil {
				return err
			}
			if !rep.Passed {
				return fmt.Errorf("chaos run with seed %d failed (report %s)", o.Seed, filepath.Join(o.RunDir(), "report.txt"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.Seed, "seed", 0, "seed of the schedule (default: a random one, printed)")
	f.DurationVar(&o.Duration, "duration", 4*time.Minute, "length of the schedule of faults (recovery included)")
	f.StringVar(&kinds, "faults", "all", "the kinds of faults to draw from, comma-separated: "+strings.Join(kindNames(), ", "))
	f.StringVar(&o.Dir, "dir", "var/chaos", "where runs go (each in seed-N, its cluster's state included)")
	f.StringVar(&netPrefix, "net", "127.7", "network prefix of the run's cluster: region N on PREFIX.N.1, the switch on PREFIX.0.1")
	f.Float64Var(&o.Rate, "rate", 150, "load in operations per second over all clients")
	f.DurationVar(&o.Warmup, "warmup", 10*time.Second, "load before the first fault")
	f.DurationVar(&o.Tail, "tail", 15*time.Second, "load after the last fault, everything healed")
	return cmd
}

func kindNames() []string {
	var s []string
	for _, k := range chaos.Kinds() {
		s = append(s, string(k))
	}
	return s
}
