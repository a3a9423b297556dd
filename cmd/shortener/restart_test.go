//go:build regions

package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shortener/region/regiontest"
)

// restartReadyBound is how long a SIGKILLed region, started again, may take
// to be ready (caught up with its peers, serving). It is not the target
// (bench restart checks a median of 3 s) but a guard against the old path
// coming back: a mirror whose consumer request was lost at the restart
// resumed only after nats-server's 30 s wait (42 s to ready), or after 5 s
// plus a 10 s backoff with the wait shortened (17 s).
const restartReadyBound = 10 * time.Second

// A restarted region is ready within restartReadyBound of its start, with
// the link created elsewhere while it was down: its mirror of that region
// resumed at once.
func TestClusterRestartedRegionReadyQuickly(t *testing.T) {
	c := newCluster(t, "--log-level=info")
	ctx := context.Background()
	const apSouth, usEast = 2, 0
	for round := 1; round <= 2; round++ {
		c.kill(apSouth)
		url := "https://example.com/made-while-ap-south-was-down"
		r, err := c.clients[usEast].Create(ctx, map[string]any{"url": url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create in us-east: %v %s", err, r.Raw)
		}
		code := r.Str("code")
		started := time.Now()
		c.procs[apSouth] = c.spawn(apSouth)
		if c.procs[apSouth] == nil {
			t.FailNow()
		}
		err = c.procs[apSouth].WaitReady(ctx, "http://"+c.hosts[apSouth]+":8080/readyz", restartReadyBound)
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(c.dir, c.names[apSouth]+".log"))
			t.Fatalf("round %d: ap-south %v after its start (the bound is %s)\n%s", round, err, restartReadyBound, tail(log, 4000))
		}
		t.Logf("round %d: ap-south ready %s after its start", round, time.Since(started).Round(time.Millisecond))
		if err := c.resolves(apSouth, code, url); err != nil {
			t.Fatalf("round %d: ready, but the link made in us-east meanwhile: %v", round, err)
		}
		regiontest.WaitFor(t, 30*time.Second, func() error { return c.resolves(usEast, code, url) })
	}
}
