package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"shortener/chaos"
	"shortener/chaos/check"
	"shortener/chaos/load"
)

// measureRPO asks every other region, while region is down, for the links
// region acknowledged in the minute before killedAt, against the RPO bound
// they reported before the kill (check.RPO judges it at the end).
func (c *run) measureRPO(ctx context.Context, step int, region string, killedAt time.Time) {
	time.Sleep(time.Second) // the answers in flight at the kill reach the history
	l := check.Lost{Step: step, Region: region, At: killedAt}
	defer func() {
		c.lost = append(c.lost, l)
		c.logf("%d. RPO after losing %s: %s", step, region, l.Summary())
	}()
	h, err := c.historySoFar()
	if err != nil {
		l.Err = "history unreadable: " + err.Error()
		return
	}
	fr, err := load.Failover(h, region, killedAt, time.Time{})
	if err != nil {
		l.Err = err.Error()
		return
	}
	var codes []string
	for _, o := range fr.Acked {
		if o.Code != "" && o.End.After(killedAt.Add(-time.Minute)) {
			codes = append(codes, o.Code)
		}
	}
	l.Acked = len(codes)
	for _, r := range c.o.Topology.Regions {
		if r.Name == region {
			continue
		}
		s := check.Survivor{Region: r.Name}
		pr, err := load.Probe(ctx, r.URL(), codes)
		if err != nil {
			s.ProbeErr = err.Error()
		} else {
			s.Checked, s.Missing, s.Unanswered = pr.Checked, pr.Missing, pr.Errors
		}
		if rep, found := fr.ReportedBy(r.Name); found && rep.RPOKnown {
			s.Known, s.Bound, s.BoundSeconds, s.ReportedAt = true, rep.RPOEvents, rep.RPOSeconds, rep.At
		}
		l.Survivors = append(l.Survivors, s)
	}
}

// historySoFar reads the history written so far (up to its last whole
// line).
func (c *run) historySoFar() (*load.History, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	return load.ReadHistory(bytes.NewReader(data))
}

// judge waits for the healed regions to converge, reads every code of the
// history in every region, and runs the checkers.
func (c *run) judge(ctx context.Context, h *load.History) []chaos.Check {
	var checks []chaos.Check
	digests, err := c.converge(ctx)
	conv := check.Converged(digests)
	if err != nil {
		conv.OK = false
		conv.Details = append(conv.Details, err.Error())
	}
	checks = append(checks, conv)

	codes := check.Codes(h)
	c.logf("reading %d codes in each of %d regions", len(codes), len(c.o.Topology.Regions))
	final := check.Final{}
	var readErrs []string
	for _, r := range c.o.Topology.Regions {
		m, err := readFinal(ctx, r.URL(), codes)
		if err != nil {
			readErrs = append(readErrs, fmt.Sprintf("%s: %v", r.Name, err))
			continue
		}
		final[r.Name] = m
	}
	acked := check.Acked(h, final)
	phantoms := check.Phantoms(h, final)
	var vis bytes.Buffer
	aliases := check.Aliases(h, final, &vis)
	if vis.Len() > 0 {
		if err := os.WriteFile(filepath.Join(c.dir, "aliases.html"), vis.Bytes(), 0o644); err != nil {
			c.problem("write aliases.html: %v", err)
		}
	}
	for _, ch := range []*chaos.Check{&acked, &phantoms, &aliases} {
		if len(readErrs) > 0 {
			ch.OK = false
			ch.Details = append(ch.Details, readErrs...)
		}
	}
	checks = append(checks, acked, phantoms, aliases,
		check.Availability(h, c.rep.Excluded, availabilityTarget))

	// The RPO is measured when a fault of the schedule kills a region;
	// then it must have been, against a known bound.
	if slices.ContainsFunc(c.rep.Schedule, func(s chaos.Step) bool { f, _ := chaos.Lookup(s.Kind); return f.Lost }) {
		checks = append(checks, check.RPO(c.lost))
	} else {
		c.logf("no fault of the schedule kills a region: the RPO is not measured")
	}

	c.logf("audit verify: every mirror against its origin, every projection against a replay of the log")
	audit := chaos.Check{Name: "mirrors equal their origins; projections equal a replay (no gap, no duplicate)", Want: "audit verify passes"}
	out, err := c.o.Verify(ctx, c.devDir)
	audit.OK = err == nil
	audit.Measured = "passed"
	if err != nil {
		audit.Measured = err.Error()
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		if strings.Contains(l, "MISMATCH") || strings.Contains(l, "NOT") || strings.Contains(l, "differ") || !audit.OK {
			audit.Details = append(audit.Details, l)
		}
	}
	if out != "" {
		_ = os.WriteFile(filepath.Join(c.dir, "audit-verify.txt"), []byte(out), 0o644)
	}
	checks = append(checks, audit)
	return checks
}

// converge waits until every region's projection has the same digest twice
// in a row (at most 2 min) and returns the last digests.
func (c *run) converge(ctx context.Context) (map[string]string, error) {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	var prev map[string]string
	for {
		cur := map[string]string{}
		var errs []string
		for _, r := range c.o.Topology.Regions {
			var info struct {
				Digest string `json:"digest"`
				Links  int    `json:"links"`
			}
			if err := c.getJSON(ctx, "http://"+r.Host+":8080/api/v1/projection", &info); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", r.Name, err))
				continue
			}
			cur[r.Name] = info.Digest
		}
		same := len(errs) == 0 && len(cur) == len(c.o.Topology.Regions)
		for _, d := range cur {
			for _, e := range cur {
				same = same && d == e
			}
		}
		if same && prev != nil && maps.Equal(prev, cur) {
			c.logf("regions converged in %v", time.Since(start).Round(100*time.Millisecond))
			return cur, nil
		}
		if same {
			prev = cur
		} else {
			prev = nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return cur, fmt.Errorf("not converged after %v: %s", time.Since(start).Round(time.Second), strings.Join(errs, "; "))
		}
		time.Sleep(time.Second)
	}
}

func (c *run) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Api-Key", c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// readFinal asks base for every code (GET, redirects not followed) and
// returns each code's Location ("" for an answer that is not a redirect:
// 404, 410). Any other answer, or none, is an error.
func readFinal(ctx context.Context, base string, codes []string) (map[string]string, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	out := make(map[string]string, len(codes))
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for code := range next {
				loc, err := func() (string, error) {
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+code, nil)
					if err != nil {
						return "", err
					}
					resp, err := hc.Do(req)
					if err != nil {
						return "", err
					}
					resp.Body.Close()
					switch {
					case resp.StatusCode/100 == 3:
						return resp.Header.Get("Location"), nil
					case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusGone:
						return "", nil
					}
					return "", fmt.Errorf("%s: %s", code, resp.Status)
				}()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out[code] = loc
				mu.Unlock()
			}
		})
	}
	for _, code := range codes {
		select {
		case next <- code:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return out, firstErr
	}
	return out, firstErr
}
