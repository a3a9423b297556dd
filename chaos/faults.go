package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The kinds of faults a schedule draws from.
const (
	// Kill SIGKILLs a region's process (a crash) and starts it again on its
	// state after Hold.
	Kill Kind = "kill"
	// Pause stops a region's process with SIGSTOP and resumes it with
	// SIGCONT after Hold: everything in it freezes, connections stay open.
	Pause Kind = "pause"
	// Partition cuts every gateway and route link between two regions for
	// Hold; each side keeps talking to the third.
	Partition Kind = "partition"
	// SlowLink adds Latency (± Jitter) to every chunk crossing the links
	// between two regions for Hold.
	SlowLink Kind = "slow-link"
	// LossyLink resets the links between two regions after random
	// intervals of mean ResetEvery (plus a little latency) for Hold: the
	// TCP-level face of a lossy network.
	LossyLink Kind = "lossy-link"
	// DiskFull makes every write to a region's Pebble stores fail with
	// ENOSPC for Hold (injected in the region; JetStream's files are not
	// affected).
	DiskFull Kind = "disk-full"
	// ClockSkew moves a region's clock by Skew for Hold.
	ClockSkew Kind = "clock-skew"
	// ProjectorCrash makes a region SIGKILL itself in the middle of its
	// projector's next batch; it is started again Hold after the crash.
	ProjectorCrash Kind = "projector-crash"
)

// Target is what faults act on: the supervisor of a cluster's region
// processes and of the fault proxies on the links between them, and each
// region's fault injection endpoints. The chaos runner provides it.
type Target interface {
	// Control asks the supervisor to act, with a POST of its control API
	// (the one make region-down uses: "/down/us-east",
	// "/net/cut/us-east/eu-west"), and returns when it acted.
	Control(ctx context.Context, path string) (time.Time, error)
	// Running reports whether region's process is running.
	Running(ctx context.Context, region string) (bool, error)
	// Inject posts body to region's fault injection endpoint name
	// ("disk-full", "clock", "projector-crash" under
	// /api/v1/admin/faults).
	Inject(ctx context.Context, region, name string, body any) error
}

// Applied is what injecting a fault did.
type Applied struct {
	// From is when the fault's Hold began (zero: when Inject returned).
	From time.Time
	// Lost is when the region's process died, if it did (zero: it did
	// not): what the other regions lack of it is measured then against
	// the RPO they reported.
	Lost time.Time
	// Note is a remark for the report.
	Note string
}

// Fault is a kind of fault: its name, when it can be picked, how a
// schedule draws it, and how a run injects it and heals it. Faults lists
// one per kind; what differs between kinds lives here and nowhere else.
type Fault struct {
	Kind Kind
	// MinRegions is the precondition to pick the fault: the fewest
	// regions the cluster must have (a link fault needs the region at the
	// link's other end; a region taken down needs another to serve its
	// clients and to be measured against its RPO).
	MinRegions int
	// Link: the fault acts on the links between Region and a Peer.
	Link bool
	// Down: the fault leaves its region unable to serve its clients while
	// it lasts (the switch moves them): their operations in its window do
	// not count against the success rate, and the run waits for the
	// region to be ready again before it goes on.
	Down bool
	// Lost: the fault kills its region's process: what the other regions
	// lack of it is measured against the RPO they reported (Applied.Lost).
	Lost bool
	// Recovery is a rough time the cluster needs after the fault is
	// lifted (a restart and its catch-up, the switch's rise time), used
	// only to fill a schedule up to its length.
	Recovery time.Duration
	// Color is the fault's colour in the picture.
	Color string

	// draw draws the fault's Hold and parameters into s.
	draw func(rng *rand.Rand, s *Step)
	// describe is the step in a few words.
	describe func(s Step) string
	// Inject applies the fault of step s to t.
	Inject func(ctx context.Context, t Target, s Step) (Applied, error)
	// Heal lifts the fault of step s once its Hold is over.
	Heal func(ctx context.Context, t Target, s Step) error
}

