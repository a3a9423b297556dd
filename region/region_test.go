package region_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shortener/region/regiontest"
)

// clock is a test clock that starts at the real time and moves when told.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func must(t *testing.T, r regiontest.Response, err error, status int) regiontest.Response {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

func TestLinkLifecycleOverHTTP(t *testing.T) {
	var clk clock
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.Now = clk.Now
	reg := regiontest.Start(t, cfg)
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()

	// Create: 201 with Location, and it redirects at once (read-your-writes).
	r, err := c.Create(ctx, map[string]any{"url": "https://example.com/a"})
	created := must(t, r, err, http.StatusCreated)
	code := created.Str("code")
	if !strings.HasPrefix(code, "1") || len(code) != 8 {
		t.Fatalf("generated code %q: want 8 characters starting with the region digit 1", code)
	}
	if loc := created.Header.Get("Location"); loc != reg.URL+"/"+code || created.Str("short_url") != loc {
		t.Fatalf("Location %q, short_url %q; want %s/%s", loc, created.Str("short_url"), reg.URL, code)
	}
	if created.Str("region") != "us-east" || created.Body["redirect_status"] != float64(302) {
		t.Fatalf("create body: %s", created.Raw)
	}
	r, err = c.Do(ctx, http.MethodGet, "/"+code, nil)
	if must(t, r, err, http.StatusFound).Header.Get("Location") != "https://example.com/a" {
		t.Fatalf("redirect Location = %q", r.Header.Get("Location"))
	}
	r, err = c.Do(ctx, http.MethodHead, "/"+code, nil)
	must(t, r, err, http.StatusFound)
	r, err = c.Do(ctx, http.MethodGet, "/api/v1/links/"+code, nil)
	if must(t, r, err, http.StatusOK).Str("url") != "https://example.com/a" {
		t.Fatalf("GET link: %s", r.Raw)
	}

	// Update the URL and the status: the next redirect follows.
	r, err = c.Do(ctx, http.MethodPatch, "/api/v1/links/"+code, map[string]any{"url": "https://example.com/b", "redirect_status": 307})
	must(t, r, err, http.StatusOK)
	r, err = c.Do(ctx, http.MethodGet, "/"+code, nil)
	if must(t, r, err, http.StatusTemporaryRedirect).Header.Get("Location") != "https://example.com/b" {
		t.Fatalf("after update, Location = %q", r.Header.Get("Location"))
	}

	// Delete: 204, then 410 for the redirect and for the API.
	r, err = c.Do(ctx, http.MethodDelete, "/api/v1/links/"+code, nil)
	must(t, r, err, http.StatusNoContent)
	r, err = c.Do(ctx, http.MethodGet, "/"+code, nil)
	if must(t, r, err, http.StatusGone).Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("410 without problem+json: %v", r.Header)
	}
	r, err = c.Do(ctx, http.MethodPatch, "/api/v1/links/"+code, map[string]any{"url": "https://example.com/c"})
	must(t, r, err, http.StatusGone)
	r, err = c.Do(ctx, http.MethodDelete, "/api/v1/links/"+code, nil)
	must(t, r, err, http.StatusGone)

	// Expiry: an alias with expires_at redirects until then, 410 after.
	exp := clk.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r, err = c.Create(ctx, map[string]any{"url": "https://example.com/sale", "alias": "spring-sale", "expires_at": exp, "redirect_status": 308})
	must(t, r, err, http.StatusCreated)
	r, err = c.Do(ctx, http.MethodGet, "/spring-sale", nil)
	must(t, r, err, http.StatusPermanentRedirect)
	clk.Advance(2 * time.Hour)
	r, err = c.Do(ctx, http.MethodGet, "/spring-sale", nil)
	if p := must(t, r, err, http.StatusGone); !strings.Contains(p.Str("detail"), "expired") {
		t.Fatalf("expired link: %s", p.Raw)
	}
	// Removing the expiry brings it back.
	r, err = c.Do(ctx, http.MethodPatch, "/api/v1/links/spring-sale", `{"expires_at": null}`)
	must(t, r, err, http.StatusOK)
	r, err = c.Do(ctx, http.MethodGet, "/spring-sale", nil)
	must(t, r, err, http.StatusPermanentRedirect)

	// The alias is taken now; unknown codes are 404.
	r, err = c.Create(ctx, map[string]any{"url": "https://example.com/other", "alias": "spring-sale"})
	if p := must(t, r, err, http.StatusConflict); p.Str("field") != "alias" {
		t.Fatalf("409 body: %s", p.Raw)
	}
	r, err = c.Do(ctx, http.MethodGet, "/nothing-here", nil)
	must(t, r, err, http.StatusNotFound)
	r, err = c.Do(ctx, http.MethodGet, "/api/v1/links/1AAAAAAA", nil)
	must(t, r, err, http.StatusNotFound)
}

