package auditor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

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
func Replay(ctx context.Context, js *replicator.Conn, srcs []Source, dir string, o ReplayOptions) (*projections.Store, ReplayResult, error) {
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

// quietLogger drops the replay store's own logging: the audit reports.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
