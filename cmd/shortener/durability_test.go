//go:build regions

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shortener/chaos/netfault"
	"shortener/procs"
	"shortener/region"
	"shortener/region/regiontest"
)

// TestClusterDurabilityNegativeControl is the durability modes' negative
// control, in a dev cluster started with --chaos (fault proxies on every
// NATS link, cut and slowed through the supervisor as shortener chaos
// does): us-east acknowledges creates while its mirrors are held back,
// then loses its data directory (SIGKILL and the directory removed, so
// the lost-disk repair has only what the mirrors hold to copy back).
//
//   - local: both of us-east's links cut. Every create is acknowledged
//     (201 after the local ack) and no other region can hold it: after the
//     loss, every one of them is missing in every region, while a link
//     created after the restart reaches them all. This is what `local`
//     allows, and what shows that the procedure does lose data.
//   - replicated: the link to eu-west cut, the one to ap-south slow. A
//     201 waits until ap-south's mirror holds the event: after the same
//     loss, every acknowledged create resolves in every region.
func TestClusterDurabilityNegativeControl(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		d := startDev(t, "--chaos", "--durability", "local")
		for _, peer := range []string{"eu-west", "ap-south"} {
			d.control(t, "/net/cut/us-east/"+peer)
		}
		d.waitLink(t, "eu-west", func(l netfault.Link) bool { return l.Cut && l.Open == 0 })
		d.waitLink(t, "ap-south", func(l netfault.Link) bool { return l.Cut && l.Open == 0 })
		held := d.heldOfUSEast(t)
		acks := d.createInUSEast(t, "local", false)
		t.Logf("%d creates acknowledged by us-east in local mode with both its links cut; us-east's stream held by eu-west, ap-south: %v before them, %v after", len(acks), held, d.heldOfUSEast(t))

		d.loseUSEastDisk(t)
		after := d.createIn(t, 0, "https://example.com/after-the-loss")
		for j := range d.topo.Regions {
			regiontest.WaitFor(t, 90*time.Second, func() error { return d.resolves(j, after, "https://example.com/after-the-loss") })
		}
		// The mirrors flow again (the link made after the restart is
		// everywhere): what us-east acknowledged during the cut is nowhere.
		lost := 0
		for _, a := range acks {
			missing := true
			for j := range d.topo.Regions {
				if st := d.status(t, j, a.code); st != http.StatusNotFound {
					missing = false
					t.Errorf("%s (acknowledged in local mode while us-east's links were cut) answers %d in %s after us-east lost its disk, want 404: the mirrors were not held back", a.code, st, d.topo.Regions[j].Name)
				}
			}
			if missing {
				lost++
			}
		}
		t.Logf("%d of %d creates acknowledged in local mode are missing in every region after the loss of us-east's disk", lost, len(acks))
	})

	t.Run("replicated", func(t *testing.T) {
		const latency = 150 * time.Millisecond
		d := startDev(t, "--chaos", "--durability", "replicated")
		d.control(t, "/net/cut/us-east/eu-west")
		d.control(t, "/net/degrade/us-east/ap-south?latency="+latency.String())
		d.waitLink(t, "eu-west", func(l netfault.Link) bool { return l.Cut && l.Open == 0 })
		d.waitLink(t, "ap-south", func(l netfault.Link) bool {
			return l.Degradation != nil && l.Degradation.Latency == latency && l.Open > 0
		})
		acks := d.createInUSEast(t, "replicated", true)
		d.loseUSEastDisk(t)
		deadline := time.Now().Add(90 * time.Second)
		for _, a := range acks {
			for j := range d.topo.Regions {
				regiontest.WaitFor(t, time.Until(deadline), func() error { return d.resolves(j, a.code, a.url) })
			}
		}
		t.Logf("%d creates acknowledged by us-east in replicated mode (eu-west cut off, +%v to ap-south) all resolve in every region after us-east lost its disk", len(acks), latency)
	})
}

