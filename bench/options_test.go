package bench

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"shortener/events"
	"shortener/replicator"
)

// TestValidate feeds every benchmark's options what its flags could give
// and checks which are refused (the command turns those into exit status 2).
func TestValidate(t *testing.T) {
	replayer := func(context.Context, *replicator.Conn, string, uint64, *events.KeyRing, string, io.Writer) (Replayed, error) {
		return Replayed{}, nil
	}
	for _, tc := range []struct {
		name    string
		o       interface{ Validate() error }
		wantErr string // "" for valid
	}{
		{"redirect", redirectOK(func(*RedirectOptions) {}), ""},
		{"redirect variants", redirectOK(func(o *RedirectOptions) { o.Variants = []string{"gc=GOGC=400", "prof=--cpu-profile=/tmp/r.prof"} }), ""},
		{"redirect variant without =", redirectOK(func(o *RedirectOptions) { o.Variants = []string{"GOGC"} }), `--variant "GOGC"`},
		{"redirect variant without name", redirectOK(func(o *RedirectOptions) { o.Variants = []string{"=GOGC=1"} }), `want NAME=ENV`},
		{"redirect variant named clicks-off", redirectOK(func(o *RedirectOptions) { o.Variants = []string{"clicks-off=--no-clicks"} }), "always run"},
		{"redirect variant twice", redirectOK(func(o *RedirectOptions) { o.Variants = []string{"a=GOGC=1", "a=GOGC=2"} }), "is taken"},
		{"redirect no fixed rate", redirectOK(func(o *RedirectOptions) { o.FixedRates, o.VerdictRates = nil, nil }), "--fixed-rates needs"},
		{"redirect zero rate", redirectOK(func(o *RedirectOptions) { o.FixedRates = []float64{2000, 0} }), "--fixed-rates: 0"},
		{"redirect rate twice", redirectOK(func(o *RedirectOptions) { o.FixedRates = []float64{2000, 2000} }), "twice"},
		{"redirect verdict rate not measured", redirectOK(func(o *RedirectOptions) { o.VerdictRates = []float64{5000} }), "--verdict-rates: 5000"},
		{"redirect no rounds", redirectOK(func(o *RedirectOptions) { o.Rounds = 0 }), "--links, --rounds and --workers"},
		{"redirect no links", redirectOK(func(o *RedirectOptions) { o.Links = 0 }), "--links, --rounds and --workers"},
		{"redirect no peak", redirectOK(func(o *RedirectOptions) { o.Peak = 0 }), "--peak and --fixed"},
		{"create", CreateOptions{Fsync: "always", Rounds: 1, Workers: 1}, ""},
		{"create unknown fsync", CreateOptions{Fsync: "never", Rounds: 1, Workers: 1}, "never"},
		{"create no rounds", CreateOptions{Fsync: "interval", Workers: 1}, "--rounds and --workers"},
		{"create no workers", CreateOptions{Fsync: "interval", Rounds: 1}, "--rounds and --workers"},
		{"replication", ReplicationOptions{Rates: []float64{500}, Duration: time.Second}, ""},
		{"replication no rate", ReplicationOptions{Duration: time.Second}, "--rates needs at least one rate"},
		{"replication zero rate", ReplicationOptions{Rates: []float64{500, 0}, Duration: time.Second}, "--rates: 0"},
		{"replication zero duration", ReplicationOptions{Rates: []float64{500}}, "--duration"},
		{"catchup", CatchupOptions{First: 11, Events: 1, Window: 1}, ""},
		{"catchup no events", CatchupOptions{First: 11, Window: 1}, "--events and --window"},
		{"catchup host 0", CatchupOptions{Events: 1, Window: 1}, "--host"},
		{"catchup host 250", CatchupOptions{First: 250, Events: 1, Window: 1}, "--host"},
		{"restart", RestartOptions{First: 21, Restarts: 5, Rate: 50, Timeout: time.Minute}, ""},
		{"restart no timeout", RestartOptions{First: 21, Restarts: 5, Rate: 50}, "--timeout"},
		{"restart no restarts", RestartOptions{First: 21, Rate: 50}, "--restarts"},
		{"restart no rate", RestartOptions{First: 21, Restarts: 5}, "--rate"},
		{"restart host 250", RestartOptions{First: 250, Restarts: 5, Rate: 50, Timeout: time.Minute}, "--host"},
		{"replay", ReplayOptions{Events: 1, Rounds: 1, Window: 1, Replay: replayer}, ""},
		{"replay no rounds", ReplayOptions{Events: 1, Window: 1, Replay: replayer}, "--events, --rounds and --window"},
		{"replay nothing to measure", ReplayOptions{Events: 1, Rounds: 1, Window: 1}, "no replay"},
	} {
		err := tc.o.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestRestartVerdict: the median and maximum of the restarts, the target
// judged on the median, and no verdict at all without a restart.
func TestRestartVerdict(t *testing.T) {
	s := time.Second
	if _, _, _, err := restartVerdict(nil); err == nil {
		t.Fatal("no restarts measured: a verdict, want an error")
	}
	med, longest, met, err := restartVerdict([]time.Duration{4 * s, 2 * s, 3 * s, 9 * s, 1 * s})
	if err != nil || med != 3*s || longest != 9*s || !met {
		t.Fatalf("got median %s, max %s, met %t, %v; want 3s, 9s, true", med, longest, met, err)
	}
	if _, _, met, _ := restartVerdict([]time.Duration{4 * s, 2 * s, 5 * s}); met {
		t.Fatal("median 4s: target met, want missed")
	}
}

// TestQuantilesOfNothing: no samples give zero quantiles, never a panic;
// the verdicts that use them check for samples themselves.
func TestQuantilesOfNothing(t *testing.T) {
	for _, q := range quantiles(nil, 0.5, 0.99, 1) {
		if q != 0 {
			t.Fatalf("quantiles of nothing: %v, want zeros", q)
		}
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	if got := quantiles(ds, 0.5, 1); got[0] != 3 || got[1] != 5 {
		t.Fatalf("p50, max of 1..5: %v, want 3, 5", got)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median of 1..4: %v, want 2.5", m)
	}
}

// TestWithTimeout: a run cut by the timeout says so, naming the flag; one
// that fails on its own keeps its error.
func TestWithTimeout(t *testing.T) {
	err := withTimeout(context.Background(), time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("waiting for the regions")
	})
	if err == nil || !strings.Contains(err.Error(), "the run took longer than --timeout 1ms") || !strings.Contains(err.Error(), "waiting for the regions") {
		t.Fatalf("timed-out run: %v", err)
	}
	own := errors.New("boom")
	if err := withTimeout(context.Background(), time.Minute, func(context.Context) error { return own }); !errors.Is(err, own) {
		t.Fatalf("failed run: %v, want its own error", err)
	}
}

// TestMirrorLag: a redelivered sequence is not counted twice, a heartbeat
// moves the sequence but gives no sample, and reset hands over the
// measurement's samples.
func TestMirrorLag(t *testing.T) {
	m := newMirrorLag()
	now := time.Now()
	m.record("A", 1, now, time.Millisecond, true)
	m.record("A", 1, now, time.Millisecond, true) // redelivery
	m.record("A", 2, now, 0, false)               // heartbeat
	m.record("B", 1, now, 2*time.Millisecond, true)
	if m.seen("A") != 2 || m.seen("B") != 1 || m.seen("C") != 0 {
		t.Fatalf("seen: A %d, B %d, C %d; want 2, 1, 0", m.seen("A"), m.seen("B"), m.seen("C"))
	}
	if s := m.reset(); len(s) != 2 {
		t.Fatalf("%d samples, want 2: %v", len(s), s)
	}
	if s := m.reset(); len(s) != 0 {
		t.Fatalf("after reset: %d samples, want 0", len(s))
	}
}

// redirectOK is a valid RedirectOptions (shorter rounds than the
// command's defaults) changed by edit.
func redirectOK(edit func(*RedirectOptions)) RedirectOptions {
	o := RedirectOptions{Links: 20000, Peak: 5 * time.Second, Fixed: 6 * time.Second, FixedRates: []float64{2000, 10000, 20000},
		VerdictRates: []float64{10000, 20000}, Rounds: 2, Workers: 64}
	edit(&o)
	return o
}
