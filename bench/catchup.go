package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
)

// CatchupOptions are the flags of bench catchup.
type CatchupOptions struct {
	First   int           // the regions listen on 127.0.8.First, +2 and +4 (--host)
	Events  int           // events written while ap-south is down (and messages in the baseline)
	Window  int           // unacknowledged async publishes while writing them
	Dir     string        // scratch directory (wiped)
	JSON    string        // write the results as JSON to this file, when not empty
	Timeout time.Duration // bound on the whole run
}

// Validate reports fewer than one event or window, or a first host that
// leaves no room for three regions and their global members.
func (o CatchupOptions) Validate() error {
	if o.Events < 1 || o.Window < 1 {
		return fmt.Errorf("--events and --window must be at least 1")
	}
	return validateFirstHost(o.First)
}

// Catchup runs bench catchup, bounded by o.Timeout: the table to out,
// progress to progress.
func Catchup(ctx context.Context, out, progress io.Writer, o CatchupOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return withTimeout(ctx, o.Timeout, func(ctx context.Context) error {
		return catchup(ctx, out, progress, o)
	})
}

// mirrorProgress is how a mirror caught up, timed from a start (the
// mirror's creation, or the region's restart).
type mirrorProgress struct {
	FirstMove time.Duration `json:"first_move_ns"` // start -> the mirror first held more than it had
	Done      time.Duration `json:"done_ns"`       // start -> it held the origin's last sequence
	Copied    uint64        `json:"copied"`        // events copied between first movement and done
	Rate      float64       `json:"events_per_second"`
	Errors    []string      `json:"mirror_errors,omitempty"` // as the mirror's stream info reported them meanwhile
	// LongestPause is the longest time the mirror's last sequence stood
	// still between its first movement and done: a mirror whose copy
	// stops (flow-control replies lost, say) shows it here, whatever its
	// errors say.
	LongestPause time.Duration `json:"longest_pause_ns"`
}

type catchupResult struct {
	Events         int            `json:"events"`
	EventBytes     int            `json:"event_bytes"`
	WriteRate      float64        `json:"write_events_per_second"` // appends to us-east while ap-south was down
	Baseline       mirrorProgress `json:"baseline"`
	Region         mirrorProgress `json:"region"`
	Ratio          float64        `json:"ratio"`
	ReadyAfter     time.Duration  `json:"ap_south_ready_ns"`               // restart -> /readyz 200
	ProjectionDone time.Duration  `json:"projection_done_ns"`              // restart -> checkpoint at the origin's last sequence
	ProjectionPoll time.Duration  `json:"projection_poll_ns"`              // its resolution
	ProjectionLate time.Duration  `json:"projection_after_mirror_done_ns"` // done of the mirror -> projection done
}

