//go:build race

package region_test

// raceEnabled: the race detector allocates of its own (and sync.Pool drops
// items at random), so allocation counts mean nothing under it.
const raceEnabled = true
