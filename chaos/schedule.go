package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// Kinds lists every kind of fault, in the order a report lists them.
func Kinds() []Kind {
	return []Kind{Kill, Pause, Partition, SlowLink, LossyLink, DiskFull, ClockSkew, ProjectorCrash}
}

// ParseKinds parses a comma-separated list of kinds; "" or "all" is every
// kind.
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return Kinds(), nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if !slices.Contains(Kinds(), k) {
			return nil, fmt.Errorf("unknown fault kind %q (the kinds are %s)", k, kindList())
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Link reports whether the fault acts on the links between two regions.
func (k Kind) Link() bool { return k == Partition || k == SlowLink || k == LossyLink }

// TakesRegionDown reports whether the fault leaves a region unable to serve
// its clients for a while (the switch moves them): their operations in the
// fault's window do not count against the success rate.
func (k Kind) TakesRegionDown() bool {
	return k == Kill || k == Pause || k == DiskFull || k == ProjectorCrash
}

// Step is one fault of a schedule.
type Step struct {
	N      int    `json:"n"` // 1-based position in the schedule
	Kind   Kind   `json:"kind"`
	Region string `json:"region"`         // the region acted on
	Peer   string `json:"peer,omitempty"` // the other end of a link fault
	// Hold is how long the fault lasts (for a projector crash: how long
	// the crashed region stays down).
	Hold       Duration `json:"hold"`
	Skew       Duration `json:"skew,omitempty"`        // clock-skew
	Latency    Duration `json:"latency,omitempty"`     // slow-link, lossy-link
	Jitter     Duration `json:"jitter,omitempty"`      // slow-link
	ResetEvery Duration `json:"reset_every,omitempty"` // lossy-link
	// Gap is the quiet time after the fault is over (and its region ready
	// again) before the next step.
	Gap Duration `json:"gap"`
}

// String is the step in a few words: "kill us-east for 9s".
func (s Step) String() string {
	d := time.Duration(s.Hold)
	switch s.Kind {
	case Kill:
		return fmt.Sprintf("kill %s, start it again after %v", s.Region, d)
	case Pause:
		return fmt.Sprintf("pause %s (SIGSTOP) for %v", s.Region, d)
	case Partition:
		return fmt.Sprintf("partition %s from %s for %v", s.Region, s.Peer, d)
	case SlowLink:
		return fmt.Sprintf("slow link %s-%s (+%v ±%v) for %v", s.Region, s.Peer, time.Duration(s.Latency), time.Duration(s.Jitter), d)
	case LossyLink:
		return fmt.Sprintf("lossy link %s-%s (reset every ~%v, +%v) for %v", s.Region, s.Peer, time.Duration(s.ResetEvery), time.Duration(s.Latency), d)
	case DiskFull:
		return fmt.Sprintf("disk full under %s for %v", s.Region, d)
	case ClockSkew:
		return fmt.Sprintf("skew %s's clock by %+v for %v", s.Region, time.Duration(s.Skew), d)
	case ProjectorCrash:
		return fmt.Sprintf("crash %s's projector mid-batch, start it again after %v", s.Region, d)
	}
	return string(s.Kind)
}

// expected is a rough length of the step, recovery included, used only to
// fill a schedule up to its duration.
func (s Step) expected() time.Duration {
	d := time.Duration(s.Hold) + time.Duration(s.Gap)
	switch s.Kind {
	case Kill, ProjectorCrash:
		d += 20 * time.Second // restart and catch-up
	case Pause, DiskFull:
		d += 5 * time.Second // the switch's rise time
	}
	return d
}

// Plan draws a schedule from seed: faults one after the other over
// regions, every kind of kinds once in a seeded order first (so a run long
// enough covers them all), then more drawn at random until the expected
// length reaches duration. The same seed, regions, kinds and duration give
// the same schedule.
func Plan(seed int64, regions []string, kinds []Kind, duration time.Duration) ([]Step, error) {
	if len(regions) < 2 {
		return nil, fmt.Errorf("a chaos schedule needs at least 2 regions, not %d", len(regions))
	}
	if len(kinds) == 0 {
		kinds = Kinds()
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	order := slices.Clone(kinds)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var steps []Step
	var total time.Duration
	for i := 0; ; i++ {
		var k Kind
		if i < len(order) {
			k = order[i]
		} else {
			k = kinds[rng.IntN(len(kinds))]
		}
		s := draw(rng, k, regions)
		if total+s.expected() > duration && len(steps) > 0 {
			break
		}
		s.N = len(steps) + 1
		steps = append(steps, s)
		total += s.expected()
	}
	return steps, nil
}

// between returns a random duration in [lo, hi], rounded to 100 ms.
func between(rng *rand.Rand, lo, hi time.Duration) Duration {
	d := lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	return Duration(d.Round(100 * time.Millisecond))
}

func draw(rng *rand.Rand, k Kind, regions []string) Step {
	s := Step{Kind: k, Region: regions[rng.IntN(len(regions))], Gap: between(rng, 4*time.Second, 8*time.Second)}
	if k.Link() {
		for s.Peer = s.Region; s.Peer == s.Region; {
			s.Peer = regions[rng.IntN(len(regions))]
		}
	}
	switch k {
	case Kill:
		s.Hold = between(rng, 5*time.Second, 12*time.Second)
	case Pause:
		s.Hold = between(rng, 3*time.Second, 8*time.Second)
	case Partition:
		s.Hold = between(rng, 10*time.Second, 20*time.Second)
	case SlowLink:
		s.Hold = between(rng, 8*time.Second, 15*time.Second)
		s.Latency = between(rng, 100*time.Millisecond, 400*time.Millisecond)
		s.Jitter = Duration(time.Duration(s.Latency) / 4).round()
	case LossyLink:
		s.Hold = between(rng, 8*time.Second, 15*time.Second)
		s.Latency = Duration(20 * time.Millisecond)
		s.ResetEvery = between(rng, time.Second, 3*time.Second)
	case DiskFull:
		s.Hold = between(rng, 5*time.Second, 10*time.Second)
	case ClockSkew:
		s.Hold = between(rng, 8*time.Second, 15*time.Second)
		s.Skew = between(rng, 30*time.Second, 10*time.Minute)
		if rng.IntN(2) == 0 {
			s.Skew = -s.Skew
		}
	case ProjectorCrash:
		s.Hold = between(rng, 2*time.Second, 6*time.Second)
	}
	return s
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) round() Duration { return Duration(time.Duration(d).Round(time.Millisecond)) }

// MarshalText writes d as time.Duration's String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration written by MarshalText.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
