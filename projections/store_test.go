package projections_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"shortener/events"
	"shortener/projections"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string, fs vfs.FS) *projections.Store {
	t.Helper()
	return openWith(t, dir, projections.Options{FS: fs, CacheSize: 16})
}

func openWith(t *testing.T, dir string, opts projections.Options) *projections.Store {
	t.Helper()
	s, err := projections.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// history builds n links, each created in one region and, for some,
// updated and deleted in others, and returns the streams' records: what
// three regions' streams would hold.
func history(t *testing.T, n int, seed uint64) map[string][]events.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	regions := []string{"us-east", "eu-west", "ap-south"}
	streams := map[string][]events.Record{}
	add := func(origin string, e events.Envelope) {
		name := events.LogStream(origin)
		streams[name] = append(streams[name], events.Record{Stream: name, Seq: uint64(len(streams[name]) + 1),
			Subject: events.LinkSubject(origin, e.Code), Data: e.Encode()})
	}
	for i := 0; i < n; i++ {
		code := fmt.Sprintf("link%04d", i)
		at := t0.Add(time.Duration(i) * time.Second)
		origin := regions[rng.IntN(3)]
		c, err := events.New(events.TypeLinkCreated, code, origin, "k", at, events.LinkCreated{URL: "https://example.com/" + code, RedirectStatus: 302})
		if err != nil {
			t.Fatal(err)
		}
		add(origin, c)
		if rng.IntN(2) == 0 {
			u := "https://example.com/updated/" + code
			e, _ := events.New(events.TypeLinkUpdated, code, regions[rng.IntN(3)], "k", at.Add(time.Millisecond), events.LinkUpdated{URL: &u})
			add(e.Origin, e)
		}
		if rng.IntN(4) == 0 {
			e, _ := events.New(events.TypeLinkDeleted, code, regions[rng.IntN(3)], "k", at.Add(2*time.Millisecond), events.LinkDeleted{})
			add(e.Origin, e)
		}
	}
	return streams
}

// interleave merges the streams in a random order that keeps each
// stream's own order, as a projection reading several streams sees them.
func interleave(streams map[string][]events.Record, seed uint64) []events.Record {
	rng := rand.New(rand.NewPCG(seed, 2))
	pos := map[string]int{}
	var names []string
	total := 0
	for name, recs := range streams {
		names = append(names, name)
		total += len(recs)
	}
	var out []events.Record
	for len(out) < total {
		name := names[rng.IntN(len(names))]
		if pos[name] < len(streams[name]) {
			out = append(out, streams[name][pos[name]])
			pos[name]++
		}
	}
	return out
}

