package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/chaos/load"
	"shortener/events"
	"shortener/replicator"
)

// The replication-lag target of issue 3: p99 under lagTarget at
// lagTargetRate creates per second.
const (
	lagTarget     = 100 * time.Millisecond
	lagTargetRate = 500
)

// ReplicationOptions are the flags of bench replication.
type ReplicationOptions struct {
	Rates    []float64     // total creates per second, one measurement each
	Duration time.Duration // duration of each rate
	Workers  int           // concurrent requests of the load generator
	Dir      string        // scratch directory (wiped)
	JSON     string        // write the results as JSON to this file, when not empty
	SVG      string        // write the lag over time as SVG to this file (default <Dir>/lag.svg)
	Timeout  time.Duration // bound on the whole run
	// Plaintext runs the regions on open, plaintext NATS: the baseline of
	// what TLS and authentication cost the lag.
	Plaintext bool
}

// Validate reports no rate, a rate or a duration that is not positive.
func (o ReplicationOptions) Validate() error {
	if len(o.Rates) == 0 {
		return fmt.Errorf("--rates needs at least one rate")
	}
	if o.Duration <= 0 {
		return fmt.Errorf("--duration: %s is not a positive duration", o.Duration)
	}
	for _, r := range o.Rates {
		if r <= 0 {
			return fmt.Errorf("--rates: %v is not a positive rate", r)
		}
	}
	return nil
}

// Replication runs bench replication, bounded by o.Timeout: the table to
// out, progress to progress, the picture to o.SVG.
func Replication(ctx context.Context, out, progress io.Writer, o ReplicationOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return withTimeout(ctx, o.Timeout, func(ctx context.Context) error {
		return replication(ctx, out, progress, o)
	})
}

// replicationResult is one rate's measurement (the JSON file).
type replicationResult struct {
	Rate       float64       `json:"rate"`
	Acked      int64         `json:"creates_acked"`
	Failed     int64         `json:"creates_failed"`
	Missed     int64         `json:"creates_missed"`
	CreateP50  time.Duration `json:"create_p50_ns"`
	CreateP99  time.Duration `json:"create_p99_ns"`
	MirrorSeen int           `json:"events_seen_in_mirrors"`
	Drained    bool          `json:"mirrors_drained"` // every mirror delivered up to its origin's last sequence
	LagP50     time.Duration `json:"lag_p50_ns"`
	LagP90     time.Duration `json:"lag_p90_ns"`
	LagP99     time.Duration `json:"lag_p99_ns"`
	LagMax     time.Duration `json:"lag_max_ns"`

	samples []lagSample // for the picture
}

