package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/chaos/load"
	"shortener/events"
	"shortener/procs"
	"shortener/replicator"
)

// CreateOptions are the flags of bench create.
type CreateOptions struct {
	Duration time.Duration // duration of each measurement
	Workers  int           // concurrent HTTP creates, and concurrent publishers
	Rounds   int           // rounds, each HTTP then raw publish
	Fsync    string        // JetStream fsync of the region: always or interval
	Dir      string        // scratch directory (wiped)
	JSON     string        // write the results as JSON to this file, when not empty
	Timeout  time.Duration // bound on the whole run
}

// Validate reports an fsync policy replicator does not know, or fewer than
// one round or worker.
func (o CreateOptions) Validate() error {
	if _, err := replicator.ParseFsync(o.Fsync); err != nil {
		return err
	}
	if o.Rounds < 1 || o.Workers < 1 {
		return fmt.Errorf("--rounds and --workers must be at least 1")
	}
	return nil
}

// Create runs bench create, bounded by o.Timeout: the table to out,
// progress to progress.
func Create(ctx context.Context, out, progress io.Writer, o CreateOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return withTimeout(ctx, o.Timeout, func(ctx context.Context) error {
		return create(ctx, out, progress, o)
	})
}

// createRun is one measurement of either path.
type createRun struct {
	OK      int64         `json:"ok"`
	Failed  int64         `json:"failed"`
	Elapsed time.Duration `json:"elapsed_ns"`
	PerSec  float64       `json:"per_second"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
}

type createResult struct {
	Fsync        string      `json:"fsync"`
	Workers      int         `json:"workers"`
	Duration     string      `json:"duration"`
	PayloadBytes int         `json:"payload_bytes"`
	HTTP         []createRun `json:"http_rounds"`
	Plain        []createRun `json:"http_plaintext_rounds"` // the same region on open, plaintext NATS
	Raw          []createRun `json:"raw_rounds"`
	HTTPPerSec   float64     `json:"http_creates_per_second"` // medians
	PlainPerSec  float64     `json:"http_plaintext_creates_per_second"`
	RawPerSec    float64     `json:"raw_publishes_per_second"`
	Ratio        float64     `json:"ratio"`
	SecureRatio  float64     `json:"secure_over_plaintext"`
}

func create(ctx context.Context, out, progress io.Writer, o CreateOptions) error {
	loadavg := readLoadavg()
	bc, err := newCluster(o.Dir, o.Fsync, []procs.Region{{Name: "us-east", Digit: '1', Host: "127.0.7.1"}}, progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	fmt.Fprintf(progress, "starting us-east on 127.0.7.1 (fsync %s; log %s)\n", o.Fsync, bc.logPath(0))
	if err := bc.start(0); err != nil {
		return err
	}
	// The same region on open, plaintext NATS, beside it: what TLS and
	// authentication cost.
	pc, err := newCluster(o.Dir+"-plaintext", o.Fsync, []procs.Region{{Name: "us-east", Digit: '1', Host: "127.0.7.3"}}, progress)
	if err != nil {
		return err
	}
	defer pc.stop()
	pc.plaintext = true
	fmt.Fprintf(progress, "starting us-east on plaintext NATS on 127.0.7.3 (log %s)\n", pc.logPath(0))
	if err := pc.start(0); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	if err := pc.waitAllReady(ctx); err != nil {
		return err
	}
	c, err := bc.connect(0)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.raw.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw.>"},
		Storage: jetstream.FileStorage, Replicas: 1, Duplicates: 2 * time.Minute, // the duplicate window of LINKS_*
		Placement: &jetstream.Placement{Cluster: "us-east"}})
	if err != nil {
		return fmt.Errorf("create BENCH_RAW: %w", err)
	}

	httpRun := func(c *cluster, d time.Duration, seed int64) (createRun, error) {
		target := []load.Target{{Name: "us-east", BaseURL: c.url(0)}}
		rep, err := load.Run(ctx, load.Config{Targets: target, Rate: 0, Duration: d, Workers: o.Workers,
			CreateRatio: 1, APIKey: benchKey, Seed: seed})
		if err != nil {
			return createRun{}, err
		}
		return createRun{OK: rep.Total.OK, Failed: rep.Total.Failed + rep.Total.Missed, Elapsed: rep.Duration,
			PerSec: float64(rep.Total.OK) / rep.Duration.Seconds(), P50: rep.Total.P50, P99: rep.Total.P99}, nil
	}

	// Warm up the HTTP path (connections, Pebble, caches); then take the
	// raw payload's size from a LinkCreated the region actually stored.
	fmt.Fprintf(progress, "warm-up: HTTP creates for 1s\n")
	if _, err := httpRun(bc, time.Second, 100); err != nil {
		return err
	}
	if _, err := httpRun(pc, time.Second, 100); err != nil {
		return err
	}
	size, err := storedCreateSize(ctx, c.repl)
	if err != nil {
		return err
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	fmt.Fprintf(progress, "warm-up: raw publish of %d-byte payloads for 1s\n", size)
	if _, err := rawPublish(ctx, c.raw, o.Workers, time.Second, payload); err != nil {
		return err
	}

	res := &createResult{Fsync: o.Fsync, Workers: o.Workers, Duration: o.Duration.String(), PayloadBytes: size}
	for round := 1; round <= o.Rounds; round++ {
		fmt.Fprintf(progress, "round %d/%d: HTTP creates, %d workers, %s\n", round, o.Rounds, o.Workers, o.Duration)
		h, err := httpRun(bc, o.Duration, int64(round))
		if err != nil {
			return err
		}
		res.HTTP = append(res.HTTP, h)
		fmt.Fprintf(progress, "round %d/%d: HTTP creates on plaintext NATS, %d workers, %s\n", round, o.Rounds, o.Workers, o.Duration)
		p, err := httpRun(pc, o.Duration, int64(round))
		if err != nil {
			return err
		}
		res.Plain = append(res.Plain, p)
		fmt.Fprintf(progress, "round %d/%d: raw JetStream publish, %d publishers, %s\n", round, o.Rounds, o.Workers, o.Duration)
		r, err := rawPublish(ctx, c.raw, o.Workers, o.Duration, payload)
		if err != nil {
			return err
		}
		res.Raw = append(res.Raw, r)
	}

	perSec := func(rs []createRun) []float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, r.PerSec)
		}
		return xs
	}
	msOf := func(rs []createRun, p99 bool) []float64 {
		var xs []float64
		for _, r := range rs {
			d := r.P50
			if p99 {
				d = r.P99
			}
			xs = append(xs, float64(d)/1e6)
		}
		return xs
	}
	failed := func(rs []createRun) (n int64) {
		for _, r := range rs {
			n += r.Failed
		}
		return n
	}
	res.HTTPPerSec, res.RawPerSec, res.PlainPerSec = median(perSec(res.HTTP)), median(perSec(res.Raw)), median(perSec(res.Plain))
	res.Ratio = res.HTTPPerSec / res.RawPerSec
	res.SecureRatio = res.HTTPPerSec / res.PlainPerSec
	if res.HTTPPerSec == 0 || res.PlainPerSec == 0 || res.RawPerSec == 0 {
		return fmt.Errorf("a path made no successful operation (HTTP %v, plaintext %v, raw %v per second): no verdict", res.HTTPPerSec, res.PlainPerSec, res.RawPerSec)
	}

	fmt.Fprintf(out, "create throughput: fsync %s, %d workers, %s per measurement, medians of %d rounds (HTTP and raw alternating)\n",
		o.Fsync, o.Workers, o.Duration, o.Rounds)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "path\tper second\tp50\tp99\tfailed\t\n")
	fmt.Fprintf(tw, "HTTP create (region)\t%.0f\t%.2fms\t%.2fms\t%d\t\n", res.HTTPPerSec, median(msOf(res.HTTP, false)), median(msOf(res.HTTP, true)), failed(res.HTTP))
	fmt.Fprintf(tw, "HTTP create (region, plaintext NATS)\t%.0f\t%.2fms\t%.2fms\t%d\t\n", res.PlainPerSec, median(msOf(res.Plain, false)), median(msOf(res.Plain, true)), failed(res.Plain))
	fmt.Fprintf(tw, "raw JetStream sync publish\t%.0f\t%.2fms\t%.2fms\t%d\t\n", res.RawPerSec, median(msOf(res.Raw, false)), median(msOf(res.Raw, true)), failed(res.Raw))
	tw.Flush()
	fmt.Fprintf(out, "\nrounds, per second in run order: HTTP %v, HTTP plaintext %v, raw %v\n", roundAll(perSec(res.HTTP), 0), roundAll(perSec(res.Plain), 0), roundAll(perSec(res.Raw), 0))
	fmt.Fprintf(out, "raw payload: %d bytes (a LinkCreated envelope as the region stored it), one subject and Nats-Msg-Id per message\n", size)
	fmt.Fprintf(out, "\ntarget: HTTP creates >= 0.5x raw publish: %s (%.2fx)\n", verdict(res.Ratio >= 0.5), res.Ratio)
	fmt.Fprintf(out, "target: HTTP creates with TLS and authentication >= 0.9x plaintext NATS: %s (%.2fx)\n", verdict(res.SecureRatio >= 0.9), res.SecureRatio)
	fmt.Fprintf(out, "machine: %s; region and load generator share it, not pinned\n", machine(loadavg))
	return writeJSON(o.JSON, res)
}

// storedCreateSize returns the size of the newest LinkCreated envelope
// among the last 100 events of us-east's stream (heartbeats are skipped).
func storedCreateSize(ctx context.Context, c *replicator.Conn) (int, error) {
	stream := replicator.StreamName("us-east")
	st, err := c.State(ctx, stream)
	if err != nil {
		return 0, err
	}
	if st.LastSeq == 0 {
		return 0, fmt.Errorf("%s is empty", stream)
	}
	size := 0
	from := max(st.LastSeq, 100) - 99
	err = replicator.Read(ctx, c, stream, replicator.ReadOptions{From: from, To: st.LastSeq}, func(recs []events.Record) error {
		for _, r := range recs {
			if env, err := events.Decode(r.Data); err == nil && env.Type == events.TypeLinkCreated {
				size = len(r.Data)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if size == 0 {
		return 0, fmt.Errorf("no LinkCreated among the last 100 events of %s", stream)
	}
	return size, nil
}

// rawPublish runs workers goroutines, each publishing payload synchronously
// to BENCH_RAW for d. Like a create, every message has its own subject
// (the stream tracks one more subject) and a UUIDv7 Nats-Msg-Id (the
// stream checks it against its duplicate window).
func rawPublish(ctx context.Context, js jetstream.JetStream, workers int, d time.Duration, payload []byte) (createRun, error) {
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			var mine []time.Duration
			var bad int64
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					break
				}
				pctx, cancel := context.WithTimeout(ctx, load.DefaultTimeout)
				_, err := js.Publish(pctx, "bench.raw."+events.NewCode('1'), payload, jetstream.WithMsgID(events.NewID(t)))
				cancel()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return createRun{}, err
	}
	elapsed := time.Since(start)
	q := quantiles(lat, 0.5, 0.99)
	return createRun{OK: int64(len(lat)), Failed: failed, Elapsed: elapsed,
		PerSec: float64(len(lat)) / elapsed.Seconds(), P50: q[0], P99: q[1]}, nil
}
