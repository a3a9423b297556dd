package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"shortener/auditor"
	"shortener/replicator"
	"shortener/secrets"
)

type benchReplayOpts struct {
	host    string
	events  int
	window  int
	rounds  int
	dir     string
	jsonOut string
	timeout time.Duration
}

func benchReplayCmd() *cobra.Command {
	var o benchReplayOpts
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
			if o.events < 1 || o.rounds < 1 || o.window < 1 {
				return usageError{fmt.Errorf("--events, --rounds and --window must be at least 1")}
			}
			return benchTimeout(cmd.Context(), o.timeout, func(ctx context.Context) error {
				return benchReplay(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.events, "events", 1_000_000, "events in the log")
	fl.IntVar(&o.window, "window", 4096, "unacknowledged async publishes while writing them")
	fl.IntVar(&o.rounds, "rounds", 2, "rounds, each baseline read then replay")
	fl.StringVar(&o.dir, "dir", "var/bench-replay", "scratch directory (wiped)")
	fl.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	fl.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound on the whole run")
	fl.StringVar(&o.host, "host", "127.0.6.1", "the region's address (its global member takes the next one), so that two runs can share a machine")
	return cmd
}

type replayRound struct {
	BaselineRate float64       `json:"baseline_events_per_second"`
	BaselineTook time.Duration `json:"baseline_ns"`
	ReplayRate   float64       `json:"replay_events_per_second"`
	ReplayTook   time.Duration `json:"replay_ns"`
	DigestOK     bool          `json:"digest_matches_live"`
}

type replayBenchResult struct {
	Events       uint64        `json:"events"` // records replayed (the link events and the region's heartbeats)
	EventBytes   int           `json:"event_bytes"`
	Rounds       []replayRound `json:"rounds"`
	BaselineRate float64       `json:"baseline_events_per_second"` // medians
	ReplayRate   float64       `json:"replay_events_per_second"`
	Ratio        float64       `json:"ratio"`
}

func benchReplay(ctx context.Context, out, progress io.Writer, o benchReplayOpts) error {
	loadavg := readLoadavg()
	bc, err := newBenchCluster(o.dir, "interval", []devRegion{{Name: "us-east", Digit: '1', Host: o.host}}, progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	fmt.Fprintf(progress, "starting us-east on %s (log %s)\n", o.host, bc.logPath(0))
	if err := bc.start(0); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	nc, js, err := bc.connect(0)
	if err != nil {
		return err
	}
	defer nc.Close()
	stream := replicator.StreamName("us-east")
	res := &replayBenchResult{}

	fmt.Fprintf(progress, "writing %d events to %s\n", o.events, stream)
	wnc, _, err := bc.connectAs(0, secrets.RegionUser("us-east")) // only us-east's user writes its stream
	if err != nil {
		return err
	}
	defer wnc.Close()
	wstart := time.Now()
	if res.EventBytes, err = writeLinkEvents(ctx, wnc, o.events, o.window, func(code string) string { return replicator.Subject("us-east", code) }); err != nil {
		return fmt.Errorf("write %s: %w", stream, err)
	}
	fmt.Fprintf(progress, "wrote them in %.1fs\n", time.Since(wstart).Seconds())
	cut, err := lastSeq(ctx, js, stream)
	if err != nil {
		return err
	}
	res.Events = cut
	// The region's projector must be idle before anything is measured.
	api := auditor.API{Client: &http.Client{Timeout: time.Minute}, Key: func() (string, error) { return benchKey, nil }}
	live := api.Projection("us-east", bc.url(0))
	// /readyz reports the applied sequence without a digest of every row.
	err = benchPoll(ctx, 10*time.Minute, 500*time.Millisecond, "us-east's projection applied #"+fmt.Sprint(cut), func(ctx context.Context) (bool, error) {
		var rd struct {
			AppliedSeq uint64 `json:"applied_seq"`
		}
		err := getJSON(ctx, api.Client, bc.url(0)+"/readyz", &rd)
		return err == nil && rd.AppliedSeq >= cut, err
	})
	if err != nil {
		return err
	}

	for round := 1; round <= o.rounds; round++ {
		var r replayRound
		fmt.Fprintf(progress, "round %d/%d: ordered consumer read of %d events\n", round, o.rounds, cut)
		start := time.Now()
		if err := orderedRead(ctx, js, stream, cut); err != nil {
			return err
		}
		r.BaselineTook = time.Since(start)
		r.BaselineRate = float64(cut) / r.BaselineTook.Seconds()

		fmt.Fprintf(progress, "round %d/%d: replay of %d events\n", round, o.rounds, cut)
		dir := filepath.Join(o.dir, fmt.Sprintf("replay-%d", round))
		store, rr, err := auditor.Replay(ctx, js, []auditor.Source{{Stream: stream, Read: stream, To: cut}}, dir, auditor.ReplayOptions{Label: "replay", Progress: progress})
		if err != nil {
			return err
		}
		store.Close()
		os.RemoveAll(dir)
		r.ReplayTook, r.ReplayRate = rr.Elapsed, rr.Rate
		d, _, err := live.Digests(ctx, nil)
		if err != nil {
			return err
		}
		// Heartbeats since the cut move the checkpoint but no row: the
		// digests must be equal.
		r.DigestOK = d.Digest == rr.Digest
		if !r.DigestOK {
			return fmt.Errorf("round %d: replay digest %s, live %s: the replay is wrong", round, rr.Digest, d.Digest)
		}
		res.Rounds = append(res.Rounds, r)
	}
	var base, rep []float64
	for _, r := range res.Rounds {
		base, rep = append(base, r.BaselineRate), append(rep, r.ReplayRate)
	}
	res.BaselineRate, res.ReplayRate = median(base), median(rep)
	res.Ratio = res.ReplayRate / res.BaselineRate

	fmt.Fprintf(out, "audit replay: %d events of about %d bytes (LINKS_US_EAST), medians over %d rounds\n", res.Events, res.EventBytes, o.rounds)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "path\tevents/s\tseconds per round\t\n")
	fmt.Fprintf(tw, "JetStream ordered consumer, count only (baseline)\t%.0f\t%s\t\n", res.BaselineRate, roundSecs(res.Rounds, true))
	fmt.Fprintf(tw, "audit replay: read, decode, fold, Pebble, flush\t%.0f\t%s\t\n", res.ReplayRate, roundSecs(res.Rounds, false))
	tw.Flush()
	fmt.Fprintf(out, "\nevery replay's digest equals the live projection's\n")
	fmt.Fprintf(out, "target: replay >= 0.5x the ordered-consumer read rate: %s (%.2fx)\n", verdict(res.Ratio >= 0.5), res.Ratio)
	fmt.Fprintf(out, "machine: %s; the region (NATS server) and this process share it\n", benchMachine(loadavg))
	return writeBenchJSON(o.jsonOut, res)
}

func roundSecs(rs []replayRound, baseline bool) string {
	var xs []float64
	for _, r := range rs {
		d := r.ReplayTook
		if baseline {
			d = r.BaselineTook
		}
		xs = append(xs, d.Seconds())
	}
	return fmt.Sprint(roundAll(xs, 2))
}

// orderedRead reads stream 1..n through an ordered consumer and counts the
// messages: JetStream's own read rate, with the same pull size as
// replicator.Read.
func orderedRead(ctx context.Context, js jetstream.JetStream, stream string, n uint64) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return err
	}
	defer it.Stop()
	var count uint64
	var bytes int
	for count < n {
		m, err := it.Next()
		if err != nil {
			return fmt.Errorf("read %s after %d: %w", stream, count, err)
		}
		bytes += len(m.Data())
		count++
	}
	if bytes == 0 {
		return fmt.Errorf("read %s: no data", stream)
	}
	return nil
}
