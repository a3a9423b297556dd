package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// FailoverReport is what a history says about the loss of one region: how
// long its clients were without service (RTO), how the other regions'
// clients fared, what the dead region had acknowledged before it died (the
// links an RPO can lose), the RPO the survivors reported just before, and
// when the clients came home. Clients are the history's targets: the
// analysis takes a target named after a region as that region's clients.
type FailoverReport struct {
	// Region is the region that died; KilledAt when, UpAt when it was
	// started again (zero: not in this history).
	Region   string    `json:"region"`
	KilledAt time.Time `json:"killed_at"`
	UpAt     time.Time `json:"up_at,omitzero"`

	// Recovered tells whether a client of Region succeeded through another
	// region after KilledAt; RTO is from KilledAt to the end of the first
	// such operation, FirstElsewhere.
	Recovered      bool          `json:"recovered"`
	RTO            time.Duration `json:"rto_ns"`
	FirstElsewhere *Op           `json:"first_elsewhere,omitempty"`

	// Clients has one entry per target of the history, by name.
	Clients []ClientStats `json:"clients"`

	// Acked are the creates acknowledged (201) by Region that were sent
	// before KilledAt (a 201 that arrives after KilledAt still counts:
	// the region wrote it before it died): the links a failover may lose.
	// An op whose serving region is unknown counts when its target is
	// Region.
	Acked []Op `json:"acked"`

	// Returned tells whether a client of Region succeeded through Region
	// again after UpAt; ReturnedAt is the end of the first such operation
	// and ReturnAfter its distance from UpAt.
	Returned    bool          `json:"returned"`
	ReturnedAt  time.Time     `json:"returned_at,omitzero"`
	ReturnAfter time.Duration `json:"return_after_ns"`

	// Reported is, for every other region polled in the history, the RPO
	// it reported for Region in its last successful poll that ended before
	// KilledAt.
	Reported []ReportedRPO `json:"reported"`

	// Probe, when set by the caller, is what a survivor answered for Acked.
	Probe *ProbeResult `json:"probe,omitempty"`
}

// ClientStats is how one target's operations went over the whole history.
type ClientStats struct {
	// Client is the target's name.
	Client string `json:"client"`
	// Ops counts its operations in the history, OK the successful ones.
	Ops int64 `json:"ops"`
	OK  int64 `json:"ok"`
	// SuccessRate is OK / Ops (0 with no operations: nothing seen is no
	// evidence of success).
	SuccessRate float64 `json:"success_rate"`
	// LongestFailures is the longest run of consecutive failed operations
	// (in intended-time order), from the intended time of its first to the
	// end of its last.
	LongestFailures   int64         `json:"longest_failures"`
	LongestFailFrom   time.Time     `json:"longest_fail_from,omitzero"`
	LongestFailTo     time.Time     `json:"longest_fail_to,omitzero"`
	LongestFailLasted time.Duration `json:"longest_fail_ns"`
	// ServedBy counts the operations by the region they were sent to
	// ("" unknown).
	ServedBy map[string]int64 `json:"served_by"`
}

// ReportedRPO is the RPO one region reported for the dead region.
type ReportedRPO struct {
	// Region is the reporting region.
	Region string `json:"region"`
	// Found tells whether the history has a successful poll of Region,
	// ended before the kill, that mentions the dead region; At is that
	// poll's end.
	Found bool      `json:"found"`
	At    time.Time `json:"at,omitzero"`
	OriginRPO
}

