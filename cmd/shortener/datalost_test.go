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
	ctx := context.Background()
	var codes, urls []string
	for i := 0; i < 2; i++ {
		for k := 0; k < 20; k++ {
			url := fmt.Sprintf("https://example.com/%s/old/%d", c.names[i], k)
			r, err := c.clients[i].Create(ctx, map[string]any{"url": url})
			if err != nil || r.Status != http.StatusCreated {
				t.Fatalf("create in %s: %v %s", c.names[i], err, r.Raw)
			}
			codes, urls = append(codes, r.Str("code")), append(urls, url)
		}
	}
	for j := range c.names {
		regiontest.WaitFor(t, 5*time.Second, func() error { return c.resolves(j, codes[19], urls[19]) })
	}

	c.kill(0)
	dir := filepath.Join(c.dir, c.names[0])
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.restart(0)
	t.Logf("%s restarted on an empty data directory: ready after %s", c.names[0], time.Since(killed).Round(time.Millisecond))
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

	// Its own old links and eu-west's, in it.
	regiontest.WaitFor(t, 20*time.Second, func() error {
		for k := range codes {
			if err := c.resolves(0, codes[k], urls[k]); err != nil {
				return err
			}
		}
		return nil
	})
	// Links it creates now reach the others; the mirrors of its stream
	// re-create their source consumer once nats-server retries (tens of
	// seconds after the stream was lost).
	url := "https://example.com/after-the-loss"
	r, err := c.clients[0].Create(ctx, map[string]any{"url": url})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create after the restart: %v %s", err, r.Raw)
	}
	code, created := r.Str("code"), time.Now()
	for j := 1; j < len(c.names); j++ {
		regiontest.WaitFor(t, 90*time.Second, func() error { return c.resolves(j, code, url) })
		t.Logf("a link created in %s after the restart redirects in %s after %s", c.names[0], c.names[j], time.Since(created).Round(time.Millisecond))
	}
	regiontest.WaitFor(t, 30*time.Second, func() error {
		d0 := c.projection(0)
		for j := 1; j < len(c.names); j++ {
			if d := c.projection(j); d.Digest != d0.Digest || d.Links != d0.Links {
				return fmt.Errorf("%s has %d links (digest %.12s), %s has %d (%.12s)", c.names[0], d0.Links, d0.Digest, c.names[j], d.Links, d.Digest)
			}
		}
		return nil
	})
}

// The same loss while both other regions are down: the region cannot get
// its stream back without the JetStream meta layer, whose leader needs a
// majority of the supercluster's six servers, and the two that lost
// their disk do not make it up (measured: with eu-west back as well, no
// meta leader in 90 s). So it waits, not ready and
// having written nothing; once the others are back it repairs its stream
// from their mirrors and opens, and nothing is lost or different.
func TestClusterRegionDataLostAlone(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	var codes, urls []string
	for k := 0; k < 10; k++ {
		url := fmt.Sprintf("https://example.com/alone/%d", k)
		r, err := c.clients[0].Create(ctx, map[string]any{"url": url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create: %v %s", err, r.Raw)
		}
		codes, urls = append(codes, r.Str("code")), append(urls, url)
	}
	for j := range c.names {
		regiontest.WaitFor(t, 5*time.Second, func() error { return c.resolves(j, codes[9], urls[9]) })
	}
	for i := range c.names {
		c.kill(i)
	}
	for i := range c.names {
		<-c.procs[i].done
	}
	if err := os.RemoveAll(filepath.Join(c.dir, c.names[0])); err != nil {
		t.Fatal(err)
	}
	c.procs[0] = c.spawn(0)
	time.Sleep(10 * time.Second) // alone: it must not become ready, nor write
	select {
	case <-c.procs[0].done:
		log, _ := os.ReadFile(filepath.Join(c.dir, c.names[0]+".log"))
		t.Fatalf("%s exited while alone:\n%s", c.names[0], tail(log, 3000))
	default:
	}
	if resp, err := http.Get("http://" + c.hosts[0] + ":8080/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s ready alone on an empty data directory", c.names[0])
		}
	}

	c.procs[1] = c.spawn(1)
	time.Sleep(15 * time.Second)
	if resp, err := http.Get("http://" + c.hosts[0] + ":8080/readyz"); err == nil {
		resp.Body.Close()
		t.Logf("%s with eu-west back for 15 s: /readyz %d", c.names[0], resp.StatusCode)
	} else {
		t.Logf("%s with eu-west back for 15 s: not serving yet (%v)", c.names[0], err)
	}
	back := time.Now()
	c.procs[2] = c.spawn(2)
	for i := range c.names {
		c.waitReady(i)
	}
	t.Logf("every region ready %s after ap-south was started", time.Since(back).Round(time.Millisecond))
	log, _ := os.ReadFile(filepath.Join(c.dir, c.names[0]+".log"))
	if !strings.Contains(string(log), "the region's stream was repaired from a mirror") {
		t.Errorf("no repair in %s's log:\n%s", c.names[0], tail(log, 3000))
	}
	regiontest.WaitFor(t, 30*time.Second, func() error {
		for k := range codes {
			if err := c.resolves(0, codes[k], urls[k]); err != nil {
				return err
			}
		}
		return nil
	})
	url := "https://example.com/alone/after"
	r, err := c.clients[0].Create(ctx, map[string]any{"url": url})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create after the restart: %v %s", err, r.Raw)
	}
	for j := 1; j < len(c.names); j++ {
		regiontest.WaitFor(t, 90*time.Second, func() error { return c.resolves(j, r.Str("code"), url) })
	}
	for j := 1; j < len(c.names); j++ {
		rr, err := c.regions(j)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range rr.Origins {
			if o.OriginBehind || o.OriginDiverged {
				t.Errorf("%s says %s lost events: %+v", c.names[j], o.Origin, o)
			}
		}
	}
}
