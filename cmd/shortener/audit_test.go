package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/projections/projectionstest"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// audit runs shortener audit in this process and returns its exit status
// and output.
func audit(t *testing.T, natsURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"audit", "--nats", natsURL, "--timeout", "60s", "--secrets", regiontest.SecretsDir()}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
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

// TestAuditAgainstARealRegion drives the audit commands against a real
// region (embedded NATS, Pebble, HTTP API): a replay equals the live
// projection; verify passes; a link created in us-east and deleted in
// another region has both events in its history, in fold order; at
// answers before and after an update; export writes the log; and a
// corrupted row in an app instance's store is found and named.
func TestAuditAgainstARealRegion(t *testing.T) {
	t.Setenv("SHORTENER_API_KEY", regiontest.APIKey)
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	natsURL := reg.NATSURL()
	endpoint := "--endpoint=us-east=" + reg.URL
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

	// replay: the replay's digest is the live projection's.
	status, out, errOut := audit(t, natsURL, "replay", "--region", "us-east", endpoint)
	if status != 0 || !strings.Contains(out, "MATCH") || strings.Contains(out, "MISMATCH") {
		t.Fatalf("replay: exit %d\n%s\n%s", status, out, errOut)
	}
	liveDigest, err := reg.Store().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "replay    digest "+liveDigest) {
		t.Fatalf("the replay's digest is not the live store's %s:\n%s", liveDigest, out)
	}
	if !strings.Contains(out, "events/s") {
		t.Fatalf("no rate reported:\n%s", out)
	}

	// verify: one region, no mirrors: its projection equals a replay.
	if status, out, errOut := audit(t, natsURL, "verify", endpoint); status != 0 || !strings.Contains(out, "VERIFY OK") {
		t.Fatalf("verify: exit %d\n%s\n%s", status, out, errOut)
	}

	// eu-west deletes the link (its stream here shares the server: no
	// placement), as after a failover.
	nc, err := nats.Connect(natsURL, regiontest.NATSOptions(secrets.RegionUser("eu-west"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cfg := replicator.StreamConfig("eu-west")
	cfg.Placement = nil
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	del, err := events.New(events.TypeLinkDeleted, code, "eu-west", "key:auditor", time.Now().Add(time.Millisecond), events.LinkDeleted{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replicator.NewLog(js, "eu-west", nil).Append(ctx, del, false); err != nil {
		t.Fatal(err)
	}

	// history: both regions' events, in fold order.
	status, out, errOut = audit(t, natsURL, "history", code)
	if status != 0 {
		t.Fatalf("history: exit %d\n%s\n%s", status, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("history: want a header and 3 events:\n%s", out)
	}
	for i, want := range []string{"us-east  LINKS_US_EAST", "us-east  LINKS_US_EAST", "eu-west  LINKS_EU_WEST"} {
		if !strings.Contains(lines[i+1], want) {
			t.Fatalf("history line %d: %q, want %q:\n%s", i+1, lines[i+1], want, out)
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

	// at: before and after the update, and after the delete.
	for _, tc := range []struct {
		at    string
		state string
		url   string
	}{
		{between.Add(-time.Hour).Format(time.RFC3339Nano), "absent", ""},
		{between.Format(time.RFC3339Nano), "active", "https://example.com/old"},
		{afterUpdate.Format(time.RFC3339Nano), "active", "https://example.com/new"},
		{del.Time.Format(time.RFC3339Nano), "deleted", "https://example.com/new"},
	} {
		status, out, errOut := audit(t, natsURL, "--json", "at", tc.at, code)
		var got linkAt
		if status != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("at %s: exit %d\n%s\n%s", tc.at, status, out, errOut)
		}
		if string(got.State) != tc.state || got.URL != tc.url {
			t.Errorf("at %s: %s %q, want %s %q", tc.at, got.State, got.URL, tc.state, tc.url)
		}
	}
	// Every code at once, by a replay up to the moment.
	status, out, _ = audit(t, natsURL, "--json", "at", between.Format(time.RFC3339Nano))
	if status != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"url":"https://example.com/old"`) {
		t.Fatalf("at (every code) between the create and the update: exit %d\n%s", status, out)
	}

	// export: the whole log, every record once.
	status, out, _ = audit(t, natsURL, "export", "--skip-heartbeats")
	if status != 0 {
		t.Fatalf("export: exit %d", status)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+1+20+2+1 { // create, update, 20 creates, alias create and delete, eu-west's delete
		t.Fatalf("export: %d lines, want 25:\n%s", len(lines), out)
	}
	var first exportLine
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
			return errString("instance b catching up")
		}
		return nil
	})
	b.Stop(t)
	storeB := filepath.Join(dirB, "projection")
	if status, out, errOut := audit(t, natsURL, "replay", "--region", "us-east", "--store", storeB); status != 0 || !strings.Contains(out, "MATCH") {
		t.Fatalf("replay against the intact store: exit %d\n%s\n%s", status, out, errOut)
	}
	if err := projectionstest.CorruptLink(storeB, code, func(l *events.Link) { l.URL = "https://evil.example/" }); err != nil {
		t.Fatal(err)
	}
	status, out, errOut = audit(t, natsURL, "replay", "--region", "us-east", "--store", storeB)
	if status == 0 || !strings.Contains(out, "MISMATCH: 1 codes differ") || !strings.Contains(out, code+" differs") || !strings.Contains(out, "evil.example") {
		t.Fatalf("corrupted row: exit %d\n%s\n%s", status, out, errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); !strings.Contains(errOut, code) || !strings.Contains(errOut, "shortener: ") {
		t.Fatalf("the error is not one line naming the code (%d newlines): %s", n, errOut)
	}
}

// TestAuditErrors: mistakes and an unreachable cluster are one line and
// a non-zero status.
func TestAuditErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"replay", "--until", "yesterday"}, 2, "until"},
		{[]string{"at", "noon"}, 2, "time"},
		{[]string{"history"}, 1, "accepts 1 arg"},
		{[]string{"verify", "--range-size", "0"}, 2, "range-size"},
		{[]string{"history", "abc"}, 1, "connect to nats"},
	} {
		status, out, errOut := audit(t, "nats://127.0.0.1:1", tc.args...)
		if status != tc.status || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and one line with %q", tc.args, status, errOut, out, tc.status, tc.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
