package bench

import "testing"

// The catch-up verdict fails when either mirror copied nothing, whatever
// the ratio says.
func TestCatchupVerdictFailsOnNothing(t *testing.T) {
	good := catchupResult{Baseline: mirrorProgress{Copied: 1000, Rate: 1000}, Region: mirrorProgress{Copied: 1000, Rate: 800}, Ratio: 0.8}
	if !catchupPasses(good) {
		t.Fatal("a measured 0.8x fails")
	}
	for name, r := range map[string]catchupResult{
		"zero value":              {},
		"baseline copied nothing": {Baseline: mirrorProgress{}, Region: good.Region, Ratio: 0.8},
		"region copied nothing":   {Baseline: good.Baseline, Region: mirrorProgress{}, Ratio: 0.8},
		"slow":                    {Baseline: good.Baseline, Region: mirrorProgress{Copied: 1000, Rate: 100}, Ratio: 0.1},
	} {
		if catchupPasses(r) {
			t.Errorf("%s: passes", name)
		}
	}
}
