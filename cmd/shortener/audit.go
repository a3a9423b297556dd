package main

import (
	"bufio"
	"cmp"
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
	"github.com/spf13/cobra"

	"shortener/events"
	"shortener/projections"
	"shortener/region"
	"shortener/replicator"
)

type auditOpts struct {
	nats      string
	endpoints []string
	keyFile   string
	timeout   time.Duration
	jsonOut   bool
	creds     natsSecretFlags
	digits    string
}

func auditCmd() *cobra.Command {
	o := &auditOpts{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Replay the event log, show what every link pointed to and when, and verify every copy",
		Long: `Tools for auditors, who trust the event log and not the live stores. They read
the log (every region's stream LINKS_<REGION> and its mirrors LINKS_<X>_AT_<Y>)
through ordered consumers, which leave nothing behind on the servers, and ask
each region's API for its projection's digests (GET /api/v1/projection/digests,
with the API key). Without flags they talk to the dev cluster of make run.
Progress goes to stderr; errors are one line and a non-zero exit status.`,
	}
	pf := cmd.PersistentFlags()
	var urls []string
	for _, r := range devRegions {
		urls = append(urls, "nats://"+r.Host+":4222")
	}
	pf.StringVar(&o.nats, "nats", strings.Join(urls, ","), "NATS URLs of the supercluster, comma-separated (any one reachable server will do)")
	pf.StringArrayVar(&o.endpoints, "endpoint", nil, "a region's API, NAME=http://host:port (repeatable; default the dev cluster's)")
	pf.StringVar(&o.keyFile, "api-key-file", "var/dev/api-key", "file holding the API key ($SHORTENER_API_KEY wins)")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole command")
	o.creds.register(pf, false)
	pf.Lookup("secrets").DefValue, o.creds.Secrets = "var/dev/secrets", cmp.Or(o.creds.Secrets, "var/dev/secrets")
	pf.BoolVar(&o.jsonOut, "json", false, "print JSON (lines) instead of tables")
	pf.StringVar(&o.digits, "digits", events.FormatDigits(events.DefaultDigits), "every region's digit, as the regions were given it (--digits): a replay checks events as the regions do")
	cmd.AddCommand(auditReplayCmd(o), auditHistoryCmd(o), auditAtCmd(o), auditVerifyCmd(o), auditExportCmd(o))
	return cmd
}

// auditor is the connection an audit command works through.
type auditor struct {
	o         *auditOpts
	nc        *nats.Conn
	js        jetstream.JetStream
	log       replicator.LogCopies
	progress  io.Writer
	endpoints map[string]string
	client    *http.Client
	key       string       // the API key, when not from the environment or --api-key-file
	rules     events.Rules // what every replayed event is checked against (--digits)
}

