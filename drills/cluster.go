package drills

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

var hc = &http.Client{Timeout: 5 * time.Second}

// getJSON GETs url (with the API key when key is set) into v.
func getJSON(ctx context.Context, url, key string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %d: %w", url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// poll calls f every interval until it returns nil, ctx ends or timeout
// passes; it returns the last error.
func poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

type originLag struct {
	Origin     string  `json:"origin"`
	RPOKnown   bool    `json:"rpo_known"`
	RPOEvents  uint64  `json:"rpo_events"`
	RPOSeconds float64 `json:"rpo_seconds"`
	Local      bool    `json:"local"`
}

type regionsResponse struct {
	Region  string      `json:"region"`
	Origins []originLag `json:"origins"`
}

// steadyState is the hypothesis every drill starts from and returns to:
// every region ready, every region's clients answered with their home by
// the switch, and every region holding a live mirror of every other (its
// RPO for them known).
func steadyState(ctx context.Context, c *Cluster) error {
	for _, r := range c.Regions {
		if code, err := getJSON(ctx, r.URL+"/readyz", "", nil); err != nil || code != http.StatusOK {
			return fmt.Errorf("%s not ready (%d, %v)", r.Name, code, err)
		}
		a, err := c.SwitchAnswer(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("switch: %w", err)
		}
		if a != r.Name {
			return fmt.Errorf("the switch answers %s's clients with %s", r.Name, a)
		}
		var rr regionsResponse
		if _, err := getJSON(ctx, r.URL+"/api/v1/regions", "", &rr); err != nil {
			return err
		}
		for _, o := range rr.Origins {
			if !o.RPOKnown {
				return fmt.Errorf("%s: mirror of %s not live (RPO unknown)", r.Name, o.Origin)
			}
		}
	}
	return nil
}

func steady(timeout time.Duration) func(ctx context.Context, r *Run) error {
	return func(ctx context.Context, r *Run) error {
		return poll(ctx, timeout, 500*time.Millisecond, func() error { return steadyState(ctx, r.Cluster) })
	}
}

type projectionInfo struct {
	Region string `json:"region"`
	Digest string `json:"digest"`
	Links  int    `json:"links"`
}

// digestsEqual waits until every region's projection has the same digest
// (invariant 4, once the load stopped and the mirrors delivered) and
// returns what it saw last.
func digestsEqual(ctx context.Context, c *Cluster, timeout time.Duration) (string, bool) {
	var last string
	err := poll(ctx, timeout, 500*time.Millisecond, func() error {
		var parts []string
		digests := map[string]bool{}
		for _, r := range c.Regions {
			var p projectionInfo
			if _, err := getJSON(ctx, r.URL+"/api/v1/projection", c.APIKey, &p); err != nil {
				last = err.Error()
				return err
			}
			digests[p.Digest] = true
			parts = append(parts, fmt.Sprintf("%s %d links %.12s", r.Name, p.Links, p.Digest))
		}
		last = strings.Join(parts, ", ")
		if len(digests) != 1 {
			return fmt.Errorf("digests differ: %s", last)
		}
		return nil
	})
	return last, err == nil
}

// cacheCounters scrapes a region's /metrics for its redirect cache lookups.
func cacheCounters(ctx context.Context, url string) (hits, misses float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s/metrics: %s", url, resp.Status)
	}
	return parseCacheCounters(resp.Body)
}

// errNoCacheLookups: the region exports no lookup counts (metrics off;
// with metrics on they are read at every collection, from 0).
var errNoCacheLookups = errors.New("no shortener_cache_lookups_total in /metrics")

func parseCacheCounters(r io.Reader) (hits, misses float64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "shortener_cache_lookups_total{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, perr := strconv.ParseFloat(line[i+1:], 64)
		if perr != nil {
			continue
		}
		switch {
		case strings.Contains(line, `result="hit"`):
			hits, found = hits+v, true
		case strings.Contains(line, `result="miss"`):
			misses, found = misses+v, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, errNoCacheLookups
	}
	return hits, misses, nil
}

// acknowledged returns the codes of the creates acknowledged in a history.
func (r *Run) acknowledged() ([]string, error) {
	h, err := r.History()
	if err != nil {
		return nil, err
	}
	var codes []string
	for _, op := range h.Ops {
		if op.Op == "create" && op.Ack && op.Code != "" {
			codes = append(codes, op.Code)
		}
	}
	sort.Strings(codes)
	return codes, nil
}
