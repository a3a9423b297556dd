package region_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"shortener/events"
	"shortener/region"
	"shortener/region/regiontest"
)

// wantErr fails the test unless err is an *events.Error of kind k (and,
// when field is not empty, naming field).
func wantErr(t *testing.T, what string, err error, k events.Kind, field string) *events.Error {
	t.Helper()
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v, want an events.Error of kind %s", what, err, k)
	}
	if e.Kind != k || (field != "" && e.Field != field) {
		t.Fatalf("%s: %s error on %q (%v), want %s on %q", what, e.Kind, e.Field, err, k, field)
	}
	return e
}

// The link workflow without HTTP: the methods the handlers call, against a
// real region, with the errors a caller reads.
func TestLinkWorkflowWithoutHTTP(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	ctx := context.Background()

	// A generated code: the region's digit, the actor in the event, applied
	// here (signed, or the projection would have refused it).
	l, err := reg.CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/a"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.Code, "1") || l.URL != "https://example.com/a" || l.Origin != "us-east" ||
		l.RedirectStatus != events.DefaultRedirectStatus || l.Alias {
		t.Fatalf("created %+v", l)
	}
	evs, err := reg.Store().Events(l.Code)
	if err != nil || len(evs) != 1 || evs[0].Actor != "ops" || evs[0].Type != events.TypeLinkCreated {
		t.Fatalf("events of %s: %+v %v; want one creation by ops", l.Code, evs, err)
	}

	// An alias: one winner, then Conflict on the alias field; the claim
	// record is gone once the link is applied.
	if _, err := reg.CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/mine", Alias: "mine"}); err != nil {
		t.Fatal(err)
	}
	_, err = reg.CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/theirs", Alias: "mine"})
	wantErr(t, "alias taken", err, events.Conflict, "alias")
	if claims, err := reg.Store().Claims(); err != nil || len(claims) != 0 {
		t.Fatalf("pending claims after the creates: %+v %v", claims, err)
	}
	if got, _, _ := reg.Store().Get("mine"); got.URL != "https://example.com/mine" {
		t.Fatalf("the loser changed the alias: %+v", got)
	}

	// Invalid input, each on its field, and nothing written.
	past := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		req   region.CreateRequest
		field string
	}{
		{region.CreateRequest{URL: "javascript:alert(1)"}, "url"},
		{region.CreateRequest{URL: "not a url"}, "url"},
		{region.CreateRequest{URL: "https://example.com/x", Alias: "a"}, "alias"},
		{region.CreateRequest{URL: "https://example.com/x", ExpiresAt: &past}, "expires_at"},
		{region.CreateRequest{URL: "https://example.com/x", RedirectStatus: 200}, "redirect_status"},
	} {
		_, err := reg.CreateLink(ctx, "ops", c.req)
		wantErr(t, c.field, err, events.Invalid, c.field)
	}
	if n, err := reg.Store().Count(); err != nil || n != 2 {
		t.Fatalf("%d links after the refused creates (%v), want 2", n, err)
	}

	// Update: the fields given change, the others stay.
	url, status := "https://example.com/b", 307
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	u, err := reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{URL: &url, RedirectStatus: &status, ExpiresAt: &later})
	if err != nil {
		t.Fatal(err)
	}
	if u.URL != url || u.RedirectStatus != status || u.ExpiresAt == nil || !u.ExpiresAt.Equal(later) || u.UpdatedAt.Before(l.UpdatedAt) {
		t.Fatalf("updated %+v", u)
	}
	if u, err = reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{ClearExpiry: true}); err != nil || u.ExpiresAt != nil || u.URL != url {
		t.Fatalf("cleared the expiry: %+v %v", u, err)
	}
	_, err = reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{})
	wantErr(t, "empty update", err, events.Invalid, "body")
	_, err = reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{ClearExpiry: true, ExpiresAt: &later})
	wantErr(t, "expiry set and cleared", err, events.Invalid, "expires_at")
	bad := "ftp://example.com"
	_, err = reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{URL: &bad})
	wantErr(t, "bad URL", err, events.Invalid, "url")
	_, err = reg.UpdateLink(ctx, "ops", "1zzzzzzz", region.UpdateRequest{URL: &url})
	wantErr(t, "never created", err, events.NotFound, "")

	// Delete, then every change of the deleted link is Gone.
	if err := reg.DeleteLink(ctx, "ops", l.Code); err != nil {
		t.Fatal(err)
	}
	_, err = reg.UpdateLink(ctx, "ops", l.Code, region.UpdateRequest{URL: &url})
	wantErr(t, "update of a deleted link", err, events.Gone, "")
	wantErr(t, "second delete", reg.DeleteLink(ctx, "ops", l.Code), events.Gone, "")
	wantErr(t, "delete of a code never created", reg.DeleteLink(ctx, "ops", "no such code"), events.NotFound, "")
	evs, err = reg.Store().Events(l.Code)
	if err != nil || len(evs) != 4 || evs[3].Type != events.TypeLinkDeleted {
		t.Fatalf("events of %s: %+v %v; want created, two updates, deleted", l.Code, evs, err)
	}
	if rej := reg.Store().Rejected(); len(rej) != 0 {
		t.Fatalf("the projection refused the region's own events: %v", rej)
	}
}

