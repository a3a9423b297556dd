package region

import (
	"testing"
	"time"
)

// Readiness against the region's own stream: behind at start-up is not
// ready; once caught up, a few events in flight are normal; behind and not
// moving for stallAfter is not ready again.
func TestOwnStreamReadiness(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	var c catchUp
	if why := c.own(5, 10, t0); why == "" {
		t.Fatal("behind at start-up, yet ready")
	}
	if why := c.own(10, 10, t0.Add(time.Second)); why != "" {
		t.Fatalf("caught up, yet: %s", why)
	}
	for i := 1; i <= 20; i++ { // under load: always 3 behind, always moving
		at := t0.Add(time.Second + time.Duration(i)*time.Second)
		if why := c.own(uint64(10+i*100), uint64(13+i*100), at); why != "" {
			t.Fatalf("moving projection 3 behind: %s", why)
		}
	}
	last := t0.Add(21 * time.Second)
	if why := c.own(2010, 2020, last.Add(stallAfter-time.Millisecond)); why != "" {
		t.Fatalf("behind and still for less than %s: %s", stallAfter, why)
	}
	if why := c.own(2010, 2020, last.Add(stallAfter)); why == "" {
		t.Fatalf("behind and still for %s, yet ready", stallAfter)
	}
	if why := c.own(2011, 2020, last.Add(stallAfter+time.Millisecond)); why != "" {
		t.Fatalf("moving again: %s", why)
	}
}