// control asks the dev cluster's supervisor to act (POST path).
func (d *devCluster) control(t *testing.T, path string) {
	t.Helper()
	if err := procs.Call(context.Background(), d.dir, http.MethodPost, path, nil); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// waitLink polls the fault proxies' state until the link between us-east
// and peer satisfies ok: the fault is in place.
func (d *devCluster) waitLink(t *testing.T, peer string, ok func(netfault.Link) bool) {
	t.Helper()
	regiontest.WaitFor(t, 20*time.Second, func() error {
		var st netfault.State
		if err := procs.Call(context.Background(), d.dir, http.MethodGet, "/net", &st); err != nil {
			return err
		}
		if l := st.Link("us-east", peer); !ok(l) {
			return fmt.Errorf("us-east/%s: %+v", peer, l)
		}
		return nil
	})
}

// client is a client of region i with the dev cluster's key.
func (d *devCluster) client(i int) *regiontest.Client {
	c := regiontest.NewClient(d.url(i))
	c.Key = d.key
	return c
}

// createInUSEast creates n links in us-east, all at once or one after the
// other, and returns the acknowledged ones; it fails the test if none was.
func (d *devCluster) createInUSEast(t *testing.T, mode string, concurrent bool) []ack {
	t.Helper()
	const n = 20
	var mu sync.Mutex
	var acks []ack
	var slowest, fastest time.Duration
	one := func(k int) {
		url := fmt.Sprintf("https://example.com/%s/%d/%d", mode, k, time.Now().UnixNano())
		start := time.Now()
		r, err := d.client(0).Create(context.Background(), map[string]any{"url": url})
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || r.Status != http.StatusCreated {
			t.Logf("create %d in us-east (%s): %v %d %s", k, mode, err, r.Status, r.Raw)
			return
		}
		acks = append(acks, ack{0, r.Str("code"), url})
		slowest = max(slowest, took)
		if fastest == 0 || took < fastest {
			fastest = took
		}
	}
	var wg sync.WaitGroup
	for k := range n {
		if !concurrent {
			one(k)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); one(k) }()
	}
	wg.Wait()
	if len(acks) == 0 {
		t.Fatalf("none of %d creates in us-east (%s) was acknowledged: nothing to look for after the loss", n, mode)
	}
	t.Logf("%d of %d creates acknowledged by us-east (%s), each in %v to %v", len(acks), n, mode, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond))
	return acks
}

// createIn creates a link to url in region i; anything but a 201 fails
// the test.
func (d *devCluster) createIn(t *testing.T, i int, url string) string {
	t.Helper()
	r, err := d.client(i).Create(context.Background(), map[string]any{"url": url})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create in %s: %v %d %s", d.topo.Regions[i].Name, err, r.Status, r.Raw)
	}
	return r.Str("code")
}

// loseUSEastDisk SIGKILLs us-east (make region-down), removes its data
// directory (its log kept beside it), lifts every link fault, starts it
// again (make region-up) and waits until it is ready; its log must name
// the lost-disk repair, which copies back only what the mirrors hold.
func (d *devCluster) loseUSEastDisk(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := procs.Control(ctx, d.dir, "/down/us-east"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(d.dir, "us-east")
	if err := os.Rename(filepath.Join(dir, "region.log"), filepath.Join(d.dir, "us-east-before-the-loss.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	d.control(t, "/net/heal-all")
	up, err := procs.Control(ctx, d.dir, "/up/us-east")
	if err != nil {
		t.Fatal(err)
	}
	err = procs.WaitHTTP(ctx, d.url(0)+"/readyz", nil, 3*time.Minute, http.StatusOK)
	log, _ := os.ReadFile(filepath.Join(dir, "region.log"))
	if err != nil {
		t.Fatalf("us-east on an empty data directory: %v\n%s", err, tail(log, 4000))
	}
	t.Logf("us-east restarted on an empty data directory: ready after %s", time.Since(up.At).Round(time.Millisecond))
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "the region's stream was repaired from a mirror") {
			t.Log(line)
			return
		}
	}
	t.Fatalf("no repair in us-east's log: was its data directory lost?\n%s", tail(log, 4000))
}

// heldOfUSEast is the last sequence of us-east's stream that eu-west's
// and ap-south's mirrors hold, as they report it.
func (d *devCluster) heldOfUSEast(t *testing.T) [2]uint64 {
	t.Helper()
	var out [2]uint64
	hc := &http.Client{Timeout: 5 * time.Second}
	for k, j := range []int{1, 2} {
		var rr region.RegionsResponse
		if err := getJSON(context.Background(), hc, d.url(j)+"/api/v1/regions", &rr); err != nil {
			t.Fatal(err)
		}
		for _, o := range rr.Origins {
			if o.Origin == "us-east" {
				out[k] = o.LastSeq
			}
		}
	}
	return out
}

// status is what region i answers for code.
func (d *devCluster) status(t *testing.T, i int, code string) int {
	t.Helper()
	r, err := d.client(i).Do(context.Background(), http.MethodGet, "/"+code, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status
}

// resolves reports whether code redirects to url in region i.
func (d *devCluster) resolves(i int, code, url string) error {
	r, err := d.client(i).Do(context.Background(), http.MethodGet, "/"+code, nil)
	if err != nil {
		return err
	}
	if r.Status/100 != 3 || r.Header.Get("Location") != url {
		return fmt.Errorf("%s in %s: %d to %q, want a redirect to %s", code, d.topo.Regions[i].Name, r.Status, r.Header.Get("Location"), url)
	}
	return nil
}
