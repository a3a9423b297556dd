package auditor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/projections"
	"shortener/projections/projectionstest"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// open opens an auditor on natsURL as the audit tool user of the test
// secrets, with the test API key; the test's cleanup closes it.
func open(t *testing.T, natsURL string, endpoints map[string]string, jsonOut bool) *Auditor {
	t.Helper()
	a, err := Open(context.Background(), Options{NATS: natsURL, NATSOptions: regiontest.NATSOptions("audit"), Endpoints: endpoints,
		APIKey: func() (string, error) { return regiontest.APIKey, nil }, JSON: jsonOut, Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// expect returns a check that an API answer came with status.
func expect(t *testing.T, status int) func(regiontest.Response, error) regiontest.Response {
	return func(r regiontest.Response, err error) regiontest.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
		}
		return r
	}
}

// TestAgainstARealRegion drives the auditor against a real region
// (embedded NATS, Pebble, HTTP API): a replay equals the live projection;
// verify passes; a link created in us-east and deleted in another region
// has both events in its history, in fold order; at answers before and
// after an update; export writes the log; and a corrupted row in an app
// instance's store is found and named.
func TestAgainstARealRegion(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	natsURL := reg.NATSURL()
	endpoints := map[string]string{"us-east": reg.URL}
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()

	created := expect(t, http.StatusCreated)(c.Create(ctx, map[string]any{"url": "https://example.com/old"}))
	code := created.Str("code")
	between := time.Now().UTC()
	time.Sleep(2 * time.Millisecond)
	expect(t, http.StatusOK)(c.Do(ctx, http.MethodPatch, "/api/v1/links/"+code, map[string]any{"url": "https://example.com/new"}))
	afterUpdate := time.Now().UTC()
	for i := 0; i < 20; i++ {
		expect(t, http.StatusCreated)(c.Create(ctx, map[string]any{"url": "https://example.com/more"}))
	}
	gone := expect(t, http.StatusCreated)(c.Create(ctx, map[string]any{"url": "https://example.com/gone", "alias": "gone-soon"}))
	expect(t, http.StatusNoContent)(c.Do(ctx, http.MethodDelete, "/api/v1/links/"+gone.Str("code"), nil))

	// Compare: the replay's digest is the live projection's.
	a := open(t, natsURL, endpoints, false)
	regions, err := a.Regions([]string{"us-east"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := a.Compare(ctx, &out, regions, ""); err != nil || !strings.Contains(out.String(), "MATCH") || strings.Contains(out.String(), "MISMATCH") {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}
	liveDigest, err := reg.Store().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replay    digest "+liveDigest) {
		t.Fatalf("the replay's digest is not the live store's %s:\n%s", liveDigest, out.String())
	}
	if !strings.Contains(out.String(), "events/s") {
		t.Fatalf("no rate reported:\n%s", out.String())
	}
	if _, err := a.Regions([]string{"ap-south"}); err == nil || !strings.Contains(err.Error(), "holds no copy") {
		t.Fatalf("a region holding no copy: %v", err)
	}

	// Verify: one region, no mirrors: its projection equals a replay.
	out.Reset()
	if err := a.Verify(ctx, &out, 4096); err != nil || !strings.Contains(out.String(), "VERIFY OK") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}

	// eu-west deletes the link (its stream here shares the server: no
	// placement), as after a failover.
	nc := regiontest.NATS(t, natsURL, secrets.RegionUser("eu-west"))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := replicator.Connect(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := replicator.StreamConfig("eu-west")
	cfg.Placement = nil
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	del, err := events.New(events.TypeLinkDeleted, code, "eu-west", "key:auditor", time.Now().Add(time.Millisecond), events.LinkDeleted{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replicator.NewLog(rc, "eu-west", regiontest.Signer("eu-west")).Append(ctx, del, false); err != nil {
		t.Fatal(err)
	}

	// History: both regions' events, in fold order.
	a = open(t, natsURL, endpoints, false)
	steps, err := a.History(ctx, code)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	out.Reset()
	if err := a.WriteHistory(&out, steps); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("history: want a header and 3 events:\n%s", out.String())
	}
	for i, want := range []string{"us-east  LINKS_US_EAST", "us-east  LINKS_US_EAST", "eu-west  LINKS_EU_WEST"} {
		if !strings.Contains(lines[i+1], want) {
			t.Fatalf("history line %d: %q, want %q:\n%s", i+1, lines[i+1], want, out.String())
		}
	}
	for i, want := range []string{"LinkCreated", "LinkUpdated", "LinkDeleted"} {
		if !strings.Contains(lines[i+1], want) {
			t.Fatalf("history line %d: %q, want %s (fold order)", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[3], "deleted") || !strings.Contains(lines[3], "key:auditor") {
		t.Fatalf("the delete's line shows no state or actor: %q", lines[3])
	}
	if _, err := a.History(ctx, "zzzzzzz-never"); events.KindOf(err) != events.NotFound {
		t.Fatalf("history of a code with no event: %v, want not found", err)
	}
	if _, err := a.History(ctx, "no such code!"); events.KindOf(err) != events.Invalid {
		t.Fatalf("history of a malformed code: %v, want invalid", err)
	}

	// At: before and after the update, and after the delete, as JSON.
	aj := open(t, natsURL, endpoints, true)
	for _, tc := range []struct {
		at    time.Time
		state projections.LinkState
		url   string
	}{
		{between.Add(-time.Hour), "absent", ""},
		{between, "active", "https://example.com/old"},
		{afterUpdate, "active", "https://example.com/new"},
		{del.Time, "deleted", "https://example.com/new"},
	} {
		rows, err := aj.At(ctx, tc.at, code)
		if err != nil || len(rows) != 1 {
			t.Fatalf("at %s: %v %v", tc.at, rows, err)
		}
		out.Reset()
		if err := aj.WriteAt(&out, rows); err != nil {
			t.Fatal(err)
		}
		var got LinkAt
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("at %s: %v\n%s", tc.at, err, out.String())
		}
		if got.State != tc.state || got.URL != tc.url {
			t.Errorf("at %s: %s %q, want %s %q", tc.at, got.State, got.URL, tc.state, tc.url)
		}
	}
	// Every code at once, by a replay up to the moment.
	rows, err := aj.At(ctx, between, "")
	if err != nil || len(rows) != 1 || rows[0].URL != "https://example.com/old" {
		t.Fatalf("at (every code) between the create and the update: %v %+v", err, rows)
	}

	// Export: the whole log, every record once.
	out.Reset()
	n, err := a.Export(ctx, &out, "", projections.Until{}, true)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if n != 25 || len(lines) != 1+1+20+2+1 { // create, update, 20 creates, alias create and delete, eu-west's delete
		t.Fatalf("export: %d records, %d lines, want 25:\n%s", n, len(lines), out.String())
	}
	var first ExportLine
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Seq == 0 || first.Stream == "" {
		t.Fatalf("export line %q: %v", lines[0], err)
	}
	if _, err := events.Decode(first.Event); err != nil {
		t.Fatalf("exported event does not decode: %v", err)
	}

	// A second app instance of us-east on the same NATS, with its own
	// store; stopped, and one of its rows corrupted: found and named.
	dirB := t.TempDir()
	cfgB := regiontest.Config("us-east", dirB)
	cfgB.NATSURL, cfgB.Instance = natsURL, "us-east-b"
	b := regiontest.Start(t, cfgB)
	stream := replicator.StreamName("us-east")
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if b.Store().Checkpoint(stream) < reg.Store().Checkpoint(stream) {
			return errors.New("instance b catching up")
		}
		return nil
	})
	b.Stop(t)
	storeB := filepath.Join(dirB, "projection")
	out.Reset()
	if err := a.Compare(ctx, &out, []string{"us-east"}, storeB); err != nil || !strings.Contains(out.String(), "MATCH") {
		t.Fatalf("compare with the intact store: %v\n%s", err, out.String())
	}
	if err := projectionstest.CorruptLink(storeB, code, func(l *events.Link) { l.URL = "https://evil.example/" }); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = a.Compare(ctx, &out, []string{"us-east"}, storeB)
	if err == nil || !strings.Contains(out.String(), "MISMATCH: 1 codes differ") || !strings.Contains(out.String(), code+" differs") || !strings.Contains(out.String(), "evil.example") {
		t.Fatalf("corrupted row: %v\n%s", err, out.String())
	}
	if !strings.Contains(err.Error(), code) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("the error is not one line naming the code: %q", err)
	}
}

// TestVerifyFailsOnNothing: a verify that compared nothing (no copy of the
// log, so no mirror and no projection) fails; it never says VERIFY OK.
func TestVerifyFailsOnNothing(t *testing.T) {
	a := &Auditor{progress: io.Discard}
	var out bytes.Buffer
	err := a.Verify(context.Background(), &out, 4096)
	if err == nil || strings.Contains(out.String(), "VERIFY OK") || !strings.Contains(out.String(), "VERIFY FAILED") {
		t.Fatalf("verify of nothing: %v\n%s", err, out.String())
	}
}

// TestChecksFailOnNothing: a restore with no check has not passed.
func TestChecksFailOnNothing(t *testing.T) {
	if Checks(nil).Passed() {
		t.Fatal("no check passed")
	}
	if !(Checks{{Name: "x", Pass: true}}).Passed() || (Checks{{Name: "x", Pass: true}, {Name: "y"}}).Passed() {
		t.Fatal("Passed is not every check passing")
	}
}
