package region_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shortener/events"
	"shortener/region"
	"shortener/region/regiontest"
)

func clickStats(t *testing.T, c *regiontest.Client, code string) region.StatsResponse {
	t.Helper()
	r, err := c.Do(context.Background(), http.MethodGet, "/api/v1/links/"+code+"/stats", nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("stats: %v %d %s", err, r.Status, r.Raw)
	}
	var st region.StatsResponse
	if err := json.Unmarshal(r.Raw, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// redirects sends n redirects of code with user agent ua, 8 at a time, and
// returns the slowest and how many did not answer 302.
func redirects(t *testing.T, base, code, ua string, n int) (slowest time.Duration, failed int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				req, _ := http.NewRequest(http.MethodGet, base+"/"+code, nil)
				req.Header.Set("User-Agent", ua)
				start := time.Now()
				resp, err := client.Do(req)
				took := time.Since(start)
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil || resp.StatusCode != http.StatusFound {
					failed++
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	return slowest, failed
}

const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

// A stalled click path: redirects neither fail nor wait for it, the clicks
// that cannot be recorded are counted as dropped, and counting resumes when
// the path recovers; every redirect is either counted or counted as
// dropped.
func TestClickPathStalled(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.ClickQueue = 200
	reg := regiontest.Start(t, cfg)
	c := regiontest.NewClient(reg.URL)
	r, err := c.Create(context.Background(), map[string]any{"url": "https://example.com/clicked"})
	code := must(t, r, err, http.StatusCreated).Str("code")

	if _, failed := redirects(t, reg.URL, code, browserUA, 300); failed != 0 {
		t.Fatalf("%d redirects failed", failed)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if st := clickStats(t, c, code); st.Total.People != 300 {
			return fmt.Errorf("%d clicks counted, want 300", st.Total.People)
		}
		return nil
	})

	// Stalled, the path holds at most the buffer the flusher took (up to
	// ClickQueue clicks, the first batch of it stuck in the publish) and
	// the buffer filling meanwhile (ClickQueue): more redirects than that
	// must drop, however fast they come.
	reg.StallClicks(time.Hour) // the click stream stops taking batches
	during := events.MaxClickBatch + cfg.ClickQueue + 300
	slowest, failed := redirects(t, reg.URL, code, browserUA, during)
	if failed != 0 {
		t.Fatalf("%d of %d redirects failed while the click path was stalled", failed, during)
	}
	if slowest > time.Second {
		t.Errorf("a redirect took %v while the click path was stalled: it waited for it", slowest)
	}
	stalled := reg.ClickCounters()
	if stalled.Dropped == 0 {
		t.Fatalf("no click counted as dropped with a stalled path and a queue of 200: %+v", stalled)
	}

	reg.StallClicks(0)
	if _, failed := redirects(t, reg.URL, code, browserUA, 100); failed != 0 {
		t.Fatalf("%d redirects failed after the stall", failed)
	}
	total := 300 + during + 100
	regiontest.WaitFor(t, 15*time.Second, func() error {
		k := reg.ClickCounters()
		st := clickStats(t, c, code)
		if k.Recorded+k.Dropped != uint64(total) || st.Total.People != k.Recorded || k.Queued != 0 {
			return fmt.Errorf("counters %+v, %d counted: want recorded + dropped = %d redirects, all recorded ones counted", k, st.Total.People, total)
		}
		return nil
	})
	k := reg.ClickCounters()
	t.Logf("%d redirects: %d clicks recorded, %d dropped during the stall; slowest redirect during the stall %v", total, k.Recorded, k.Dropped, slowest)
	if k.Recorded <= 400 {
		t.Errorf("only %d clicks recorded: counting did not resume after the stall", k.Recorded)
	}
}

// A client chooses a click's headers: with the click path stalled, the
// waiting clicks hold at most ClickQueueBytes of them (and the batch the
// flusher is stuck publishing as much again), and the clicks beyond are
// dropped, not queued, long before ClickQueue clicks wait. The control:
// the same redirects under a byte bound they never reach all wait.
func TestClickQueueBoundedInBytes(t *testing.T) {
	ua, referrer := strings.Repeat("u", 1000), "https://example.com/"+strings.Repeat("r", 980)
	stalled := func(maxBytes int) region.ClickCounters {
		cfg := regiontest.Config("us-east", t.TempDir())
		cfg.ClickQueue = 1000
		cfg.ClickQueueBytes = maxBytes
		reg := regiontest.Start(t, cfg)
		code := mustCreate(t, regiontest.NewClient(reg.URL), "https://example.com/bytes").Str("code")
		reg.StallClicks(time.Hour)
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for range 300 {
			req, _ := http.NewRequest(http.MethodGet, reg.URL+"/"+code, nil)
			req.Header.Set("User-Agent", ua)
			req.Header.Set("Referer", referrer)
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("redirect: %v %v", err, resp)
			}
			resp.Body.Close()
		}
		return reg.ClickCounters()
	}
	const maxBytes = 64 << 10
	perClick := 8 + len(ua) + len(referrer) // a code is 8 characters
	most := 2 * (maxBytes / perClick)       // the queue and the flusher's batch
	bounded := stalled(maxBytes)
	t.Logf("300 clicks of %d bytes, %d bytes allowed: %+v", perClick, maxBytes, bounded)
	if bounded.Queued > most || bounded.Dropped < uint64(300-most) {
		t.Errorf("%d clicks wait and %d were dropped: want at most %d waiting (%d bytes each, %d allowed), the rest dropped",
			bounded.Queued, bounded.Dropped, most, perClick, maxBytes)
	}
	control := stalled(1 << 30)
	if control.Queued != 300 || control.Dropped != 0 {
		t.Errorf("control (no byte bound reached): %+v, want all 300 waiting", control)
	}
}
