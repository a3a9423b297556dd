//go:build regions

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shortener/region/regiontest"
)

// A region SIGKILLed and restarted on an empty data directory (a lost
// disk): at start-up it copies its stream back from the others' mirrors
// before it writes anything, so its old links redirect in it again, the
// links it creates afterwards reach the other regions (without the repair
// its new events took sequences the mirrors already held, and they ignored
// them), and the three projections end up the same.
func TestClusterRegionDataLost(t *testing.T) {
	c := newCluster(t)
	acks := append(c.createLinks(t, 0, 20), c.createLinks(t, 1, 20)...)
	converged(t, c, acks, 10*time.Second)

	c.kill(0)
	if err := os.RemoveAll(filepath.Join(c.dir, c.names[0])); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.restart(0)
	t.Logf("%s restarted on an empty data directory: ready after %s", c.names[0], time.Since(killed).Round(time.Millisecond))
	lostRegionRecovered(t, c, acks)
}

// The same loss while both other regions are down: the region cannot get
// its stream back without the JetStream meta layer, whose leader needs a
// majority of the supercluster's six servers, and the two that lost
// their disk do not make it up (measured: with eu-west back as well, no
// meta leader in 90 s). So it waits, not ready and having written
// nothing; once the others are back it repairs its stream from their
// mirrors and opens, and nothing is lost or different.
func TestClusterRegionDataLostAlone(t *testing.T) {
	c := newCluster(t)
	acks := c.createLinks(t, 0, 10)
	converged(t, c, acks, 10*time.Second)
	for i := range c.names {
		c.kill(i)
	}
	for i := range c.names {
		<-c.procs[i].Done()
	}
	if err := os.RemoveAll(filepath.Join(c.dir, c.names[0])); err != nil {
		t.Fatal(err)
	}
	c.procs[0] = c.spawn(0)
	if took, ok := c.readyWithin(t, 0, 10*time.Second); ok {
		t.Fatalf("%s ready alone on an empty data directory after %s", c.names[0], took)
	}
	c.procs[1] = c.spawn(1)
	if took, ok := c.readyWithin(t, 0, 15*time.Second); ok {
		t.Logf("%s ready %s after eu-west was started", c.names[0], took)
	} else {
		t.Logf("%s with eu-west back for 15 s: not ready", c.names[0])
	}
	back := time.Now()
	c.procs[2] = c.spawn(2)
	for i := range c.names {
		c.waitReady(i)
	}
	t.Logf("every region ready %s after ap-south was started", time.Since(back).Round(time.Millisecond))
	lostRegionRecovered(t, c, acks)
}

// createLinks creates n links in region i.
func (c *cluster) createLinks(t *testing.T, i, n int) []ack {
	t.Helper()
	var acks []ack
	for range n {
		a := ack{region: i, url: fmt.Sprintf("https://example.com/%s/%d", c.names[i], time.Now().UnixNano())}
		r, err := c.clients[i].Create(context.Background(), map[string]any{"url": a.url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create in %s: %v %s", c.names[i], err, r.Raw)
		}
		a.code = r.Str("code")
		acks = append(acks, a)
	}
	return acks
}

// readyWithin polls region i's /readyz for up to d: how long it took to
// answer 200, or false if it did not. A region that exits fails the test.
func (c *cluster) readyWithin(t *testing.T, i int, d time.Duration) (time.Duration, bool) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	for time.Since(start) < d {
		select {
		case <-c.procs[i].Done():
			log, _ := os.ReadFile(filepath.Join(c.dir, c.names[i]+".log"))
			t.Fatalf("%s exited:\n%s", c.names[i], tail(log, 3000))
		case <-time.After(250 * time.Millisecond):
		}
		if resp, err := client.Get("http://" + c.hosts[i] + ":8080/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), true
			}
		}
	}
	return 0, false
}

// lostRegionRecovered checks region 0, back on an empty data directory:
// its log names the repair; a link it creates now reaches the others (the
// mirrors of its stream re-create their source consumer on nats-server's
// retry, tens of seconds after the stream was lost); every link before
// and that one resolve everywhere and the projections agree; and no
// region says an origin lost events.
func lostRegionRecovered(t *testing.T, c *cluster, acks []ack) {
	t.Helper()
	log, _ := os.ReadFile(filepath.Join(c.dir, c.names[0]+".log"))
	repaired := false
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "the region's stream was repaired from a mirror") {
			repaired = true
			t.Log(line)
		}
	}
	if !repaired {
		t.Errorf("no repair in %s's log:\n%s", c.names[0], tail(log, 3000))
	}
	after := c.createLinks(t, 0, 1)[0]
	created := time.Now()
	for j := 1; j < len(c.names); j++ {
		regiontest.WaitFor(t, 90*time.Second, func() error { return c.resolves(j, after.code, after.url) })
		t.Logf("a link created in %s after the restart redirects in %s after %s", c.names[0], c.names[j], time.Since(created).Round(time.Millisecond))
	}
	converged(t, c, append(acks, after), 30*time.Second)
	// A peer that looked at the region's stream while it was still empty
	// (before the repair) says it is behind until its next look, 250 ms
	// later: wait for that. A divergence is for ever: it fails at once.
	regiontest.WaitFor(t, 10*time.Second, func() error {
		for j := range c.names {
			rr, err := c.regions(j)
			if err != nil {
				return err
			}
			for _, o := range rr.Origins {
				if o.OriginDiverged {
					t.Fatalf("%s says %s diverged: %+v", c.names[j], o.Origin, o)
				}
				if o.OriginBehind {
					return fmt.Errorf("%s says %s lost events: %+v", c.names[j], o.Origin, o)
				}
			}
		}
		return nil
	})
}