func catchup(ctx context.Context, out, progress io.Writer, o CatchupOptions) error {
	loadavg := readLoadavg()
	hosts := threeRegions(o.First)
	bc, err := newCluster(o.Dir, "always", hosts, progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	const usEast, apSouth = 0, 2
	fmt.Fprintf(progress, "starting us-east, eu-west, ap-south on %s, %s, %s (logs under %s/<region>/region.log)\n", hosts[0].Host, hosts[1].Host, hosts[2].Host, o.Dir)
	if err := bc.startAll(); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	// Everything goes through us-east's server, which stays up: requests
	// about ap-south's streams are answered by ap-south over the gateway.
	c, err := bc.connect(usEast)
	if err != nil {
		return err
	}
	defer c.Close()
	res := &catchupResult{Events: o.Events}

	// Baseline: JetStream's own mirror catch-up between the same servers.
	fmt.Fprintf(progress, "baseline: writing %d messages to BENCH_ORIGIN in us-east\n", o.Events)
	if _, err := c.raw.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_ORIGIN", Subjects: []string{"bench.origin.>"},
		Storage: jetstream.FileStorage, Replicas: 1, Duplicates: 2 * time.Minute, Placement: &jetstream.Placement{Cluster: "us-east"}}); err != nil {
		return fmt.Errorf("create BENCH_ORIGIN: %w", err)
	}
	signer, err := bc.signer(usEast)
	if err != nil {
		return err
	}
	if res.EventBytes, err = writeLinkEvents(ctx, c.Conn, signer, o.Events, o.Window, func(code string) string { return "bench.origin." + code }); err != nil {
		return fmt.Errorf("write BENCH_ORIGIN: %w", err)
	}
	fmt.Fprintf(progress, "baseline: creating BENCH_MIRROR in ap-south\n")
	created := time.Now()
	if _, err := c.raw.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_MIRROR", Mirror: &jetstream.StreamSource{Name: "BENCH_ORIGIN"},
		Storage: jetstream.FileStorage, Replicas: 1, Placement: &jetstream.Placement{Cluster: "ap-south"}}); err != nil {
		return fmt.Errorf("create BENCH_MIRROR: %w", err)
	}
	if res.Baseline, err = followMirror(ctx, c.raw, "BENCH_MIRROR", created, 0, uint64(o.Events), nil); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	// Gone before the kill, so that ap-south's restart recovers exactly
	// what a region has.
	for _, s := range []string{"BENCH_MIRROR", "BENCH_ORIGIN"} {
		if err := c.raw.DeleteStream(ctx, s); err != nil {
			return fmt.Errorf("delete %s: %w", s, err)
		}
	}

	origin, mirror := replicator.StreamName("us-east"), replicator.MirrorName("us-east", "ap-south")
	fmt.Fprintf(progress, "killing ap-south (SIGKILL)\n")
	if err := bc.kill(apSouth); err != nil {
		return err
	}
	// The mirror cannot move while ap-south is down: what us-east holds
	// now is the most it can have, and passing it means it has resumed.
	before, err := lastSeq(ctx, c.repl, origin)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "writing %d events to %s\n", o.Events, origin)
	wnc, err := bc.dial(usEast, secrets.RegionUser("us-east")) // only us-east's user writes its stream
	if err != nil {
		return err
	}
	defer wnc.Close()
	wstart := time.Now()
	if _, err := writeLinkEvents(ctx, wnc, signer, o.Events, o.Window, func(code string) string { return replicator.Subject("us-east", code) }); err != nil {
		return fmt.Errorf("write %s: %w", origin, err)
	}
	res.WriteRate = float64(o.Events) / time.Since(wstart).Seconds()
	target, err := lastSeq(ctx, c.repl, origin)
	if err != nil {
		return err
	}

	fmt.Fprintf(progress, "restarting ap-south; %s must go from at most #%d to #%d\n", mirror, before, target)
	restarted := time.Now()
	if err := bc.start(apSouth); err != nil {
		return err
	}
	readyc := make(chan time.Duration, 1)
	go func() {
		// Readiness is context only: the region answers before its mirrors resume.
		if bc.proc[apSouth].WaitReady(ctx, bc.url(apSouth)+"/readyz", 5*time.Minute) == nil {
			readyc <- time.Since(restarted)
		}
		close(readyc)
	}()
	if res.Region, err = followMirror(ctx, c.raw, mirror, restarted, before, target, bc.proc[apSouth].Done()); err != nil {
		return fmt.Errorf("ap-south: %w", err)
	}

	// The projection cannot be done before the mirror is, and each poll
	// computes a digest of every link: polling starts only now.
	res.ProjectionPoll = 100 * time.Millisecond
	client := &http.Client{Timeout: 5 * time.Second}
	err = poll(ctx, 5*time.Minute, res.ProjectionPoll, "ap-south's projection applied "+mirror, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, bc.url(apSouth)+"/api/v1/projection", nil)
		req.Header.Set("X-Api-Key", benchKey)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("/api/v1/projection: status %d", resp.StatusCode)
		}
		var p region.ProjectionInfo
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			return false, err
		}
		return p.Checkpoints[mirror] >= target, nil
	})
	if err != nil {
		return err
	}
	res.ProjectionDone = time.Since(restarted)
	res.ProjectionLate = res.ProjectionDone - res.Region.Done
	select {
	case res.ReadyAfter = <-readyc: // zero if it never answered
	default: // still not ready: reported as such
	}
	if res.Baseline.Rate > 0 && res.Region.Copied > 0 {
		res.Ratio = res.Region.Rate / res.Baseline.Rate // else 0: no ratio, and the verdict fails
	}

	sec := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	fmt.Fprintf(out, "mirror catch-up: %d events of %d bytes, us-east -> ap-south, fsync always\n", o.Events, res.EventBytes)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mirror\tfrom\tfirst moved after\tcomplete after\tcopied after first move\tevents/s\tlongest pause\t\n")
	fmt.Fprintf(tw, "BENCH_MIRROR (new mirror, baseline)\tcreation\t%s\t%s\t%d\t%.0f\t%s\t\n", sec(res.Baseline.FirstMove), sec(res.Baseline.Done), res.Baseline.Copied, res.Baseline.Rate, sec(res.Baseline.LongestPause))
	fmt.Fprintf(tw, "%s (restarted region)\trestart\t%s\t%s\t%d\t%.0f\t%s\t\n", mirror, sec(res.Region.FirstMove), sec(res.Region.Done), res.Region.Copied, res.Region.Rate, sec(res.Region.LongestPause))
	tw.Flush()
	fmt.Fprintf(out, "\nap-south after its restart: /readyz 200 at %s; mirror resumed (resume delay) at %s; complete at %s; projection applied everything at %s (%s after the mirror; polled every %s)\n",
		durOrNotYet(res.ReadyAfter), sec(res.Region.FirstMove), sec(res.Region.Done), sec(res.ProjectionDone), sec(res.ProjectionLate), res.ProjectionPoll)
	for _, m := range []struct {
		name string
		p    mirrorProgress
	}{{"BENCH_MIRROR", res.Baseline}, {mirror, res.Region}} {
		if len(m.p.Errors) > 0 {
			fmt.Fprintf(out, "%s reported while catching up: %s\n", m.name, strings.Join(m.p.Errors, "; "))
		}
	}
	fmt.Fprintf(out, "events were written to us-east at %.0f/s while ap-south was down\n", res.WriteRate)
	fmt.Fprintf(out, "\ntarget: region catch-up rate >= 0.5x JetStream mirror baseline: %s (%.2fx)\n", verdict(catchupPasses(*res)), res.Ratio)
	fmt.Fprintf(out, "machine: %s; three regions and the benchmark share it\n", machine(loadavg))
	return writeJSON(o.JSON, res)
}

