package region

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// Click analytics, off the redirect path: a redirect appends its click to a
// bounded buffer without waiting (a full buffer drops it and counts the
// drop); every clickFlushEvery (or when the buffer is half full) a flusher
// takes the buffer whole and batches it into the region's click stream; a
// click projector folds every region's click stream (own and mirrored)
// into the click store. Nothing a redirect does waits for any of it.
//
// The buffer is a slice behind a mutex, not a channel: a send on a channel
// woke the flusher for every click, two goroutine switches per redirect on
// a region's one core.

// clickFlushEvery is the longest a click waits in the queue.
const clickFlushEvery = 100 * time.Millisecond

// rawClick is what the redirect path hands over: the header values as they
// are (no parsing or allocation on the redirect path); the flusher
// classifies them.
type rawClick struct {
	code, agent, referrer string
	unixMs                int64
}

// clicks is one instance's click recording and counting.
type clicks struct {
	r        *Region
	mu       sync.Mutex
	buf      []rawClick // clicks waiting for the flusher, at most bound
	bound    int
	bufBytes int // of the header values in buf, at most maxBytes
	maxBytes int
	wake     chan struct{} // the buffer is half full
	queued   atomic.Int64  // accepted by record, not yet recorded or dropped
	store    *projections.ClickStore
	feed     *replicator.Feed
	streams  []string
	stall    atomic.Int64 // fault injection: each publish waits this long first (ns)
	recorded atomic.Uint64
	dropped  atomic.Uint64
	counted  atomic.Uint64
}

// openClicks creates the click streams and opens the click store and its
// feed.
func (r *Region) openClicks(ctx context.Context, peers []string) error {
	names, err := replicator.EnsureClickStreams(ctx, r.js, r.cfg.Name, peers)
	if err != nil {
		return err
	}
	store, err := projections.OpenClicks(filepath.Join(r.cfg.DataDir, "clicks"), r.log.With("component", "clicks"))
	if err != nil {
		return err
	}
	feed := replicator.NewFeed(r.js, "clicks-"+r.cfg.Instance)
	if err := feed.Open(ctx, names, store.Checkpoint); err != nil {
		store.Close()
		return err
	}
	r.clicks = &clicks{r: r, bound: r.cfg.ClickQueue, maxBytes: r.cfg.ClickQueueBytes, wake: make(chan struct{}, 1), store: store, feed: feed, streams: names}
	return nil
}

// stop makes the projector's commit stop between chunks (what it has not
// applied stays in the journal, finished at the next start) and closes the
// feed.
func (k *clicks) stop() {
	k.store.Stop()
	k.feed.Close()
}

// close closes the click store, once the goroutines using it have ended.
func (k *clicks) close() { _ = k.store.Close() }