func openAuditor(ctx context.Context, o *auditOpts, progress io.Writer) (*auditor, error) {
	a := &auditor{o: o, progress: progress, endpoints: map[string]string{}, client: &http.Client{Timeout: time.Minute}}
	// The drills and the backup commands open an auditor without the
	// flag: the default table, as the flag's default.
	digits, err := events.ParseDigits(cmp.Or(o.digits, events.FormatDigits(events.DefaultDigits)))
	if err != nil {
		return nil, usageError{fmt.Errorf("--digits: %w", err)}
	}
	a.rules = events.Rules{Digits: digits}
	if len(o.endpoints) == 0 {
		for _, r := range devRegions {
			a.endpoints[r.Name] = "http://" + r.Host + ":8080"
		}
	}
	for _, e := range o.endpoints {
		name, u, ok := strings.Cut(e, "=")
		if !ok || name == "" || !strings.HasPrefix(u, "http") {
			return nil, usageError{fmt.Errorf("--endpoint %q: want NAME=http://host:port", e)}
		}
		a.endpoints[name] = strings.TrimRight(u, "/")
	}
	cred, err := o.creds.client("audit")
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(o.nats, append(cred.NATSOptions(), nats.Name("shortener audit"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w (is the cluster running: make run?)", o.nats, err)
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
		return nil, fmt.Errorf("no event log (LINKS_* streams) at %s", o.nats)
	}
	return a, nil
}

func (a *auditor) close() { a.nc.Close() }

// auditRun runs fn with an auditor, bounded by --timeout.
func auditRun(cmd *cobra.Command, o *auditOpts, fn func(ctx context.Context, a *auditor) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	a, err := openAuditor(ctx, o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer a.close()
	err = fn(ctx, a)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("gave up after --timeout %s: %w", o.timeout, err)
	}
	return err
}

func (a *auditor) apiKey() (string, error) {
	if a.key != "" {
		return a.key, nil
	}
	if k := os.Getenv("SHORTENER_API_KEY"); k != "" {
		return k, nil
	}
	b, err := os.ReadFile(a.o.keyFile)
	if err != nil {
		return "", fmt.Errorf("API key: set $SHORTENER_API_KEY or --api-key-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// get fetches a region's API path as JSON into v; status is the HTTP
// status (0 when no answer came).
func (a *auditor) get(ctx context.Context, base, path string, v any) (status int, err error) {
	key, err := a.apiKey()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := a.client.Do(req)
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

// replaySource is one stream to replay: Stream names it in the replay (and
// in the checkpoints compared), Read is the copy actually read (the same
// stream, or another copy of the same origin standing in for it), To its
// last sequence.
type replaySource struct {
	Stream string
	Read   string
	To     uint64
}

// replayResult is what a replay did and how fast.
type replayResult struct {
	Sources []replaySource          `json:"sources"`
	Stats   projections.ReplayStats `json:"stats"`
	Elapsed time.Duration           `json:"elapsed_ns"`
	Rate    float64                 `json:"events_per_second"` // records replayed per second, read to flushed store
	Digest  string                  `json:"digest"`
	Links   int                     `json:"links"`
}

// replay reads the sources concurrently (one ordered consumer each) into a
// fresh store in dir, reporting progress every second when progress is not
// nil.
func replay(ctx context.Context, js jetstream.JetStream, srcs []replaySource, dir string, until time.Time, label string, progress io.Writer) (*projections.Store, replayResult, error) {
	return replayWith(ctx, js, srcs, dir, until, events.Rules{}, label, progress)
}

// replayWith is replay checking every event against rules (replay uses the
// default table of digits).
func replayWith(ctx context.Context, js jetstream.JetStream, srcs []replaySource, dir string, until time.Time, rules events.Rules, label string, progress io.Writer) (*projections.Store, replayResult, error) {
	res := replayResult{Sources: srcs}
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
func (a *auditor) sourcesFor(cut map[string]uint64, seqBound uint64) ([]replaySource, error) {
	var out []replaySource
	for stream, to := range cut {
		if seqBound > 0 {
			to = min(to, seqBound)
		}
		src := replaySource{Stream: stream, Read: stream, To: to}
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
	slices.SortFunc(out, func(x, y replaySource) int { return strings.Compare(x.Stream, y.Stream) })
	return out, nil
}

// heldCut is every copy region holds, up to its last sequence now.
func (a *auditor) heldCut(reg string) map[string]uint64 {
	cut := map[string]uint64{}
	for _, c := range a.log.HeldBy(reg) {
		cut[c.Stream] = c.LastSeq
	}
	return cut
}

// originCut is every origin's stream up to the last sequence of its most
// complete copy.
func (a *auditor) originCut() map[string]uint64 {
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

// liveDigests is what a live projection reported, or a stopped region's
// store read directly.
type liveSource interface {
	digests(ctx context.Context, buckets []int) (projections.Digests, map[string]string, error)
	describe(ctx context.Context, code string) string
	name() string
}

type httpLive struct {
	a    *auditor
	reg  string
	base string
}

func (h httpLive) name() string { return h.reg + "'s live projection (" + h.base + ")" }

func (h httpLive) digests(ctx context.Context, buckets []int) (projections.Digests, map[string]string, error) {
	path := "/api/v1/projection/digests"
	if len(buckets) > 0 {
		var bs []string
		for _, b := range buckets {
			bs = append(bs, strconv.Itoa(b))
		}
		path += "?buckets=" + url.QueryEscape(strings.Join(bs, ","))
	}
	var pd region.ProjectionDigests
	if _, err := h.a.get(ctx, h.base, path, &pd); err != nil {
		return projections.Digests{}, nil, err
	}
	if pd.Region != h.reg {
		return projections.Digests{}, nil, fmt.Errorf("%s is region %q, not %q", h.base, pd.Region, h.reg)
	}
	return pd.Digests, pd.Rows, nil
}

func (h httpLive) describe(ctx context.Context, code string) string {
	var l map[string]any
	status, err := h.a.get(ctx, h.base, "/api/v1/links/"+url.PathEscape(code), &l)
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

type storeLive struct {
	dir   string
	store *projections.Store
}

func (s storeLive) name() string { return "the store " + s.dir }

func (s storeLive) digests(_ context.Context, buckets []int) (projections.Digests, map[string]string, error) {
	return s.store.DigestsAndRows(buckets)
}

func (s storeLive) describe(_ context.Context, code string) string {
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
	Replay     replayResult          `json:"replay"`
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
func (a *auditor) compareRegion(ctx context.Context, reg string, live liveSource) (comparison, error) {
	cmp := comparison{Region: reg, Against: live.name()}
	first, _, err := live.digests(ctx, nil)
	if err != nil {
		return cmp, fmt.Errorf("%s: %w", live.name(), err)
	}
	if len(first.Checkpoints) == 0 {
		return cmp, fmt.Errorf("%s has applied nothing", live.name())
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
	store, res, err := replayWith(ctx, a.js, srcs, dir, time.Time{}, a.rules, "replay "+reg, a.progress)
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
	second, liveRows, err := live.digests(ctx, buckets)
	if err != nil {
		return cmp, fmt.Errorf("%s: %w", live.name(), err)
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
			cmp.Details = append(cmp.Details, fmt.Sprintf("%s %s: replay %s; %s: %s", d.Code, d.What, describeLink(l, found), reg, live.describe(ctx, d.Code)))
		}
	}
	if len(cmp.Diffs) == 0 && len(cmp.Moved) == 0 {
		return cmp, fmt.Errorf("%s: digests differ but no row does (changed between snapshots?); run the audit again", live.name())
	}
	return cmp, nil
}

// movedSince returns the codes of the link events applied between two
// snapshots' checkpoints.
func (a *auditor) movedSince(ctx context.Context, from, to map[string]uint64) (map[string]bool, error) {
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

func (a *auditor) liveOf(reg, storeDir string) (liveSource, func(), error) {
	if storeDir != "" {
		s, err := projections.OpenReadOnly(storeDir)
		if err != nil {
			return nil, nil, err
		}
		return storeLive{dir: storeDir, store: s}, func() { s.Close() }, nil
	}
	base, ok := a.endpoints[reg]
	if !ok {
		return nil, nil, fmt.Errorf("no API endpoint for region %s: give --endpoint %s=http://host:port or --store DIR", reg, reg)
	}
	return httpLive{a: a, reg: reg, base: base}, func() {}, nil
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

func auditReplayCmd(o *auditOpts) *cobra.Command {
	var regions []string
	var until, storeDir, outDir string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Rebuild a region's projection from the log into a fresh store and compare it with the live one",
		Long: `Reads the copies of the log a region folds (its own stream and its mirrors),
up to exactly the checkpoints its live projection reports, into a fresh
Pebble store, and compares the digests; where they differ it names the
differing codes (per-bucket digests, then per-code row hashes). Without
--region it does so for every region. --store DIR compares with a stopped
region's store instead of its API. --until TIME|SEQ replays a past state
(producer time, or at most that sequence of every stream) and prints its
digest without comparing. Progress and the rate in events/s go to stderr
and stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u projections.Until
			if until != "" {
				var err error
				if u, err = projections.ParseUntil(until); err != nil {
					return usageError{err}
				}
			}
			if storeDir != "" && len(regions) != 1 {
				return usageError{errors.New("--store needs exactly one --region: the region whose store it is")}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor) error {
				return a.replayCmd(ctx, cmd.OutOrStdout(), regions, u, storeDir, outDir)
			})
		},
	}
	cmd.Flags().StringSliceVar(&regions, "region", nil, "the region(s) to replay and compare (default every region)")
	cmd.Flags().StringVar(&until, "until", "", "replay up to a TIME (RFC 3339) or a SEQ (every stream), without comparing")
	cmd.Flags().StringVar(&storeDir, "store", "", "compare with this (stopped) region's store directory instead of its API")
	cmd.Flags().StringVar(&outDir, "out", "", "keep the replayed store in this new directory (with --until, or one region)")
	return cmd
}

func (a *auditor) replayCmd(ctx context.Context, out io.Writer, regions []string, u projections.Until, storeDir, outDir string) error {
	if len(regions) == 0 {
		regions = a.log.Regions()
	}
	for _, reg := range regions {
		if len(a.log.HeldBy(reg)) == 0 {
			return fmt.Errorf("region %s holds no copy of the log (regions: %s)", reg, strings.Join(a.log.Regions(), ", "))
		}
	}
	if !u.IsZero() || outDir != "" {
		if len(regions) != 1 && outDir != "" {
			return usageError{errors.New("--out keeps one store: give one --region")}
		}
		for _, reg := range regions {
			if err := a.replayBounded(ctx, out, reg, u, outDir); err != nil {
				return err
			}
		}
		return nil
	}
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
		if a.o.jsonOut {
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

// replayBounded replays region's copies up to u (or up to now) and prints
// the digest, keeping the store in outDir when given.
func (a *auditor) replayBounded(ctx context.Context, out io.Writer, reg string, u projections.Until, outDir string) error {
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
	store, res, err := replayWith(ctx, a.js, srcs, dir, u.Time, a.rules, "replay "+reg, a.progress)
	if err != nil {
		return err
	}
	defer store.Close()
	if a.o.jsonOut {
		return json.NewEncoder(out).Encode(struct {
			Region string       `json:"region"`
			Until  string       `json:"until,omitempty"`
			Replay replayResult `json:"replay"`
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
func (a *auditor) codeRecords(ctx context.Context, code string) ([]events.Record, error) {
	if err := events.ValidateCode(code); err != nil {
		return nil, usageError{fmt.Errorf("code %q: %v", code, err)}
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

func (a *auditor) history(ctx context.Context, code string) ([]projections.Step, error) {
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

func auditHistoryCmd(o *auditOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "history CODE",
		Short: "Every event of a link from every region, in fold order, with what it changed",
		Long: `Reads the events of CODE from every region's log (the subject links.<region>.CODE
of each origin's stream, or of a mirror when the origin is unreachable) and
prints them in fold order (producer time, then event id), each with its origin
region, stream and sequence, time, actor, payload, and the link's state after it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditRun(cmd, o, func(ctx context.Context, a *auditor) error {
				steps, err := a.history(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if o.jsonOut {
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
			})
		},
	}
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

// linkAt is one code's answer to audit at.
type linkAt struct {
	Code           string                `json:"code"`
	At             time.Time             `json:"at"`
	State          projections.LinkState `json:"state"`
	URL            string                `json:"url,omitempty"`
	RedirectStatus int                   `json:"redirect_status,omitempty"`
	ExpiresAt      *time.Time            `json:"expires_at,omitempty"`
	Origin         string                `json:"origin,omitempty"`
	Events         int                   `json:"events"` // events folded up to then
}

func linkAtOf(code string, l events.Link, t time.Time) linkAt {
	return linkAt{Code: code, At: t, State: projections.StateAt(l, t), URL: l.URL, RedirectStatus: l.RedirectStatus,
		ExpiresAt: l.ExpiresAt, Origin: l.Origin, Events: l.Events}
}

func auditAtCmd(o *auditOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "at TIME [CODE]",
		Short: "What one code, or every code, pointed to at a moment",
		Long: `Folds the events with a producer time up to and including TIME (RFC 3339,
e.g. 2026-11-22T12:00:00Z; a date alone is midnight UTC) and prints what the
link redirected to then: active (status and URL), expired, deleted, or absent.
Without CODE it replays every origin's log up to TIME and prints every code.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := projections.ParseTime(args[0])
			if err != nil {
				return usageError{err}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor) error {
				var rows []linkAt
				if len(args) == 2 {
					steps, err := a.history(ctx, args[1])
					if err != nil {
						return err
					}
					rows = append(rows, linkAtOf(args[1], projections.At(steps, t), t))
				} else {
					if rows, err = a.allAt(ctx, t); err != nil {
						return err
					}
				}
				return printAt(cmd.OutOrStdout(), o.jsonOut, rows)
			})
		},
	}
}

func (a *auditor) allAt(ctx context.Context, t time.Time) ([]linkAt, error) {
	srcs, err := a.sourcesFor(a.originCut(), 0)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shortener-audit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, _, err := replayWith(ctx, a.js, srcs, dir, t, a.rules, "replay up to "+t.Format(time.RFC3339Nano), a.progress)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var rows []linkAt
	err = store.Links(func(l events.Link) error {
		rows = append(rows, linkAtOf(l.Code, l, t))
		return nil
	})
	return rows, err
}

func printAt(out io.Writer, asJSON bool, rows []linkAt) error {
	if asJSON {
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

func auditVerifyCmd(o *auditOpts) *cobra.Command {
	var rangeSize int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every mirror against its origin and every region's projection against a replay",
		Long: `1. Every mirror LINKS_<X>_AT_<Y> against its origin LINKS_<X>, up to the last
   sequence both hold: a SHA-256 per range of --range-size sequences on each
   side, then, in the first range that differs, record by record for the
   first differing sequence. A mirror behind its origin is not a mismatch
   (the lag is reported).
2. Every region's live projection against a replay of the copies it folds,
   up to its own checkpoints (as audit replay does), naming differing codes.
Exits non-zero on any mismatch, or if anything could not be checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rangeSize < 1 {
				return usageError{errors.New("--range-size must be at least 1")}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor) error {
				return a.verify(ctx, cmd.OutOrStdout(), rangeSize)
			})
		},
	}
	cmd.Flags().IntVar(&rangeSize, "range-size", 4096, "sequences per range digest")
	return cmd
}

func (a *auditor) verify(ctx context.Context, out io.Writer, rangeSize int) error {
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
	if a.o.jsonOut {
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

// exportLine is one record of audit export.
type exportLine struct {
	Stream  string          `json:"stream"`
	Origin  string          `json:"origin"`
	Seq     uint64          `json:"seq"`
	Event   json.RawMessage `json:"event,omitempty"`   // the stored envelope, as stored
	Invalid string          `json:"invalid,omitempty"` // why the record is not a valid event
	Data    string          `json:"data,omitempty"`    // such a record's bytes
}

func auditExportCmd(o *auditOpts) *cobra.Command {
	var reg, until, outPath string
	var skipHeartbeats bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the whole log as JSON lines, for external tools",
		Long: `Writes one JSON object per stored record: {"stream", "origin", "seq", "event"},
"event" being the envelope exactly as stored, every origin's stream in turn in
sequence order (or the copies one region holds, with --region). A record that
is not a valid event is written with "invalid" (why) and "data" instead.
--until bounds it by producer time or by sequence.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u projections.Until
			if until != "" {
				var err error
				if u, err = projections.ParseUntil(until); err != nil {
					return usageError{err}
				}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor) error {
				out := cmd.OutOrStdout()
				if outPath != "" {
					f, err := os.Create(outPath)
					if err != nil {
						return err
					}
					defer f.Close()
					out = f
				}
				n, err := a.export(ctx, out, reg, u, skipHeartbeats)
				if err == nil && outPath != "" {
					fmt.Fprintf(a.progress, "exported %d records to %s\n", n, outPath)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reg, "region", "", "export the copies this region holds instead of every origin's stream")
	cmd.Flags().StringVar(&until, "until", "", "up to a TIME (RFC 3339) or a SEQ of every stream")
	cmd.Flags().StringVarP(&outPath, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().BoolVar(&skipHeartbeats, "skip-heartbeats", false, "leave out RegionHeartbeat events")
	return cmd
}

func (a *auditor) export(ctx context.Context, out io.Writer, reg string, u projections.Until, skipHeartbeats bool) (int, error) {
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
				line := exportLine{Stream: s.Stream, Origin: c.Origin, Seq: r.Seq}
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
