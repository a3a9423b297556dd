package region_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shortener/region"
	"shortener/region/regiontest"
)

// syncBuffer is a log sink the region writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// observedRegion starts a region with the SDK wired as cmd wires it
// (Prometheus exporter on a registry of its own), optionally a span
// recorder, and a JSON log at level.
// withMetrics gives cfg metrics as shortener region has them: the
// OpenTelemetry SDK with the Prometheus exporter, served on /metrics.
func withMetrics(tb testing.TB, cfg *region.Config) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		tb.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg.MeterProvider, cfg.MetricsHandler = mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func observedRegion(t *testing.T, spans *tracetest.SpanRecorder, level slog.Level) (*regiontest.Running, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	withMetrics(t, &cfg)
	cfg.SwitchAdmin = ""
	if spans != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		cfg.TracerProvider = tp
	}
	return regiontest.Start(t, cfg), logs
}

func TestMetricsAfterTraffic(t *testing.T) {
	reg, _ := observedRegion(t, nil, slog.LevelWarn)
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	created := mustCreate(t, c, "https://example.com/metrics")
	code := created.Str("code")

	reg.Store().CachePurge()
	for range 2 { // a miss (read from Pebble, then cached), then a hit
		r, err := c.Do(ctx, http.MethodGet, "/"+code, nil)
		must(t, r, err, http.StatusFound)
	}
	r, err := c.Do(ctx, http.MethodGet, "/1nothere", nil)
	must(t, r, err, http.StatusNotFound)

	fams := regiontest.Scrape(t, reg.URL)
	us := map[string]string{"region": "us-east"}
	checks := []struct {
		name string
		want map[string]string
		min  float64
	}{
		{"shortener_redirect_duration_seconds", map[string]string{"region": "us-east", "status": "302"}, 2},
		{"shortener_redirect_duration_seconds", map[string]string{"status": "404"}, 1},
		{"shortener_api_request_duration_seconds", map[string]string{"route": "/api/v1/links", "method": "POST", "status": "201"}, 1},
		{"shortener_http_errors_total", map[string]string{"route": "/:code", "status": "404"}, 1},
		{"shortener_cache_lookups_total", map[string]string{"region": "us-east", "result": "hit"}, 1},
		{"shortener_cache_lookups_total", map[string]string{"result": "miss"}, 2},
		{"shortener_publish_duration_seconds", map[string]string{"result": "ok"}, 1},
		{"shortener_projection_wait_duration_seconds", map[string]string{"result": "ok"}, 1},
		{"shortener_events_applied_total", map[string]string{"origin": "us-east"}, 1},
		{"shortener_projection_lag_events", map[string]string{"origin": "us-east"}, 0},
		{"shortener_alias_register_available", us, 1},
		{"shortener_store_size_bytes", us, 1},
		{"shortener_disk_size_bytes", us, 1},
		{"shortener_disk_free_bytes", us, 1},
		{"shortener_http_open_connections", us, 1},
		{"shortener_cache_entries", us, 1},
		{"shortener_jetstream_store_used_bytes", map[string]string{"region": "us-east", "server": "regional"}, 1},
		{"shortener_jetstream_store_limit_bytes", map[string]string{"region": "us-east", "server": "regional"}, 8 << 30},
		{"shortener_jetstream_store_limit_bytes", map[string]string{"region": "us-east", "server": "global"}, 8 << 30},
		// Present from 0, for every reason, so that increase() sees the first refusal.
		{"shortener_events_rejected_total", map[string]string{"region": "us-east", "reason": "url"}, 0},
		{"shortener_events_rejected_total", map[string]string{"reason": "code_owner"}, 0},
		{"shortener_stream_halted", map[string]string{"region": "us-east", "stream": "LINKS_US_EAST"}, 0},
	}
	for _, ch := range checks {
		v, ok := fams.Value(ch.name, ch.want)
		if !ok {
			t.Errorf("no series %s%v", ch.name, ch.want)
			continue
		}
		if v < ch.min {
			t.Errorf("%s%v = %v, want at least %v", ch.name, ch.want, v, ch.min)
		}
	}
	// The latency SLO reads the 50 ms bucket; a local redirect is far under it.
	if n, ok := fams.Bucket("shortener_redirect_duration_seconds", map[string]string{"status": "302"}, 0.05); !ok || n < 2 {
		t.Errorf("le=0.05 bucket of 302 redirects: %d (present %t), want 2", n, ok)
	}
}

func mustCreate(t *testing.T, c *regiontest.Client, url string) regiontest.Response {
	t.Helper()
	r, err := c.Create(context.Background(), map[string]any{"url": url})
	return must(t, r, err, http.StatusCreated)
}

