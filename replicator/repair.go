package replicator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A region's own stream can come back shorter than its mirrors elsewhere:
// its JetStream disk lost or replaced (the stream's assignment survives in
// the meta layer and the stream comes back empty), or its last writes lost
// by a crash with fsync off. Left so, the region's next events take
// sequences the mirrors already hold, and every mirror ignores them (a
// mirror takes only sequences beyond its last): links created there would
// never reach another region, while every API answer and lag figure looks
// healthy. RepairFromMirrors runs at start-up, before the region writes
// anything, and copies back into the stream what the most complete mirror
// holds beyond it, at the same sequences.

// RepairOptions tunes RepairFromMirrors.
type RepairOptions struct {
	// Wait bounds how long to wait for the peers' mirrors to answer when
	// the stream is empty (a lost disk looks like that, and so does a new
	// cluster, whose peers answer at once). Default 15 s.
	Wait time.Duration
	// WaitKept bounds the wait when the stream holds events (the disk was
	// kept: only a lost tail is possible). Default 3 s.
	WaitKept time.Duration
	Log      *slog.Logger
}

// RepairReport is what RepairFromMirrors found and did.
type RepairReport struct {
	Stream  string            // the region's stream
	Had     uint64            // its last sequence before
	Mirrors map[string]uint64 // peer: last sequence of its mirror of the stream, for those that answered
	Source  string            // the mirror copied from; "" if none was needed
	Copied  uint64            // events copied back
	Unasked []string          // peers whose mirror did not answer in time
}

// ErrDiverged: the region's stream holds, at a sequence its mirrors also
// hold, a different event: it took writes after losing events, and
// repairing it would need a choice between two histories.
var ErrDiverged = errors.New("the region's stream and its mirror hold different events at the same sequence")

