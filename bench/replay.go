package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/procs"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
	"shortener/status"
)

// ReplayOptions are the flags of bench replay, and the replay it measures.
type ReplayOptions struct {
	Host    string        // the region's address (its global member takes the next one)
	Events  int           // events in the log
	Window  int           // unacknowledged async publishes while writing them
	Rounds  int           // rounds, each baseline read then replay
	Dir     string        // scratch directory (wiped)
	JSON    string        // write the results as JSON to this file, when not empty
	Timeout time.Duration // bound on the whole run
	// Replay is the audit replay measured; the command gives shortener
	// audit's.
	Replay Replayer
}

// Replayer is the audit replay bench replay measures: it reads stream
// 1..to through c into a fresh store in dir (progress to progress),
// closes the store, and returns how fast it went and the store's digest.
// keys are the regions' keys the replay checks signatures with, as
// shortener audit does (nil on plaintext NATS, where nothing is signed).
type Replayer func(ctx context.Context, c *replicator.Conn, stream string, to uint64, keys *events.KeyRing, dir string, progress io.Writer) (Replayed, error)

// Replayed is what one replay took and made.
type Replayed struct {
	Elapsed time.Duration // read to flushed store
	Rate    float64       // records replayed per second
	Digest  string        // the digest of every link in the store
}

// Validate reports fewer than one event, round or window, or no replay to
// measure.
func (o ReplayOptions) Validate() error {
	if o.Events < 1 || o.Rounds < 1 || o.Window < 1 {
		return fmt.Errorf("--events, --rounds and --window must be at least 1")
	}
	if o.Replay == nil {
		return fmt.Errorf("no replay to measure")
	}
	return nil
}

// Replay runs bench replay, bounded by o.Timeout: the table to out,
// progress to progress.
func Replay(ctx context.Context, out, progress io.Writer, o ReplayOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return withTimeout(ctx, o.Timeout, func(ctx context.Context) error {
		return replay(ctx, out, progress, o)
	})
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

func replay(ctx context.Context, out, progress io.Writer, o ReplayOptions) error {
	loadavg := readLoadavg()
	bc, err := newCluster(o.Dir, "interval", []procs.Region{{Name: "us-east", Digit: '1', Host: o.Host}}, progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	fmt.Fprintf(progress, "starting us-east on %s (log %s)\n", o.Host, bc.logPath(0))
	if err := bc.start(0); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	c, err := bc.connect(0)
	if err != nil {
		return err
	}
	defer c.Close()
	stream := replicator.StreamName("us-east")
	res := &replayBenchResult{}

	fmt.Fprintf(progress, "writing %d events to %s\n", o.Events, stream)
	wnc, err := bc.dial(0, secrets.RegionUser("us-east")) // only us-east's user writes its stream
	if err != nil {
		return err
	}
	defer wnc.Close()
	wstart := time.Now()
	signer, err := bc.signer(0)
	if err != nil {
		return err
	}
	if res.EventBytes, err = writeLinkEvents(ctx, wnc, signer, o.Events, o.Window, func(code string) string { return replicator.Subject("us-east", code) }); err != nil {
		return fmt.Errorf("write %s: %w", stream, err)
	}
	fmt.Fprintf(progress, "wrote them in %.1fs\n", time.Since(wstart).Seconds())
	cut, err := lastSeq(ctx, c.repl, stream)
	if err != nil {
		return err
	}
	res.Events = cut
	// The region's projector must be idle before anything is measured.
	client := &http.Client{Timeout: time.Minute}
	// /readyz reports the applied sequence without a digest of every row.
	err = poll(ctx, 10*time.Minute, 500*time.Millisecond, "us-east's projection applied #"+fmt.Sprint(cut), func(ctx context.Context) (bool, error) {
		var rd struct {
			AppliedSeq uint64 `json:"applied_seq"`
		}
		err := status.GetJSON(ctx, client, bc.url(0)+"/readyz", &rd)
		return err == nil && rd.AppliedSeq >= cut, err
	})
	if err != nil {
		return err
	}

	for round := 1; round <= o.Rounds; round++ {
		var r replayRound
		fmt.Fprintf(progress, "round %d/%d: ordered consumer read of %d events\n", round, o.Rounds, cut)
		start := time.Now()
		if err := orderedRead(ctx, c.raw, stream, cut); err != nil {
			return err
		}
		r.BaselineTook = time.Since(start)
		r.BaselineRate = float64(cut) / r.BaselineTook.Seconds()

		fmt.Fprintf(progress, "round %d/%d: replay of %d events\n", round, o.Rounds, cut)
		dir := filepath.Join(o.Dir, fmt.Sprintf("replay-%d", round))
		keys, err := bc.keys()
		if err != nil {
			return err
		}
		rr, err := o.Replay(ctx, c.repl, stream, cut, keys, dir, progress)
		if err != nil {
			return err
		}
		os.RemoveAll(dir)
		r.ReplayTook, r.ReplayRate = rr.Elapsed, rr.Rate
		live, err := liveDigest(ctx, client, "us-east", bc.url(0))
		if err != nil {
			return err
		}
		// Heartbeats since the cut move the checkpoint but no row: the
		// digests must be equal.
		r.DigestOK = live == rr.Digest
		if !r.DigestOK {
			return fmt.Errorf("round %d: replay digest %s, live %s: the replay is wrong", round, rr.Digest, live)
		}
		res.Rounds = append(res.Rounds, r)
	}
	var base, rep []float64
	for _, r := range res.Rounds {
		base, rep = append(base, r.BaselineRate), append(rep, r.ReplayRate)
	}
	res.BaselineRate, res.ReplayRate = median(base), median(rep)
	res.Ratio = res.ReplayRate / res.BaselineRate

	fmt.Fprintf(out, "audit replay: %d events of about %d bytes (LINKS_US_EAST), medians over %d rounds\n", res.Events, res.EventBytes, o.Rounds)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "path\tevents/s\tseconds per round\t\n")
	fmt.Fprintf(tw, "JetStream ordered consumer, count only (baseline)\t%.0f\t%s\t\n", res.BaselineRate, roundSecs(res.Rounds, true))
	fmt.Fprintf(tw, "audit replay: read, decode, fold, Pebble, flush\t%.0f\t%s\t\n", res.ReplayRate, roundSecs(res.Rounds, false))
	tw.Flush()
	fmt.Fprintf(out, "\nevery replay's digest equals the live projection's\n")
	fmt.Fprintf(out, "target: replay >= 0.5x the ordered-consumer read rate: %s (%.2fx)\n", verdict(res.Ratio >= 0.5), res.Ratio)
	fmt.Fprintf(out, "machine: %s; the region (NATS server) and this process share it\n", machine(loadavg))
	return writeJSON(o.JSON, res)
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

// liveDigest asks region reg's API at base for its projection's digest of
// every link (GET /api/v1/projection/digests, with the bench key).
func liveDigest(ctx context.Context, client *http.Client, reg, base string) (string, error) {
	const path = "/api/v1/projection/digests"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Api-Key", benchKey)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("GET %s%s: status %d: %s", base, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var pd region.ProjectionDigests
	if err := json.NewDecoder(resp.Body).Decode(&pd); err != nil {
		return "", err
	}
	if pd.Region != reg {
		return "", fmt.Errorf("%s is region %q, not %q", base, pd.Region, reg)
	}
	return pd.Digests.Digest, nil
}
