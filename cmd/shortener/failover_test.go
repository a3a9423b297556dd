//go:build regions

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/region/regiontest"
	"shortener/replicator"
)

type ack struct {
	region int
	code   string
	url    string
}

// writers create links in every region until stopped, recording every 201
// and counting failures per region.
type writers struct {
	mu       sync.Mutex
	acks     []ack
	failures [3]atomic.Int64
	oks      [3]atomic.Int64
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func startWriters(c *cluster, perRegion int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{stop: cancel}
	for i := range c.names {
		for k := 0; k < perRegion; k++ {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				cl := regiontest.NewClient(c.clients[i].Base)
				cl.HTTP.Timeout = 3 * time.Second
				for n := 0; ctx.Err() == nil; n++ {
					url := fmt.Sprintf("https://example.com/%s/%d/%d", c.names[i], k, n)
					r, err := cl.Create(ctx, map[string]any{"url": url})
					if ctx.Err() != nil {
						return
					}
					if err != nil || r.Status != http.StatusCreated {
						w.failures[i].Add(1)
						time.Sleep(50 * time.Millisecond) // a dead region: do not spin
						continue
					}
					w.oks[i].Add(1)
					w.mu.Lock()
					w.acks = append(w.acks, ack{i, r.Str("code"), url})
					w.mu.Unlock()
				}
			}()
		}
	}
	return w
}

func (w *writers) halt() []ack {
	w.stop()
	w.wg.Wait()
	return w.acks
}

// converged waits until every acknowledged link resolves in every region
// and the three projections have one digest.
func converged(t *testing.T, c *cluster, acks []ack, timeout time.Duration) {
	t.Helper()
	if len(acks) == 0 {
		t.Fatal("no acknowledged create: nothing to find in every region")
	}
	deadline := time.Now().Add(timeout)
	for _, a := range acks {
		for j := range c.names {
			regiontest.WaitFor(t, time.Until(deadline), func() error { return c.resolves(j, a.code, a.url) })
		}
	}
	regiontest.WaitFor(t, time.Until(deadline), func() error {
		d0 := c.projection(0)
		for j := 1; j < len(c.names); j++ {
			if d := c.projection(j); d.Digest != d0.Digest || d.Links != d0.Links {
				return fmt.Errorf("%s has %d links (digest %.12s), %s has %d (%.12s)", c.names[0], d0.Links, d0.Digest, c.names[j], d.Links, d.Digest)
			}
		}
		return nil
	})
}

// rpoOf is region from's view of origin: the RPO bound it reports, and the
// whole view as JSON for the log.
func rpoOf(c *cluster, from int, origin string) (uint64, string, error) {
	rr, err := c.regions(from)
	if err != nil {
		return 0, "", err
	}
	for _, o := range rr.Origins {
		if o.Origin == origin {
			view, _ := json.Marshal(o)
			if !o.RPOKnown {
				return 0, string(view), fmt.Errorf("%s reports no RPO bound for %s", c.names[from], origin)
			}
			return o.RPOEvents, string(view), nil
		}
	}
	return 0, "", fmt.Errorf("%s does not report %s", c.names[from], origin)
}

func heldOf(c *cluster, from int, origin string) (uint64, error) {
	rr, err := c.regions(from)
	if err != nil {
		return 0, err
	}
	for _, o := range rr.Origins {
		if o.Origin == origin {
			return o.LastSeq, nil
		}
	}
	return 0, fmt.Errorf("no origin %s", origin)
}

// TestOneRegionKilledUnderLoad kills us-east while clients create links in
// all three regions: the other two keep creating and redirecting, the RPO
// they reported at the kill bounds what they actually lack, and after the
// restart everything acknowledged resolves everywhere with one digest.
func TestClusterOneRegionKilledUnderLoad(t *testing.T) {
	c := newCluster(t)
	w := startWriters(c, 2)
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if w.oks[0].Load() < 100 {
			return fmt.Errorf("only %d creates in us-east so far", w.oks[0].Load())
		}
		return nil
	})
	// Redirects in the survivors, throughout, of links made before the kill.
	w.mu.Lock()
	before := append([]ack(nil), w.acks...)
	w.mu.Unlock()
	var redirectFails, redirects atomic.Int64
	rctx, rstop := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	for _, j := range []int{1, 2} {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for n := 0; rctx.Err() == nil; n++ {
				a := before[n%len(before)]
				if a.region == 0 && n < len(before) {
					continue // us-east's own latest links may still be in flight to the mirror
				}
				redirects.Add(1)
				if err := c.resolves(j, a.code, a.url); err != nil && a.region != 0 {
					redirectFails.Add(1)
					t.Logf("redirect during the outage: %v", err)
				}
			}
		}()
	}

	var rpoBefore, rpoAfter [3]uint64
	var viewBefore, viewAfter [3]string
	for _, j := range []int{1, 2} {
		var err error
		if rpoBefore[j], viewBefore[j], err = rpoOf(c, j, "us-east"); err != nil {
			t.Fatal(err)
		}
	}
	killedAt := time.Now()
	c.kill(0)
	failsAtKill := [3]int64{0, w.failures[1].Load(), w.failures[2].Load()}
	for _, j := range []int{1, 2} {
		var err error
		if rpoAfter[j], viewAfter[j], err = rpoOf(c, j, "us-east"); err != nil {
			t.Error(err)
		}
	}
	okAtKill := [3]int64{0, w.oks[1].Load(), w.oks[2].Load()}
	// Survivors keep taking creates while us-east is down.
	regiontest.WaitFor(t, 10*time.Second, func() error {
		for _, j := range []int{1, 2} {
			if w.oks[j].Load() < okAtKill[j]+100 {
				return fmt.Errorf("%s: %d creates since the kill", c.names[j], w.oks[j].Load()-okAtKill[j])
			}
		}
		return nil
	})
	// What the survivors hold of us-east, now that it is dead.
	var held [3]uint64
	for _, j := range []int{1, 2} {
		var err error
		if held[j], err = heldOf(c, j, "us-east"); err != nil {
			t.Fatal(err)
		}
	}
	c.restart(0)
	missing := eventsBefore(t, c.hosts[0], killedAt, held)
	for _, j := range []int{1, 2} {
		t.Logf("%s: reported RPO for us-east %d events just before the kill, %d just after; lacked %d", c.names[j], rpoBefore[j], rpoAfter[j], missing[j])
		t.Logf("%s's view of us-east just before the kill: %s", c.names[j], viewBefore[j])
		t.Logf("%s's view of us-east just after the kill: %s", c.names[j], viewAfter[j])
		if rpoBefore[j] < missing[j] || rpoAfter[j] < missing[j] {
			t.Errorf("invariant 8: %s reported an RPO of %d events just before the kill and %d just after, but lacked %d of us-east's events", c.names[j], rpoBefore[j], rpoAfter[j], missing[j])
		}
	}
	rstop()
	rwg.Wait()
	acks := w.halt()
	for _, j := range []int{1, 2} {
		if f := w.failures[j].Load() - failsAtKill[j]; f != 0 {
			t.Errorf("%s: %d failed creates while us-east was down", c.names[j], f)
		}
	}
	if redirectFails.Load() != 0 {
		t.Errorf("%d of %d redirects failed in the surviving regions", redirectFails.Load(), redirects.Load())
	}
	converged(t, c, acks, 90*time.Second)
	t.Logf("%d links acknowledged; %d redirects in the survivors during the outage; all resolve everywhere, one digest", len(acks), redirects.Load())
}