func TestRequestLogAndRequestID(t *testing.T) {
	reg, logs := observedRegion(t, nil, slog.LevelInfo)
	c := regiontest.NewClient(reg.URL)

	// An incoming X-Request-Id is kept and echoed; without one, one is made.
	req, _ := http.NewRequest(http.MethodPost, reg.URL+"/api/v1/links", strings.NewReader(`{"url":"https://example.com/logged"}`))
	req.Header.Set("X-Api-Key", regiontest.APIKey)
	req.Header.Set("X-Request-Id", "req-from-client-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Request-Id") != "req-from-client-42" {
		t.Fatalf("status %d, X-Request-Id %q: %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
	}
	var link struct{ Code string }
	_ = json.Unmarshal(body, &link)
	r, err := c.Do(context.Background(), http.MethodGet, "/api/v1/links/"+link.Code, nil)
	must(t, r, err, http.StatusOK)
	generated := r.Header.Get("X-Request-Id")
	if generated == "" || generated == "req-from-client-42" {
		t.Fatalf("generated X-Request-Id %q", generated)
	}
	bad, _ := http.NewRequest(http.MethodGet, reg.URL+"/healthz", nil)
	bad.Header.Set("X-Request-Id", "has space")
	resp, err = http.DefaultClient.Do(bad)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("an unusable X-Request-Id should be replaced, got %q", got)
	}

	var create, get map[string]any
	regiontest.WaitFor(t, 5e9, func() error {
		for _, l := range logs.lines() {
			if l["msg"] != "request" {
				continue
			}
			switch l["request_id"] {
			case "req-from-client-42":
				create = l
			case generated:
				get = l
			}
		}
		if create == nil || get == nil {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	for k, v := range map[string]any{"action": "create", "code": link.Code, "status": float64(201), "region": "us-east", "route": "/api/v1/links"} {
		if create[k] != v {
			t.Errorf("create log %s = %v, want %v (line %v)", k, create[k], v, create)
		}
	}
	if get["action"] != "get" || get["code"] != link.Code || get["status"] != float64(200) {
		t.Errorf("get log line: %v", get)
	}
	if _, ok := create["latency_ms"].(float64); !ok {
		t.Errorf("no latency_ms in %v", create)
	}
	if _, ok := create["trace_id"]; ok {
		t.Errorf("tracing is off, yet the log has a trace id: %v", create)
	}
}

func TestSpansNamedByRouteWithChildren(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	reg, logs := observedRegion(t, spans, slog.LevelDebug)
	c := regiontest.NewClient(reg.URL)
	created := mustCreate(t, c, "https://example.com/traced")
	code := created.Str("code")
	reg.Store().CachePurge()
	r, err := c.Do(context.Background(), http.MethodGet, "/"+code, nil)
	must(t, r, err, http.StatusFound)

	byName := map[string]sdktrace.ReadOnlySpan{}
	regiontest.WaitFor(t, 5e9, func() error {
		for _, s := range spans.Ended() {
			byName[s.Name()] = s
		}
		for _, n := range []string{"POST /api/v1/links", "GET /:code", "jetstream.publish", "projection.wait", "cache.lookup", "pebble.read"} {
			if byName[n] == nil {
				return &missingSpan{n}
			}
		}
		return nil
	})
	redirect := byName["GET /:code"]
	for _, child := range []string{"cache.lookup", "pebble.read"} {
		if s := byName[child]; s.Parent().SpanID() != redirect.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the redirect's span", child)
		}
	}
	create := byName["POST /api/v1/links"]
	for _, child := range []string{"jetstream.publish", "projection.wait"} {
		if s := byName[child]; s.Parent().SpanID() != create.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the create's span", child)
		}
	}
	// The request log carries the trace id of the request's span.
	want := redirect.SpanContext().TraceID().String()
	found := false
	for _, l := range logs.lines() {
		if l["msg"] == "request" && l["action"] == "redirect" && l["trace_id"] == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no redirect log line with trace_id %s", want)
	}
}

type missingSpan struct{ name string }

func (m *missingSpan) Error() string { return "no span " + m.name }

// A client chooses the method: made-up methods are labelled "other", so
// that no client can grow the region's metric series (500 made-up methods
// once grew them from about 200 to over 9,000). The scrape sees the
// methods that are HTTP's: the check can see a method label at all.
func TestMadeUpMethodsDoNotGrowMetrics(t *testing.T) {
	reg, _ := observedRegion(t, nil, slog.LevelWarn)
	scrape := func() string {
		resp, err := http.Get(reg.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	send := func(method, path string) {
		req, err := http.NewRequest(method, reg.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	series := func(text string) int { // those with a method label: other series may appear meanwhile (gauges sampled later)
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(l, `method="`) && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		return n
	}
	for _, p := range []string{"/healthz", "/api/v1/links", "/nothing/here"} {
		send(http.MethodGet, p)
		send("MADEUP", p)
	}
	scrape() // its own series, GET /metrics 200
	before := scrape()
	for i := range 300 {
		send(fmt.Sprintf("X%dY", i), []string{"/healthz", "/api/v1/links", "/nothing/here"}[i%3])
	}
	after := scrape()
	if !strings.Contains(after, `method="GET"`) || !strings.Contains(after, `method="other"`) {
		t.Fatalf("the scrape shows no GET or other method label: the check sees nothing\n%s", after)
	}
	if strings.Contains(after, `method="X`) || strings.Contains(after, `method="MADEUP"`) {
		t.Error("a made-up method is a label")
	}
	if b, a := series(before), series(after); a > b {
		t.Errorf("300 requests with made-up methods grew the series with a method from %d to %d\n%s", b, a, after)
	} else {
		t.Logf("series with a method label: %d before 300 made-up methods, %d after", b, a)
	}
}
