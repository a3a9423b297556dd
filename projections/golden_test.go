package projections_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"shortener/events"
	"shortener/projections"
)

// goldenDigest is the Digest of goldenHistory's projection, computed by the
// code before the fast decoder and row encoder (encoding/json throughout).
// Link rows are a wire format: a change to this value is a change to it.
const goldenDigest = "faae81b54e1cd917330a166c2b1508b2d26dca6c9b19953d74bb97261c06293c"

// goldenHistory is a deterministic log of three streams with everything a
// row can hold: aliases, actors, expiries set and cleared, statuses changed,
// deletes, URLs that JSON escapes (&, <, >, U+2028, non-ASCII), producer
// times in other zones, late events (refolds), the same event in two
// streams, heartbeats and records that are not events.
func goldenHistory(t testing.TB) map[string][]events.Record {
	rng := rand.New(rand.NewPCG(7, 7))
	regions := []string{"us-east", "eu-west", "ap-south"}
	streams := map[string][]events.Record{}
	id := 0
	put := func(stream, subject string, data []byte) {
		streams[stream] = append(streams[stream], events.Record{Stream: stream, Seq: uint64(len(streams[stream]) + 1), Subject: subject, Data: data})
	}
	add := func(typ events.Type, code, origin string, at time.Time, payload any) {
		e, err := events.New(typ, code, origin, fmt.Sprintf("key:%012x", rng.IntN(3)), at, payload)
		if err != nil {
			t.Fatal(err)
		}
		id++
		e.ID = fmt.Sprintf("0190f1e2-%04x-7000-8000-%012x", rng.IntN(2), id)
		if rng.IntN(5) == 0 {
			e.Time = e.Time.In(time.FixedZone("", 3600*(rng.IntN(5)-2)))
		}
		if rng.IntN(7) == 0 {
			e.Actor = ""
		}
		data := e.Encode()
		subject := events.LinkSubject(origin, code)
		if typ == events.TypeRegionHeartbeat {
			subject = events.HeartbeatSubject(origin)
		}
		put(events.LogStream(origin), subject, data)
		if rng.IntN(10) == 0 { // the same event held twice (a resend; in another region's stream, a forgery)
			put(events.LogStream(regions[rng.IntN(3)]), subject, data)
		}
	}
	urls := []string{"https://example.com/", "https://example.com/?a=1&b=<2>", "https://bücher.example/\u2028x", "http://[::1]:8080/p#f", "https://example.com/\"q\"\\"}
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 400; i++ {
		code := fmt.Sprintf("1abc%04d", i)
		if i%9 == 0 {
			code = fmt.Sprintf("alias-%d", i)
		}
		at := t0.Add(time.Duration(i)*time.Second + time.Duration(rng.IntN(1000))*time.Nanosecond)
		origin := regions[rng.IntN(3)]
		var exp *time.Time
		if rng.IntN(3) == 0 {
			x := at.Add(time.Hour)
			exp = &x
		}
		c := events.LinkCreated{URL: urls[rng.IntN(len(urls))] + code, Alias: i%9 == 0, ExpiresAt: exp, RedirectStatus: []int{301, 302, 307, 308}[rng.IntN(4)]}
		// Some updates are produced before the create they follow in a
		// stream, or arrive in a stream read first: refolds.
		if rng.IntN(3) == 0 {
			u := urls[rng.IntN(len(urls))] + "u"
			s := 307
			x := at.Add(2 * time.Hour)
			add(events.TypeLinkUpdated, code, regions[rng.IntN(3)], at.Add(time.Duration(rng.IntN(3)-1)*time.Millisecond), events.LinkUpdated{URL: &u, RedirectStatus: &s, ExpiresAt: &x})
		}
		add(events.TypeLinkCreated, code, origin, at, c)
		if rng.IntN(4) == 0 {
			add(events.TypeLinkUpdated, code, regions[rng.IntN(3)], at.Add(3*time.Millisecond), events.LinkUpdated{ClearExpiry: true})
		}
		if rng.IntN(5) == 0 {
			add(events.TypeLinkDeleted, code, regions[rng.IntN(3)], at.Add(4*time.Millisecond), events.LinkDeleted{})
		}
		if rng.IntN(20) == 0 {
			add(events.TypeRegionHeartbeat, "", origin, at, events.RegionHeartbeat{})
			put(events.LogStream(origin), events.HeartbeatSubject(origin), []byte(`{"not":"an event"}`))
		}
	}
	return streams
}