// RepairFromMirrors compares region's stream with every peer's mirror of it
// and, when a mirror holds more, copies the missing events from the most
// complete one back into the stream with their subjects, headers and data,
// each at its original sequence (every publish expects the previous
// sequence). Peers whose mirror does not answer within the wait are left
// out (RepairReport.Unasked). It refuses (ErrDiverged) when the stream and
// any mirror disagree at the last sequence both hold, and when the mirror
// to copy has a gap; in both cases nothing is written. A copy that fails
// half way leaves a whole prefix (each event at its own sequence), and the
// error says where the stream ends: running it again resumes.
func RepairFromMirrors(ctx context.Context, c *Conn, region string, peers []string, o RepairOptions) (RepairReport, error) {
	if o.Wait <= 0 {
		o.Wait = 15 * time.Second
	}
	if o.WaitKept <= 0 {
		o.WaitKept = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	rep := RepairReport{Stream: StreamName(region), Mirrors: map[string]uint64{}}
	own, err := c.js.Stream(ctx, rep.Stream)
	if err != nil {
		return rep, fmt.Errorf("repair: stream %s: %w", rep.Stream, err)
	}
	rep.Had = own.CachedInfo().State.LastSeq
	wait := o.WaitKept
	if rep.Had == 0 {
		wait = o.Wait
	}
	infos := askMirrors(ctx, c.js, region, peers, time.Now().Add(wait))
	// Looked at again after the mirrors: a mirror never holds more than
	// its origin had when it was asked, so another instance of the region
	// writing meanwhile is never taken for a loss.
	if info, err := own.Info(ctx); err == nil {
		rep.Had = info.State.LastSeq
	} else {
		return rep, fmt.Errorf("repair: stream %s: %w", rep.Stream, err)
	}
	var best *jetstream.StreamInfo
	var bestPeer string
	for _, p := range peers {
		info, ok := infos[p]
		if !ok {
			rep.Unasked = append(rep.Unasked, p)
			continue
		}
		if info == nil { // no such mirror (yet): it holds nothing
			rep.Mirrors[p] = 0
			continue
		}
		rep.Mirrors[p] = info.State.LastSeq
		if best == nil || info.State.LastSeq > best.State.LastSeq {
			best, bestPeer = info, p
		}
	}
	// Every mirror must hold what the stream holds, up to the shorter of
	// the two: a region that lost its stream and then took writes (started
	// while no peer answered) differs from them there, ahead or behind.
	for _, p := range peers {
		info := infos[p]
		if info == nil || info.State.LastSeq == 0 || rep.Had == 0 {
			continue
		}
		at := min(rep.Had, info.State.LastSeq)
		same, err := sameAt(ctx, c.js, rep.Stream, info.Config.Name, at)
		if err != nil {
			return rep, fmt.Errorf("repair: compare %s with %s at #%d: %w", rep.Stream, info.Config.Name, at, err)
		}
		if !same {
			return rep, fmt.Errorf("repair: %s #%d differs from %s #%d: %w", rep.Stream, at, info.Config.Name, at, ErrDiverged)
		}
	}
	if best == nil || best.State.LastSeq <= rep.Had {
		return rep, nil
	}
	src := best.Config.Name
	rep.Source = bestPeer
	if first := best.State.FirstSeq; first > rep.Had+1 {
		return rep, fmt.Errorf("repair: %s starts at #%d, after %s's last #%d: the events between are nowhere", src, first, rep.Stream, rep.Had)
	}
	if best.State.NumDeleted > 0 { // a gap cannot be published back at its sequences
		return rep, fmt.Errorf("repair: %s has %d gaps (deleted or skipped sequences): repair by hand", src, best.State.NumDeleted)
	}
	o.Log.Warn("the region's stream holds fewer events than a mirror of it: copying them back before taking writes",
		"stream", rep.Stream, "last_seq", rep.Had, "mirror", src, "mirror_region", rep.Source, "mirror_last_seq", best.State.LastSeq,
		"mirrors", rep.Mirrors, "unasked", rep.Unasked)
	// Every ack is checked for its sequence: a stream that took the copy
	// ends where the mirror does.
	err = copyBack(ctx, c.js, rep.Stream, src, rep.Had, best.State.LastSeq, func(done uint64) {
		o.Log.Info("repairing the region's stream", "copied", done, "of", best.State.LastSeq-rep.Had, "from", src)
	})
	if err != nil {
		// What was copied stays (each event at its own sequence): the next
		// start resumes from there.
		where := "unknown"
		if info, ierr := own.Info(ctx); ierr == nil {
			where = fmt.Sprintf("#%d", info.State.LastSeq)
			rep.Copied = info.State.LastSeq - rep.Had
		}
		return rep, fmt.Errorf("repair %s from %s (the stream now ends at %s of #%d; starting again resumes): %w", rep.Stream, src, where, best.State.LastSeq, err)
	}
	rep.Copied = best.State.LastSeq - rep.Had
	return rep, nil
}

// askMirrors asks every peer's mirror of region's stream for its state
// until each has answered or the deadline passes. A nil info: the mirror
// does not exist. A peer missing from the map did not answer.
func askMirrors(ctx context.Context, js jetstream.JetStream, region string, peers []string, deadline time.Time) map[string]*jetstream.StreamInfo {
	got := map[string]*jetstream.StreamInfo{}
	for {
		for _, p := range peers {
			if _, ok := got[p]; ok {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := js.Stream(actx, MirrorName(region, p))
			cancel()
			switch {
			case err == nil:
				got[p] = s.CachedInfo()
			case errors.Is(err, jetstream.ErrStreamNotFound):
				got[p] = nil
			}
		}
		if len(got) == len(peers) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return got
		}
		select {
		case <-ctx.Done():
			return got
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sameAt reports whether streams a and b hold the same data at seq. It
// reads through a consumer, not a direct get: nats-server makes every
// mirror of a stream that allows direct gets answer them for that stream
// too (MirrorDirect), so a direct get of a's seq can be answered by b.
//
// A read that has not answered after sameAtTry is asked again, up to
// sameAtTries times before the last, unbounded one: at a region's start a
// consumer create or a pull whose answer was lost (a gateway still being
// redialled) otherwise waited until the ordered consumer reset itself,
// 10 s and more (bench restart, docs/benchmarks.md).
func sameAt(ctx context.Context, js jetstream.JetStream, a, b string, seq uint64) (bool, error) {
	var data [2][]byte
	for i, name := range []string{a, b} {
		read := func(ctx context.Context) error {
			return scan(ctx, js, name, ReadOptions{From: seq, To: seq}, 1, func(m jetstream.Msg, _ uint64, _ bool) error {
				data[i] = m.Data()
				return nil
			})
		}
		var err error
		for try := 0; try < sameAtTries; try++ {
			began := time.Now()
			tctx, cancel := context.WithTimeout(ctx, sameAtTry)
			err = read(tctx)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			// An error that came back at once (JetStream "temporarily
			// unavailable" while its meta layer settles) is asked again
			// after the rest of the try's time, not at once.
			select {
			case <-ctx.Done():
			case <-time.After(sameAtTry - time.Since(began)):
			}
		}
		if err != nil && ctx.Err() == nil {
			err = read(ctx)
		}
		if err != nil {
			return false, err
		}
		if data[i] == nil {
			return false, fmt.Errorf("%s holds no #%d", name, seq)
		}
	}
	return bytes.Equal(data[0], data[1]), nil
}

// sameAtTry bounds each of the first sameAtTries reads of sameAt.
const (
	sameAtTry   = 2 * time.Second
	sameAtTries = 3
)

// repairWindow is how many copied events are in flight at once, and
// repairAckWait how long a window's acknowledgements may take.
const (
	repairWindow  = 512
	repairAckWait = 30 * time.Second
)

// copyBack publishes src's messages from #after+1 to #to into stream, each
// expecting the one before it, a window of them in flight at a time;
// progress is called every 2 s and at the end with the count done.
func copyBack(ctx context.Context, js jetstream.JetStream, stream, src string, after, to uint64, progress func(uint64)) error {
	var futures []jetstream.PubAckFuture
	var done uint64
	lastReport := time.Now()
	settle := func() error {
		timeout := time.NewTimer(repairAckWait)
		defer timeout.Stop()
		for i, f := range futures {
			want := after + done + uint64(i) + 1
			select {
			case ack := <-f.Ok():
				// A duplicate message id is acknowledged without being
				// stored: the copy would end short.
				if ack.Duplicate || ack.Sequence != want {
					return fmt.Errorf("publish #%d: stored as #%d (duplicate %t)", want, ack.Sequence, ack.Duplicate)
				}
			case err := <-f.Err():
				return fmt.Errorf("publish #%d: %w", want, err)
			case <-timeout.C:
				return fmt.Errorf("publish #%d: no acknowledgement within %v", want, repairAckWait)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done += uint64(len(futures))
		futures = futures[:0]
		if time.Since(lastReport) >= 2*time.Second {
			progress(done)
			lastReport = time.Now()
		}
		return nil
	}
	err := scan(ctx, js, src, ReadOptions{From: after + 1, To: to}, repairWindow, func(m jetstream.Msg, seq uint64, last bool) error {
		out := &nats.Msg{Subject: m.Subject(), Data: m.Data(), Header: nats.Header{}}
		for k, v := range m.Headers() {
			if !strings.HasPrefix(k, "Nats-Expected-") {
				out.Header[k] = v
			}
		}
		f, err := js.PublishMsgAsync(out, jetstream.WithExpectStream(stream), jetstream.WithExpectLastSequence(seq-1))
		if err != nil {
			return fmt.Errorf("publish #%d: %w", seq, err)
		}
		futures = append(futures, f)
		if len(futures) == repairWindow || last {
			return settle()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := settle(); err != nil {
		return err
	}
	if done != to-after {
		return fmt.Errorf("copied %d events of %d: %s ended early", done, to-after, src)
	}
	progress(done)
	return nil
}