func replication(ctx context.Context, out, progress io.Writer, o ReplicationOptions) error {
	loadavg := readLoadavg()
	bc, err := newCluster(o.Dir, "always", threeRegions(1), progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	bc.plaintext = o.Plaintext
	fmt.Fprintf(progress, "starting us-east, eu-west, ap-south on 127.0.8.1/.3/.5 (logs under %s/<region>/region.log)\n", o.Dir)
	if err := bc.startAll(); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	ready := time.Now()
	if err := bc.waitMirrorsLive(ctx); err != nil {
		return err
	}
	liveAfter := time.Since(ready)
	fmt.Fprintf(progress, "every mirror live %.1f s after the regions were ready\n", liveAfter.Seconds())

	// One connection per region: each mirror is consumed from the server
	// that holds it, so delivery adds no gateway hop.
	lags := newMirrorLag()
	var mirrors []string
	origins := map[string]string{} // mirror -> origin stream
	conns := make([]*conn, len(bc.regions))
	for i, here := range bc.regions {
		c, err := bc.connect(i)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
		for _, origin := range bc.regions {
			if origin.Name == here.Name {
				continue
			}
			name := replicator.MirrorName(origin.Name, here.Name)
			cons, err := c.raw.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
			if err != nil {
				return fmt.Errorf("consumer on %s: %w", name, err)
			}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				at := time.Now()
				md, err := m.Metadata()
				if err != nil {
					return
				}
				env, err := events.Decode(m.Data())
				isEvent := err == nil && env.Type != events.TypeRegionHeartbeat
				lags.record(name, md.Sequence.Stream, at, at.Sub(env.Time), isEvent)
			})
			if err != nil {
				return fmt.Errorf("consume %s: %w", name, err)
			}
			defer cc.Stop()
			mirrors = append(mirrors, name)
			origins[name] = replicator.StreamName(origin.Name)
		}
	}
	fmt.Fprintf(progress, "subscribed to %d mirrors\n", len(mirrors))

	var targets []load.Target
	for i, r := range bc.regions {
		targets = append(targets, load.Target{Name: r.Name, BaseURL: bc.url(i)})
	}
	var results []*replicationResult
	for n, rate := range o.Rates {
		fmt.Fprintf(progress, "%.0f creates/s for %s over 3 regions\n", rate, o.Duration)
		lags.reset() // whatever arrived between measurements (heartbeats) is not counted
		rep, err := load.Run(ctx, load.Config{Targets: targets, Rate: rate, Duration: o.Duration, Workers: o.Workers,
			CreateRatio: 1, APIKey: benchKey, Seed: int64(n + 1)})
		if err != nil {
			return err
		}
		// Wait until every mirror has delivered what its origin held when
		// the load ended, so no event of this rate is counted in the next.
		want := map[string]uint64{}
		for _, m := range mirrors {
			seq, err := lastSeq(ctx, conns[0].repl, origins[m])
			if err != nil {
				return fmt.Errorf("origin of %s: %w", m, err)
			}
			want[m] = seq
		}
		drainErr := poll(ctx, 30*time.Second, 20*time.Millisecond, "mirrors delivered every event", func(context.Context) (bool, error) {
			for _, m := range mirrors {
				if lags.seen(m) < want[m] {
					return false, fmt.Errorf("%s delivered up to #%d of #%d", m, lags.seen(m), want[m])
				}
			}
			return true, nil
		})
		if ctx.Err() != nil {
			return drainErr
		}
		samples := lags.reset()
		ds := make([]time.Duration, len(samples))
		for i, s := range samples {
			ds[i] = s.Lag
		}
		q := quantiles(ds, 0.5, 0.9, 0.99, 1)
		r := &replicationResult{Rate: rate, Acked: rep.Total.OK, Failed: rep.Total.Failed, Missed: rep.Total.Missed,
			CreateP50: rep.Total.P50, CreateP99: rep.Total.P99, MirrorSeen: len(ds), Drained: drainErr == nil,
			LagP50: q[0], LagP90: q[1], LagP99: q[2], LagMax: q[3], samples: samples}
		if drainErr != nil {
			fmt.Fprintf(progress, "  %v\n", drainErr)
		}
		results = append(results, r)
	}

	security := "NATS with TLS on every listener and nkey users"
	if o.Plaintext {
		security = "NATS open and plaintext (--plaintext)"
	}
	fmt.Fprintf(out, "replication lag: 3 regions, fsync always, %s, creates spread round-robin, %s per rate\n", security, o.Duration)
	fmt.Fprintf(out, "lag = delivery from a mirror to this process - the event's producer time\n")
	fmt.Fprintf(out, "every mirror was live %.1f s after the regions were ready; the load started then\n", liveAfter.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate/s\tacked\tfailed\tmissed\tcreate p50\tcreate p99\tin mirrors\tx acked\tlag p50\tp90\tp99\tmax\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%.0f\t%d\t%d\t%d\t%s\t%s\t%d\t%.3f\t%s\t%s\t%s\t%s\t\n", r.Rate, r.Acked, r.Failed, r.Missed,
			fmtMS(r.CreateP50), fmtMS(r.CreateP99), r.MirrorSeen, float64(r.MirrorSeen)/float64(max(1, r.Acked)),
			fmtMS(r.LagP50), fmtMS(r.LagP90), fmtMS(r.LagP99), fmtMS(r.LagMax))
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, r := range results {
		switch {
		case !r.Drained:
			fmt.Fprintf(out, "at %.0f/s: the mirrors did NOT deliver everything within 30 s after the load: %d of %d expected events seen\n", r.Rate, r.MirrorSeen, 2*r.Acked)
		case int64(r.MirrorSeen) != 2*r.Acked:
			// A create that timed out or failed on the client may still
			// have been appended: it replicates without being acked.
			fmt.Fprintf(out, "at %.0f/s: %d events in the mirrors, not 2 x %d acked creates (%+d; %d creates failed on the client)\n",
				r.Rate, r.MirrorSeen, r.Acked, int64(r.MirrorSeen)-2*r.Acked, r.Failed)
		default:
			fmt.Fprintf(out, "at %.0f/s: every acked create seen in both other regions' mirrors (%d = 2 x %d)\n", r.Rate, r.MirrorSeen, r.Acked)
		}
	}
	measured := false
	for _, r := range results {
		if r.Rate == lagTargetRate {
			measured = true
			fmt.Fprintf(out, "\ntarget: replication lag p99 < %s at %d/s: %s (%s)\n", lagTarget, lagTargetRate, verdict(r.Drained && r.Acked > 0 && r.MirrorSeen > 0 && r.LagP99 < lagTarget), fmtMS(r.LagP99))
		}
	}
	if !measured {
		fmt.Fprintf(out, "\ntarget: replication lag p99 < %s at %d/s: not measured (%d is not in --rates)\n", lagTarget, lagTargetRate, lagTargetRate)
	}
	fmt.Fprintf(out, "machine: %s; regions, load generator and consumers share it\n", machine(loadavg))
	svgPath := o.SVG
	if svgPath == "" {
		svgPath = filepath.Join(o.Dir, "lag.svg")
	}
	if err := os.WriteFile(svgPath, lagSVG(results, mirrors, o.Duration), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "lag over time: %s\n", svgPath)
	return writeJSON(o.JSON, results)
}

// mirrorLag records, for the events of one measurement, the time from each
// event's producer time to its delivery from a mirror to this process, and
// when in the measurement it arrived (for the lag-over-time picture).
type mirrorLag struct {
	mu      sync.Mutex
	start   time.Time
	samples []lagSample
	lastSeq map[string]uint64 // per mirror, the last stream sequence delivered (heartbeats too)
}

// lagSample is one event delivered from one mirror.
type lagSample struct {
	Mirror string
	At     time.Duration // delivery time since the measurement began
	Lag    time.Duration
}

func newMirrorLag() *mirrorLag {
	return &mirrorLag{start: time.Now(), lastSeq: map[string]uint64{}}
}

func (m *mirrorLag) record(mirror string, seq uint64, at time.Time, lag time.Duration, isEvent bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.lastSeq[mirror] {
		return // a redelivery after an ordered consumer reset
	}
	m.lastSeq[mirror] = seq
	if isEvent {
		m.samples = append(m.samples, lagSample{Mirror: mirror, At: at.Sub(m.start), Lag: lag})
	}
}

// reset starts a new measurement now and returns the samples of the one
// before.
func (m *mirrorLag) reset() []lagSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.samples
	m.samples = nil
	m.start = time.Now()
	return out
}

func (m *mirrorLag) seen(mirror string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq[mirror]
}
