package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"shortener/chaos"
	"shortener/chaos/check"
	"shortener/chaos/load"
)

// availabilityTarget is the success rate the clients of regions that
// stayed up must see (issue "Chaos").
const availabilityTarget = 0.9999

// configureAliases adds alias claims to the chaos load: one operation in
// ten claims an alias, and each name is fought over by the claims of 30
// consecutive operations (about three, from the clients of every region).
func configureAliases(cfg *load.Config) {
	cfg.AliasRatio = 0.1
	cfg.AliasPrefix = "chaos-"
	cfg.AliasSpan = 30
}

// rpoProbe is what a region's death left the survivors without, measured
// while it was down, against the RPO they reported just before.
type rpoProbe struct {
	step     int
	region   string
	killedAt time.Time
	acked    int // acknowledged by the dead region in the minute before
	// per survivor
	lines []string
	ok    bool
	known int // survivors that reported a known bound
}

// measureRPO asks every other region, while region is down, for the links
// region acknowledged in the minute before killedAt, and compares what
// they lack with the RPO bound they reported before the kill.
func (c *chaosRun) measureRPO(ctx context.Context, step int, region string, killedAt time.Time) {
	time.Sleep(time.Second) // the answers in flight at the kill reach the history
	p := rpoProbe{step: step, region: region, killedAt: killedAt, ok: true}
	defer func() { c.rpo = append(c.rpo, p) }()
	h, err := c.historySoFar()
	if err != nil {
		p.ok = false
		p.lines = append(p.lines, "history unreadable: "+err.Error())
		return
	}
	fr, err := load.Failover(h, region, killedAt, time.Time{})
	if err != nil {
		p.ok = false
		p.lines = append(p.lines, err.Error())
		return
	}
	var codes []string
	for _, o := range fr.Acked {
		if o.Code != "" && o.End.After(killedAt.Add(-time.Minute)) {
			codes = append(codes, o.Code)
		}
	}
	p.acked = len(codes)
	for _, r := range c.topo.Regions {
		if r.Name == region {
			continue
		}
		pr, err := load.Probe(ctx, "http://"+r.Host+":8080", codes)
		if err != nil {
			p.ok = false
			p.lines = append(p.lines, fmt.Sprintf("%s: probe failed: %v", r.Name, err))
			continue
		}
		rep, found := fr.ReportedBy(r.Name)
		switch {
		case pr.Errors > 0:
			p.ok = false
			p.lines = append(p.lines, fmt.Sprintf("%s: %d of %d probes unanswered", r.Name, pr.Errors, pr.Checked))
		case !found || !rep.RPOKnown:
			// The region said it did not know: nothing to hold it to.
			p.lines = append(p.lines, fmt.Sprintf("%s lacked %d; it reported no known bound before the kill", r.Name, pr.Missing))
		default:
			p.known++
			holds := uint64(pr.Missing) <= rep.RPOEvents
			p.ok = p.ok && holds
			verdict := "within"
			if !holds {
				verdict = "ABOVE"
			}
			p.lines = append(p.lines, fmt.Sprintf("%s lacked %d of %d; reported bound %d events (%.2f s) at %s: %s",
				r.Name, pr.Missing, pr.Checked, rep.RPOEvents, rep.RPOSeconds, rep.At.Format("15:04:05.000"), verdict))
		}
	}
	c.logf("%d. RPO after losing %s: %s", step, region, strings.Join(p.lines, "; "))
}

// historySoFar reads the history written so far (up to its last whole
// line).
func (c *chaosRun) historySoFar() (*load.History, error) {
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
func (c *chaosRun) judge(ctx context.Context, h *load.History) []chaos.Check {
	var checks []chaos.Check
	digests, err := c.converge(ctx)
	conv := check.Converged(digests)
	if err != nil {
		conv.OK = false
		conv.Details = append(conv.Details, err.Error())
	}
	checks = append(checks, conv)

	codes := check.Codes(h)
	c.logf("reading %d codes in each of %d regions", len(codes), len(c.topo.Regions))
	final := check.Final{}
	var readErrs []string
	for _, r := range c.topo.Regions {
		m, err := readFinal(ctx, "http://"+r.Host+":8080", codes)
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

	rpo := chaos.Check{Name: "measured RPO within the reported bound", Want: "for every region lost: what the survivors lacked ≤ the RPO they reported before", OK: true}
	var known int
	for _, p := range c.rpo {
		rpo.OK = rpo.OK && p.ok
		known += p.known
		rpo.Details = append(rpo.Details, fmt.Sprintf("step %d, %s lost at %s, %d acknowledged in the minute before: %s",
			p.step, p.region, p.killedAt.Format("15:04:05.000"), p.acked, strings.Join(p.lines, "; ")))
	}
	rpo.Measured = fmt.Sprintf("%d regions lost, %d survivor measurements against a known bound", len(c.rpo), known)
	if len(c.rpo) == 0 {
		rpo.Measured = "no region was lost in this run: not measured"
	}
	checks = append(checks, rpo)

	c.logf("audit verify: every mirror against its origin, every projection against a replay of the log")
	audit := chaos.Check{Name: "mirrors equal their origins; projections equal a replay (no gap, no duplicate)", Want: "audit verify passes"}
	if dc, err := devDrillCluster(c.devDir); err != nil {
		audit.Measured = err.Error()
	} else {
		out, err := dc.Verify(ctx)
		audit.OK = err == nil
		audit.Measured = "passed"
		if err != nil {
			audit.Measured = err.Error()
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(l, "MISMATCH") || strings.Contains(l, "NOT") || strings.Contains(l, "differ") || !audit.OK {
				audit.Details = append(audit.Details, l)
			}
		}
		_ = os.WriteFile(filepath.Join(c.dir, "audit-verify.txt"), []byte(out), 0o644)
	}
	checks = append(checks, audit)
	return checks
}

// converge waits until every region's projection has the same digest twice
// in a row (at most 2 min) and returns the last digests.
func (c *chaosRun) converge(ctx context.Context) (map[string]string, error) {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	var prev map[string]string
	for {
		cur := map[string]string{}
		var errs []string
		for _, r := range c.topo.Regions {
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
		same := len(errs) == 0 && len(cur) == len(c.topo.Regions)
		for _, d := range cur {
			for _, e := range cur {
				same = same && d == e
			}
		}
		if same && prev != nil && equalMaps(prev, cur) {
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

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (c *chaosRun) getJSON(ctx context.Context, url string, v any) error {
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
