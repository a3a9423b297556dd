package projections_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"shortener/events"
	"shortener/projections"
)

func clickRecord(t *testing.T, stream string, seq uint64, region string, clicks []events.Click) events.Record {
	t.Helper()
	data, err := json.Marshal(events.ClickBatch{ID: fmt.Sprintf("b-%s-%d", stream, seq), Region: region, Time: t0, Clicks: clicks})
	if err != nil {
		t.Fatal(err)
	}
	return events.Record{Stream: stream, Seq: seq, Data: data}
}

// TestClickCountsAcrossRestarts: the counters the projector keeps in memory
// agree with Pebble: counts folded before a restart (read back from the
// store) and after it (from the in-memory counters) add up, per total,
// region and day, people and bots apart; a record delivered twice counts
// once.
func TestClickCountsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	day1, day2 := t0.UnixMilli(), t0.Add(24*time.Hour).UnixMilli()
	batch := func(code string, n int, bot bool, ms int64) []events.Click {
		var out []events.Click
		for i := 0; i < n; i++ {
			out = append(out, events.Click{Code: code, UnixMs: ms, Agent: events.AgentBrowser, Bot: bot})
		}
		return out
	}
	s, err := projections.OpenClicks(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []events.Record{
		clickRecord(t, "CLICKS_US_EAST", 1, "us-east", append(batch("abc12345", 3, false, day1), batch("abc12345", 2, true, day1)...)),
		clickRecord(t, "CLICKS_EU_WEST", 1, "eu-west", batch("abc12345", 4, false, day2)),
	}
	if _, err := s.ApplyClicks(recs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyClicks(recs[:1]); err != nil { // delivered again
		t.Fatal(err)
	}
	s.Close()
	if s, err = projections.OpenClicks(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for seq := uint64(2); seq <= 3; seq++ { // cold counters, then warm ones
		if _, err := s.ApplyClicks([]events.Record{clickRecord(t, "CLICKS_US_EAST", seq, "us-east", batch("abc12345", 1, false, day2))}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats("abc12345")
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != (projections.Counts{People: 9, Bots: 2}) {
		t.Errorf("total %+v, want 9 people 2 bots", st.Total)
	}
	if st.ByRegion["us-east"] != (projections.Counts{People: 5, Bots: 2}) || st.ByRegion["eu-west"] != (projections.Counts{People: 4}) {
		t.Errorf("by region %+v", st.ByRegion)
	}
	if len(st.ByDay) != 2 || st.ByDay[0].People != 3 || st.ByDay[0].Bots != 2 || st.ByDay[1].People != 6 {
		t.Errorf("by day %+v", st.ByDay)
	}
}

// TestClickFoldsCommitTogether: batches folded count nothing until Commit,
// which writes them all with their checkpoints; folds a crash loses before
// their commit (the store closed without one) left nothing behind, so the
// same records delivered again count once; a record folded twice before a
// commit counts once.
func TestClickFoldsCommitTogether(t *testing.T) {
	dir := t.TempDir()
	click := func(code string, n int) []events.Click {
		out := make([]events.Click, n)
		for i := range out {
			out[i] = events.Click{Code: code, UnixMs: t0.UnixMilli(), Agent: events.AgentBrowser}
		}
		return out
	}
	recs := []events.Record{
		clickRecord(t, "CLICKS_US_EAST", 1, "us-east", click("abc12345", 2)),
		clickRecord(t, "CLICKS_US_EAST", 2, "us-east", click("abc12345", 3)),
		clickRecord(t, "CLICKS_AP_SOUTH", 1, "ap-south", click("xyz98765", 1)),
	}
	s, err := projections.OpenClicks(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Fold(recs[:1])
	s.Fold(recs[1:])
	if pending, keys := s.Pending(); !pending || keys != 2 {
		t.Fatalf("pending %v with %d counts, want 2 (one per code, region and day)", pending, keys)
	}
	if st, _ := s.Stats("abc12345"); st.Total.People != 0 || s.Checkpoint("CLICKS_US_EAST") != 0 {
		t.Fatalf("before the commit: %+v, checkpoint %d; want nothing", st.Total, s.Checkpoint("CLICKS_US_EAST"))
	}
	s.Close() // a crash: the folds were never committed
	if s, err = projections.OpenClicks(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Fold(recs)
	s.Fold(recs[:2]) // delivered again before the commit
	n, err := s.Commit()
	if err != nil || n != 6 {
		t.Fatalf("commit counted %d, %v; want 6", n, err)
	}
	if pending, _ := s.Pending(); pending {
		t.Fatal("still pending after the commit")
	}
	if n, err := s.Commit(); n != 0 || err != nil {
		t.Fatalf("an empty commit counted %d, %v", n, err)
	}
	st, err := s.Stats("abc12345")
	if err != nil || st.Total.People != 5 || st.ByRegion["us-east"].People != 5 || s.Checkpoint("CLICKS_US_EAST") != 2 || s.Checkpoint("CLICKS_AP_SOUTH") != 1 {
		t.Fatalf("after the commit: %+v %v, checkpoints %d %d", st, err, s.Checkpoint("CLICKS_US_EAST"), s.Checkpoint("CLICKS_AP_SOUTH"))
	}
}
