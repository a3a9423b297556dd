package projections

import (
	"fmt"
	"testing"
	"time"
)

// TestCounterCacheGenerations: the counters written in the last two
// generations are found with their last value; older ones are dropped, and
// rewriting a counter of the young generation does not rotate it.
func TestCounterCacheGenerations(t *testing.T) {
	c := newCounterCache(8) // generations of 4
	key := func(i int) counterKey { return counterKey{kind: 't', code: fmt.Sprint("code", i)} }
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

// TestDayCounterKey: a click's day counter is the UTC date of its time,
// before 1970 too, and at the edges of a day.
func TestDayCounterKey(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 6, 23, 59, 59, 999e6, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(1960, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 5*3600)),
	} {
		ms := at.UnixMilli()
		got := string(counterKey{kind: 'd', code: "c", day: unixDay(ms)}.appendTo(nil))
		if want := "d/c\x00" + at.UTC().Format(time.DateOnly); got != want {
			t.Errorf("%v: %q, want %q", at, got, want)
		}
	}
}
