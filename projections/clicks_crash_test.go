package projections

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"shortener/events"
)

// crashRecords are the click records of the crash test: codes enough for
// many chunks, each clicked by people and bots on two days in two regions.
func crashRecords(t testing.TB) ([]events.Record, map[string]pair) {
	day1 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	want := map[string]pair{}
	var recs []events.Record
	for seq := uint64(1); seq <= 8; seq++ {
		region := []string{"us-east", "eu-west"}[seq%2]
		var clicks []events.Click
		for i := range 600 {
			code := fmt.Sprintf("code%04d", (int(seq)*600+i)%1500)
			bot := i%7 == 0
			at := day1.Add(time.Duration(seq%3) * 24 * time.Hour)
			clicks = append(clicks, events.Click{Code: code, UnixMs: at.UnixMilli(), Agent: events.AgentBrowser, Bot: bot})
			want[code] = want[code].add(bot)
		}
		data, err := json.Marshal(events.ClickBatch{ID: fmt.Sprint("b", seq), Region: region, Time: day1, Clicks: clicks})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, events.Record{Stream: "CLICKS_" + region, Seq: seq, Data: data})
	}
	return recs, want
}

// TestClickCommitSurvivesKillBetweenChunks: a process SIGKILLed while it
// writes a commit's counters in chunks (after the journal, before the last
// chunk) loses no click and counts none twice: the store opened again
// finishes the journal, and the records delivered again are skipped. The
// negative control: without the journal (removed, and the checkpoints
// with it, as a chunked commit without one would have left them), the
// records folded again count the chunks written before the kill twice.
func TestClickCommitSurvivesKillBetweenChunks(t *testing.T) {
	recs, want := crashRecords(t)
	if dir := os.Getenv("SHORTENER_CLICK_CRASH_DIR"); dir != "" {
		s, err := OpenClicks(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		chunks := 0
		s.afterChunk = func() {
			if chunks++; chunks == 3 {
				// The chunks are written unsynced: sync the log, so that
				// what the kill leaves does not hang on Pebble's block size.
				if err := s.db.LogData(nil, pebble.Sync); err != nil {
					t.Fatal(err)
				}
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
		s.Fold(recs)
		_, err = s.Commit()
		t.Fatalf("not killed: the commit ended (%v) after %d chunks", err, chunks)
	}

	dir := filepath.Join(t.TempDir(), "clicks")
	cmd := exec.Command(os.Args[0], "-test.run=^TestClickCommitSurvivesKillBetweenChunks$")
	cmd.Env = append(os.Environ(), "SHORTENER_CLICK_CRASH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}

	// The kill came between chunks: a journal, partly applied.
	control := filepath.Join(t.TempDir(), "control")
	func() {
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		j, c, err := db.Get(journalKey)
		if err != nil {
			t.Fatalf("no journal after the kill: %v", err)
		}
		size := len(j)
		c.Close()
		p, c, err := db.Get(progressKey)
		if err != nil {
			t.Fatalf("no progress after the kill: %v", err)
		}
		at := binary.BigEndian.Uint64(p)
		c.Close()
		if at <= 1 || at >= uint64(size) {
			t.Fatalf("journal applied to byte %d of %d: want part of it", at, size)
		}
		t.Logf("killed with the journal applied to byte %d of %d", at, size)
		if err := db.Checkpoint(control); err != nil {
			t.Fatal(err)
		}
	}()

	check := func(s *ClickStore, want map[string]pair, factor uint64) (wrong int) {
		for code, w := range want {
			st, err := s.Stats(code)
			if err != nil {
				t.Fatal(err)
			}
			var region, day pair
			for _, c := range st.ByRegion {
				region = pair{region.people + c.People, region.bots + c.Bots}
			}
			for _, c := range st.ByDay {
				day = pair{day.people + c.People, day.bots + c.Bots}
			}
			w = pair{w.people * factor, w.bots * factor}
			total := pair{st.Total.People, st.Total.Bots}
			if total != w || region != w || day != w {
				wrong++
			}
		}
		return wrong
	}

	s, err := OpenClicks(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Fold(recs) // delivered again: the feed was not acknowledged
	if n, err := s.Commit(); n != 0 || err != nil {
		t.Errorf("records delivered again counted %d (%v), want 0", n, err)
	}
	if wrong := check(s, want, 1); wrong != 0 {
		t.Errorf("%d of %d codes counted wrong after the kill", wrong, len(want))
	}
	s.Close()

	// The negative control.
	db, err := pebble.Open(control, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{journalKey, progressKey, []byte("k/CLICKS_us-east"), []byte("k/CLICKS_eu-west")} {
		if err := db.Delete(k, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err = OpenClicks(control, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Fold(recs)
	if _, err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if wrong := check(s, want, 1); wrong == 0 {
		t.Error("negative control: without the journal the kill cost nothing; the test proves nothing")
	} else {
		t.Logf("negative control: without the journal, %d of %d codes counted wrong", wrong, len(want))
	}
}

// TestClickCommitStopped: a store stopped while it applies a commit's
// journal returns from Commit between chunks, closes without touching
// Pebble after Close, and the store opened again finishes the journal:
// every click counted once.
func TestClickCommitStopped(t *testing.T) {
	recs, want := crashRecords(t)
	dir := t.TempDir()
	s, err := OpenClicks(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	s.afterChunk = func() {
		if chunks++; chunks == 2 {
			s.Stop()
		}
	}
	s.Fold(recs)
	n, err := s.Commit()
	if !errors.Is(err, errStopped) || n == 0 {
		t.Fatalf("Commit after Stop: %d counted, %v; want the clicks counted and errStopped", n, err)
	}
	if chunks != 2 {
		t.Fatalf("%d chunks applied after Stop at the second", chunks)
	}
	s.Close()
	s, err = OpenClicks(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for code, w := range want {
		st, err := s.Stats(code)
		if err != nil {
			t.Fatal(err)
		}
		if got := (pair{st.Total.People, st.Total.Bots}); got != w {
			t.Fatalf("%s: %+v after the stop and a restart, want %+v", code, got, w)
		}
	}
}

// TestClickJournalRoundTrip: what appendJournalEntry writes,
// readJournalEntry reads back.
func TestClickJournalRoundTrip(t *testing.T) {
	k, d := foldKey{code: "abc", region: "eu-west", day: -3}, pair{people: 1 << 40, bots: 7}
	b := appendJournalEntry([]byte{journalVersion}, k, d)
	b = appendJournalEntry(b, foldKey{}, pair{})
	gk, gd, rest, err := readJournalEntry(b[1:])
	if err != nil || gk != k || gd != d {
		t.Fatalf("read %+v %+v %v, want %+v %+v", gk, gd, err, k, d)
	}
	if gk, gd, rest, err = readJournalEntry(rest); err != nil || gk != (foldKey{}) || gd != (pair{}) || len(rest) != 0 {
		t.Fatalf("second entry: %+v %+v %d bytes left, %v", gk, gd, len(rest), err)
	}
}

// FuzzClickJournal: a damaged journal is an error, never a panic, and
// what decodes encodes back to the same bytes.
func FuzzClickJournal(f *testing.F) {
	f.Add(appendJournalEntry(nil, foldKey{code: "abc", region: "us-east", day: 20000}, pair{3, 1}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, d, rest, err := readJournalEntry(b)
		if err != nil {
			return
		}
		again := appendJournalEntry(nil, k, d)
		if len(again) > len(b)-len(rest) {
			t.Fatalf("decoded %d bytes into an entry of %d", len(b)-len(rest), len(again))
		}
		if k2, d2, _, err := readJournalEntry(again); err != nil || k2 != k || d2 != d {
			t.Fatalf("round trip: %+v %+v %v, want %+v %+v", k2, d2, err, k, d)
		}
	})
}

// TestClickJournalDamaged: a damaged journal, or a progress inside an
// entry, is dropped at open with an error logged (one commit's counts
// lost), not a store that cannot open and a region that cannot start.
func TestClickJournalDamaged(t *testing.T) {
	good := appendJournalEntry([]byte{journalVersion}, foldKey{code: "abc", region: "us-east", day: 20000}, pair{3, 1})
	for name, kv := range map[string][2][]byte{
		"bad version":          {{9, 1, 2}, nil},
		"truncated entry":      {good[:len(good)-2], nil},
		"progress in an entry": {good, binary.BigEndian.AppendUint64(nil, 3)},
		"progress past it":     {good, binary.BigEndian.AppendUint64(nil, uint64(len(good)+1))},
	} {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Set(journalKey, kv[0], pebble.Sync)
		if kv[1] != nil {
			_ = db.Set(progressKey, kv[1], pebble.Sync)
		}
		db.Close()
		s, err := OpenClicks(dir, nil)
		if err != nil {
			t.Errorf("%s: the store did not open: %v", name, err)
			continue
		}
		if _, c, err := s.db.Get(journalKey); err == nil {
			c.Close()
			t.Errorf("%s: the damaged journal was kept", name)
		}
		s.Close()
	}
}