func durOrNotYet(d time.Duration) string {
	if d == 0 {
		return "not yet"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// followMirror polls a mirror's last sequence every 10 ms from start until
// it reaches target, and times its first movement beyond from and its
// completion. Polls fail while the mirror's server is starting: that is
// part of the delay. exited, when not nil, ends the wait if the region
// holding the mirror exits.
func followMirror(ctx context.Context, js jetstream.JetStream, mirror string, start time.Time, from, target uint64, exited <-chan struct{}) (mirrorProgress, error) {
	var p mirrorProgress
	var firstSeq, lastSeen uint64
	var firstAt, movedAt time.Time
	err := poll(ctx, 5*time.Minute, 10*time.Millisecond, mirror+" reached #"+fmt.Sprint(target), func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, pollStop{fmt.Errorf("the region holding %s exited", mirror)}
		default:
		}
		s, err := js.Stream(ctx, mirror)
		if err != nil {
			return false, err
		}
		info := s.CachedInfo()
		if info.Mirror != nil && info.Mirror.Error != nil && !slices.Contains(p.Errors, info.Mirror.Error.Description) {
			p.Errors = append(p.Errors, info.Mirror.Error.Description)
		}
		seq, now := info.State.LastSeq, time.Now()
		if seq > from && firstAt.IsZero() {
			firstSeq, firstAt = seq, now
			p.FirstMove = now.Sub(start)
		}
		if !firstAt.IsZero() {
			if seq > lastSeen {
				lastSeen, movedAt = seq, now
			}
			p.LongestPause = max(p.LongestPause, now.Sub(movedAt))
		}
		if seq < target {
			return false, nil
		}
		p.Done = now.Sub(start)
		p.Copied = target - firstSeq
		if d := now.Sub(firstAt); d > 0 {
			p.Rate = float64(p.Copied) / d.Seconds()
		}
		return true, nil
	})
	return p, err
}

// catchupPasses is the verdict: both mirrors copied something, and the
// region at least half as fast as the baseline. Nothing measured fails.
func catchupPasses(r catchupResult) bool {
	return r.Baseline.Copied > 0 && r.Region.Copied > 0 && r.Baseline.Rate > 0 && r.Ratio >= 0.5
}