// faults is the table of fault kinds, in the order a report lists them.
var faults = []Fault{
	{
		Kind: Kill, MinRegions: 2, Down: true, Lost: true, Recovery: 20 * time.Second, Color: "#d62728",
		draw: func(rng *rand.Rand, s *Step) { s.Hold = between(rng, 5*time.Second, 12*time.Second) },
		describe: func(s Step) string {
			return fmt.Sprintf("kill %s, start it again after %v", s.Region, time.Duration(s.Hold))
		},
		Inject: func(ctx context.Context, t Target, s Step) (Applied, error) {
			from := time.Now()
			at, err := t.Control(ctx, "/down/"+s.Region)
			return Applied{From: from, Lost: at}, err
		},
		Heal: startAgain,
	},
	{
		Kind: Pause, MinRegions: 2, Down: true, Recovery: 5 * time.Second, Color: "#9467bd",
		draw: func(rng *rand.Rand, s *Step) { s.Hold = between(rng, 3*time.Second, 8*time.Second) },
		describe: func(s Step) string {
			return fmt.Sprintf("pause %s (SIGSTOP) for %v", s.Region, time.Duration(s.Hold))
		},
		Inject: control("", "/pause/"),
		Heal:   heal(control("resume", "/resume/")),
	},
	{
		Kind: Partition, MinRegions: 2, Link: true, Color: "#ff7f0e",
		draw: func(rng *rand.Rand, s *Step) { s.Hold = between(rng, 10*time.Second, 20*time.Second) },
		describe: func(s Step) string {
			return fmt.Sprintf("partition %s from %s for %v", s.Region, s.Peer, time.Duration(s.Hold))
		},
		Inject: control("", "/net/cut/"),
		Heal:   heal(control("heal", "/net/heal/")),
	},
	{
		Kind: SlowLink, MinRegions: 2, Link: true, Color: "#bcbd22",
		draw: func(rng *rand.Rand, s *Step) {
			s.Hold = between(rng, 8*time.Second, 15*time.Second)
			s.Latency = between(rng, 100*time.Millisecond, 400*time.Millisecond)
			s.Jitter = Duration(time.Duration(s.Latency) / 4).round()
		},
		describe: func(s Step) string {
			return fmt.Sprintf("slow link %s-%s (+%v ±%v) for %v", s.Region, s.Peer, time.Duration(s.Latency), time.Duration(s.Jitter), time.Duration(s.Hold))
		},
		Inject: degrade,
		Heal:   heal(control("restore", "/net/restore/")),
	},
	{
		Kind: LossyLink, MinRegions: 2, Link: true, Color: "#8c564b",
		draw: func(rng *rand.Rand, s *Step) {
			s.Hold = between(rng, 8*time.Second, 15*time.Second)
			s.Latency = Duration(20 * time.Millisecond)
			s.ResetEvery = between(rng, time.Second, 3*time.Second)
		},
		describe: func(s Step) string {
			return fmt.Sprintf("lossy link %s-%s (reset every ~%v, +%v) for %v", s.Region, s.Peer, time.Duration(s.ResetEvery), time.Duration(s.Latency), time.Duration(s.Hold))
		},
		Inject: degrade,
		Heal:   heal(control("restore", "/net/restore/")),
	},
	{
		Kind: DiskFull, MinRegions: 2, Down: true, Recovery: 5 * time.Second, Color: "#1f77b4",
		draw: func(rng *rand.Rand, s *Step) { s.Hold = between(rng, 5*time.Second, 10*time.Second) },
		describe: func(s Step) string {
			return fmt.Sprintf("disk full under %s for %v", s.Region, time.Duration(s.Hold))
		},
		Inject: inject("", "disk-full", func(Step) any { return map[string]bool{"on": true} }),
		Heal:   heal(inject("free the disk", "disk-full", func(Step) any { return map[string]bool{"on": false} })),
	},
	{
		Kind: ClockSkew, MinRegions: 2, Color: "#17becf",
		draw: func(rng *rand.Rand, s *Step) {
			s.Hold = between(rng, 8*time.Second, 15*time.Second)
			s.Skew = between(rng, 30*time.Second, 10*time.Minute)
			if rng.IntN(2) == 0 {
				s.Skew = -s.Skew
			}
		},
		describe: func(s Step) string {
			return fmt.Sprintf("skew %s's clock by %+v for %v", s.Region, time.Duration(s.Skew), time.Duration(s.Hold))
		},
		Inject: inject("", "clock", func(s Step) any { return map[string]string{"skew": time.Duration(s.Skew).String()} }),
		Heal:   heal(inject("set the clock back", "clock", func(Step) any { return map[string]string{"skew": "0s"} })),
	},
	{
		Kind: ProjectorCrash, MinRegions: 2, Down: true, Lost: true, Recovery: 20 * time.Second, Color: "#e377c2",
		draw: func(rng *rand.Rand, s *Step) { s.Hold = between(rng, 2*time.Second, 6*time.Second) },
		describe: func(s Step) string {
			return fmt.Sprintf("crash %s's projector mid-batch, start it again after %v", s.Region, time.Duration(s.Hold))
		},
		Inject: crashProjector,
		Heal:   startAgain,
	},
}