// In replicated durability a create returns once another region holds its
// event; with the only peer down it returns Unavailable, with a retry
// delay, and the link is nonetheless stored and served here.
func TestReplicatedCreateWithPeerDown(t *testing.T) {
	cfgs := regiontest.ClusterConfigs(t.TempDir(), "us-east", "eu-west")
	for i := range cfgs {
		cfgs[i].Durability = region.DurabilityReplicated
		cfgs[i].CreateTimeout = 2 * time.Second
	}
	regs := regiontest.StartCluster(t, cfgs)
	ctx := context.Background()

	held, err := regs[0].CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/held"})
	if err != nil {
		t.Fatalf("create with the peer up: %v", err)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if _, found, err := regs[1].Store().Get(held.Code); err != nil || !found {
			return errors.New("the peer does not have " + held.Code)
		}
		return nil
	})

	regs[1].Stop(t)
	_, err = regs[0].CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/alone"})
	e := wantErr(t, "create with the peer down", err, events.Unavailable, "")
	if e.RetryAfter <= 0 || !strings.Contains(e.Message, "no other region holds it yet") {
		t.Fatalf("create with the peer down: %v (retry after %s); want the replication wait's error", err, e.RetryAfter)
	}
	n, err := regs[0].Store().Count()
	if err != nil || n != 2 {
		t.Fatalf("%d links here after the unreplicated create (%v), want 2: it is stored", n, err)
	}
}

// PATCH answers in the order it always did, now that the handler only
// decodes and calls UpdateLink: a missing or deleted link before any
// complaint about the body, then the URL, the status, the expiry, and an
// empty change last.
func TestPatchAnswersInItsOrder(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	live, err := reg.CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/live"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := reg.CreateLink(ctx, "ops", region.CreateRequest{URL: "https://example.com/gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteLink(ctx, "ops", gone.Code); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, code, body string
		status           int
		field, reason    string
	}{
		{"missing link, bad body", "1zzzzzzz", `{"url":`, http.StatusNotFound, "", ""},
		{"deleted link, unknown field", gone.Code, `{"password":"x"}`, http.StatusGone, "", ""},
		{"deleted link, bad expiry", gone.Code, `{"expires_at":"soon"}`, http.StatusGone, "", ""},
		{"bad body", live.Code, `{"url":`, http.StatusBadRequest, "body", "JSON"},
		{"url before expiry", live.Code, `{"url":"javascript:x","expires_at":"soon"}`, http.StatusBadRequest, "url", "scheme"},
		{"status before expiry", live.Code, `{"redirect_status":200,"expires_at":"soon"}`, http.StatusBadRequest, "redirect_status", "301"},
		{"bad expiry", live.Code, `{"expires_at":"soon"}`, http.StatusBadRequest, "expires_at", "RFC 3339 time or null"},
		{"past expiry", live.Code, `{"expires_at":"2001-01-01T00:00:00Z"}`, http.StatusBadRequest, "expires_at", "future"},
		{"nothing to change", live.Code, `{}`, http.StatusBadRequest, "body", "nothing to change"},
		{"clear the expiry", live.Code, `{"expires_at":null}`, http.StatusOK, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Do(ctx, http.MethodPatch, "/api/v1/links/"+tt.code, tt.body)
			p := must(t, r, err, tt.status)
			if p.Str("field") != tt.field || !strings.Contains(p.Str("detail"), tt.reason) {
				t.Fatalf("answer %s: want field %q and a reason mentioning %q", p.Raw, tt.field, tt.reason)
			}
		})
	}
}