func TestInvalidInputIsAProblem(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	tests := []struct {
		name, body, field, reason string
	}{
		{"not json", `{"url":`, "body", "JSON"},
		{"array", `[1]`, "body", "JSON object"},
		{"trailing", `{"url":"https://a.example/"} {}`, "body", "trailing"},
		{"unknown field", `{"url":"https://a.example/","password":"x"}`, "password", "unknown field"},
		{"url wrong type", `{"url":5}`, "url", "wrong type"},
		{"no url", `{}`, "url", "required"},
		{"userinfo", `{"url":"http://bank.com@evil.example"}`, "url", "userinfo"},
		{"crlf", `{"url":"http://a.example/\r\nSet-Cookie: x"}`, "url", "control character"},
		{"scheme", `{"url":"javascript:alert(1)"}`, "url", "scheme"},
		{"too long", `{"url":"https://a.example/` + strings.Repeat("x", 2100) + `"}`, "url", "longer than 2048"},
		{"reserved alias", `{"url":"https://a.example/","alias":"healthz"}`, "alias", "reserved"},
		{"alias charset", `{"url":"https://a.example/","alias":"a.b.c"}`, "alias", "only letters"},
		{"alias too short", `{"url":"https://a.example/","alias":"ab"}`, "alias", "3 to 64"},
		{"status", `{"url":"https://a.example/","redirect_status":200}`, "redirect_status", "301, 302, 307 or 308"},
		{"past expiry", `{"url":"https://a.example/","expires_at":"2001-01-01T00:00:00Z"}`, "expires_at", "future"},
		{"bad time", `{"url":"https://a.example/","expires_at":"soon"}`, "expires_at", "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Create(ctx, tt.body)
			p := must(t, r, err, http.StatusBadRequest)
			if ct := p.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if p.Str("field") != tt.field || !strings.Contains(p.Str("detail"), tt.reason) || p.Body["status"] != float64(400) {
				t.Fatalf("problem %s: want field %q and a reason mentioning %q", p.Raw, tt.field, tt.reason)
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		nokey := regiontest.NewClient(reg.URL)
		nokey.Key = ""
		r, err := nokey.Create(ctx, `{"url":"https://a.example/"}`)
		must(t, r, err, http.StatusUnauthorized)
		nokey.Key = "wrong"
		r, err = nokey.Create(ctx, `{"url":"https://a.example/"}`)
		must(t, r, err, http.StatusUnauthorized)
	})
	t.Run("bearer", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, reg.URL+"/api/v1/links", strings.NewReader(`{"url":"https://a.example/"}`))
		req.Header.Set("Authorization", "Bearer "+regiontest.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("bearer token: %d", resp.StatusCode)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		r, err := c.Create(ctx, `{"url":"https://a.example/`+strings.Repeat("x", 70<<10)+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusRequestEntityTooLarge && r.Status != http.StatusBadRequest {
			t.Fatalf("status %d for a 70 KiB body", r.Status)
		}
	})
	// Nothing invalid reached the log.
	if n, _ := reg.Store().Count(); n != 1 {
		t.Fatalf("%d links stored, want only the bearer one", n)
	}
}

// TestRestartFromCheckpoint stops a region and starts it again on the same
// state: nothing is applied twice, and the projection is what it was.
func TestRestartFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := regiontest.Config("us-east", dir)
	reg := regiontest.Start(t, cfg)
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	var codes []string
	for i := 0; i < 50; i++ {
		r, err := c.Create(ctx, map[string]any{"url": "https://example.com/" + string(rune('a'+i%26))})
		codes = append(codes, must(t, r, err, http.StatusCreated).Str("code"))
	}
	r, err := c.Do(ctx, http.MethodPatch, "/api/v1/links/"+codes[0], map[string]any{"url": "https://example.com/updated"})
	must(t, r, err, http.StatusOK)
	// The stream also holds the region's heartbeats (one a second): on a
	// slow machine (CI under -race) some fall between the writes, so the
	// checkpoint is at least the 51 events; the links' event counts and
	// the digest say that nothing was applied twice.
	digest, _ := reg.Store().Digest()
	cp := reg.Store().Checkpoint("LINKS_US_EAST")
	if cp < 51 {
		t.Fatalf("checkpoint %d after 51 events", cp)
	}
	reg.Stop(t)

	reg2 := regiontest.Start(t, cfg)
	if got := reg2.Store().Checkpoint("LINKS_US_EAST"); got < cp {
		t.Fatalf("checkpoint after restart %d, want at least %d", got, cp)
	}
	if got, _ := reg2.Store().Digest(); got != digest {
		t.Fatalf("digest changed across a restart")
	}
	l, _, _ := reg2.Store().Get(codes[0])
	if l.Events != 2 || l.URL != "https://example.com/updated" {
		t.Fatalf("link %s after restart: %d events, url %s; want 2 events, the update", codes[0], l.Events, l.URL)
	}
	c2 := regiontest.NewClient(reg2.URL)
	for _, code := range codes[1:] {
		l, _, _ := reg2.Store().Get(code)
		if l.Events != 1 {
			t.Fatalf("link %s folded %d events, want 1", code, l.Events)
		}
		r, err := c2.Do(ctx, http.MethodGet, "/"+code, nil)
		must(t, r, err, http.StatusFound)
	}
	// New writes continue the sequence.
	r, err = c2.Create(ctx, map[string]any{"url": "https://example.com/after"})
	must(t, r, err, http.StatusCreated)
	if got := reg2.Store().Checkpoint("LINKS_US_EAST"); got <= cp {
		t.Fatalf("checkpoint %d after one more create, want beyond %d", got, cp)
	}
}

// A connection that was opened and never used (HTTP clients dial ahead and
// park spare connections) is not in-flight work: the drain at shutdown
// closes it instead of failing after its 5 s. CI saw "region stopped with:
// context deadline exceeded" from exactly this.
func TestShutdownClosesUnusedConnections(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	conn, err := net.Dial("tcp", strings.TrimPrefix(reg.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(100 * time.Millisecond) // accepted: the server holds it in StateNew
	start := time.Now()
	reg.Stop(t) // fails the test if Run returned an error
	t.Logf("stopped in %v with a parked connection", time.Since(start).Round(time.Millisecond))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the parked connection was not closed by the shutdown")
	}
}
