package region

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"shortener/events"
	"shortener/replicator"
)

// Telemetry of a region: metrics through the OpenTelemetry API (the SDK and
// the Prometheus exporter are wired in cmd and handed over in Config), spans
// when a TracerProvider is given, and one structured log line per request.
//
// The redirect path is hot, so everything a request records is prepared
// once: instruments at start-up, attribute sets once per (route, method,
// status) and then looked up without allocating. With tracing off no span
// is started at all (not even a no-op one: its context costs an allocation).

// latencyBuckets are the histogram boundaries of request, publish and wait
// durations, in seconds. 0.05 is there for the latency SLO (99% of
// redirects within 50 ms is the le="0.05" bucket over the count).
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Route labels of requests that matched no route.
const routeUnmatched = "unmatched"

// telemetry holds a region's instruments and the attribute sets it records
// with.
type telemetry struct {
	region  string
	log     *slog.Logger
	tracer  trace.Tracer
	tracing bool

	redirectDur metric.Float64Histogram
	apiDur      metric.Float64Histogram
	errs        metric.Int64Counter
	publishDur  metric.Float64Histogram
	waitDur     metric.Float64Histogram
	conns       metric.Int64UpDownCounter
	limited     metric.Int64Counter
	reloads     metric.Int64Counter

	// Redirect lookups in the cache, counted with an atomic add and read
	// at collection (shortener.cache.lookups): a synchronous counter's Add
	// cost about 0.4 µs a redirect (docs/benchmarks.md).
	cacheHits, cacheMisses atomic.Int64

	publishOK, publishErr []metric.RecordOption
	waitOK, waitErr       []metric.RecordOption
	regionAdd             []metric.AddOption
	limitedBy             map[string][]metric.AddOption // by reason (region/limits.go)
	reloadOK, reloadBad   []metric.AddOption

	redirects [600]atomic.Pointer[routeObs] // by status
	mu        sync.RWMutex
	routes    map[routeKey]*routeObs

	idPrefix string
	idMu     sync.Mutex
	idSeq    uint64                  // the last id made, with idMu held
	ids      atomic.Pointer[idBlock] // the ids being handed out

	reg metric.Registration // the observable instruments' callback
}

type routeKey struct {
	method, path string
	status       int
}

// routeObs is what a request of one (route, method, status) records with.
type routeObs struct {
	route    string
	action   string
	redirect bool
	record   []metric.RecordOption
	errAdd   []metric.AddOption // nil below 400
	level    slog.Level         // of its log line
}

// newTelemetry creates the instruments of region name. A nil provider means
// no metrics (a no-op meter) and no traces.
func newTelemetry(name string, log *slog.Logger, mp metric.MeterProvider, tp trace.TracerProvider) (*telemetry, error) {
	t := &telemetry{region: name, log: log, routes: map[routeKey]*routeObs{}, tracing: tp != nil}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	t.tracer = tp.Tracer("shortener/region")
	var b [6]byte
	_, _ = rand.Read(b[:])
	t.idPrefix = hex.EncodeToString(b[:])

	m := mp.Meter("shortener/region")
	var err error
	hist := func(name, desc string) metric.Float64Histogram {
		h, e := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(latencyBuckets...))
		if err == nil {
			err = e
		}
		return h
	}
	t.redirectDur = hist("shortener.redirect.duration", "Duration of redirects (GET and HEAD /{code}), by status.")
	t.apiDur = hist("shortener.api.request.duration", "Duration of every other HTTP request (the links API, health, readiness, metrics, status page), by route, method and status.")
	t.publishDur = hist("shortener.publish.duration", "Duration of appends to the region's JetStream stream until the ack, by result.")
	t.waitDur = hist("shortener.projection.wait.duration", "How long a write waited for the local projection to apply its event, by result.")
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return c
	}
	t.errs = counter("shortener.http.errors", "{response}", "HTTP responses with a status of 400 or more, by route, method and status.")
	t.reloads = counter("shortener.blocklist.reloads", "{reload}", "Reads of the blocklist file after it changed, by result: ok, or refused (it did not parse; the list in use stays).")
	t.limited = counter("shortener.http.limited", "{response}", "Requests answered 429 because their client address spent its tokens on misses, by reason: not_found (redirects of codes that serve nothing), auth (API requests without a valid key).")
	if t.conns, err = m.Int64UpDownCounter("shortener.http.open_connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Open HTTP connections (saturation).")); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	region := attribute.String("region", name)
	add := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(kv, region)...))}
	}
	rec := func(kv ...attribute.KeyValue) []metric.RecordOption {
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(append(kv, region)...))}
	}
	t.publishOK, t.publishErr = rec(attribute.String("result", "ok")), rec(attribute.String("result", "error"))
	t.waitOK, t.waitErr = rec(attribute.String("result", "ok")), rec(attribute.String("result", "error"))
	t.regionAdd = add()
	t.reloadOK, t.reloadBad = add(attribute.String("result", "ok")), add(attribute.String("result", "refused"))
	t.limitedBy = map[string][]metric.AddOption{}
	for reason := range limitMessages {
		t.limitedBy[reason] = add(attribute.String("reason", reason))
	}
	return t, nil
}

