package auditor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/projections"
	"shortener/region"
	"shortener/replicator"
)

// Options say which cluster an Auditor reads and how it reports.
type Options struct {
	// NATS is the supercluster's NATS URLs, comma-separated (any one
	// reachable server will do).
	NATS string
	// NATSOptions authenticate the connection (the audit tool user's
	// credentials); Open adds its name, timeout and reconnects.
	NATSOptions []nats.Option
	// Endpoints maps a region's name to its API's base URL
	// (http://host:port, no trailing slash).
	Endpoints map[string]string
	// APIKey returns the API key the regions' APIs are called with. It is
	// called on each request, and only then: a command that asks no API
	// needs no key.
	APIKey func() (string, error)
	// Digits is every region's digit, as the regions were given it; nil
	// means events.DefaultDigits.
	Digits map[string]byte
	// JSON makes the reports JSON (lines) instead of text.
	JSON bool
	// Progress receives progress lines (nil: discarded).
	Progress io.Writer
}

// Auditor reads the event log of a running cluster and the regions'
// projections, and checks one against the other. Open it, Close it.
type Auditor struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	log       replicator.LogCopies
	progress  io.Writer
	endpoints map[string]string
	api       API
	json      bool
	rules     events.Rules // what every replayed event is checked against
}

// Rules are what every event the auditor replays is checked against, as
// the regions check it when they fold: the one place the auditor builds
// its events.Rules (digits nil: events.DefaultDigits).
func Rules(digits map[string]byte) events.Rules {
	return events.Rules{Digits: digits}
}

