package region_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// from returns an HTTP client whose connections come from the loopback
// address src, so that a test can be several clients.
func from(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func status(t *testing.T, c *http.Client, method, url string, header map[string]string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// limitedRegion starts a region whose limit of misses is l (not the tests'
// default, which exempts loopback), with a link; it returns the region and
// the link's code.
func limitedRegion(t *testing.T, l region.Limits) (*regiontest.Running, string) {
	t.Helper()
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.Limits = l
	withMetrics(t, &cfg)
	r := regiontest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := regiontest.NewClient(r.URL).Create(ctx, map[string]any{"url": "https://example.com/served"})
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("create: %v %s", err, resp.Raw)
	}
	return r, resp.Str("code")
}

// TestMissesAreLimitedPerAddress: an address that asks for codes that
// serve nothing gets its burst of 404s and then 429s with Retry-After; its
// failed API keys count against the same bucket; a served redirect is
// never refused, even with the bucket empty; another address has a bucket
// of its own, and an exempt one is never limited. The refusals are
// counted by reason. With the limit off (the negative control) the same
// scan gets 404 every time.
func TestMissesAreLimitedPerAddress(t *testing.T) {
	exempt := "127.9.9.3"
	r, code := limitedRegion(t, region.Limits{PerSecond: 0.001, Burst: 5, Exempt: []netip.Prefix{netip.MustParsePrefix(exempt + "/32")}})
	scanner, other := from("127.9.9.1"), from("127.9.9.2")

	var got []int
	for i := range 8 {
		s, h := status(t, scanner, http.MethodGet, fmt.Sprintf("%s/nothing%d", r.URL, i), nil)
		got = append(got, s)
		if s == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			t.Error("a 429 without Retry-After")
		}
	}
	if fmt.Sprint(got) != "[404 404 404 404 404 429 429 429]" {
		t.Fatalf("a scan of 8 missing codes: %v; want 5 404s (the burst), then 429s", got)
	}
	if s, _ := status(t, scanner, http.MethodGet, r.URL+"/"+code, nil); s != http.StatusFound {
		t.Errorf("the scanner's request for a link that exists: %d, want 302 (a served redirect is never limited)", s)
	}
	if s, _ := status(t, scanner, http.MethodPost, r.URL+"/api/v1/links", map[string]string{"X-Api-Key": "guess"}); s != http.StatusTooManyRequests {
		t.Errorf("the scanner's guessed key: %d, want 429 (the same bucket)", s)
	}
	if s, _ := status(t, other, http.MethodGet, r.URL+"/nothing", nil); s != http.StatusNotFound {
		t.Errorf("another address: %d, want 404 (a bucket of its own)", s)
	}
	for i := range 3 {
		if s, _ := status(t, other, http.MethodGet, r.URL+"/api/v1/links/x", map[string]string{"X-Api-Key": "guess"}); s != http.StatusUnauthorized {
			t.Errorf("another address's guessed key %d: %d, want 401", i, s)
		}
	}
	for i := range 20 {
		if s, _ := status(t, from(exempt), http.MethodGet, fmt.Sprintf("%s/nothing%d", r.URL, i), nil); s != http.StatusNotFound {
			t.Fatalf("the exempt address's miss %d: %d, want 404", i, s)
		}
	}
	m := regiontest.Scrape(t, r.URL)
	if v, _ := m.Value("shortener_http_limited_total", map[string]string{"reason": "not_found"}); v != 3 {
		t.Errorf("limited for not_found: %v, want 3", v)
	}
	if v, _ := m.Value("shortener_http_limited_total", map[string]string{"reason": "auth"}); v != 1 {
		t.Errorf("limited for auth: %v, want 1", v)
	}

	off, _ := limitedRegion(t, region.Limits{PerSecond: -1})
	for i := range 8 {
		if s, _ := status(t, scanner, http.MethodGet, fmt.Sprintf("%s/nothing%d", off.URL, i), nil); s != http.StatusNotFound {
			t.Fatalf("limit off, miss %d: %d, want 404", i, s)
		}
	}
}

// TestTrustedProxyForwardsTheClient: behind a trusted proxy the buckets
// are the forwarded clients' (the proxy itself is not limited for them);
// X-Forwarded-For from anyone else is ignored, so a scanner cannot buy a
// fresh bucket per request by writing the header.
func TestTrustedProxyForwardsTheClient(t *testing.T) {
	proxy := "127.9.8.1"
	r, _ := limitedRegion(t, region.Limits{PerSecond: 0.001, Burst: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxy + "/32")}})
	via := from(proxy)
	xff := func(client string) map[string]string { return map[string]string{"X-Forwarded-For": client} }
	var a []int
	for range 3 {
		s, _ := status(t, via, http.MethodGet, r.URL+"/nothing", xff("203.0.113.7"))
		a = append(a, s)
	}
	if fmt.Sprint(a) != "[404 404 429]" {
		t.Errorf("client 203.0.113.7 through the proxy: %v, want [404 404 429]", a)
	}
	if s, _ := status(t, via, http.MethodGet, r.URL+"/nothing", xff("203.0.113.8")); s != http.StatusNotFound {
		t.Errorf("client 203.0.113.8 through the proxy: %d, want 404 (its own bucket)", s)
	}
	liar := from("127.9.8.2")
	var b []int
	for i := range 3 {
		s, _ := status(t, liar, http.MethodGet, r.URL+"/nothing", xff(fmt.Sprintf("198.51.100.%d", i)))
		b = append(b, s)
	}
	if fmt.Sprint(b) != "[404 404 429]" {
		t.Errorf("an untrusted client writing X-Forwarded-For: %v, want [404 404 429] (its own address counts)", b)
	}
}

// TestHeaderIsBounded: a request whose header is larger than the region
// takes is answered 431 and the region keeps serving.
func TestHeaderIsBounded(t *testing.T) {
	r, code := limitedRegion(t, region.Limits{PerSecond: -1})
	c := from("127.9.7.1")
	if s, _ := status(t, c, http.MethodGet, r.URL+"/"+code, map[string]string{"X-Padding": strings.Repeat("a", 64<<10)}); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %d, want 431", s)
	}
	if s, _ := status(t, c, http.MethodGet, r.URL+"/"+code, map[string]string{"User-Agent": strings.Repeat("a", 8<<10)}); s != http.StatusFound {
		t.Errorf("an 8 KiB User-Agent: %d, want 302", s)
	}
}