// Faults returns the table of fault kinds, one entry per kind, in the
// order a report lists them.
func Faults() []Fault { return append([]Fault(nil), faults...) }

// Lookup returns the fault of kind k.
func Lookup(k Kind) (Fault, bool) {
	for _, f := range faults {
		if f.Kind == k {
			return f, true
		}
	}
	return Fault{}, false
}

// Kinds lists every kind of fault, in the order a report lists them.
func Kinds() []Kind {
	out := make([]Kind, len(faults))
	for i, f := range faults {
		out[i] = f.Kind
	}
	return out
}

// Link reports whether the fault acts on the links between two regions.
func (k Kind) Link() bool { f, _ := Lookup(k); return f.Link }

// TakesRegionDown reports whether the fault leaves a region unable to serve
// its clients for a while (the switch moves them): their operations in the
// fault's window do not count against the success rate.
func (k Kind) TakesRegionDown() bool { f, _ := Lookup(k); return f.Down }

// control is a fault that asks the supervisor to POST prefix+region (and
// /peer for a link fault); a failure reads "what: ..." when what is set.
func control(what, prefix string) func(context.Context, Target, Step) (Applied, error) {
	return func(ctx context.Context, t Target, s Step) (Applied, error) {
		path := prefix + s.Region
		if s.Peer != "" {
			path += "/" + s.Peer
		}
		_, err := t.Control(ctx, path)
		return Applied{}, wrap(what, err)
	}
}

// inject is a fault that posts body(s) to the region's fault injection
// endpoint name.
func inject(what, name string, body func(Step) any) func(context.Context, Target, Step) (Applied, error) {
	return func(ctx context.Context, t Target, s Step) (Applied, error) {
		return Applied{}, wrap(what, t.Inject(ctx, s.Region, name, body(s)))
	}
}

// heal turns an injection into a heal.
func heal(f func(context.Context, Target, Step) (Applied, error)) func(context.Context, Target, Step) error {
	return func(ctx context.Context, t Target, s Step) error { _, err := f(ctx, t, s); return err }
}

func wrap(what string, err error) error {
	if err == nil || what == "" {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// degrade slows or makes lossy the links between the step's two regions.
func degrade(ctx context.Context, t Target, s Step) (Applied, error) {
	q := fmt.Sprintf("?latency=%v&jitter=%v&reset=%v", time.Duration(s.Latency), time.Duration(s.Jitter), time.Duration(s.ResetEvery))
	_, err := t.Control(ctx, "/net/degrade/"+s.Region+"/"+s.Peer+q)
	return Applied{}, err
}

// startAgain starts a killed region again.
func startAgain(ctx context.Context, t Target, s Step) error {
	_, err := t.Control(ctx, "/up/"+s.Region)
	return wrap("start it again", err)
}

// crashProjector arms the region's projector to crash at its next batch
// and waits (30 s at most) for the region's process to die: the load's
// creates bring a batch within moments.
func crashProjector(ctx context.Context, t Target, s Step) (Applied, error) {
	armed := time.Now()
	if err := t.Inject(ctx, s.Region, "projector-crash", struct{}{}); err != nil {
		return Applied{}, err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		if up, err := t.Running(ctx, s.Region); err == nil && !up {
			crashed := time.Now()
			note := fmt.Sprintf("crashed %v after being armed", crashed.Sub(armed).Round(10*time.Millisecond))
			return Applied{From: crashed, Lost: crashed, Note: note}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Applied{}, fmt.Errorf("armed, but the region did not crash within 30 s")
}
