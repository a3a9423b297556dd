package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"shortener/auditor"
	"shortener/bench"
	"shortener/events"
	"shortener/replicator"
)

// The benchmarks are package bench's; the commands here are their flags.
// An options' Validate error is a usage error (exit status 2).

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks measured as ratios against a baseline run side by side",
	}
	cmd.AddCommand(benchRedirectCmd(), benchCreateCmd(), benchReplicationCmd(), benchCatchupCmd(), benchReplayCmd(), benchRestartCmd(), benchTraceCmd())
	return cmd
}

func benchRedirectCmd() *cobra.Command {
	var o bench.RedirectOptions
	cmd := &cobra.Command{
		Use:   "redirect",
		Short: "Redirect throughput and latency of the default region (cache hits) against a bare net/http 301",
		Long: `Measures, one server at a time, a bare net/http server answering a fixed 301
(shortener baseline), the default region (as make run starts it: fsync
always, clicks on; but no rate limit), the same region with --no-clicks,
and every --variant. Each server is a child process limited to one core
(GOMAXPROCS=1, and pinned to CPU 0 with taskset when it exists, the load
on CPU 1), started for its round and stopped after it, so that nothing
else of the benchmark runs on the measured core. The regions get --links
links (301s) preloaded once; every link is requested and checked before
each round.

Each round: peak throughput (closed loop, --workers connections), counted
only when the server was the limit, from /proc around the round: the
measured core at least 95% busy and the server's threads running or
runnable at least 95% of the time (else "client-limited"), and other
processes on the core at most 5% of it (else "contended"); a round not
counted is printed and left out of the median. Then latency at each of
--fixed-rates (open loop, from each request's intended send time). Only
successful answers count: a 301 with the link's own Location.

The verdicts (issue 22): the region's peak at least 0.85x the bare
server's, its p99 at each --verdict-rates at most 1.5x the bare server's,
clicks on at least 0.95x clicks off at peak and at those p99s. A target
without samples fails. Every figure is printed; the command exits 1 when
a target is missed (2 for bad flags), after appending the run as one JSON
line to --results.

--variant NAME=ENV[,ENV] adds a region run with extra environment (for
instance GOGC=400 or GOMEMLIMIT=512MiB) or region flags (items that start
with --, for instance --cpu-profile=/tmp/r.prof).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Redirect(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Links, "links", 20000, "links to preload (all are requested: every redirect is a cache hit)")
	// A round must outlast the work a region puts off: a click commit every
	// 10 s, a GC cycle every few seconds at peak. Rounds of 5 s measured
	// some servers with no commit in them (docs/benchmarks.md).
	fl.DurationVar(&o.Peak, "peak", 30*time.Second, "duration of each peak-throughput round (at least a few of the region's --click-commit-every)")
	fl.DurationVar(&o.Fixed, "fixed", 20*time.Second, "duration of each fixed-rate point (at least a few of the region's --click-commit-every)")
	fl.Float64SliceVar(&o.FixedRates, "fixed-rates", []float64{2000, 10000, 20000}, "requests per second of the fixed-rate points")
	fl.Float64SliceVar(&o.VerdictRates, "verdict-rates", []float64{10000, 20000}, "the fixed rates whose p99 has a target (each one of --fixed-rates)")
	fl.IntVar(&o.Rounds, "rounds", 2, "rounds; in each, every server in turn")
	fl.IntVar(&o.Workers, "workers", 64, "connections")
	fl.StringArrayVar(&o.Variants, "variant", nil, "an extra region run: NAME=ENV[,ENV] (repeatable)")
	fl.StringVar(&o.Dir, "dir", "var/bench", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.StringVar(&o.Results, "results", "docs/bench-results/redirect.jsonl", "append the run as one JSON line to this file (empty: do not)")
	return cmd
}

func benchCreateCmd() *cobra.Command {
	var o bench.CreateOptions
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create throughput over HTTP against raw JetStream synchronous publish, side by side",
		Long: `Starts one region (us-east on 127.0.7.1, no peers) as a child process and
measures, alternating --rounds times: (a) HTTP creates, closed loop with
--workers connections (a create answers after the JetStream ack and the
projection's synced batch); (b) from this process, --workers goroutines
each publishing synchronously to a scratch stream BENCH_RAW on the region's
own NATS server, one new subject and Nats-Msg-Id per message and a payload
the size of a stored LinkCreated envelope. Both go to the same server, so
both get the same --fsync. Beside it, the same region on open, plaintext NATS
(127.0.7.3, no TLS, no users) takes the same HTTP creates in every round: the
cost of TLS and authentication (target: at least 0.9x).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Create(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "duration of each measurement")
	fl.IntVar(&o.Workers, "workers", 64, "concurrent HTTP creates, and concurrent publishers")
	fl.IntVar(&o.Rounds, "rounds", 2, "rounds, each HTTP then raw publish")
	fl.StringVar(&o.Fsync, "fsync", "always", "JetStream fsync of the region: always or interval")
	fl.StringVar(&o.Dir, "dir", "var/bench-create", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	return cmd
}

func benchReplicationCmd() *cobra.Command {
	var o bench.ReplicationOptions
	cmd := &cobra.Command{
		Use:   "replication",
		Short: "Cross-region replication lag under an open-loop create load, three regions",
		Long: `Starts us-east, eu-west and ap-south as child processes (127.0.8.1, .3, .5;
fsync always), subscribes from this process to all six mirrors with ordered
consumers delivering new messages only, and for each --rates value sends
creates at that total rate, spread over the three regions, for --duration.
The lag of an event is the time it reached this process from a mirror minus
its producer time (same clock): it includes the origin's own append and
fsync, the mirror's copy and the delivery to the consumer.

The load starts once every region reports every mirror live: on a fresh
cluster the mirrors start copying about a second after the regions are
ready, and events written before then wait for that start. How long it took
is printed; the lag measured is that of a running cluster.

--svg writes the lag over time, per rate and per mirror (the highest lag in
each 100 ms), as a picture; by default <dir>/lag.svg.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Replication(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.Float64SliceVar(&o.Rates, "rates", []float64{500, 2000}, "total creates per second, one measurement each")
	fl.DurationVar(&o.Duration, "duration", 15*time.Second, "duration of each rate")
	// At 2000/s a create taking 50 ms keeps 100 in flight: 64 would cap the rate.
	fl.IntVar(&o.Workers, "workers", 256, "concurrent requests of the load generator")
	fl.StringVar(&o.Dir, "dir", "var/bench-replication", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.StringVar(&o.SVG, "svg", "", "write the lag over time as SVG to this file (default <dir>/lag.svg)")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fl.BoolVar(&o.Plaintext, "plaintext", false, "run the regions on open, plaintext NATS (no TLS, no users): the baseline for the cost of security")
	return cmd
}

func benchCatchupCmd() *cobra.Command {
	var o bench.CatchupOptions
	cmd := &cobra.Command{
		Use:   "catchup",
		Short: "Mirror catch-up after a region returns, against JetStream's own mirror catch-up",
		Long: `Starts us-east, eu-west and ap-south as child processes (127.0.8.11, .13, .15
by default, see --host; fsync always). Baseline first: a scratch stream BENCH_ORIGIN in us-east gets
--events messages the size of a LinkCreated envelope, then a mirror
BENCH_MIRROR of it is created in ap-south and timed until it holds them all.
Then ap-south is SIGKILLed, --events LinkCreated envelopes are appended to
us-east's stream, ap-south is restarted with the same arguments, and the
run measures when its mirror LINKS_US_EAST_AT_AP_SOUTH first moves (the
resume delay), how fast it then copies, and when ap-south's projection has
applied everything. Both rates are events copied after the first observed
movement divided by the time from that movement until the mirror holds the
origin's last sequence.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Catchup(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 50000, "events written while ap-south is down (and messages in the baseline)")
	fl.IntVar(&o.Window, "window", 1024, "unacknowledged async publishes while writing them")
	fl.StringVar(&o.Dir, "dir", "var/bench-catchup", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fl.IntVar(&o.First, "host", 11, "the regions listen on 127.0.8.N, N+2 and N+4 (their global members on the next address each), so that two runs can share a machine")
	return cmd
}

func benchRestartCmd() *cobra.Command {
	var o bench.RestartOptions
	cmd := &cobra.Command{
		Use:   "restart",
		Short: "Time from a region's process start to ready, over several SIGKILL-and-start cycles under load",
		Long: `Starts us-east, eu-west and ap-south as child processes (127.0.8.21, .23, .25
by default, see --host; fsync always), waits until every mirror is live,
then sends an open-loop load of --rate operations per second (half creates,
half redirects) to us-east and eu-west while ap-south is SIGKILLed and
started again with the same arguments, --restarts times. Each restart is
timed from the start of ap-south's process to its first /readyz 200 (polled
every 50 ms): the region has then caught up with what its peers held when
it first saw them and serves. Between restarts the run waits until every
mirror is live again. The report gives each time, the median and the
maximum, and the target (median at most 3 s); a run that measured no
restart fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Restart(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Restarts, "restarts", 5, "SIGKILL-and-start cycles of ap-south")
	fl.Float64Var(&o.Rate, "rate", 50, "operations per second (half creates) on us-east and eu-west meanwhile")
	fl.DurationVar(&o.Down, "down", 0, "how long ap-south stays down before each start (the peers' mirrors of it wait longer after a longer outage)")
	fl.StringVar(&o.Dir, "dir", "var/bench-restart", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fl.IntVar(&o.First, "host", 21, "the regions listen on 127.0.8.N, N+2 and N+4 (their global members on the next address each), so that two runs can share a machine")
	return cmd
}

func benchReplayCmd() *cobra.Command {
	o := bench.ReplayOptions{Replay: auditReplay}
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Audit replay speed against JetStream's own ordered-consumer read rate, side by side",
		Long: `Starts one region (us-east on 127.0.6.1 by default, fsync interval so that writing the
log is quick) as a child process, appends --events LinkCreated envelopes to
its stream LINKS_US_EAST, waits until its projection has applied them all,
then alternates, --rounds times: (a) the baseline, an ordered consumer
reading the stream from this process and counting the messages (JetStream's
own read rate); (b) shortener audit's replay of the same records into a
fresh Pebble store (read, decode, fold, write, flush). Both read the same
sequences over the same connection. Each replay's digest is checked against
the region's live projection.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return bench.Replay(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 1_000_000, "events in the log")
	fl.IntVar(&o.Window, "window", 4096, "unacknowledged async publishes while writing them")
	fl.IntVar(&o.Rounds, "rounds", 2, "rounds, each baseline read then replay")
	fl.StringVar(&o.Dir, "dir", "var/bench-replay", "scratch directory (wiped)")
	fl.StringVar(&o.JSON, "json", "", "write the results as JSON to this file")
	fl.DurationVar(&o.Timeout, "timeout", 20*time.Minute, "bound on the whole run")
	fl.StringVar(&o.Host, "host", "127.0.6.1", "the region's address (its global member takes the next one), so that two runs can share a machine")
	return cmd
}

// auditReplay is shortener audit's replay of one whole stream, the replay
// bench replay measures.
func auditReplay(ctx context.Context, c *replicator.Conn, stream string, to uint64, keys *events.KeyRing, dir string, progress io.Writer) (bench.Replayed, error) {
	store, rr, err := auditor.Replay(ctx, c, []auditor.Source{{Stream: stream, Read: stream, To: to}}, dir,
		auditor.ReplayOptions{Label: "replay", Progress: progress, Rules: auditor.Rules(nil, keys)})
	if err != nil {
		return bench.Replayed{}, err
	}
	store.Close()
	return bench.Replayed{Elapsed: rr.Elapsed, Rate: rr.Rate, Digest: rr.Digest}, nil
}
