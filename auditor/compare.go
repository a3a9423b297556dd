package auditor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"shortener/events"
	"shortener/projections"
	"shortener/region"
	"shortener/replicator"
)

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