// eventsBefore counts, for each survivor j, the events of us-east's stream
// written before the kill that j did not hold: after held[j], up to the
// last event older than killedAt (the restarted region's own events come
// later).
func eventsBefore(t *testing.T, host string, killedAt time.Time, held [3]uint64) [3]uint64 {
	t.Helper()
	nc, err := nats.Connect("nats://"+host+":4222", regiontest.NATSOptions("audit")...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, replicator.StreamName("us-east"))
	if err != nil {
		t.Fatal(err)
	}
	lo := min(held[1], held[2])
	lastBefore := lo
	for seq := lo + 1; ; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		e, err := events.Decode(m.Data)
		if err != nil || !m.Time.Before(killedAt) || e.Time.After(killedAt) {
			break
		}
		lastBefore = seq
	}
	var out [3]uint64
	for _, j := range []int{1, 2} {
		if lastBefore > held[j] {
			out[j] = lastBefore - held[j]
		}
	}
	return out
}

// TestTwoRegionsKilled: the survivor still redirects everything it holds
// and creates links with generated codes; aliases answer 503.
func TestClusterTwoRegionsKilled(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	var acks []ack
	for i := range c.names {
		for n := 0; n < 20; n++ {
			url := fmt.Sprintf("https://example.com/%s/%d", c.names[i], n)
			r, err := c.clients[i].Create(ctx, map[string]any{"url": url})
			if err != nil || r.Status != http.StatusCreated {
				t.Fatalf("create: %v %s", err, r.Raw)
			}
			acks = append(acks, ack{i, r.Str("code"), url})
		}
	}
	for _, a := range acks {
		regiontest.WaitFor(t, 5*time.Second, func() error { return c.resolves(2, a.code, a.url) })
	}
	c.kill(0)
	c.kill(1)
	for _, a := range acks {
		if err := c.resolves(2, a.code, a.url); err != nil {
			t.Errorf("survivor: %v", err)
		}
	}
	for n := 0; n < 20; n++ {
		url := fmt.Sprintf("https://example.com/alone/%d", n)
		r, err := c.clients[2].Create(ctx, map[string]any{"url": url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create with a generated code in the survivor: %v %d %s", err, r.Status, r.Raw)
		}
		if err := c.resolves(2, r.Str("code"), url); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.clients[2].Create(ctx, map[string]any{"url": "https://example.com/alias", "alias": "lonely"})
	if err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("alias without quorum: %v %d %v %s; want 503 with Retry-After", err, r.Status, r.Header, r.Raw)
	}
	if ready, err := c.clients[2].Do(ctx, http.MethodGet, "/readyz", nil); err != nil || ready.Status != http.StatusOK {
		t.Fatalf("survivor not ready: %v %d %s", err, ready.Status, ready.Raw)
	}
}

// TestReplicatedDurability: in replicated mode a 201 means another region
// holds the event, so killing the writer right after the 201 loses nothing.
func TestClusterReplicatedDurability(t *testing.T) {
	c := newCluster(t, "--durability", "replicated")
	ctx := context.Background()
	var acks []ack
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n := 0; n < 20; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("https://example.com/replicated/%d", n)
			r, err := c.clients[0].Create(ctx, map[string]any{"url": url})
			if err != nil || r.Status != http.StatusCreated {
				t.Errorf("create: %v %s", err, r.Raw)
				return
			}
			mu.Lock()
			acks = append(acks, ack{0, r.Str("code"), url})
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.kill(0) // right after the last 201
	for _, a := range acks {
		regiontest.WaitFor(t, 5*time.Second, func() error {
			err1, err2 := c.resolves(1, a.code, a.url), c.resolves(2, a.code, a.url)
			if err1 != nil && err2 != nil {
				return err1
			}
			return nil
		})
	}
	t.Logf("%d links acknowledged in replicated mode, all held elsewhere after the writer's SIGKILL", len(acks))
}
