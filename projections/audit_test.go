package projections_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shortener/events"
	"shortener/projections"
	"shortener/projections/projectionstest"
)

// replayStreams replays streams one after the other (the order least
// like the live interleaving, so late events re-fold), in batches.
func replayStreams(t *testing.T, dir string, streams map[string][]events.Record, until time.Time) (*projections.Store, projections.ReplayStats) {
	t.Helper()
	return replayStreamsWith(t, dir, streams, projections.ReplayOptions{Until: until})
}

func replayStreamsWith(t *testing.T, dir string, streams map[string][]events.Record, opts projections.ReplayOptions) (*projections.Store, projections.ReplayStats) {
	t.Helper()
	r, err := projections.NewReplay(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range streams {
		names = append(names, name)
	}
	slices.Sort(names)
	slices.Reverse(names)
	for _, name := range names {
		recs := streams[name]
		for i := 0; i < len(recs); i += 97 {
			if err := r.Apply(recs[i:min(i+97, len(recs))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	stats := r.Stats()
	s, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, stats
}

func digestOf(t *testing.T, s *projections.Store) string {
	t.Helper()
	d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAuditReplayEqualsLiveProjection: a replay of the streams a live
// store applied, in another order and with a second copy of one stream
// (as a mirror delivers the same events again), has the live store's
// digest, and Digests agrees with Digest.
func TestAuditReplayEqualsLiveProjection(t *testing.T) {
	streams := history(t, 400, 11)
	// A copy of us-east's stream under a mirror's name: the same events
	// again, which both the live store and the replay must fold once.
	var copyRecs []events.Record
	for _, r := range streams["LINKS_US_EAST"] {
		r.Stream = "LINKS_US_EAST_AT_EU_WEST"
		copyRecs = append(copyRecs, r)
	}
	streams["LINKS_US_EAST_AT_EU_WEST"] = copyRecs
	// An update of a code never created: a row with no link in it.
	orphanURL := "https://example.com/orphan"
	orphan, err := events.New(events.TypeLinkUpdated, "orphan", "ap-south", "k", t0, events.LinkUpdated{URL: &orphanURL})
	if err != nil {
		t.Fatal(err)
	}
	streams["LINKS_AP_SOUTH"] = append(streams["LINKS_AP_SOUTH"], events.Record{Stream: "LINKS_AP_SOUTH", Seq: uint64(len(streams["LINKS_AP_SOUTH"]) + 1), Subject: "links.ap-south.orphan", Data: orphan.Encode()})

	live := open(t, t.TempDir(), nil)
	defer live.Close()
	applyAll(t, live, interleave(streams, 3), 64)

	replayed, stats := replayStreams(t, t.TempDir(), streams, time.Time{})
	if got, want := digestOf(t, replayed), digestOf(t, live); got != want {
		t.Fatalf("replay digest %s, live %s", got, want)
	}
	if stats.Duplicates != uint64(len(copyRecs)) {
		t.Fatalf("%d duplicates folded once, want %d (the copied stream)", stats.Duplicates, len(copyRecs))
	}
	if stats.Refolds == 0 {
		t.Fatalf("no event arrived late in a stream-by-stream replay: the test does not exercise re-folding")
	}
	d, err := live.Digests()
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != digestOf(t, live) || d.Links != 401 || len(d.Buckets) != projections.DigestBuckets {
		t.Fatalf("Digests: %s, %d links, %d buckets; Digest %s", d.Digest, d.Links, len(d.Buckets), digestOf(t, live))
	}
	for name, recs := range streams {
		if d.Checkpoints[name] != uint64(len(recs)) {
			t.Fatalf("checkpoint of %s %d, want %d", name, d.Checkpoints[name], len(recs))
		}
	}
	rd, _ := replayed.Digests()
	if diff := projections.CompareDigests(rd, d); len(diff) != 0 {
		t.Fatalf("buckets differ: %v", diff)
	}
}

// TestAuditNamesCorruptedRows: rows changed or removed behind the fold's
// back are found through the bucket digests and named.
func TestAuditNamesCorruptedRows(t *testing.T) {
	streams := history(t, 300, 12)
	dir := t.TempDir()
	live := open(t, dir, nil)
	applyAll(t, live, interleave(streams, 4), 50)
	live.Close()
	if err := projectionstest.CorruptLink(dir, "link0042", func(l *events.Link) { l.URL = "https://evil.example/" }); err != nil {
		t.Fatal(err)
	}
	if err := projectionstest.DeleteLink(dir, "link0107"); err != nil {
		t.Fatal(err)
	}
	audited, err := projections.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer audited.Close()

	replayed, _ := replayStreams(t, t.TempDir(), streams, time.Time{})
	want, _ := replayed.Digests()
	got, err := audited.Digests()
	if err != nil {
		t.Fatal(err)
	}
	if want.Digest == got.Digest {
		t.Fatal("corrupted store has the replay's digest")
	}
	buckets := projections.CompareDigests(want, got)
	if len(buckets) != 2 && !(len(buckets) == 1 && projections.Bucket("link0042") == projections.Bucket("link0107")) {
		t.Fatalf("differing buckets %v, want those of the two codes", buckets)
	}
	wr, err := replayed.BucketRows(buckets)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := audited.BucketRows(buckets)
	if err != nil {
		t.Fatal(err)
	}
	diffs := projections.CompareRows(wr, gr)
	wantDiffs := []projections.RowDiff{{Code: "link0042", What: "differs"}, {Code: "link0107", What: "missing"}}
	if !slices.Equal(diffs, wantDiffs) {
		t.Fatalf("diffs %v, want %v", diffs, wantDiffs)
	}
}

// TestAuditHistoryAndAt: a link created in one region, updated, and
// deleted in another, given in any order: its history is in fold order,
// and At answers with the state at each moment.
func TestAuditHistoryAndAt(t *testing.T) {
	code := "spring-sale"
	mk := func(typ events.Type, origin string, at time.Time, p any) events.Envelope {
		e, err := events.New(typ, code, origin, "key:abc", at, p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	newURL := "https://example.com/new"
	c := mk(events.TypeLinkCreated, "us-east", t0, events.LinkCreated{URL: "https://example.com/old", RedirectStatus: 302})
	u := mk(events.TypeLinkUpdated, "us-east", t0.Add(time.Minute), events.LinkUpdated{URL: &newURL})
	d := mk(events.TypeLinkDeleted, "eu-west", t0.Add(2*time.Minute), events.LinkDeleted{})
	us, eu := events.LinkSubject("us-east", code), events.LinkSubject("eu-west", code)
	forged := mk(events.TypeLinkUpdated, "eu-west", t0.Add(90*time.Second), events.LinkUpdated{URL: &newURL})
	recs := []events.Record{
		{Stream: "LINKS_EU_WEST", Seq: 7, Subject: eu, Data: d.Encode()},
		{Stream: "LINKS_US_EAST", Seq: 2, Subject: us, Data: u.Encode()},
		{Stream: "LINKS_US_EAST", Seq: 1, Subject: us, Data: c.Encode()},
		{Stream: "LINKS_US_EAST_AT_EU_WEST", Seq: 1, Subject: us, Data: c.Encode()}, // a copy of the create
		{Stream: "LINKS_US_EAST", Seq: 3, Subject: us, Data: []byte(`{"not":"an event"}`)},
		{Stream: "LINKS_US_EAST", Seq: 4, Subject: us, Data: forged.Encode()}, // eu-west's event in us-east's stream
	}
	steps, skipped := projections.History(code, recs, events.Rules{})
	if len(skipped) != 1 {
		t.Fatalf("skipped %v, want the one invalid record", skipped)
	}
	var got []string
	for _, s := range steps {
		got = append(got, fmt.Sprintf("%s %s #%d dup=%v changed=%v refused=%q", s.Event.Type, s.Event.Origin, s.Seq, s.Duplicate, s.Changed, s.Refused))
	}
	want := []string{
		`LinkCreated us-east #1 dup=false changed=true refused=""`,
		`LinkCreated us-east #1 dup=true changed=false refused=""`,
		`LinkUpdated us-east #2 dup=false changed=true refused=""`,
		`LinkUpdated eu-west #4 dup=false changed=false refused="origin: origin \"eu-west\" in the stream of us-east"`,
		`LinkDeleted eu-west #7 dup=false changed=true refused=""`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tc := range []struct {
		at    time.Time
		state projections.LinkState
		url   string
	}{
		{t0.Add(-time.Second), projections.StateAbsent, ""},
		{t0, projections.StateActive, "https://example.com/old"},
		{t0.Add(59 * time.Second), projections.StateActive, "https://example.com/old"},
		{t0.Add(time.Minute), projections.StateActive, newURL},
		{t0.Add(3 * time.Minute), projections.StateDeleted, newURL},
	} {
		l := projections.At(steps, tc.at)
		if st := projections.StateAt(l, tc.at); st != tc.state || l.URL != tc.url {
			t.Errorf("at %s: %s %q, want %s %q", tc.at.Format(time.TimeOnly), st, l.URL, tc.state, tc.url)
		}
	}
}

// TestAuditReplayUntil: a replay bounded by time holds every link as it
// was then, the same as At over the link's history.
func TestAuditReplayUntil(t *testing.T) {
	streams := history(t, 200, 13)
	cut := t0.Add(100*time.Second + 500*time.Microsecond) // link0100 created, not yet updated
	s, stats := replayStreams(t, filepath.Join(t.TempDir(), "r"), streams, cut)
	if stats.Later == 0 {
		t.Fatal("nothing was after the bound")
	}
	var all []events.Record
	for _, recs := range streams {
		all = append(all, recs...)
	}
	byCode := map[string][]events.Record{}
	for _, r := range all {
		e, _ := events.Decode(r.Data)
		byCode[e.Code] = append(byCode[e.Code], r)
	}
	n := 0
	err := s.Links(func(l events.Link) error {
		n++
		steps, _ := projections.History(l.Code, byCode[l.Code], events.Rules{})
		want := projections.At(steps, cut)
		if want.URL != l.URL || want.Deleted != l.Deleted || want.Events != l.Events {
			return fmt.Errorf("%s: replay until has %+v, history at the bound %+v", l.Code, l, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 101 {
		t.Fatalf("%d links at the bound, want 101 (link0000..link0100)", n)
	}
	l, found, _ := s.Get("link0100")
	if !found || l.URL != "https://example.com/link0100" || l.Events != 1 {
		t.Fatalf("link0100 at the bound: %+v (found %v), want created and not updated", l, found)
	}
}

// TestAuditReplayRefusesGapsAndUsedDirs: a replay needs every sequence,
// and never folds into an existing store.
func TestAuditReplayRefusesGapsAndUsedDirs(t *testing.T) {
	recs := history(t, 20, 14)["LINKS_US_EAST"]
	r, err := projections.NewReplay(t.TempDir(), projections.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	var gap *projections.GapError
	if err := r.Apply([]events.Record{recs[0], recs[2]}); !asGap(err, &gap) || gap.Want != 2 || gap.Got != 3 {
		t.Fatalf("gap: %v", err)
	}
	dir := t.TempDir()
	s := open(t, dir, nil)
	s.Close()
	if _, err := projections.NewReplay(dir, projections.ReplayOptions{}); err == nil {
		t.Fatal("a replay opened a used store")
	}
}

func asGap(err error, gap **projections.GapError) bool {
	g, ok := err.(*projections.GapError)
	*gap = g
	return ok
}

func TestAuditParseUntil(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want projections.Until
		bad  bool
	}{
		{in: "42", want: projections.Until{Seq: 42}},
		{in: " 7 ", want: projections.Until{Seq: 7}},
		{in: "2026-11-22T12:00:00Z", want: projections.Until{Time: t0}},
		{in: "2026-11-22T13:00:00+01:00", want: projections.Until{Time: t0}},
		{in: "2026-11-22T12:00:00", want: projections.Until{Time: t0}},
		{in: "2026-11-22T12:00:00.000000001Z", want: projections.Until{Time: t0.Add(1)}},
		{in: "2026-11-22", want: projections.Until{Time: t0.Add(-12 * time.Hour)}},
		{in: "0", bad: true},
		{in: "-1", bad: true},
		{in: "", bad: true},
		{in: "yesterday", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "1969-12-31", bad: true},
	} {
		got, err := projections.ParseUntil(tc.in)
		if tc.bad {
			if events.KindOf(err) != events.Invalid {
				t.Errorf("%q: %v, %v; want an Invalid error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.Seq != tc.want.Seq || !got.Time.Equal(tc.want.Time) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseUntil(f *testing.F) {
	for _, s := range []string{"1", "42", "2026-11-22T12:00:00Z", "2026-11-22T12:00:00.5+05:30", "2026-11-22", "x", "", "0", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := projections.ParseUntil(s)
		if err != nil {
			if events.KindOf(err) != events.Invalid {
				t.Fatalf("%q: error of kind %s: %v", s, events.KindOf(err), err)
			}
			return
		}
		if u.IsZero() || (u.Seq > 0) == !u.Time.IsZero() {
			t.Fatalf("%q: %+v: want exactly one bound", s, u)
		}
		// What it prints, it reads back the same.
		back, err := projections.ParseUntil(u.String())
		if err != nil || back.Seq != u.Seq || !back.Time.Equal(u.Time) {
			t.Fatalf("%q -> %q -> %+v, %v", s, u.String(), back, err)
		}
	})
}
