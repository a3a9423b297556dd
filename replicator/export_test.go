package replicator

import "time"

// SetCatchUp sets how old an event at the head starts a catch-up and how
// often a catch-up fetches, and returns a func restoring them.
func SetCatchUp(age, every time.Duration) func() {
	a, e := catchupAge, catchupEvery
	catchupAge, catchupEvery = age, every
	return func() { catchupAge, catchupEvery = a, e }
}

// CatchUps is how many times the feed's pullers switched to fetching.
func (f *Feed) CatchUps() int64 { return f.catchUps.Load() }
