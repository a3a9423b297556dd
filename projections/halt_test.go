package projections_test

import (
	"testing"
	"time"

	"shortener/events"
	"shortener/projections"
)

// TestNewerSchemaHaltsItsStream: a record of a newer schema stops its
// stream in the store and in a replay (checkpoint before it, later records
// of the stream left out without a gap error, other streams applied, none
// skipped); a store that reads the newer schema (an upgrade) folds it and
// what follows from the same checkpoint.
func TestNewerSchemaHaltsItsStream(t *testing.T) {
	streams := history(t, 30, 21)
	us := streams["LINKS_US_EAST"]
	if len(us) < 6 {
		t.Fatalf("history too short: %d", len(us))
	}
	future, err := events.New(events.TypeLinkCreated, "future", "us-east", "k", t0, events.LinkCreated{URL: "https://example.com/future", RedirectStatus: 302})
	if err != nil {
		t.Fatal(err)
	}
	future.Schema = 2
	const at = 4
	halted := append([]events.Record{}, us[:at-1]...)
	halted = append(halted, events.Record{Stream: "LINKS_US_EAST", Seq: at, Subject: "links.us-east.future", Data: future.Encode()})
	for _, r := range us[at-1:] {
		r.Seq++
		halted = append(halted, r)
	}
	streams["LINKS_US_EAST"] = halted
	recs := interleave(streams, 5)

	dir := t.TempDir()
	s := open(t, dir, nil)
	applyAll(t, s, recs, 7)
	if h, ok := s.HaltedAt("LINKS_US_EAST"); !ok || h.Seq != at || h.Schema != 2 {
		t.Fatalf("halt %+v %v, want at #%d schema 2", h, ok, at)
	}
	if cp := s.Checkpoint("LINKS_US_EAST"); cp != at-1 {
		t.Fatalf("checkpoint %d, want %d", cp, at-1)
	}
	if cp, want := s.Checkpoint("LINKS_EU_WEST"), uint64(len(streams["LINKS_EU_WEST"])); cp != want {
		t.Fatalf("another stream stopped too: checkpoint %d, want %d", cp, want)
	}
	if s.Skipped() != 0 {
		t.Fatalf("skipped %d", s.Skipped())
	}
	if _, found, _ := s.Get("future"); found {
		t.Fatal("the newer event was folded")
	}
	// Delivered again (a restart of the same binary): still halted.
	applyAll(t, s, halted[at-1:], 3)
	if cp := s.Checkpoint("LINKS_US_EAST"); cp != at-1 {
		t.Fatalf("checkpoint moved to %d on redelivery", cp)
	}

	r, stats := replayStreams(t, t.TempDir(), streams, time.Time{})
	if h, ok := stats.Halted["LINKS_US_EAST"]; !ok || h.Seq != at {
		t.Fatalf("replay halted %+v", stats.Halted)
	}
	if got, want := digestOf(t, r), digestOf(t, s); got != want {
		t.Fatalf("replay digest %s, live %s", got, want)
	}
	s.Close()

	// The upgrade: the same store, reading schema 2, from its checkpoint.
	up := openWith(t, dir, projections.Options{CacheSize: 16, MaxSchema: 2})
	defer up.Close()
	applyAll(t, up, halted[at-1:], 3)
	if _, ok := up.HaltedAt("LINKS_US_EAST"); ok {
		t.Fatal("still halted after the upgrade")
	}
	if cp := up.Checkpoint("LINKS_US_EAST"); cp != uint64(len(halted)) {
		t.Fatalf("checkpoint %d after the upgrade, want %d", cp, len(halted))
	}
	if l, found, _ := up.Get("future"); !found || l.URL != "https://example.com/future" {
		t.Fatalf("future after the upgrade: %+v %v", l, found)
	}
}