// Failover analyses h for the loss of region dead at killedAt (and its
// return at upAt, zero when the history does not cover it). It fails when
// h holds no operation of a client named dead.
func Failover(h *History, dead string, killedAt, upAt time.Time) (*FailoverReport, error) {
	if killedAt.IsZero() {
		return nil, errors.New("failover: no kill time")
	}
	if !upAt.IsZero() && upAt.Before(killedAt) {
		return nil, errors.New("failover: up before the kill")
	}
	fr := &FailoverReport{Region: dead, KilledAt: killedAt, UpAt: upAt}
	type run struct {
		n        int64
		from, to time.Time
	}
	clients := map[string]*ClientStats{}
	cur := map[string]*run{}
	for i := range h.Ops {
		o := &h.Ops[i]
		if o.Cut {
			continue // cut off by the run's end: no answer of the service
		}
		cs := clients[o.Target]
		if cs == nil {
			cs = &ClientStats{Client: o.Target, ServedBy: map[string]int64{}}
			clients[o.Target] = cs
			cur[o.Target] = &run{}
		}
		cs.Ops++
		cs.ServedBy[o.Region]++
		r := cur[o.Target]
		if o.OK {
			cs.OK++
			r.n = 0
		} else {
			if r.n == 0 {
				r.from = o.Intended
			}
			r.n++
			r.to = o.End
			if r.n > cs.LongestFailures {
				cs.LongestFailures, cs.LongestFailFrom, cs.LongestFailTo = r.n, r.from, r.to
			}
		}
		if o.Target == dead && o.OK && o.Region != "" && o.Region != dead && o.End.After(killedAt) &&
			(fr.FirstElsewhere == nil || o.End.Before(fr.FirstElsewhere.End)) {
			fr.FirstElsewhere = o
		}
		if o.Target == dead && o.OK && o.Region == dead && !upAt.IsZero() && !o.Start.Before(upAt) &&
			(!fr.Returned || o.End.Before(fr.ReturnedAt)) {
			fr.Returned, fr.ReturnedAt = true, o.End
		}
		if o.Op == opCreate.String() && o.Ack && o.Start.Before(killedAt) &&
			(o.Region == dead || o.Region == "" && o.Target == dead) {
			fr.Acked = append(fr.Acked, *o)
		}
	}
	if clients[dead] == nil {
		return nil, fmt.Errorf("failover: the history has no operation of %s's clients", dead)
	}
	for _, name := range slices.Sorted(maps.Keys(clients)) {
		cs := clients[name]
		if cs.Ops > 0 {
			cs.SuccessRate = float64(cs.OK) / float64(cs.Ops)
		}
		if cs.LongestFailures > 0 {
			cs.LongestFailLasted = cs.LongestFailTo.Sub(cs.LongestFailFrom)
		}
		fr.Clients = append(fr.Clients, *cs)
	}
	if fr.FirstElsewhere != nil {
		fr.Recovered = true
		fr.RTO = fr.FirstElsewhere.End.Sub(killedAt)
	}
	if fr.Returned {
		fr.ReturnAfter = fr.ReturnedAt.Sub(upAt)
	}
	last := map[string]*ReportedRPO{}
	for i := range h.Regions {
		rr := &h.Regions[i]
		if rr.Region == dead {
			continue
		}
		rep := last[rr.Region]
		if rep == nil {
			rep = &ReportedRPO{Region: rr.Region}
			last[rr.Region] = rep
		}
		if !rr.OK || !rr.End.Before(killedAt) {
			continue
		}
		if o, ok := rr.Origin(dead); ok && !rr.End.Before(rep.At) {
			rep.Found, rep.At, rep.OriginRPO = true, rr.End, o
		}
	}
	for _, name := range slices.Sorted(maps.Keys(last)) {
		fr.Reported = append(fr.Reported, *last[name])
	}
	return fr, nil
}

// AckedCodes returns the codes of fr.Acked.
func (fr *FailoverReport) AckedCodes() []string {
	codes := make([]string, 0, len(fr.Acked))
	for _, o := range fr.Acked {
		codes = append(codes, o.Code)
	}
	return codes
}

// Client returns the statistics of the clients named name, and whether
// the history has an operation of theirs (one cut off by the run's end
// does not count).
func (fr *FailoverReport) Client(name string) (ClientStats, bool) {
	for _, c := range fr.Clients {
		if c.Client == name {
			return c, c.Ops > 0
		}
	}
	return ClientStats{Client: name}, false
}

// ReportedBy returns the RPO that region reported for the dead region.
func (fr *FailoverReport) ReportedBy(region string) (ReportedRPO, bool) {
	for _, r := range fr.Reported {
		if r.Region == region {
			return r, r.Found
		}
	}
	return ReportedRPO{}, false
}

// ProbeResult is what a region answered for a set of codes.
type ProbeResult struct {
	// URL is the probed region's base URL; Region its name when known.
	URL    string `json:"url"`
	Region string `json:"region,omitempty"`
	// Checked counts the codes asked; Present the ones that answered a
	// redirect, Missing 404 (the measured RPO) or 429 (Limited of them: the
	// region refused to say, so the link was not served, and a probe that
	// trips a region's limit of misses cannot hide a loss), Gone 410, Other
	// any other status and Errors no answer.
	Checked int `json:"checked"`
	Present int `json:"present"`
	Missing int `json:"missing"`
	Limited int `json:"limited"`
	Gone    int `json:"gone"`
	Other   int `json:"other"`
	Errors  int `json:"errors"`
	// MissingCodes are the codes that answered 404 or 429, sorted.
	MissingCodes []string `json:"missing_codes"`
}

// probeWorkers is how many probe requests are in flight at once.
const probeWorkers = 8

