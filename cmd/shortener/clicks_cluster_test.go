//go:build regions

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// TestClusterClicksConverge: 1,000 redirects spread over the three regions
// give totals of 1,000 in every region within 10 s with clicks committed
// every 2 s (the default is 10 s), bots counted apart, and each region's
// share attributed to it.
func TestClusterClicksConverge(t *testing.T) {
	c := newCluster(t, "--click-commit-every=2s")
	ctx := context.Background()
	r, err := c.clients[0].Create(ctx, map[string]any{"url": "https://example.com/popular"})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create: %v %s", err, r.Raw)
	}
	code := r.Str("code")
	for j := range c.names { // known everywhere (asked without a redirect, which would count)
		regiontest.WaitFor(t, 5*time.Second, func() error { _, err := c.stats(j, code); return err })
	}
	// The click mirrors use JetStream's own sourcing: on a fresh cluster one
	// may start only after nats-server's 30 s + 10 s retry (a known gap,
	// docs/decisions.md). Wait until one click from each region has reached
	// every region, then measure the steady state.
	warm := r.Str("code")
	for j := range c.names {
		if err := c.resolves(j, warm, "https://example.com/popular"); err != nil {
			t.Fatal(err)
		}
	}
	for j := range c.names {
		regiontest.WaitFor(t, 90*time.Second, func() error {
			st, err := c.stats(j, warm)
			if err != nil {
				return err
			}
			for _, name := range c.names {
				if got := st.ByRegion[name]; got.People+got.Bots == 0 {
					return fmt.Errorf("%s has no click from %s yet", c.names[j], name)
				}
			}
			return nil
		})
	}
	base, _ := c.stats(0, code) // the warm-up clicks (bots: Go's user agent)
	const n, botEvery = 1000, 10
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var served [3]int
	var bots int
	var mu sync.Mutex
	var wg sync.WaitGroup
	sent := time.Now()
	for k := 0; k < 8; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += 8 {
				req, _ := http.NewRequest(http.MethodGet, "http://"+c.hosts[i%3]+":8080/"+code, nil)
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
				if i%botEvery == 0 {
					req.Header.Set("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
				}
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusFound {
					t.Errorf("redirect %d: %v", i, err)
					continue
				}
				resp.Body.Close()
				mu.Lock()
				served[i%3]++
				if i%botEvery == 0 {
					bots++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for j := range c.names {
		regiontest.WaitFor(t, 10*time.Second-time.Since(sent), func() error {
			st, err := c.stats(j, code)
			if err != nil {
				return err
			}
			if st.Total.People+st.Total.Bots != n+3 || st.Total.Bots != uint64(bots)+base.Total.Bots {
				return fmt.Errorf("%s counts %d people and %d bots; want %d in all, %d bots", c.names[j], st.Total.People, st.Total.Bots, n+3, uint64(bots)+base.Total.Bots)
			}
			for i, name := range c.names {
				if got := st.ByRegion[name]; got.People+got.Bots != uint64(served[i])+1 {
					return fmt.Errorf("%s attributes %d clicks to %s, which served %d", c.names[j], got.People+got.Bots, name, served[i])
				}
			}
			return nil
		})
	}
	st, _ := c.stats(0, code)
	t.Logf("%d redirects (%d by a bot) counted in all three regions within %v: %+v", n, bots, time.Since(sent).Round(time.Millisecond), st.Total)
}

func (c *cluster) stats(i int, code string) (region.StatsResponse, error) {
	var st region.StatsResponse
	r, err := c.clients[i].Do(context.Background(), http.MethodGet, "/api/v1/links/"+code+"/stats", nil)
	if err != nil {
		return st, err
	}
	if r.Status != http.StatusOK {
		return st, fmt.Errorf("stats in %s: %d %s", c.names[i], r.Status, r.Raw)
	}
	return st, json.Unmarshal(r.Raw, &st)
}