// obs returns the attribute sets of a request, creating them on the first
// request of its (route, method, status).
func (t *telemetry) obs(method, path string, status int) *routeObs {
	method = methodLabel(method)
	redirect := path == "/:code"
	if redirect && status >= 0 && status < len(t.redirects) {
		if o := t.redirects[status].Load(); o != nil {
			return o
		}
		o := t.newObs(method, path, status)
		t.redirects[status].Store(o)
		return o
	}
	k := routeKey{method, path, status}
	t.mu.RLock()
	o := t.routes[k]
	t.mu.RUnlock()
	if o != nil {
		return o
	}
	o = t.newObs(method, path, status)
	t.mu.Lock()
	t.routes[k] = o
	t.mu.Unlock()
	return o
}

// methodLabel is the method as a label: one of HTTP's methods, or
// "other". A client chooses the method: taken as it comes, 500 made-up
// methods grew a region's metric series from about 200 to over 9,000, and
// the map of routes observed with them.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

func (t *telemetry) newObs(method, path string, status int) *routeObs {
	route := path
	if route == "" {
		route = routeUnmatched
	}
	o := &routeObs{route: route, action: actionOf(method, path), redirect: path == "/:code"}
	kv := []attribute.KeyValue{attribute.String("region", t.region), attribute.String("status", strconv.Itoa(status))}
	if !o.redirect {
		kv = append(kv, attribute.String("route", route), attribute.String("method", method))
	}
	set := attribute.NewSet(kv...)
	o.record = []metric.RecordOption{metric.WithAttributeSet(set)}
	if status >= 400 {
		eset := attribute.NewSet(attribute.String("region", t.region), attribute.String("status", strconv.Itoa(status)),
			attribute.String("route", route), attribute.String("method", method))
		o.errAdd = []metric.AddOption{metric.WithAttributeSet(eset)}
	}
	switch {
	case o.action == "operate" && status == http.StatusServiceUnavailable:
		// /readyz saying "not yet" is an answer, not an error: the switch
		// asks four times a second; the reason is in the body.
		o.level = slog.LevelDebug
	case status >= 500:
		o.level = slog.LevelError
	case o.redirect || o.action == "operate":
		// Redirects and the operational routes (the switch asks /readyz four
		// times a second) log at debug: at tens of thousands of redirects a
		// second a line each would cost more than the redirect.
		o.level = slog.LevelDebug
	default:
		o.level = slog.LevelInfo
	}
	return o
}

// actionOf names what a request does, for the log.
func actionOf(method, path string) string {
	switch path {
	case "/:code":
		return "redirect"
	case "/api/v1/links":
		return "create"
	case "/api/v1/links/:code":
		switch method {
		case http.MethodGet:
			return "get"
		case http.MethodPatch:
			return "update"
		case http.MethodDelete:
			return "delete"
		}
	case "/api/v1/projection", "/api/v1/projection/digests":
		return "audit"
	case "/healthz", "/readyz", "/metrics", "/status", "/status/data", "/api/v1/regions":
		return "operate"
	case "":
		return "unmatched"
	}
	return "other"
}