// Open connects to the NATS of o and lists the copies of the event log
// (every LINKS_* stream). It fails when no copy is found.
func Open(ctx context.Context, o Options) (*Auditor, error) {
	a := &Auditor{progress: o.Progress, endpoints: maps.Clone(o.Endpoints), json: o.JSON, rules: Rules(o.Digits),
		api: API{Client: &http.Client{Timeout: time.Minute}, Key: o.APIKey}}
	if a.progress == nil {
		a.progress = io.Discard
	}
	if a.endpoints == nil {
		a.endpoints = map[string]string{}
	}
	nc, err := nats.Connect(o.NATS, append(slices.Clip(o.NATSOptions), nats.Name("shortener audit"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w (is the cluster running: make run?)", o.NATS, err)
	}
	a.nc = nc
	if a.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if a.log, err = replicator.DiscoverLog(dctx, a.js); err != nil {
		nc.Close()
		return nil, err
	}
	if len(a.log) == 0 {
		nc.Close()
		return nil, fmt.Errorf("no event log (LINKS_* streams) at %s", o.NATS)
	}
	return a, nil
}

// Close closes the connection to NATS.
func (a *Auditor) Close() { a.nc.Close() }

// API calls regions' HTTP APIs with the API key.
type API struct {
	Client *http.Client
	// Key returns the API key; called on each request.
	Key func() (string, error)
}

// Get fetches a region's API path (base is its base URL) as JSON into v;
// status is the HTTP status (0 when no answer came). Any status but 200
// is an error.
func (c API) Get(ctx context.Context, base, path string, v any) (status int, err error) {
	if c.Key == nil {
		return 0, errors.New("API key: none given")
	}
	key, err := c.Key()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, fmt.Errorf("GET %s%s: status %d: %s", base, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// ---- replay ----------------------------------------------------------------

// Source is one stream to replay: Stream names it in the replay (and in
// the checkpoints compared), Read is the copy actually read (the same
// stream, or another copy of the same origin standing in for it), To its
// last sequence.
type Source struct {
	Stream string
	Read   string
	To     uint64
}

// ReplayResult is what a replay did and how fast.
type ReplayResult struct {
	Sources []Source                `json:"sources"`
	Stats   projections.ReplayStats `json:"stats"`
	Elapsed time.Duration           `json:"elapsed_ns"`
	Rate    float64                 `json:"events_per_second"` // records replayed per second, read to flushed store
	Digest  string                  `json:"digest"`
	Links   int                     `json:"links"`
}

// ReplayOptions bound and report a replay.
type ReplayOptions struct {
	// Until folds only the events with a producer time up to it (zero:
	// every event).
	Until time.Time
	// Rules every event is checked against (the zero value: the default
	// table of digits; see Rules).
	Rules events.Rules
	// Label names the replay in the progress lines.
	Label string
	// Progress receives a line every second (nil: none).
	Progress io.Writer
}

// Replay reads the sources concurrently (one ordered consumer each) into a
// fresh store in dir and returns it, open, with what the replay did. Every
// source must be read up to its To, or it is an error.
func Replay(ctx context.Context, js jetstream.JetStream, srcs []Source, dir string, o ReplayOptions) (*projections.Store, ReplayResult, error) {
	until, rules, label, progress := o.Until, o.Rules, o.Label, o.Progress
	res := ReplayResult{Sources: srcs}
	var total uint64
	for _, s := range srcs {
		total += s.To
	}
	r, err := projections.NewReplay(dir, projections.ReplayOptions{Until: until, Logger: quietLogger(), Expect: int(total), Rules: rules})
	if err != nil {
		return nil, res, err
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []events.Record, 16)
	errc := make(chan error, len(srcs))
	var readers sync.WaitGroup
	for _, s := range srcs {
		if s.To == 0 {
			continue
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := replicator.Read(ctx, js, s.Read, replicator.ReadOptions{From: 1, To: s.To, Batch: 1024}, func(recs []events.Record) error {
				if s.Read != s.Stream {
					for i := range recs {
						recs[i].Stream = s.Stream
					}
				}
				select {
				case batches <- recs:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	go func() { readers.Wait(); close(batches) }()

	var done atomic.Uint64
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					n, el := done.Load(), time.Since(start).Seconds()
					fmt.Fprintf(progress, "%s: %d/%d events (%.0f%%), %.0f events/s\n", label, n, total, 100*float64(n)/float64(max(total, 1)), float64(n)/el)
				}
			}
		}()
	}
	var applyErr error
	for recs := range batches {
		if applyErr != nil {
			continue // drain so the readers end
		}
		if applyErr = r.Apply(recs); applyErr != nil {
			cancel()
			continue
		}
		done.Add(uint64(len(recs)))
	}
	close(stopProgress)
	progressDone.Wait()
	close(errc)
	if err := errors.Join(applyErr, <-errc); err != nil {
		r.Abort()
		return nil, res, fmt.Errorf("replay: %w", err)
	}
	cps := r.Checkpoints()
	for _, s := range srcs {
		if cps[s.Stream] != s.To {
			r.Abort()
			return nil, res, fmt.Errorf("replay: %s read up to #%d, want #%d", s.Read, cps[s.Stream], s.To)
		}
	}
	res.Stats = r.Stats()
	store, err := r.Finish()
	if err != nil {
		return nil, res, err
	}
	res.Elapsed = time.Since(start)
	res.Rate = float64(res.Stats.Records) / res.Elapsed.Seconds()
	d, err := store.Digests()
	if err != nil {
		store.Close()
		return nil, res, err
	}
	res.Digest, res.Links = d.Digest, d.Links
	return store, res, nil
}

// sourcesFor resolves a cut (stream -> last sequence) into sources: each
// stream read from itself if it holds the cut, else from another copy of
// the same origin that does (the origin first).
func (a *Auditor) sourcesFor(cut map[string]uint64, seqBound uint64) ([]Source, error) {
	var out []Source
	for stream, to := range cut {
		if seqBound > 0 {
			to = min(to, seqBound)
		}
		src := Source{Stream: stream, Read: stream, To: to}
		if c, ok := a.log.Named(stream); !ok || c.LastSeq < to {
			alts := a.log.Alternatives(stream, to)
			if len(alts) == 0 {
				return nil, fmt.Errorf("no reachable copy of %s holds #%d", stream, to)
			}
			src.Read = alts[0].Stream
			fmt.Fprintf(a.progress, "%s is not reachable up to #%d: reading its copy %s instead\n", stream, to, src.Read)
		}
		out = append(out, src)
	}
	slices.SortFunc(out, func(x, y Source) int { return strings.Compare(x.Stream, y.Stream) })
	return out, nil
}

// heldCut is every copy region holds, up to its last sequence now.
func (a *Auditor) heldCut(reg string) map[string]uint64 {
	cut := map[string]uint64{}
	for _, c := range a.log.HeldBy(reg) {
		cut[c.Stream] = c.LastSeq
	}
	return cut
}

// originCut is every origin's stream up to the last sequence of its most
// complete copy.
func (a *Auditor) originCut() map[string]uint64 {
	cut := map[string]uint64{}
	for _, origin := range a.log.Origins() {
		name := replicator.StreamName(origin)
		for _, c := range a.log {
			if c.Origin == origin {
				cut[name] = max(cut[name], c.LastSeq)
			}
		}
	}
	return cut
}

// Projection is a region's projection as the auditor compares it with a
// replay of the log: a live region's, through its API, or a stopped
// region's store, read directly.
type Projection interface {
	// Name says which projection it is, in reports.
	Name() string
	// Digests returns the projection's digests and, for the given
	// buckets, every row's hash by code.
	Digests(ctx context.Context, buckets []int) (projections.Digests, map[string]string, error)
	// Describe says what the projection holds for code, in one line.
	Describe(ctx context.Context, code string) string
}

// Projection returns region's live projection, read through its API at base.
func (c API) Projection(region, base string) Projection {
	return apiProjection{api: c, reg: region, base: base}
}

type apiProjection struct {
	api  API
	reg  string
	base string
}

func (h apiProjection) Name() string { return h.reg + "'s live projection (" + h.base + ")" }

func (h apiProjection) Digests(ctx context.Context, buckets []int) (projections.Digests, map[string]string, error) {
	path := "/api/v1/projection/digests"
	if len(buckets) > 0 {
		var bs []string
		for _, b := range buckets {
			bs = append(bs, strconv.Itoa(b))
		}
		path += "?buckets=" + url.QueryEscape(strings.Join(bs, ","))
	}
	var pd region.ProjectionDigests
	if _, err := h.api.Get(ctx, h.base, path, &pd); err != nil {
		return projections.Digests{}, nil, err
	}
	if pd.Region != h.reg {
		return projections.Digests{}, nil, fmt.Errorf("%s is region %q, not %q", h.base, pd.Region, h.reg)
	}
	return pd.Digests, pd.Rows, nil
}

func (h apiProjection) Describe(ctx context.Context, code string) string {
	var l map[string]any
	status, err := h.api.Get(ctx, h.base, "/api/v1/links/"+url.PathEscape(code), &l)
	switch {
	case status == http.StatusNotFound:
		return "not found"
	case status == http.StatusGone:
		return "410 deleted"
	case err != nil:
		return err.Error()
	}
	return fmt.Sprintf("%v %v", l["redirect_status"], l["url"])
}

type storeProjection struct {
	dir   string
	store *projections.Store
}

func (s storeProjection) Name() string { return "the store " + s.dir }

func (s storeProjection) Digests(_ context.Context, buckets []int) (projections.Digests, map[string]string, error) {
	return s.store.DigestsAndRows(buckets)
}

func (s storeProjection) Describe(_ context.Context, code string) string {
	l, found, err := s.store.Get(code)
	if err != nil {
		return err.Error()
	}
	return describeLink(l, found)
}

func describeLink(l events.Link, found bool) string {
	switch {
	case !found:
		return "no row"
	case l.Deleted:
		return "deleted " + l.URL
	}
	return fmt.Sprintf("%d %s", l.RedirectStatus, l.URL)
}

// comparison is a replay compared with a live projection.
type comparison struct {
	Region     string                `json:"region"`
	Against    string                `json:"against"`
	Replay     ReplayResult          `json:"replay"`
	LiveDigest string                `json:"live_digest"`
	LiveLinks  int                   `json:"live_links"`
	Match      bool                  `json:"match"`
	Diffs      []projections.RowDiff `json:"diffs,omitempty"`
	Details    []string              `json:"details,omitempty"`
	// Moved are codes whose events arrived while the audit ran: not judged.
	Moved []string `json:"moved,omitempty"`
}

// compareRegion replays what live has applied, up to exactly its
// checkpoints, and compares: the digests, then the buckets that differ,
// then the codes in them. A projection that moves on meanwhile (it does:
// heartbeats every second) is handled by reading what it applied since
// the first snapshot: codes with new events are left out and reported as
// moved.
func (a *Auditor) compareRegion(ctx context.Context, reg string, live Projection) (comparison, error) {
	cmp := comparison{Region: reg, Against: live.Name()}
	first, _, err := live.Digests(ctx, nil)
	if err != nil {
		return cmp, fmt.Errorf("%s: %w", live.Name(), err)
	}
	if len(first.Checkpoints) == 0 {
		return cmp, fmt.Errorf("%s has applied nothing", live.Name())
	}
	// A live region keeps applying (heartbeats every second): list the
	// copies again after its snapshot, so that they hold what it applied.
	if copies, err := replicator.DiscoverLog(ctx, a.js); err == nil {
		a.log = copies
	}
	srcs, err := a.sourcesFor(first.Checkpoints, 0)
	if err != nil {
		return cmp, err
	}
	dir, err := os.MkdirTemp("", "shortener-audit-")
	if err != nil {
		return cmp, err
	}
	defer os.RemoveAll(dir)
	store, res, err := Replay(ctx, a.js, srcs, dir, ReplayOptions{Rules: a.rules, Label: "replay " + reg, Progress: a.progress})
	if err != nil {
		return cmp, err
	}
	defer store.Close()
	cmp.Replay, cmp.LiveDigest, cmp.LiveLinks = res, first.Digest, first.Links
	if first.Digest == res.Digest {
		cmp.Match = true
		return cmp, nil
	}
	want, err := store.Digests()
	if err != nil {
		return cmp, err
	}
	buckets := projections.CompareDigests(want, first)
	second, liveRows, err := live.Digests(ctx, buckets)
	if err != nil {
		return cmp, fmt.Errorf("%s: %w", live.Name(), err)
	}
	moved, err := a.movedSince(ctx, first.Checkpoints, second.Checkpoints)
	if err != nil {
		return cmp, err
	}
	replayRows, err := store.BucketRows(buckets)
	if err != nil {
		return cmp, err
	}
	for _, d := range projections.CompareRows(replayRows, liveRows) {
		if moved[d.Code] {
			cmp.Moved = append(cmp.Moved, d.Code)
			continue
		}
		cmp.Diffs = append(cmp.Diffs, d)
		if len(cmp.Details) < 20 {
			l, found, _ := store.Get(d.Code)
			cmp.Details = append(cmp.Details, fmt.Sprintf("%s %s: replay %s; %s: %s", d.Code, d.What, describeLink(l, found), reg, live.Describe(ctx, d.Code)))
		}
	}
	if len(cmp.Diffs) == 0 && len(cmp.Moved) == 0 {
		return cmp, fmt.Errorf("%s: digests differ but no row does (changed between snapshots?); run the audit again", live.Name())
	}
	return cmp, nil
}

// movedSince returns the codes of the link events applied between two
// snapshots' checkpoints.
func (a *Auditor) movedSince(ctx context.Context, from, to map[string]uint64) (map[string]bool, error) {
	moved := map[string]bool{}
	for stream, hi := range to {
		lo := from[stream]
		if hi <= lo {
			continue
		}
		srcs, err := a.sourcesFor(map[string]uint64{stream: hi}, 0)
		if err != nil {
			return nil, err
		}
		err = replicator.Read(ctx, a.js, srcs[0].Read, replicator.ReadOptions{From: lo + 1, To: hi}, func(recs []events.Record) error {
			for _, r := range recs {
				if e, err := events.Decode(r.Data); err == nil && e.Code != "" {
					moved[e.Code] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return moved, nil
}

// liveOf is reg's projection: its store in storeDir, when given, else its
// API; the function closes it.
func (a *Auditor) liveOf(reg, storeDir string) (Projection, func(), error) {
	if storeDir != "" {
		s, err := projections.OpenReadOnly(storeDir)
		if err != nil {
			return nil, nil, err
		}
		return storeProjection{dir: storeDir, store: s}, func() { s.Close() }, nil
	}
	base, ok := a.endpoints[reg]
	if !ok {
		return nil, nil, fmt.Errorf("no API endpoint for region %s: give --endpoint %s=http://host:port or --store DIR", reg, reg)
	}
	return a.api.Projection(reg, base), func() {}, nil
}

func printComparison(out io.Writer, c comparison) {
	r := c.Replay
	fmt.Fprintf(out, "replay of %s: %d events (%d link events, %d duplicates, %d heartbeats, %d refused) in %.2fs: %.0f events/s\n",
		c.Region, r.Stats.Records, r.Stats.Events, r.Stats.Duplicates, r.Stats.Heartbeats, r.Stats.Invalid, r.Elapsed.Seconds(), r.Rate)
	if r.Stats.Invalid > 0 {
		var parts []string
		for _, reason := range events.Reasons {
			if n := r.Stats.Rejected[reason]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", reason, n))
			}
		}
		fmt.Fprintf(out, "  refused   %s (never folded: docs/runbooks/events-rejected.md)\n", strings.Join(parts, ", "))
	}
	for _, stream := range slices.Sorted(maps.Keys(r.Stats.Halted)) {
		h := r.Stats.Halted[stream]
		fmt.Fprintf(out, "  halted    %s at #%d (%s): nothing after it folded; upgrade the binary (docs/runbooks/stream-halted.md)\n", stream, h.Seq, h.Reason)
	}
	var upTo []string
	for _, s := range r.Sources {
		x := fmt.Sprintf("%s #%d", s.Stream, s.To)
		if s.Read != s.Stream {
			x += " (read from " + s.Read + ")"
		}
		upTo = append(upTo, x)
	}
	fmt.Fprintf(out, "  up to     %s\n", strings.Join(upTo, ", "))
	fmt.Fprintf(out, "  replay    digest %s  %d links\n", r.Digest, r.Links)
	verdict := "MATCH"
	if !c.Match {
		verdict = fmt.Sprintf("MISMATCH: %d codes differ", len(c.Diffs))
	}
	fmt.Fprintf(out, "  %-9s digest %s  %d links  %s\n", c.Region, c.LiveDigest, c.LiveLinks, verdict)
	fmt.Fprintf(out, "            (%s)\n", c.Against)
	for _, d := range c.Details {
		fmt.Fprintf(out, "    %s\n", d)
	}
	if len(c.Diffs) > len(c.Details) {
		fmt.Fprintf(out, "    ... and %d more\n", len(c.Diffs)-len(c.Details))
	}
	if len(c.Moved) > 0 {
		fmt.Fprintf(out, "  changed while auditing, not judged: %s\n", strings.Join(c.Moved, " "))
	}
}

// Regions returns regions, or (none given) every region that holds a copy
// of the log; it is an error when one of regions holds none.
func (a *Auditor) Regions(regions []string) ([]string, error) {
	if len(regions) == 0 {
		regions = a.log.Regions()
	}
	for _, reg := range regions {
		if len(a.log.HeldBy(reg)) == 0 {
			return nil, fmt.Errorf("region %s holds no copy of the log (regions: %s)", reg, strings.Join(a.log.Regions(), ", "))
		}
	}
	return regions, nil
}

// Compare replays, for each of regions, the copies of the log it folds up
// to exactly the checkpoints its projection reports, compares the two, and
// writes the comparison to out. The projection is the region's live one
// (its API), or with storeDir the stopped region's store in it. It is an
// error when a projection differs from its replay, or could not be
// compared.
func (a *Auditor) Compare(ctx context.Context, out io.Writer, regions []string, storeDir string) error {
	var failed []string
	for _, reg := range regions {
		live, closeLive, err := a.liveOf(reg, storeDir)
		if err != nil {
			return err
		}
		c, err := a.compareRegion(ctx, reg, live)
		closeLive()
		if err != nil {
			return fmt.Errorf("replay %s: %w", reg, err)
		}
		if a.json {
			_ = json.NewEncoder(out).Encode(c)
		} else {
			printComparison(out, c)
		}
		if !c.Match && len(c.Diffs) > 0 {
			failed = append(failed, fmt.Sprintf("%s (%d codes differ, first %s)", reg, len(c.Diffs), c.Diffs[0].Code))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("projection differs from the replay of the log: %s", strings.Join(failed, "; "))
	}
	return nil
}

// ReplayBounded replays the copies of the log reg holds up to u (or up to
// now) and writes the digest to out, keeping the store in outDir when
// given (a new directory).
func (a *Auditor) ReplayBounded(ctx context.Context, out io.Writer, reg string, u projections.Until, outDir string) error {
	srcs, err := a.sourcesFor(a.heldCut(reg), u.Seq)
	if err != nil {
		return err
	}
	dir := outDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shortener-audit-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	store, res, err := Replay(ctx, a.js, srcs, dir, ReplayOptions{Until: u.Time, Rules: a.rules, Label: "replay " + reg, Progress: a.progress})
	if err != nil {
		return err
	}
	defer store.Close()
	if a.json {
		return json.NewEncoder(out).Encode(struct {
			Region string       `json:"region"`
			Until  string       `json:"until,omitempty"`
			Replay ReplayResult `json:"replay"`
			Store  string       `json:"store,omitempty"`
		}{reg, u.String(), res, outDir})
	}
	printComparison(out, comparison{Region: reg, Replay: res, Match: true, LiveDigest: "(not compared)", Against: "bounded by --until " + u.String() + ": not compared"})
	if outDir != "" {
		fmt.Fprintf(out, "  store kept in %s\n", outDir)
	}
	return nil
}

// quietLogger drops the replay store's own logging: the audit reports.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ---- history and at ----------------------------------------------------------

// codeRecords reads every record about code from one copy of every
// origin's log: the origin's own stream, or (unreachable) a mirror of it.
func (a *Auditor) codeRecords(ctx context.Context, code string) ([]events.Record, error) {
	if err := events.ValidateCode(code); err != nil {
		return nil, events.Errorf(events.Invalid, "code %q: %v", code, err)
	}
	var out []events.Record
	for _, origin := range a.log.Origins() {
		var copies replicator.LogCopies
		if c, ok := a.log.OriginStream(origin); ok {
			copies = append(copies, c)
		}
		copies = append(copies, a.log.Alternatives(replicator.StreamName(origin), 0)...)
		if len(copies) == 0 {
			for _, c := range a.log {
				if c.Origin == origin {
					copies = append(copies, c)
				}
			}
		}
		var errs []error
		read := false
		for _, c := range copies {
			var recs []events.Record
			err := replicator.Read(ctx, a.js, c.Stream, replicator.ReadOptions{Subject: replicator.Subject(origin, code)}, func(rs []events.Record) error {
				recs = append(recs, rs...)
				return nil
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, recs...)
			read = true
			break
		}
		if !read {
			return nil, fmt.Errorf("no copy of %s's log could be read: %w", origin, errors.Join(errs...))
		}
	}
	return out, nil
}

// History returns every event of code from every origin's log, in fold
// order, each with the link's state after it. Errors: events.Invalid for
// a malformed code, events.NotFound when the log holds no event of it.
func (a *Auditor) History(ctx context.Context, code string) ([]projections.Step, error) {
	recs, err := a.codeRecords(ctx, code)
	if err != nil {
		return nil, err
	}
	steps, skipped := projections.History(code, recs)
	for _, err := range skipped {
		fmt.Fprintf(a.progress, "skipped a record that is not a valid event: %v\n", err)
	}
	if len(steps) == 0 {
		return nil, &events.Error{Kind: events.NotFound, Message: fmt.Sprintf("no event for code %q in the log of %s", code, strings.Join(a.log.Origins(), ", "))}
	}
	return steps, nil
}

// WriteHistory writes steps to out: a table, or JSON lines.
func (a *Auditor) WriteHistory(out io.Writer, steps []projections.Step) error {
	if a.json {
		enc := json.NewEncoder(out)
		for _, s := range steps {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTIME\tORIGIN\tSTREAM\tSEQ\tTYPE\tACTOR\tPAYLOAD\tTHEN")
	for i, s := range steps {
		then := stateLine(s.State, s.Event.Time)
		switch {
		case s.Duplicate:
			then = "(duplicate: folded once)"
		case !s.Changed:
			then = "(no change) " + then
		}
		payload := string(s.Event.Payload)
		if payload == "" || payload == "{}" {
			payload = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", i+1, s.Event.Time.Format(time.RFC3339Nano), s.Event.Origin,
			s.Stream, s.Seq, s.Event.Type, orDash(s.Event.Actor), payload, then)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stateLine(l events.Link, t time.Time) string {
	st := projections.StateAt(l, t)
	if st == projections.StateAbsent {
		return string(st)
	}
	return fmt.Sprintf("%s %d %s", st, l.RedirectStatus, l.URL)
}

// LinkAt is what one code pointed to at a moment.
type LinkAt struct {
	Code           string                `json:"code"`
	At             time.Time             `json:"at"`
	State          projections.LinkState `json:"state"`
	URL            string                `json:"url,omitempty"`
	RedirectStatus int                   `json:"redirect_status,omitempty"`
	ExpiresAt      *time.Time            `json:"expires_at,omitempty"`
	Origin         string                `json:"origin,omitempty"`
	Events         int                   `json:"events"` // events folded up to then
}

func linkAtOf(code string, l events.Link, t time.Time) LinkAt {
	return LinkAt{Code: code, At: t, State: projections.StateAt(l, t), URL: l.URL, RedirectStatus: l.RedirectStatus,
		ExpiresAt: l.ExpiresAt, Origin: l.Origin, Events: l.Events}
}

// At returns what code pointed to at t, folding its events with a producer
// time up to t; with code "", what every code pointed to, by a replay of
// every origin's log up to t. Errors as History's.
func (a *Auditor) At(ctx context.Context, t time.Time, code string) ([]LinkAt, error) {
	if code != "" {
		steps, err := a.History(ctx, code)
		if err != nil {
			return nil, err
		}
		return []LinkAt{linkAtOf(code, projections.At(steps, t), t)}, nil
	}
	srcs, err := a.sourcesFor(a.originCut(), 0)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shortener-audit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, _, err := Replay(ctx, a.js, srcs, dir, ReplayOptions{Until: t, Rules: a.rules, Label: "replay up to " + t.Format(time.RFC3339Nano), Progress: a.progress})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var rows []LinkAt
	err = store.Links(func(l events.Link) error {
		rows = append(rows, linkAtOf(l.Code, l, t))
		return nil
	})
	return rows, err
}

// WriteAt writes rows to out: a table, or JSON lines.
func (a *Auditor) WriteAt(out io.Writer, rows []LinkAt) error {
	if a.json {
		w := bufio.NewWriter(out)
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSTATE\tSTATUS\tURL\tEXPIRES\tORIGIN\tEVENTS")
	for _, r := range rows {
		status, exp := "-", "-"
		if r.RedirectStatus != 0 {
			status = strconv.Itoa(r.RedirectStatus)
		}
		if r.ExpiresAt != nil {
			exp = r.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Code, r.State, status, orDash(r.URL), exp, orDash(r.Origin), r.Events)
	}
	return tw.Flush()
}

// ---- verify ------------------------------------------------------------------

// Verify checks every mirror of the log against its origin, a SHA-256 per
// range of rangeSize sequences on each side up to the last sequence both
// hold, and every region's live projection against a replay of the copies
// it folds up to its own checkpoints, writing what it found to out. It is
// an error when anything differs, could not be checked, or nothing was.
func (a *Auditor) Verify(ctx context.Context, out io.Writer, rangeSize int) error {
	var problems []string
	var reports []replicator.CopyReport
	fmt.Fprintf(out, "copies of the log: %d streams, origins %s, held in %s\n", len(a.log), strings.Join(a.log.Origins(), ", "), strings.Join(a.log.Regions(), ", "))
	for _, c := range a.log {
		if !c.Mirror {
			continue
		}
		origin := replicator.StreamName(c.Origin)
		if _, ok := a.log.Named(origin); !ok {
			problems = append(problems, fmt.Sprintf("%s: origin %s not reachable", c.Stream, origin))
			fmt.Fprintf(out, "%s: origin %s NOT REACHABLE: not verified\n", c.Stream, origin)
			continue
		}
		fmt.Fprintf(a.progress, "comparing %s with %s\n", c.Stream, origin)
		rep, err := replicator.CompareCopies(ctx, a.js, origin, c.Stream, rangeSize)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.Stream, err))
			fmt.Fprintf(out, "%s: NOT VERIFIED: %v\n", c.Stream, err)
			continue
		}
		reports = append(reports, rep)
		lag := ""
		if rep.OriginLast > rep.MirrorLast {
			lag = fmt.Sprintf(" (mirror %d behind)", rep.OriginLast-rep.MirrorLast)
		} else if rep.MirrorLast > rep.OriginLast {
			lag = fmt.Sprintf(" (mirror holds %d more than the origin answered: written meanwhile)", rep.MirrorLast-rep.OriginLast)
		}
		if rep.Equal() {
			fmt.Fprintf(out, "%s = %s up to #%d, %d ranges%s: OK\n", c.Stream, origin, rep.Common, rep.Ranges, lag)
			continue
		}
		problems = append(problems, fmt.Sprintf("%s differs from %s from #%d", c.Stream, origin, rep.FirstDiff))
		fmt.Fprintf(out, "%s differs from %s: %d of %d ranges differ; first differing sequence #%d%s: MISMATCH\n", c.Stream, origin, rep.RangesDiffer, rep.Ranges, rep.FirstDiff, lag)
		fmt.Fprintf(out, "    origin #%d: %s\n    mirror #%d: %s\n", rep.FirstDiff, rep.OriginEvent, rep.FirstDiff, orDash(rep.MirrorEvent))
	}
	var comps []comparison
	for _, reg := range a.log.Regions() {
		live, closeLive, err := a.liveOf(reg, "")
		if err != nil {
			problems = append(problems, fmt.Sprintf("projection of %s: %v", reg, err))
			fmt.Fprintf(out, "projection of %s: NOT VERIFIED: %v\n", reg, err)
			continue
		}
		c, err := a.compareRegion(ctx, reg, live)
		closeLive()
		if err != nil {
			problems = append(problems, fmt.Sprintf("projection of %s: %v", reg, err))
			fmt.Fprintf(out, "projection of %s: NOT VERIFIED: %v\n", reg, err)
			continue
		}
		comps = append(comps, c)
		printComparison(out, c)
		if !c.Match && len(c.Diffs) > 0 {
			problems = append(problems, fmt.Sprintf("projection of %s differs from the replay in %d codes (first %s)", reg, len(c.Diffs), c.Diffs[0].Code))
		}
	}
	if len(comps) == 0 && len(problems) == 0 {
		problems = append(problems, "no projection was compared with a replay of the log")
	}
	if a.json {
		_ = json.NewEncoder(out).Encode(struct {
			Copies      []replicator.CopyReport `json:"copies"`
			Projections []comparison            `json:"projections"`
			Problems    []string                `json:"problems"`
		}{reports, comps, problems})
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "VERIFY FAILED: %d problem(s)\n", len(problems))
		return fmt.Errorf("verify: %d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}
	fmt.Fprintf(out, "VERIFY OK: %d mirrors equal their origins, %d projections equal a replay of the log\n", len(reports), len(comps))
	return nil
}

// ---- export ------------------------------------------------------------------

// ExportLine is one record of the log as Export writes it.
type ExportLine struct {
	Stream  string          `json:"stream"`
	Origin  string          `json:"origin"`
	Seq     uint64          `json:"seq"`
	Event   json.RawMessage `json:"event,omitempty"`   // the stored envelope, as stored
	Invalid string          `json:"invalid,omitempty"` // why the record is not a valid event
	Data    string          `json:"data,omitempty"`    // such a record's bytes
}

// Export writes every record of every origin's stream (or, with reg, of
// the copies reg holds) to out as JSON lines, in sequence order, up to u;
// it returns how many it wrote. A record that is not a valid event is
// written with Invalid and Data.
func (a *Auditor) Export(ctx context.Context, out io.Writer, reg string, u projections.Until, skipHeartbeats bool) (int, error) {
	cut := a.originCut()
	if reg != "" {
		if len(a.log.HeldBy(reg)) == 0 {
			return 0, fmt.Errorf("region %s holds no copy of the log", reg)
		}
		cut = a.heldCut(reg)
	}
	srcs, err := a.sourcesFor(cut, u.Seq)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	enc := json.NewEncoder(w)
	n := 0
	for _, s := range srcs {
		c, _ := a.log.Named(s.Read)
		err := replicator.Read(ctx, a.js, s.Read, replicator.ReadOptions{From: 1, To: s.To}, func(recs []events.Record) error {
			for _, r := range recs {
				line := ExportLine{Stream: s.Stream, Origin: c.Origin, Seq: r.Seq}
				e, err := events.Decode(r.Data)
				switch {
				case err != nil:
					line.Invalid, line.Data = err.Error(), string(r.Data)
				case skipHeartbeats && e.Type == events.TypeRegionHeartbeat:
					continue
				case !u.Time.IsZero() && e.Time.After(u.Time):
					continue
				default:
					line.Event = r.Data
				}
				if err := enc.Encode(line); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, w.Flush()
}
