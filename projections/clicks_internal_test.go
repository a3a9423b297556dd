package projections

import (
	"fmt"
	"testing"
)

// TestCounterCacheGenerations: the counters written in the last two
// generations are found with their last value; older ones are dropped, and
// rewriting a counter of the young generation does not rotate it.
func TestCounterCacheGenerations(t *testing.T) {
	c := newCounterCache(8) // generations of 4
	key := func(i int) counterKey { return counterKey{'t', fmt.Sprint("code", i), ""} }
	for i := range 12 {
		c.put(key(i), pair{people: uint64(i)})
		c.put(key(i), pair{people: uint64(i) + 100}) // rewritten: no rotation
	}
	for i := range 12 {
		v, ok := c.get(key(i))
		want := i >= 4 // 8..11 young, 4..7 old, 0..3 dropped
		if ok != want || (ok && v.people != uint64(i)+100) {
			t.Errorf("counter %d: %+v, found %v; want found %v with %d", i, v, ok, want, i+100)
		}
	}
}