// requestID returns the X-Request-Id of a request's response: the
// request's own when it is a sane one (1 to 128 printable ASCII
// characters), else a new one: a random per-process prefix and a sequence
// number, unique without coordination. The value is shared, never to be
// modified: the request's own slice, or one of a block of new ids made at
// once (cap 1, so that an append copies).
func (t *telemetry) requestID(h http.Header) []string {
	if in := h[echo.HeaderXRequestID]; len(in) > 0 && saneRequestID(in[0]) {
		return in[:1:1]
	}
	for {
		b := t.ids.Load()
		if b != nil {
			if i := b.next.Add(1) - 1; i < uint32(len(b.vals)) {
				return b.vals[i : i+1 : i+1]
			}
		}
		t.idMu.Lock()
		if t.ids.Load() == b {
			t.ids.Store(t.newIDBlock())
		}
		t.idMu.Unlock()
	}
}

func saneRequestID(id string) bool {
	if n := len(id); n == 0 || n > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestIDBlock is how many request ids are made at once: three
// allocations per block instead of two per request.
const requestIDBlock = 256

// idBlock is a block of new request ids, handed out in order.
type idBlock struct {
	vals []string // one string holds them all; each is a part of it
	next atomic.Uint32
}

// newIDBlock makes the next requestIDBlock ids (with t.idMu held).
func (t *telemetry) newIDBlock() *idBlock {
	var sb strings.Builder
	sb.Grow(requestIDBlock * (len(t.idPrefix) + 1 + 13)) // 13: a uint64 in base 36
	var ends [requestIDBlock]int
	var num [13]byte
	for i := range ends {
		t.idSeq++
		sb.WriteString(t.idPrefix)
		sb.WriteByte('-')
		sb.Write(strconv.AppendUint(num[:0], t.idSeq, 36))
		ends[i] = sb.Len()
	}
	all := sb.String()
	b := &idBlock{vals: make([]string, requestIDBlock)}
	start := 0
	for i, end := range ends {
		b.vals[i], start = all[start:end], end
	}
	return b
}

// codeKey is where a handler leaves the code it created, for the log.
const codeKey = "code"

// observe is the request middleware: it keeps or assigns the request id
// (and answers it in X-Request-Id), turns a handler's error into its
// response so that the status is final, then records the duration and the
// error count and writes the request's log line.
func (r *Region) observe(next echo.HandlerFunc) echo.HandlerFunc {
	t := r.tel
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		ids := t.requestID(req.Header)
		c.Response().Header()[echo.HeaderXRequestID] = ids
		if t.tracing {
			// otelhttp names its span from the pattern once the handler returns.
			req.Pattern = req.Method + " " + c.Path()
		}
		herr := next(c)
		if herr != nil {
			c.Error(herr)
		}
		d := time.Since(start)
		status := c.Response().Status
		o := t.obs(req.Method, c.Path(), status)
		ctx := req.Context()
		if o.redirect {
			t.redirectDur.Record(ctx, d.Seconds(), o.record...)
		} else {
			t.apiDur.Record(ctx, d.Seconds(), o.record...)
		}
		if o.errAdd != nil {
			t.errs.Add(ctx, 1, o.errAdd...)
		}
		if !t.log.Enabled(ctx, o.level) {
			return nil
		}
		code := c.Param("code")
		if v, ok := c.Get(codeKey).(string); ok {
			code = v
		}
		attrs := make([]slog.Attr, 0, 10)
		attrs = append(attrs, slog.String("request_id", ids[0]), slog.String("action", o.action),
			slog.String("method", req.Method), slog.String("route", o.route), slog.String("code", code),
			slog.Int("status", status), slog.Float64("latency_ms", float64(d.Microseconds())/1000))
		if sc := trace.SpanContextFromContext(c.Request().Context()); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
		if herr != nil && status >= 500 {
			// The cause behind a 5xx, which the client's problem does not
			// show ("event log unavailable": nats: no responders ...).
			attrs = append(attrs, slog.String("err", herr.Error()))
		}
		t.log.LogAttrs(ctx, o.level, "request", attrs...)
		return nil
	}
}

