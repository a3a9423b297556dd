package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

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

// String is the step in a few words: "kill us-east, start it again after 9s".
func (s Step) String() string {
	if f, ok := Lookup(s.Kind); ok {
		return f.describe(s)
	}
	return string(s.Kind)
}

// expected is a rough length of the step, recovery included, used only to
// fill a schedule up to its duration.
func (s Step) expected() time.Duration {
	f, _ := Lookup(s.Kind)
	return time.Duration(s.Hold) + time.Duration(s.Gap) + f.Recovery
}

// Plan draws a schedule from seed: faults one after the other over
// regions, every kind of kinds once in a seeded order first (so a run long
// enough covers them all), then more drawn at random until the expected
// length reaches duration. The same seed, regions, kinds and duration give
// the same schedule.
func Plan(seed int64, regions []string, kinds []Kind, duration time.Duration) ([]Step, error) {
	if len(kinds) == 0 {
		kinds = Kinds()
	}
	for _, k := range kinds {
		f, ok := Lookup(k)
		if !ok {
			return nil, fmt.Errorf("unknown fault kind %q (the kinds are %s)", k, kindList())
		}
		if len(regions) < f.MinRegions {
			return nil, fmt.Errorf("a chaos schedule of %s needs at least %d regions, not %d", k, f.MinRegions, len(regions))
		}
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

// draw draws a step of kind k (a known kind): its region, its gap, its
// peer for a link fault, then its hold and parameters.
func draw(rng *rand.Rand, k Kind, regions []string) Step {
	f, _ := Lookup(k)
	s := Step{Kind: k, Region: regions[rng.IntN(len(regions))], Gap: between(rng, 4*time.Second, 8*time.Second)}
	if f.Link {
		for s.Peer = s.Region; s.Peer == s.Region; {
			s.Peer = regions[rng.IntN(len(regions))]
		}
	}
	f.draw(rng, &s)
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
