package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"shortener/chaos/load"
)

// RestartOptions are the flags of bench restart.
type RestartOptions struct {
	First    int           // the regions listen on 127.0.8.First, +2 and +4 (--host)
	Restarts int           // SIGKILL-and-start cycles of ap-south
	Rate     float64       // creates and redirects per second on us-east and eu-west meanwhile
	Down     time.Duration // how long ap-south stays down before each start
	Dir      string        // scratch directory (wiped)
	JSON     string        // write the results as JSON to this file, when not empty
	Timeout  time.Duration // bound on the whole run
}

// restartTarget is the median time from a region's process start to its
// /readyz 200 that the benchmark checks (issue 22).
const restartTarget = 3 * time.Second

// Validate reports fewer than one restart, a rate that is not positive, or
// a first host that leaves no room for three regions and their global
// members.
func (o RestartOptions) Validate() error {
	if o.Restarts < 1 {
		return fmt.Errorf("--restarts must be at least 1")
	}
	if o.Rate <= 0 {
		return fmt.Errorf("--rate must be positive")
	}
	if o.Down < 0 || o.Timeout <= 0 {
		return fmt.Errorf("--down must not be negative, and --timeout must be positive")
	}
	return validateFirstHost(o.First)
}

// Restart runs bench restart, bounded by o.Timeout: the table to out,
// progress to progress.
func Restart(ctx context.Context, out, progress io.Writer, o RestartOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	return withTimeout(ctx, o.Timeout, func(ctx context.Context) error {
		return restart(ctx, out, progress, o)
	})
}

type restartResult struct {
	Rate  float64         `json:"load_ops_per_second"`
	Down  time.Duration   `json:"down_ns"`  // how long ap-south stayed down each time
	Ready []time.Duration `json:"ready_ns"` // per restart: process start -> /readyz 200
	// Live is, per restart, process start -> every mirror live in every
	// region again, the others' mirrors of ap-south included (context:
	// those resume on nats-server's own stall check, not at the restart).
	Live     []time.Duration `json:"mirrors_live_ns"`
	Median   time.Duration   `json:"median_ns"`
	Max      time.Duration   `json:"max_ns"`
	Target   time.Duration   `json:"target_ns"`
	Met      bool            `json:"target_met"`
	LoadOK   int64           `json:"load_ok"`
	LoadFail int64           `json:"load_failed"`
}

func restart(ctx context.Context, out, progress io.Writer, o RestartOptions) error {
	loadavg := readLoadavg()
	hosts := threeRegions(o.First)
	bc, err := newCluster(o.Dir, "always", hosts, progress)
	if err != nil {
		return err
	}
	defer bc.stop()
	const apSouth = 2
	fmt.Fprintf(progress, "starting us-east, eu-west, ap-south on %s, %s, %s (logs under %s/<region>/region.log)\n", hosts[0].Host, hosts[1].Host, hosts[2].Host, o.Dir)
	if err := bc.startAll(); err != nil {
		return err
	}
	if err := bc.waitAllReady(ctx); err != nil {
		return err
	}
	if err := bc.waitMirrorsLive(ctx); err != nil {
		return err
	}

	// The load goes to the regions that stay up, so that every restart has
	// events written meanwhile to catch up with; it runs until the last
	// restart is measured.
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type loadDone struct {
		rep *load.Report
		err error
	}
	loadc := make(chan loadDone, 1)
	go func() {
		rep, err := load.Run(lctx, load.Config{Targets: []load.Target{{Name: hosts[0].Name, BaseURL: bc.url(0)}, {Name: hosts[1].Name, BaseURL: bc.url(1)}},
			Rate: o.Rate, Duration: o.Timeout, Workers: 16, CreateRatio: 0.5, APIKey: benchKey, Seed: 1})
		loadc <- loadDone{rep, err}
	}()

	res := &restartResult{Rate: o.Rate, Down: o.Down, Target: restartTarget}
	for n := 1; n <= o.Restarts; n++ {
		fmt.Fprintf(progress, "restart %d of %d: SIGKILL ap-south, then start it with the same arguments\n", n, o.Restarts)
		if err := bc.kill(apSouth); err != nil {
			return err
		}
		if o.Down > 0 {
			fmt.Fprintf(progress, "  down for %s\n", o.Down)
			select {
			case <-time.After(o.Down):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		started := time.Now()
		if err := bc.start(apSouth); err != nil {
			return err
		}
		if err := bc.waitReady(ctx, apSouth); err != nil {
			return err
		}
		d := time.Since(started)
		res.Ready = append(res.Ready, d)
		fmt.Fprintf(progress, "  ready %.2fs after its start\n", d.Seconds())
		// The next restart starts from a running cluster: every mirror,
		// the others' of ap-south included, copying again.
		if err := bc.waitMirrorsLive(ctx); err != nil {
			return err
		}
		res.Live = append(res.Live, time.Since(started))
	}
	stopLoad()
	if ld := <-loadc; ld.err != nil && !errors.Is(ld.err, context.Canceled) {
		return fmt.Errorf("load: %w", ld.err)
	} else if ld.rep != nil {
		res.LoadOK, res.LoadFail = ld.rep.Total.OK, ld.rep.Total.Failed
	}
	if res.Median, res.Max, res.Met, err = restartVerdict(res.Ready); err != nil {
		return err
	}

	sec := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	fmt.Fprintf(out, "restart to ready: ap-south SIGKILLed, down %s, and started again %d times, %.0f ops/s (half creates) on us-east and eu-west, fsync always\n", o.Down, len(res.Ready), o.Rate)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "restart\tprocess start -> /readyz 200\t-> every mirror live again\t\n")
	for i, d := range res.Ready {
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", i+1, sec(d), sec(res.Live[i]))
	}
	tw.Flush()
	fmt.Fprintf(out, "median %s, max %s; load %d ok, %d failed\n", sec(res.Median), sec(res.Max), res.LoadOK, res.LoadFail)
	fmt.Fprintf(out, "\ntarget: median restart to ready <= %s: %s (%s)\n", sec(restartTarget), verdict(res.Met), sec(res.Median))
	fmt.Fprintf(out, "machine: %s; three regions and the benchmark share it\n", machine(loadavg))
	return writeJSON(o.JSON, res)
}

// restartVerdict is the median and the maximum of the times to ready, and
// whether the median meets restartTarget; no times at all is an error,
// never a verdict.
func restartVerdict(ready []time.Duration) (median, longest time.Duration, met bool, err error) {
	if len(ready) == 0 {
		return 0, 0, false, errors.New("no restart was measured")
	}
	q := quantiles(append([]time.Duration(nil), ready...), 0.5, 1)
	return q[0], q[1], q[0] <= restartTarget, nil
}