// Probe asks the region at baseURL for every code with HEAD /{code},
// without following redirects, and counts the answers. Each request is
// bounded by DefaultTimeout. It fails on a bad baseURL or when ctx ends.
func Probe(ctx context.Context, baseURL string, codes []string) (*ProbeResult, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	base := u.String()
	tr := &http.Transport{MaxIdleConnsPerHost: probeWorkers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res := &ProbeResult{URL: base, Checked: len(codes), MissingCodes: []string{}}
	var mu sync.Mutex
	next := make(chan string)
	var wg sync.WaitGroup
	for range probeWorkers {
		wg.Go(func() {
			for code := range next {
				status := 0
				req, err := http.NewRequestWithContext(ctx, http.MethodHead, base+"/"+escapeCode(code), nil)
				if err == nil {
					var resp *http.Response
					if resp, err = client.Do(req); err == nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
				}
				mu.Lock()
				switch {
				case err != nil:
					res.Errors++
				case isRedirect(status):
					res.Present++
				case status == http.StatusNotFound || status == http.StatusTooManyRequests:
					res.Missing++
					if status == http.StatusTooManyRequests {
						res.Limited++
					}
					res.MissingCodes = append(res.MissingCodes, code)
				case status == http.StatusGone:
					res.Gone++
				default:
					res.Other++
				}
				mu.Unlock()
			}
		})
	}
	func() {
		defer close(next)
		for _, c := range codes {
			select {
			case next <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	slices.Sort(res.MissingCodes)
	return res, nil
}

// escapeCode escapes a code as one path segment.
func escapeCode(code string) string {
	return string(appendCode(nil, code))
}

// WriteText writes the report for people.
func (fr *FailoverReport) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	ts := func(t time.Time) string { return t.UTC().Format("15:04:05.000") }
	fmt.Fprintf(bw, "failover of %s: killed at %s", fr.Region, fr.KilledAt.UTC().Format(time.RFC3339Nano))
	if !fr.UpAt.IsZero() {
		fmt.Fprintf(bw, ", up at %s", fr.UpAt.UTC().Format(time.RFC3339Nano))
	}
	bw.WriteString("\n")
	if fr.Recovered {
		fmt.Fprintf(bw, "RTO %s: first success of %s's clients elsewhere at %s, served by %s\n",
			fmtDur(fr.RTO), fr.Region, ts(fr.FirstElsewhere.End), fr.FirstElsewhere.Region)
	} else {
		fmt.Fprintf(bw, "RTO unknown: no client of %s succeeded through another region after the kill\n", fr.Region)
	}
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	io.WriteString(tw, "client\tops\tok%\tlongest failure run\tserved by\n")
	for _, c := range fr.Clients {
		run := "none"
		if c.LongestFailures > 0 {
			run = fmt.Sprintf("%d ops, %s (%s to %s)", c.LongestFailures, fmtDur(c.LongestFailLasted),
				ts(c.LongestFailFrom), ts(c.LongestFailTo))
		}
		var by []string
		for _, r := range slices.Sorted(maps.Keys(c.ServedBy)) {
			name := r
			if name == "" {
				name = "?"
			}
			by = append(by, fmt.Sprintf("%s=%d", name, c.ServedBy[r]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4f%%\t%s\t%s\n", c.Client, c.Ops, 100*c.SuccessRate, run, strings.Join(by, " "))
	}
	tw.Flush()
	switch {
	case fr.UpAt.IsZero():
	case fr.Returned:
		fmt.Fprintf(bw, "%s's clients back home %s after it was up (at %s)\n", fr.Region, fmtDur(fr.ReturnAfter), ts(fr.ReturnedAt))
	default:
		fmt.Fprintf(bw, "%s's clients did not succeed through %s after it was up\n", fr.Region, fr.Region)
	}
	fmt.Fprintf(bw, "creates acknowledged by %s before the kill: %d\n", fr.Region, len(fr.Acked))
	if len(fr.Reported) == 0 {
		bw.WriteString("reported RPO: no regions records in the history\n")
	}
	for _, r := range fr.Reported {
		if !r.Found {
			fmt.Fprintf(bw, "reported RPO for %s by %s: no poll before the kill\n", fr.Region, r.Region)
			continue
		}
		known := "known"
		if !r.RPOKnown {
			known = "UNKNOWN"
		}
		fmt.Fprintf(bw, "reported RPO for %s by %s at %s: %d events, %.3fs (%s), lag %d events, mirror active %t\n",
			fr.Region, r.Region, ts(r.At), r.RPOEvents, r.RPOSeconds, known, r.LagEvents, r.MirrorActive)
	}
	if p := fr.Probe; p != nil {
		name := p.URL
		if p.Region != "" {
			name = p.Region + " (" + p.URL + ")"
		}
		fmt.Fprintf(bw, "probe of %s: %d checked, %d present, %d missing (404, or 429: %d), %d gone, %d other, %d errors\n",
			name, p.Checked, p.Present, p.Missing, p.Limited, p.Gone, p.Other, p.Errors)
		if r, ok := fr.ReportedBy(p.Region); ok && r.RPOKnown {
			verdict := "holds"
			if uint64(p.Missing) > r.RPOEvents {
				verdict = "BROKEN"
			}
			fmt.Fprintf(bw, "measured RPO %d links <= reported %d events: %s\n", p.Missing, r.RPOEvents, verdict)
		}
	}
	return bw.Flush()
}

// RegionOfURL returns the region whose regions records were polled at
// baseURL, or "".
func (h *History) RegionOfURL(baseURL string) string {
	u, err := parseBase(baseURL)
	if err != nil {
		return ""
	}
	want := u.String() + "/api/v1/regions"
	for _, r := range h.Regions {
		if r.URL == want {
			return r.Region
		}
	}
	return ""
}