// TestGoldenDigest: the live projection and the audit replay of a fixed log
// have the digest the encoding/json code had, whatever the batch sizes and
// the interleaving of the streams.
//
// The fold is checked here without the checks of where each event was
// found (Options.Unchecked): the history predates them, and most of its
// URLs are there to be escaped by JSON, not to pass the API's validation.
// TestGoldenCheckedDigest folds the same history with the checks.
func TestGoldenDigest(t *testing.T) {
	streams := goldenHistory(t)
	for seed := uint64(0); seed < 3; seed++ {
		s := openWith(t, t.TempDir(), projections.Options{CacheSize: 16, Unchecked: true})
		applyAll(t, s, interleave(streams, seed), 1+int(seed)*37)
		if d := digestOf(t, s); d != goldenDigest {
			t.Errorf("live projection, interleaving %d: digest %s, want %s", seed, d, goldenDigest)
		}
		s.Close()
	}
	r, stats := replayStreamsWith(t, t.TempDir(), streams, projections.ReplayOptions{Unchecked: true})
	if stats.Refolds == 0 || stats.Duplicates == 0 || stats.Invalid == 0 || stats.Heartbeats == 0 {
		t.Errorf("the history does not exercise refolds, duplicates, invalid records and heartbeats: %+v", stats)
	}
	if d := digestOf(t, r); d != goldenDigest {
		t.Errorf("replay: digest %s, want %s", d, goldenDigest)
	}
}

// goldenCheckedDigest is the Digest of goldenHistory's projection with the
// checks of where each event was found, recorded when they were added
// (the rows are encoded as for goldenDigest; only fewer events fold), and
// goldenRejected what they refuse.
const goldenCheckedDigest = "bac11d568da51239a9269580bbcfac0d949f54172f3e1f13cd28bc2463ec8fe5"

var goldenRejected = map[events.Reason]uint64{events.ReasonCodeOwner: 266, events.ReasonMalformed: 20, events.ReasonSubject: 52, events.ReasonURL: 109}

// TestGoldenCheckedDigest: with the checks, the live projection and the
// replay of goldenHistory refuse the same records for the same reasons
// (URLs not in their stored form, copies in another region's stream,
// records that are not events) and agree on one digest.
func TestGoldenCheckedDigest(t *testing.T) {
	streams := goldenHistory(t)
	for seed := uint64(0); seed < 3; seed++ {
		s := open(t, t.TempDir(), nil)
		applyAll(t, s, interleave(streams, seed), 1+int(seed)*37)
		if d := digestOf(t, s); d != goldenCheckedDigest {
			t.Errorf("live projection, interleaving %d: digest %s, want %s", seed, d, goldenCheckedDigest)
		}
		if got := s.Rejected(); !maps.Equal(got, goldenRejected) {
			t.Errorf("live projection, interleaving %d: rejected %v, want %v", seed, got, goldenRejected)
		}
		s.Close()
	}
	r, stats := replayStreams(t, t.TempDir(), streams, time.Time{})
	if d := digestOf(t, r); d != goldenCheckedDigest {
		t.Errorf("replay: digest %s, want %s", d, goldenCheckedDigest)
	}
	if !maps.Equal(stats.Rejected, goldenRejected) || !maps.Equal(r.Rejected(), goldenRejected) {
		t.Errorf("replay: rejected %v (stored %v), want %v", stats.Rejected, r.Rejected(), goldenRejected)
	}
}
