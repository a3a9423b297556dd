package events_test

import (
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"shortener/events"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ev(t *testing.T, typ events.Type, origin string, sec int, payload any) events.Envelope {
	t.Helper()
	e, err := events.New(typ, "1abcdefg", origin, "key1", t0.Add(time.Duration(sec)*time.Second), payload)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func TestFold(t *testing.T) {
	exp := t0.Add(time.Hour)
	created := func(sec int) events.Envelope {
		return ev(t, events.TypeLinkCreated, "us-east", sec, events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	}
	updated := func(sec int, url string) events.Envelope {
		return ev(t, events.TypeLinkUpdated, "eu-west", sec, events.LinkUpdated{URL: &url})
	}
	deleted := func(sec int) events.Envelope {
		return ev(t, events.TypeLinkDeleted, "ap-south", sec, events.LinkDeleted{})
	}
	c1, u2, d3, u4 := created(1), updated(2, "https://b.example/"), deleted(3), updated(4, "https://c.example/")
	tests := []struct {
		name        string
		evs         []events.Envelope
		wantExists  bool
		wantURL     string
		wantDeleted bool
		wantEvents  int
	}{
		{name: "nothing", evs: nil, wantEvents: 0},
		{name: "create", evs: []events.Envelope{c1}, wantExists: true, wantURL: "https://a.example/", wantEvents: 1},
		{name: "create then update", evs: []events.Envelope{c1, u2}, wantExists: true, wantURL: "https://b.example/", wantEvents: 2},
		{name: "update arrives first", evs: []events.Envelope{u2, c1}, wantExists: true, wantURL: "https://b.example/", wantEvents: 2},
		{name: "update before create in fold order is ignored", evs: []events.Envelope{c1, updated(0, "https://z.example/")}, wantExists: true, wantURL: "https://a.example/", wantEvents: 2},
		{name: "delete is final", evs: []events.Envelope{c1, u2, d3, u4}, wantExists: true, wantURL: "https://b.example/", wantDeleted: true, wantEvents: 4},
		{name: "delete is final in any arrival order", evs: []events.Envelope{u4, d3, c1, u2}, wantExists: true, wantURL: "https://b.example/", wantDeleted: true, wantEvents: 4},
		{name: "duplicates apply once", evs: []events.Envelope{c1, u2, u2, c1}, wantExists: true, wantURL: "https://b.example/", wantEvents: 2},
		{name: "delete without create", evs: []events.Envelope{d3}, wantEvents: 1},
		{name: "second create ignored", evs: []events.Envelope{c1, ev(t, events.TypeLinkCreated, "eu-west", 5, events.LinkCreated{URL: "https://x.example/", RedirectStatus: 301})}, wantExists: true, wantURL: "https://a.example/", wantEvents: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := events.Fold(tt.evs)
			if l.Exists() != tt.wantExists || l.URL != tt.wantURL || l.Deleted != tt.wantDeleted || l.Events != tt.wantEvents {
				t.Fatalf("Fold = exists %v url %q deleted %v events %d; want %v %q %v %d",
					l.Exists(), l.URL, l.Deleted, l.Events, tt.wantExists, tt.wantURL, tt.wantDeleted, tt.wantEvents)
			}
		})
	}

	t.Run("expiry set, cleared and served", func(t *testing.T) {
		c := ev(t, events.TypeLinkCreated, "us-east", 1, events.LinkCreated{URL: "https://a.example/", RedirectStatus: 307, ExpiresAt: &exp})
		l := events.Fold([]events.Envelope{c})
		if !l.Servable(t0) || l.Servable(exp) || !l.Expired(exp.Add(time.Second)) || l.RedirectStatus != 307 {
			t.Fatalf("expiry not honoured: %+v", l)
		}
		clear := ev(t, events.TypeLinkUpdated, "us-east", 2, events.LinkUpdated{ClearExpiry: true, RedirectStatus: ptr(308)})
		l = events.Fold([]events.Envelope{c, clear})
		if l.ExpiresAt != nil || !l.Servable(exp.Add(time.Hour)) || l.RedirectStatus != 308 {
			t.Fatalf("expiry not cleared: %+v", l)
		}
	})
}

// TestFoldOrderIndependent folds random histories in random arrival orders,
// with duplicates, and requires one result: what every region must agree on.
func TestFoldOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	origins := []string{"us-east", "eu-west", "ap-south"}
	for round := 0; round < 300; round++ {
		var evs []events.Envelope
		n := 1 + rng.IntN(8)
		for i := 0; i < n; i++ {
			o := origins[rng.IntN(3)]
			sec := rng.IntN(5) // equal times happen: the ID breaks the tie
			switch rng.IntN(3) {
			case 0:
				evs = append(evs, ev(t, events.TypeLinkCreated, o, sec, events.LinkCreated{URL: "https://" + o + ".example/", RedirectStatus: 302}))
			case 1:
				evs = append(evs, ev(t, events.TypeLinkUpdated, o, sec, events.LinkUpdated{URL: ptr("https://u" + o + ".example/")}))
			default:
				evs = append(evs, ev(t, events.TypeLinkDeleted, o, sec, events.LinkDeleted{}))
			}
		}
		want := events.Fold(evs)
		for perm := 0; perm < 10; perm++ {
			shuffled := append([]events.Envelope(nil), evs...)
			shuffled = append(shuffled, evs[rng.IntN(len(evs))]) // a redelivery
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got := events.Fold(shuffled)
			if !sameLink(got, want) {
				t.Fatalf("round %d: fold depends on arrival order:\n got %+v\nwant %+v", round, got, want)
			}
			// Incremental application in sorted order equals the fold.
			var inc events.Link
			for _, e := range sortedUnique(evs) {
				if !inc.After(e) && inc.Events > 0 {
					t.Fatalf("sorted event does not come after the state")
				}
				inc = events.Apply(inc, e)
			}
			if !sameLink(inc, want) {
				t.Fatalf("round %d: incremental apply differs from fold:\n got %+v\nwant %+v", round, inc, want)
			}
		}
	}
}

func sortedUnique(evs []events.Envelope) []events.Envelope {
	seen := map[string]bool{}
	var out []events.Envelope
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && events.Before(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func sameLink(a, b events.Link) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestNextTimeIsCausal(t *testing.T) {
	c := ev(t, events.TypeLinkCreated, "us-east", 10, events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	l := events.Fold([]events.Envelope{c})
	// A region whose clock is 5 s behind still orders its delete after the create.
	at := events.NextTime(t0.Add(5*time.Second), l)
	if !at.After(c.Time) {
		t.Fatalf("NextTime = %v, not after the last event at %v", at, c.Time)
	}
	d, _ := events.New(events.TypeLinkDeleted, c.Code, "eu-west", "k", at, events.LinkDeleted{})
	if got := events.Fold([]events.Envelope{d, c}); !got.Deleted {
		t.Fatalf("delete written after the create with a slow clock did not apply: %+v", got)
	}
	if now := t0.Add(time.Minute); !events.NextTime(now, l).Equal(now) {
		t.Fatal("NextTime does not use the clock when it is ahead")
	}
}

func TestDecode(t *testing.T) {
	good := ev(t, events.TypeLinkCreated, "us-east", 1, events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	got, err := events.Decode(good.Encode())
	if err != nil || got.ID != good.ID || !got.Time.Equal(good.Time) || got.Code != good.Code {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	hb, err := events.New(events.TypeRegionHeartbeat, "", "eu-west", "", t0, events.RegionHeartbeat{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Decode(hb.Encode()); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good.Encode(), &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	bad := []struct {
		name, field string
		data        []byte
	}{
		{"not json", "event", []byte("{")},
		{"trailing", "event", append(good.Encode(), []byte(" {}")...)},
		{"bad id", "id", mutate(func(m map[string]any) { m["id"] = "nope" })},
		{"future schema", "schema", mutate(func(m map[string]any) { m["schema"] = 99 })},
		{"no origin", "origin", mutate(func(m map[string]any) { delete(m, "origin") })},
		{"no time", "time", mutate(func(m map[string]any) { delete(m, "time") })},
		{"unknown type", "type", mutate(func(m map[string]any) { m["type"] = "LinkRenamed" })},
		{"bad code", "code", mutate(func(m map[string]any) { m["code"] = "a.b" })},
		{"payload not object", "payload", mutate(func(m map[string]any) { m["payload"] = 7 })},
		{"payload without url", "payload.url", mutate(func(m map[string]any) { m["payload"] = map[string]any{"redirect_status": 302} })},
		{"bad status", "payload.redirect_status", mutate(func(m map[string]any) { m["payload"] = map[string]any{"url": "https://x/", "redirect_status": 200} })},
	}
	for _, tt := range bad {
		_, err := events.Decode(tt.data)
		var e *events.Error
		if err == nil || !errorsAs(err, &e) || e.Kind != events.Invalid || e.Field != tt.field {
			t.Errorf("%s: Decode error = %v, want Invalid on %q", tt.name, err, tt.field)
		}
	}
}

// TestImportsOnlyStandardLibrary keeps the domain root free of adapters.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "shortener/events" || strings.HasPrefix(p, "golang.org/x/net/idna") ||
			strings.HasPrefix(p, "golang.org/x/text/") || p == "golang.org/x/net/internal/idna" {
			continue
		}
		t.Errorf("events depends on %s", p)
	}
}