// span starts a span when tracing is on; otherwise it returns ctx and a nil
// span at no cost. end ends a span from span (nil-safe).
func (t *telemetry) span(ctx context.Context, name string, kv ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.tracing {
		return ctx, nil
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(kv...))
}

func end(s trace.Span, err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// connState counts open HTTP connections (http.Server.ConnState).
func (r *Region) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		r.tel.conns.Add(context.Background(), 1, r.tel.regionAdd...)
	case http.StateClosed, http.StateHijacked:
		r.tel.conns.Add(context.Background(), -1, r.tel.regionAdd...)
	}
}

// registerGauges registers the callback that reads, at each collection,
// what the region knows of itself and of every origin: lag, mirror
// activity and the RPO bound (from the lag monitor), the projection's
// progress, the alias register, the store and the disk.
func (r *Region) registerGauges(mp metric.MeterProvider) error {
	if mp == nil {
		return nil
	}
	m := mp.Meter("shortener/region")
	var err error
	fg := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, e := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return g
	}
	ig := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, e := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return g
	}
	lagEvents := ig("shortener.mirror.lag.events", "{event}", "Events of the origin's stream not yet in its mirror here (origin last sequence as last observed minus mirror last sequence).")
	lagSeconds := fg("shortener.mirror.lag", "s", "Age of the newest event of the origin held here (heartbeats keep it near 1 s when healthy).")
	active := ig("shortener.mirror.active", "", "1 while the mirror of the origin is live (events arriving, newest under 3 s old), else 0.")
	copying := ig("shortener.mirror.copying", "", "1 while the mirror of the origin is moving (its last sequence went up within the last 3 s), live or catching up, else 0.")
	mirrorErr := ig("shortener.mirror.error", "", "1 while nats-server reports an error on the mirror of the origin (the text is mirror_error in GET /api/v1/regions), else 0.")
	behind := ig("shortener.origin.behind", "", "1 while the origin's stream holds fewer events than its mirror here: it lost events and was not repaired, and the mirror ignores its next ones (docs/runbooks/origin-behind-mirror.md), else 0.")
	diverged := ig("shortener.origin.diverged", "", "1 once the origin's stream and its mirror here were found holding different events at one sequence (until this region restarts): the origin lost its stream and took other events at the same sequences, else 0.")
	reachable := ig("shortener.origin.reachable", "", "1 while the origin's stream answers from here, else 0.")
	rpoEvents := ig("shortener.rpo.bound.events", "{event}", "RPO bound of failing the origin's clients over to this region now, in events.")
	rpoSeconds := fg("shortener.rpo.bound", "s", "RPO bound of failing the origin's clients over to this region now, in seconds.")
	rpoKnown := ig("shortener.rpo.known", "", "1 once the RPO bound is known (origin observed and mirror seen live), else 0.")
	projLag := ig("shortener.projection.lag.events", "{event}", "Records of the stream holding the origin's events (the region's own stream, or the mirror) not yet applied to the projection.")
	aliases := ig("shortener.alias_register.available", "", "1 while the alias register (KV in the global cluster) answers, else 0.")
	storeBytes := ig("shortener.store.size", "By", "Bytes the Pebble projection takes on disk.")
	diskFree := ig("shortener.disk.free", "By", "Free bytes (for unprivileged users) on the file system of the region's data directory.")
	diskSize := ig("shortener.disk.size", "By", "Size in bytes of the file system of the region's data directory.")
	cacheEntries := ig("shortener.cache.entries", "{entry}", "Entries in the redirect cache.")
	freshness := fg("shortener.analytics.freshness", "s", "Age of the newest batch of the origin's clicks counted here (absent until one is; batches are sent only when there are clicks).")
	certLeft := fg("shortener.certificate.remaining", "s", "Time until the certificate expires: the NATS servers' (cert=nats), each CA's (ca, ca-1, ...) and the HTTP listener's (http), as loaded at start.")
	appliedCtr, e := m.Int64ObservableCounter("shortener.events.applied", metric.WithUnit("{event}"),
		metric.WithDescription("Records of the origin's stream applied to the projection: the projection's checkpoint (events and heartbeats; it restarts from the stored checkpoint)."))
	if err == nil {
		err = e
	}
	rejectedCtr, e := m.Int64ObservableCounter("shortener.events.rejected", metric.WithUnit("{event}"),
		metric.WithDescription("Records the projection refused to fold, by reason (malformed, origin, subject, code_owner, url): forged or malformed events, skipped and never served (docs/runbooks/events-rejected.md). Stored with the projection: it survives restarts."))
	if err == nil {
		err = e
	}
	jsUsed := ig("shortener.jetstream.store.used", "By", "Bytes of disk the region's embedded JetStream server holds (streams and mirrors), by server: regional, or global (the alias register).")
	jsLimit := ig("shortener.jetstream.store.limit", "By", "The embedded JetStream server's disk limit (--jetstream-max-store), by server: beyond it, appends are refused (docs/runbooks/jetstream-store-high.md).")
	lookups, e := m.Int64ObservableCounter("shortener.cache.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Redirect lookups in the LRU cache, by result: hit, or miss (then read from Pebble)."))
	if err == nil {
		err = e
	}
	halted := ig("shortener.stream.halted", "", "1 while the projection has stopped the stream at an event this binary does not understand (a newer schema, an unknown type): nothing after it is folded until the binary is upgraded (docs/runbooks/stream-halted.md), else 0.")
	if err != nil {
		return err
	}
	region := attribute.String("region", r.cfg.Name)
	streams := map[string]metric.ObserveOption{}
	streams[r.stream] = metric.WithAttributeSet(attribute.NewSet(region, attribute.String("stream", r.stream)))
	for _, p := range r.cfg.Peers {
		name := replicator.MirrorName(p.Name, r.cfg.Name)
		streams[name] = metric.WithAttributeSet(attribute.NewSet(region, attribute.String("stream", name)))
	}
	reasons := map[events.Reason]metric.ObserveOption{}
	for _, reason := range events.Reasons {
		reasons[reason] = metric.WithAttributeSet(attribute.NewSet(region, attribute.String("reason", string(reason))))
	}
	regionSet := metric.WithAttributeSet(attribute.NewSet(region))
	hitSet := metric.WithAttributeSet(attribute.NewSet(region, attribute.String("result", "hit")))
	missSet := metric.WithAttributeSet(attribute.NewSet(region, attribute.String("result", "miss")))
	jsServers := []metric.ObserveOption{ // in the order of r.servers
		metric.WithAttributeSet(attribute.NewSet(region, attribute.String("server", "regional"))),
		metric.WithAttributeSet(attribute.NewSet(region, attribute.String("server", "global"))),
	}
	origins := map[string]metric.ObserveOption{}
	origins[r.cfg.Name] = metric.WithAttributeSet(attribute.NewSet(region, attribute.String("origin", r.cfg.Name)))
	for _, p := range r.cfg.Peers {
		origins[p.Name] = metric.WithAttributeSet(attribute.NewSet(region, attribute.String("origin", p.Name)))
	}
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	r.tel.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		for _, l := range r.monitor.Snapshot() {
			at, ok := origins[l.Origin]
			if !ok {
				continue
			}
			applied := r.store.Checkpoint(l.Stream)
			o.ObserveInt64(appliedCtr, int64(applied), at)
			if l.LastSeq > applied {
				o.ObserveInt64(projLag, int64(l.LastSeq-applied), at)
			} else {
				o.ObserveInt64(projLag, 0, at)
			}
			if l.Local {
				continue
			}
			o.ObserveInt64(lagEvents, int64(l.LagEvents), at)
			o.ObserveFloat64(lagSeconds, l.LagSeconds, at)
			o.ObserveInt64(active, b2i(l.MirrorActive), at)
			o.ObserveInt64(copying, b2i(l.MirrorCopying), at)
			o.ObserveInt64(mirrorErr, b2i(l.MirrorError != ""), at)
			o.ObserveInt64(reachable, b2i(l.OriginReachable), at)
			o.ObserveInt64(behind, b2i(l.OriginBehind), at)
			o.ObserveInt64(diverged, b2i(l.OriginDiverged), at)
			o.ObserveInt64(rpoEvents, int64(l.RPOEvents), at)
			o.ObserveFloat64(rpoSeconds, l.RPOSeconds, at)
			o.ObserveInt64(rpoKnown, b2i(l.RPOKnown), at)
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		o.ObserveInt64(aliases, b2i(r.aliases.Available(actx)), regionSet)
		o.ObserveInt64(storeBytes, int64(r.store.DiskUsage()), regionSet)
		o.ObserveInt64(lookups, r.tel.cacheHits.Load(), hitSet)
		o.ObserveInt64(lookups, r.tel.cacheMisses.Load(), missSet)
		if free, size, ok := diskSpace(r.cfg.DataDir); ok {
			o.ObserveInt64(diskFree, int64(free), regionSet)
			o.ObserveInt64(diskSize, int64(size), regionSet)
		}
		o.ObserveInt64(cacheEntries, int64(r.store.CacheLen()), regionSet)
		for i, srv := range r.servers { // none with an external NATS
			if info, err := srv.Jsz(nil); err == nil && i < len(jsServers) {
				o.ObserveInt64(jsUsed, int64(info.Store), jsServers[i])
				o.ObserveInt64(jsLimit, info.Config.MaxStore, jsServers[i])
			}
		}
		now := r.cfg.Now()
		for name, until := range r.certificates() {
			o.ObserveFloat64(certLeft, until.Sub(now).Seconds(), metric.WithAttributeSet(attribute.NewSet(region, attribute.String("cert", name))))
		}
		for stream, at := range streams {
			_, stopped := r.store.HaltedAt(stream)
			o.ObserveInt64(halted, b2i(stopped), at)
		}
		rejected := r.store.Rejected()
		for _, reason := range events.Reasons {
			o.ObserveInt64(rejectedCtr, int64(rejected[reason]), reasons[reason])
		}
		if r.clicks != nil {
			now := r.cfg.Now()
			for origin, newest := range r.clicks.store.Newest() {
				if at, ok := origins[origin]; ok {
					o.ObserveFloat64(freshness, max(0, now.Sub(newest).Seconds()), at)
				}
			}
		}
		return nil
	}, lagEvents, lagSeconds, active, copying, mirrorErr, reachable, behind, diverged, rpoEvents, rpoSeconds, rpoKnown, projLag, aliases, storeBytes,
		diskFree, diskSize, cacheEntries, lookups, appliedCtr, freshness, rejectedCtr, halted, certLeft, jsUsed, jsLimit)
	return err
}

// certificates returns when each certificate the region holds expires.
func (r *Region) certificates() map[string]time.Time {
	out := map[string]time.Time{}
	if s := r.cfg.NATSServerSecrets; s != nil {
		out = s.Expiries()
	}
	if c := r.cfg.HTTPCert; c != nil && c.Leaf != nil {
		out["http"] = c.Leaf.NotAfter
	}
	return out
}

// close unregisters the observable instruments: after Close the store they
// read is gone.
func (t *telemetry) close() {
	if t != nil && t.reg != nil {
		_ = t.reg.Unregister()
		t.reg = nil
	}
}

// countLimited counts a request refused for its address's misses.
func (t *telemetry) countLimited(ctx context.Context, reason string) {
	t.limited.Add(ctx, 1, t.limitedBy[reason]...)
}

// countBlocklistReload counts a read of the changed blocklist file.
func (t *telemetry) countBlocklistReload(ctx context.Context, ok bool) {
	if ok {
		t.reloads.Add(ctx, 1, t.reloadOK...)
	} else {
		t.reloads.Add(ctx, 1, t.reloadBad...)
	}
}