// record hands a served redirect's click over without waiting.
func (k *clicks) record(c echo.Context, code string, now time.Time) {
	h := c.Request().Header
	rc := rawClick{code: code, agent: truncated(h.Get("User-Agent")), referrer: truncated(h.Get("Referer")), unixMs: now.UnixMilli()}
	size := len(rc.code) + len(rc.agent) + len(rc.referrer)
	k.mu.Lock()
	if len(k.buf) >= k.bound || k.bufBytes+size > k.maxBytes {
		k.mu.Unlock()
		k.dropped.Add(1)
		return
	}
	k.buf = append(k.buf, rc)
	k.bufBytes += size
	k.queued.Add(1) // under the lock: the flusher cannot take it first
	half := len(k.buf) == k.bound/2
	k.mu.Unlock()
	if half { // a burst: the flusher takes the buffer before the tick
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// maxClickHeader is the most of a User-Agent or Referer a queued click
// keeps: enough for the agent's class and the referrer's host (all
// analytics reads of them), and a queue of ClickQueue clicks cannot hold
// whole headers of up to maxHeaderBytes each.
const maxClickHeader = 1024

// truncated is s cut to maxClickHeader bytes at a character boundary, as
// a copy of its own (a slice of s would keep the whole header alive); s
// itself when it is short enough, which costs nothing.
func truncated(s string) string {
	if len(s) <= maxClickHeader {
		return s
	}
	n := maxClickHeader
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}

// StallClicks makes every click publish wait d first (0 ends it): fault
// injection for tests and chaos runs, standing for a slow or stuck click
// path.
func (r *Region) StallClicks(d time.Duration) {
	if r.clicks != nil {
		r.clicks.stall.Store(int64(d))
	}
}

// ClickCounters are one instance's click counts since it started.
type ClickCounters struct {
	Recorded uint64 `json:"recorded"` // published to the click stream
	Dropped  uint64 `json:"dropped"`  // could not be recorded: buffer full or publish failed
	Queued   int    `json:"queued"`   // waiting to be recorded
	Counted  uint64 `json:"counted"`  // folded into the click store, from every region
}

// ClickCounters returns the instance's click counts.
func (r *Region) ClickCounters() ClickCounters {
	if r.clicks == nil {
		return ClickCounters{}
	}
	k := r.clicks
	return ClickCounters{Recorded: k.recorded.Load(), Dropped: k.dropped.Load(), Queued: int(k.queued.Load()), Counted: k.counted.Load()}
}

// flush batches the buffer into the click stream until ctx ends.
func (k *clicks) flush(ctx context.Context) error {
	t := time.NewTicker(clickFlushEvery)
	defer t.Stop()
	batch := make([]events.Click, 0, events.MaxClickBatch)
	var data []byte
	// User agents repeat: each is classified once (up to agentsCached of
	// them, then the memo starts over).
	type agentClass struct {
		class string
		bot   bool
	}
	agents := map[string]agentClass{}
	// Referrers repeat too: each is reduced to its host once (url.Parse
	// allocates), with the same bounds.
	referrers := map[string]string{}
	const agentsCached = 4096
	lastWarn := time.Time{}
	send := func() {
		if len(batch) == 0 {
			return
		}
		now := k.r.cfg.Now().UTC()
		cb := events.ClickBatch{ID: events.NewID(now), Region: k.r.cfg.Name, Time: now, Clicks: batch}
		data = events.AppendClickBatch(data[:0], cb)
		for start := time.Now(); ctx.Err() == nil; { // an injected stall, until lifted or over
			if d := time.Duration(k.stall.Load()); d <= 0 || time.Since(start) >= d {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := replicator.PublishClicks(pctx, k.r.js, cb, data)
		cancel()
		if err != nil {
			k.dropped.Add(uint64(len(batch)))
			if time.Since(lastWarn) > 10*time.Second && !errors.Is(err, context.Canceled) {
				lastWarn = time.Now()
				k.r.log.Warn("click batch not recorded: counted as dropped", "clicks", len(batch), "err", err)
			}
		} else {
			k.recorded.Add(uint64(len(batch)))
		}
		k.queued.Add(-int64(len(batch))) // after: recorded + dropped + queued never reads short
		batch = batch[:0]
	}
	var taken []rawClick // the buffer the flusher took last, kept for reuse
	for {
		select {
		case <-ctx.Done():
			k.mu.Lock()
			lost := len(k.buf) // never published: dropped, so that the counts add up
			k.buf, k.bufBytes = nil, 0
			k.dropped.Add(uint64(lost))
			k.queued.Add(-int64(lost))
			k.mu.Unlock()
			return nil
		case <-t.C:
		case <-k.wake:
		}
		k.mu.Lock()
		taken, k.buf = k.buf, taken[:0]
		k.bufBytes = 0
		k.mu.Unlock()
		for _, c := range taken {
			a, ok := agents[c.agent]
			if !ok {
				a.class, a.bot = events.ClassifyAgent(c.agent)
				if len(c.agent) <= 512 { // a client's header: the memo's size is bounded
					if len(agents) >= agentsCached {
						clear(agents)
					}
					agents[c.agent] = a
				}
			}
			host, ok := referrers[c.referrer]
			if !ok {
				host = events.ReferrerHost(c.referrer)
				if len(c.referrer) <= 512 {
					if len(referrers) >= agentsCached {
						clear(referrers)
					}
					referrers[c.referrer] = host
				}
			}
			batch = append(batch, events.Click{Code: c.code, UnixMs: c.unixMs, Referrer: host, Agent: a.class, Bot: a.bot})
			if len(batch) >= events.MaxClickBatch {
				send()
			}
		}
		send()
		clear(taken) // the requests' headers are not kept alive by the spare buffer
	}
}

// The click projector folds batches in memory for Config.ClickCommitEvery
// before it writes them: each busy counter is written once per commit
// instead of once per batch (with 20,000 links redirected at random the
// Pebble writes of the counters were most of the click path's cost).
// Counts are that much later on /stats; a crash loses nothing (the
// checkpoints are committed with the counts, and the feed is acknowledged
// only after the commit).

// clickPendingMax bounds the (code, region, day) counts folded in memory
// between commits.
const clickPendingMax = 200_000

// clickCommitRecords commits early once this many click batches are
// folded and not acknowledged: half the feed's MaxAckPending (20,000),
// beyond which the server sends no more. Live, a region sends about ten
// batches a second; catching up on a backlog, a commit every 10,000
// batches keeps the feed flowing instead of waiting out the interval.
const clickCommitRecords = 10_000

// project folds the click streams into the click store until ctx ends.
func (k *clicks) project(ctx context.Context) error {
	var first time.Time // of the first fold since the last commit
	records := 0        // folded since the last commit
	for {
		pending, keys := k.store.Pending()
		if pending && (time.Since(first) >= k.r.cfg.ClickCommitEvery || keys >= clickPendingMax || records >= clickCommitRecords) {
			if !k.commit(ctx) {
				return nil
			}
			records = 0
			continue
		}
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if pending {
			nctx, cancel = context.WithDeadline(ctx, first.Add(k.r.cfg.ClickCommitEvery))
		}
		recs, err := k.feed.Next(nctx, 500)
		cancel()
		if ctx.Err() != nil {
			return nil // the pending counts were never acknowledged: folded again
		}
		if err != nil {
			continue // the commit is due
		}
		if !pending {
			first = time.Now()
		}
		records += len(recs)
		k.store.Fold(recs)
	}
}

// commit writes the folded counts and acknowledges their records, retrying
// until it succeeds (the feed is not read meanwhile: nothing is lost, the
// counts only get later). It returns false when ctx ended first.
func (k *clicks) commit(ctx context.Context) bool {
	wait := 100 * time.Millisecond
	for {
		n, err := k.store.Commit()
		k.counted.Add(uint64(n))
		if n > 0 || err == nil { // durable, even if writing the counters failed (the next Commit finishes them)
			_ = k.feed.Ack(ctx, nil)
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil { // stopping: the journal is finished at the next start
			return false
		}
		k.r.log.Warn("click projection: retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// StatsResponse is the answer of GET /api/v1/links/{code}/stats.
type StatsResponse struct {
	projections.ClickStats
	// Freshness, per region whose clicks are counted here: the time of the
	// newest batch of its clicks folded in, and its age now. Counts may lag
	// by seconds; they never block a redirect.
	Freshness map[string]Freshness `json:"freshness"`
}

// Freshness is how recent one region's counted clicks are.
type Freshness struct {
	NewestBatch time.Time `json:"newest_batch,omitzero"`
	AgeSeconds  float64   `json:"age_seconds"` // -1: none counted yet
}

func (r *Region) stats(c echo.Context) error {
	code := c.Param("code")
	if _, err := r.current(code); err != nil && events.KindOf(err) != events.Gone {
		return err
	}
	if r.clicks == nil {
		return &events.Error{Kind: events.Unavailable, RetryAfter: 5 * time.Second, Message: "click analytics is off in this region"}
	}
	st, err := r.clicks.store.Stats(code)
	if err != nil {
		return err
	}
	resp := StatsResponse{ClickStats: st, Freshness: map[string]Freshness{}}
	newest := r.clicks.store.Newest()
	now := r.cfg.Now()
	for _, name := range append([]string{r.cfg.Name}, regionNames(r.cfg.Peers)...) {
		f := Freshness{AgeSeconds: -1}
		if t, ok := newest[name]; ok {
			f = Freshness{NewestBatch: t, AgeSeconds: max(0, now.Sub(t).Seconds())}
		}
		resp.Freshness[name] = f
	}
	return c.JSON(http.StatusOK, resp)
}

func regionNames(peers []Peer) []string {
	out := make([]string, 0, len(peers))
	for _, p := range peers {
		out = append(out, p.Name)
	}
	return out
}
