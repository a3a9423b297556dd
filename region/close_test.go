package region_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// Close from two goroutines at once (Run's own Close and a caller's) closes
// once: before the lock, both saw the store open and the second Close
// panicked in Pebble ("pebble: closed").
func TestCloseFromTwoGoroutines(t *testing.T) {
	r, err := region.New(regiontest.Config("us-east", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = r.Close() })
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatalf("a Close after the others: %v", err)
	}
}