// A permanent redirect may be kept by browsers for Config.RedirectMaxAge
// (an update or a takedown reaches them within it), never past the link's
// expiry; a temporary one is not kept. Before this a 301 carried no
// Cache-Control, and browsers keep such a 301 for ever.
func TestRedirectCacheControl(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.RedirectMaxAge = 10 * time.Minute
	reg := regiontest.Start(t, cfg)
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	soon := time.Now().Add(90 * time.Second)
	for _, tc := range []struct {
		body map[string]any
		want func(string) bool
		what string
	}{
		{map[string]any{"url": "https://example.com/a", "redirect_status": 301}, func(v string) bool { return v == "public, max-age=600" }, "public, max-age=600"},
		{map[string]any{"url": "https://example.com/b", "redirect_status": 308}, func(v string) bool { return v == "public, max-age=600" }, "public, max-age=600"},
		{map[string]any{"url": "https://example.com/c", "redirect_status": 302}, func(v string) bool { return v == "private, max-age=0" }, "private, max-age=0"},
		{map[string]any{"url": "https://example.com/d", "redirect_status": 307}, func(v string) bool { return v == "private, max-age=0" }, "private, max-age=0"},
		{map[string]any{"url": "https://example.com/e", "redirect_status": 301, "expires_at": soon.UTC().Format(time.RFC3339)}, func(v string) bool {
			n, err := strconv.Atoi(strings.TrimPrefix(v, "public, max-age="))
			return err == nil && strings.HasPrefix(v, "public, max-age=") && n > 0 && n <= 90
		}, "public, max-age of at most the 90 s the link has left"},
	} {
		r, err := c.Create(ctx, tc.body)
		code := must(t, r, err, http.StatusCreated).Str("code")
		for range 2 { // from Pebble, then from the cache
			r, err = c.Do(ctx, http.MethodGet, "/"+code, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Header.Get("Cache-Control"); r.Status/100 != 3 || !tc.want(got) {
				t.Errorf("%v: %d with Cache-Control %q, want a redirect with %s", tc.body, r.Status, got, tc.what)
			}
		}
	}
	cfg.RedirectMaxAge = 25 * time.Hour
	if _, err := region.New(cfg); err == nil {
		t.Error("a redirect max age of 25h was accepted (at most a day)")
	}
}

// A known path asked with a method it does not answer is a 405 naming the
// methods it does answer in Allow (it was a 400, and inside /api/v1 a
// 404); without a key, the API still answers 401 first.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	ask := func(method, path string, key bool) (int, string, string) {
		req, _ := http.NewRequest(method, reg.URL+path, nil)
		if key {
			req.Header.Set("X-Api-Key", regiontest.APIKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type")
	}
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPost, "/healthz", "OPTIONS, GET"},
		{http.MethodDelete, "/readyz", "OPTIONS, GET"},
		{http.MethodPost, "/abc12345", "OPTIONS, GET, HEAD"},
		{http.MethodPut, "/api/v1/links", "POST"},
		{http.MethodPost, "/api/v1/links/abc12345", "GET, PATCH, DELETE"},
		{http.MethodDelete, "/api/v1/links/abc12345/stats", "GET"},
	} {
		status, allow, ctype := ask(tc.method, tc.path, true)
		if status != http.StatusMethodNotAllowed || allow != tc.allow || ctype != "application/problem+json" {
			t.Errorf("%s %s: %d, Allow %q, %s; want 405, Allow %q, problem+json", tc.method, tc.path, status, allow, ctype, tc.allow)
		}
	}
	if status, _, _ := ask(http.MethodPut, "/api/v1/links", false); status != http.StatusUnauthorized {
		t.Errorf("PUT /api/v1/links without a key: %d, want 401", status)
	}
	if status, _, _ := ask(http.MethodPut, "/api/v1/nothing", true); status != http.StatusNotFound {
		t.Errorf("PUT /api/v1/nothing: %d, want 404 (no such path)", status)
	}
}