func applyAll(t *testing.T, s *projections.Store, recs []events.Record, batch int) {
	t.Helper()
	for i := 0; i < len(recs); i += batch {
		if _, err := s.Apply(recs[i:min(i+batch, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDigestIndependentOfArrivalOrder(t *testing.T) {
	streams := history(t, 300, 1)
	var digests []string
	for seed := uint64(0); seed < 4; seed++ {
		s := open(t, t.TempDir(), nil)
		applyAll(t, s, interleave(streams, seed), 1+int(seed)*7)
		d, err := s.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		n, _ := s.Count()
		if n != 300 {
			t.Fatalf("%d rows, want 300", n)
		}
		s.Close()
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("digests differ by arrival order: %v", digests)
		}
	}
}

func TestApplyOnceAndInOrder(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	recs := history(t, 20, 2)["LINKS_US_EAST"]
	if len(recs) < 5 {
		t.Fatalf("history too short: %d", len(recs))
	}
	if n, err := s.Apply(recs[:3]); err != nil || n != 3 {
		t.Fatalf("Apply = %d, %v; want 3", n, err)
	}
	// Redelivered records are skipped by checkpoint.
	if n, err := s.Apply(recs[:3]); err != nil || n != 0 {
		t.Fatalf("redelivery: Apply = %d, %v; want 0", n, err)
	}
	// A gap is refused and nothing of the batch is written.
	_, err := s.Apply([]events.Record{recs[4]})
	var gap *projections.GapError
	if !errors.As(err, &gap) || gap.Want != 4 || gap.Got != 5 {
		t.Fatalf("gap: err = %v, want a GapError wanting 4", err)
	}
	if cp := s.Checkpoint("LINKS_US_EAST"); cp != 3 {
		t.Fatalf("checkpoint %d after a refused gap, want 3", cp)
	}
	// The same event through another stream (a mirror, or a resend) is
	// applied once: the position moves, the row does not change.
	before, _ := s.Digest()
	dup := recs[0]
	dup.Stream = "LINKS_US_EAST_AT_EU_WEST"
	if n, err := s.Apply([]events.Record{dup}); err != nil || n != 1 {
		t.Fatalf("Apply dup = %d, %v", n, err)
	}
	if after, _ := s.Digest(); after != before {
		t.Fatal("an event delivered twice changed the projection")
	}
	// A record that is not an event is stepped over, counted, and checkpointed.
	bad := events.Record{Stream: "LINKS_US_EAST", Seq: 4, Data: []byte("not an event")}
	if n, err := s.Apply([]events.Record{bad}); err != nil || n != 1 || s.Skipped() != 1 || s.Checkpoint("LINKS_US_EAST") != 4 {
		t.Fatalf("bad record: n %d err %v skipped %d checkpoint %d", n, err, s.Skipped(), s.Checkpoint("LINKS_US_EAST"))
	}
}

func TestResetRebuildsTheSameProjection(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	defer s.Close()
	recs := interleave(history(t, 200, 3), 9)
	applyAll(t, s, recs, 50)
	want, _ := s.Digest()
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(); n != 0 || len(s.Checkpoints()) != 0 {
		t.Fatalf("after reset: %d rows, checkpoints %v", n, s.Checkpoints())
	}
	if _, found, _ := s.Lookup("link0001"); found {
		t.Fatal("the cache still serves a link after reset")
	}
	applyAll(t, s, recs, 13)
	if got, _ := s.Digest(); got != want {
		t.Fatal("rebuild from zero gives another digest")
	}
}

func TestCacheFollowsCommits(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	c, _ := events.New(events.TypeLinkCreated, "abc", "us-east", "k", t0, events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	if _, err := s.Apply([]events.Record{{Stream: "LINKS_US_EAST", Seq: 1, Subject: "links.us-east.abc", Data: c.Encode()}}); err != nil {
		t.Fatal(err)
	}
	if e, found, _ := s.Lookup("abc"); !found || e.URL() != "https://a.example/" {
		t.Fatalf("lookup: %+v %v", e, found)
	}
	u := "https://b.example/"
	up, _ := events.New(events.TypeLinkUpdated, "abc", "us-east", "k", t0.Add(time.Second), events.LinkUpdated{URL: &u})
	if _, err := s.Apply([]events.Record{{Stream: "LINKS_US_EAST", Seq: 2, Subject: "links.us-east.abc", Data: up.Encode()}}); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := s.Lookup("abc"); e.URL() != u {
		t.Fatalf("cached entry not refreshed by the update: %q", e.URL())
	}
	d, _ := events.New(events.TypeLinkDeleted, "abc", "us-east", "k", t0.Add(2*time.Second), events.LinkDeleted{})
	if _, err := s.Apply([]events.Record{{Stream: "LINKS_US_EAST", Seq: 3, Subject: "links.us-east.abc", Data: d.Encode()}}); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := s.Lookup("abc"); !e.Deleted || e.Servable(t0) {
		t.Fatalf("cached entry still servable after delete: %+v", e)
	}
}

// TestCrashKeepsBatchesWhole crashes an in-memory file system after batches,
// dropping everything not synced, and requires the reopened store to hold
// whole batches only, and exactly the records its checkpoints name: with
// SyncWrites, every batch applied before the crash; without, a prefix of
// them, which a feed restarted from the checkpoints completes.
func TestCrashKeepsBatchesWhole(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("SyncWrites=%v", sync), func(t *testing.T) {
			crashTest(t, sync)
		})
	}
}

func crashTest(t *testing.T, sync bool) {
	recs := interleave(history(t, 120, 4), 5)
	fs := vfs.NewStrictMem()
	// The store's directory itself must survive the crash: create and sync it.
	if err := fs.MkdirAll("/p", 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fs.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	root.Close()
	reopen := func() *projections.Store {
		s, err := projections.Open("/p", projections.Options{FS: fs, CacheSize: 16, SyncWrites: sync})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := reopen()
	for round := 0; covered(recs, s.Checkpoints()) < len(recs); round++ {
		if round > 100 {
			t.Fatal("no progress")
		}
		// Feed the store from its own checkpoints, as the feed does after a
		// restart: anything a crash took comes again.
		var batch []events.Record
		cps := s.Checkpoints()
		for _, r := range recs {
			if r.Seq > cps[r.Stream] && len(batch) < 17 {
				batch = append(batch, r)
			}
		}
		if _, err := s.Apply(batch); err != nil {
			t.Fatal(err)
		}
		if round%3 != 2 {
			if err := s.Flush(); err != nil { // a quiet moment: what is applied reaches the disk
				t.Fatal(err)
			}
			continue
		}
		applied := covered(recs, s.Checkpoints())
		fs.SetIgnoreSyncs(true)
		s.Close()
		fs.ResetToSyncedState()
		fs.SetIgnoreSyncs(false)
		s = reopen()
		// The reopened store equals a fresh fold of exactly what its
		// checkpoints say it holds.
		cps = s.Checkpoints()
		var prefix []events.Record
		for _, r := range recs {
			if r.Seq <= cps[r.Stream] {
				prefix = append(prefix, r)
			}
		}
		if sync && len(prefix) != applied {
			t.Fatalf("after crash: checkpoints cover %d records, %d were applied and synced", len(prefix), applied)
		}
		fresh := open(t, t.TempDir(), nil)
		applyAll(t, fresh, prefix, 1000)
		want, _ := fresh.Digest()
		fresh.Close()
		if got, _ := s.Digest(); got != want {
			t.Fatalf("after a crash with %d records checkpointed: projection differs from a fold of exactly those", len(prefix))
		}
	}
	all := open(t, t.TempDir(), nil)
	applyAll(t, all, recs, 1000)
	want, _ := all.Digest()
	all.Close()
	if got, _ := s.Digest(); got != want {
		t.Fatal("after all the crashes the store differs from a fold of every record")
	}
	s.Close()
}

func covered(recs []events.Record, cps map[string]uint64) int {
	n := 0
	for _, r := range recs {
		if r.Seq <= cps[r.Stream] {
			n++
		}
	}
	return n
}

// TestCheckpointToIsAConsistentCut: checkpoints taken while batches are
// applied each hold whole batches: a fresh store fed each stream up to
// exactly the checkpoint's positions has the checkpoint's digest, and the
// live store goes on.
func TestCheckpointToIsAConsistentCut(t *testing.T) {
	streams := history(t, 400, 5)
	recs := interleave(streams, 7)
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < len(recs); i += 9 {
			if _, err := s.Apply(recs[i:min(i+9, len(recs))]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var cps []string
	for i := 0; i < 5; i++ {
		dir := t.TempDir() + "/cp"
		if err := s.CheckpointTo(dir); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, dir)
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.CheckpointTo(cps[0]); err == nil {
		t.Error("a checkpoint into an existing directory succeeded")
	}
	for _, dir := range cps {
		c, err := projections.OpenReadOnly(dir)
		if err != nil {
			t.Fatal(err)
		}
		upTo := c.Checkpoints()
		got, _ := c.Digest()
		n, _ := c.Count()
		c.Close()
		fresh := open(t, t.TempDir(), nil)
		var sub []events.Record
		for _, r := range recs {
			if r.Seq <= upTo[r.Stream] {
				sub = append(sub, r)
			}
		}
		applyAll(t, fresh, sub, 50)
		want, _ := fresh.Digest()
		wn, _ := fresh.Count()
		fresh.Close()
		if got != want || n != wn {
			t.Errorf("checkpoint at %v: %d rows digest %.12s; the log up to there: %d rows %.12s", upTo, n, got, wn, want)
		}
	}
}
