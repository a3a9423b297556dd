package region

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/time/rate"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// LinkResponse is the API's representation of a link.
type LinkResponse struct {
	Code           string     `json:"code"`
	ShortURL       string     `json:"short_url"`
	URL            string     `json:"url"`
	Region         string     `json:"region"` // the region that created it
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
	RedirectStatus int        `json:"redirect_status"`
	Alias          bool       `json:"alias"`
}

type patchRequest struct {
	URL            *string         `json:"url"`
	ExpiresAt      json.RawMessage `json:"expires_at"` // a time, or null to remove the expiry
	RedirectStatus *int            `json:"redirect_status"`
}

const actorKey = "actor"

func (r *Region) routes() (*echo.Echo, error) {
	tel, err := newTelemetry(r.cfg.Name, r.log, r.cfg.MeterProvider, r.cfg.TracerProvider)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	r.tel = tel
	if err := r.registerGauges(r.cfg.MeterProvider); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(r.cfg.Limits.TrustedProxies)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		_ = r.writeProblem(c, err)
	}
	if tel.tracing {
		// Echo routes before e.Use middleware runs; observe sets the
		// request's Pattern to the route template, and otelhttp renames
		// its span from it when the handler returns ("GET /:code").
		e.Use(echo.WrapMiddleware(otelhttp.NewMiddleware("http",
			otelhttp.WithTracerProvider(r.cfg.TracerProvider),
			otelhttp.WithPropagators(propagation.TraceContext{}),
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // the region records its own
			otelhttp.WithSpanNameFormatter(func(_ string, req *http.Request) string {
				if req.Pattern != "" {
					return req.Pattern
				}
				return req.Method
			}))))
	}
	// Echo applies e.Use middleware to the matched handler again on every
	// request, a closure each: two allocations per redirect. The region's
	// own middleware is composed once instead, around the handler the
	// router matched (c.Handler(): the route's, with its group's
	// middleware, or Echo's 404 or 405), which is what the last e.Use
	// middleware is given: this must stay the last e.Use.
	matched := func(c echo.Context) error { return c.Handler()(c) }
	observed := r.observe(middleware.Recover()(matched))
	e.Use(func(echo.HandlerFunc) echo.HandlerFunc { return observed })

	e.GET("/healthz", r.healthz)
	e.GET("/readyz", r.readyz)
	e.GET("/api/v1/regions", r.regions) // operational, no link data: no key needed
	if r.cfg.MetricsHandler != nil {
		e.GET("/metrics", echo.WrapHandler(r.cfg.MetricsHandler)) // Prometheus; operational, no key
	}
	e.GET("/status", r.statusPage)
	e.GET("/status/data", r.statusData)
	e.GET("/status/:asset", r.statusAsset)

	api := e.Group("/api/v1", middleware.BodyLimit("64K"), r.authenticate)
	if r.cfg.RateLimit > 0 {
		api.Use(middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
			Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
				Rate: rate.Limit(r.cfg.RateLimit), Burst: int(2 * r.cfg.RateLimit), ExpiresIn: 3 * time.Minute}),
			IdentifierExtractor: func(c echo.Context) (string, error) { return c.Get(actorKey).(string), nil },
			ErrorHandler: func(c echo.Context, err error) error {
				return &events.Error{Kind: events.Internal, Err: err}
			},
			DenyHandler: func(c echo.Context, _ string, _ error) error {
				return &events.Error{Kind: events.RateLimited, Message: "rate limit exceeded for this API key", RetryAfter: time.Second}
			},
		}))
	}
	api.POST("/links", r.createLink)
	api.GET("/links/:code", r.getLink)
	api.GET("/links/:code/stats", r.stats) // click analytics (region/clicks.go)
	api.PATCH("/links/:code", r.patchLink)
	api.DELETE("/links/:code", r.deleteLink)
	api.GET("/projection", r.projectionInfo)
	api.GET("/projection/digests", r.projectionDigests)             // audit: digests, checkpoints and bucket rows from one snapshot (region/audit.go)
	api.POST("/admin/cache/purge", r.purgeCache)                    // cache flush drill (region/admin.go)
	api.GET("/admin/projection/checkpoint", r.projectionCheckpoint) // shortener backup (region/admin.go)
	if r.cfg.FaultInjection {
		r.faultRoutes(api) // chaos runs only (region/faults.go)
	}
	methodNotAllowed(e, api, "/api/v1")

	e.GET("/:code", r.redirect)
	e.HEAD("/:code", r.redirect)
	return e, nil
}

func (r *Region) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get("X-Api-Key")
		if key == "" {
			if auth := c.Request().Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
				key = strings.TrimSpace(auth[7:])
			}
		}
		id := r.keys.check(key)
		if id == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="shortener"`)
			return r.limitMiss(c, limitAuth, events.Errorf(events.Unauthorized, "send a valid API key in X-Api-Key or Authorization: Bearer"))
		}
		c.Set(actorKey, id)
		return next(c)
	}
}

// redirect is the hot path: cache, else Pebble; never the event log.
func (r *Region) redirect(c echo.Context) error {
	code := c.Param("code")
	e, found, err := r.lookup(c.Request().Context(), code)
	if err != nil {
		return err
	}
	if !found {
		return r.limitMiss(c, limitNotFound, events.Errorf(events.NotFound, "no link with this code"))
	}
	now := r.cfg.Now()
	if !e.Servable(now) {
		if e.Deleted {
			return r.limitMiss(c, limitNotFound, events.Errorf(events.Gone, "this link was deleted"))
		}
		return r.limitMiss(c, limitNotFound, events.Errorf(events.Gone, "this link has expired"))
	}
	h := c.Response().Header()
	h[echo.HeaderLocation] = e.Location // shared: made once per cached entry
	h[echo.HeaderCacheControl] = r.cacheControl(e, now)
	c.Response().WriteHeader(int(e.Status))
	if r.clicks != nil && c.Request().Method == http.MethodGet {
		r.clicks.record(c, code, now)
	}
	return nil
}

// methodNotAllowed makes a wrong method on a known path of the group at
// prefix a 405 with Allow (after the group's middleware: a request without
// a key is still a 401). Echo does this for routes outside groups; inside
// one, the catch-all a group registers for its middleware answered 404.
func methodNotAllowed(e *echo.Echo, g *echo.Group, prefix string) {
	all := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range e.Routes() {
		rest, ok := strings.CutPrefix(rt.Path, prefix)
		if !ok || rest == "" || rest == "/*" || !slices.Contains(all, rt.Method) {
			continue
		}
		if allowed[rest] == nil {
			paths = append(paths, rest)
		}
		allowed[rest] = append(allowed[rest], rt.Method)
	}
	for _, path := range paths {
		var answers, others []string // in the order of all: e.Routes comes from maps
		for _, m := range all {
			if slices.Contains(allowed[path], m) {
				answers = append(answers, m)
			} else {
				others = append(others, m)
			}
		}
		allow := strings.Join(answers, ", ")
		g.Match(others, path, func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderAllow, allow)
			return &events.Error{Kind: kindMethodNotAllowed, Message: "this path answers " + allow}
		})
	}
}

// redirectCaching is what a redirect answers in Cache-Control, made once:
// a permanent redirect is kept for Config.RedirectMaxAge, a temporary one
// not at all.
type redirectCaching struct {
	permanent, temporary []string
	maxAge               time.Duration
}

func newRedirectCaching(maxAge time.Duration) redirectCaching {
	maxAge = max(maxAge, 0) // negative: max-age=0
	return redirectCaching{
		permanent: []string{"public, max-age=" + strconv.Itoa(int(maxAge/time.Second))},
		temporary: []string{"private, max-age=0"},
		maxAge:    maxAge,
	}
}

// cacheControl is the Cache-Control of a redirect to e: a permanent one
// is kept no longer than the link lives.
func (r *Region) cacheControl(e projections.Entry, now time.Time) []string {
	rc := &r.caching
	if e.Status != http.StatusMovedPermanently && e.Status != http.StatusPermanentRedirect {
		return rc.temporary
	}
	if e.ExpiresAt != 0 {
		if left := time.Duration(e.ExpiresAt - now.UnixNano()); left < rc.maxAge {
			return []string{"public, max-age=" + strconv.Itoa(int(left/time.Second))}
		}
	}
	return rc.permanent
}

// lookup returns the redirect entry of code from the cache, else from
// Pebble, counting the hit or miss (and with tracing on, a span for each).
func (r *Region) lookup(ctx context.Context, code string) (projections.Entry, bool, error) {
	t := r.tel
	_, span := t.span(ctx, "cache.lookup")
	e, hit := r.store.Cached(code)
	if span != nil {
		span.SetAttributes(attribute.Bool("cache.hit", hit))
		span.End()
	}
	if hit {
		t.cacheHits.Add(1)
		return e, true, nil
	}
	t.cacheMisses.Add(1)
	_, span = t.span(ctx, "pebble.read")
	e, found, err := r.store.Lookup(code)
	if span != nil {
		span.SetAttributes(attribute.Bool("found", found))
	}
	end(span, err)
	return e, found, err
}

// decodeJSON reads a JSON object into v, refusing unknown fields, trailing
// data and wrong types with an Invalid error naming the field.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return events.FieldError("body", "request body too large")
		}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return events.FieldError("body", "could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		var timeErr *time.ParseError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return events.FieldError("body", "must be a JSON object")
		case errors.As(err, &typeErr):
			return events.FieldError(typeErr.Field, "wrong type: want "+typeErr.Type.String())
		case errors.As(err, &timeErr):
			return events.FieldError("expires_at", "must be an RFC 3339 time")
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return events.FieldError("body", "not a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return events.FieldError(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
		}
		return events.FieldError("body", "not a valid JSON object")
	}
	if dec.More() {
		return events.FieldError("body", "trailing data after the JSON object")
	}
	return nil
}

func (r *Region) createLink(c echo.Context) error {
	var req CreateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	l, err := r.CreateLink(c.Request().Context(), c.Get(actorKey).(string), req)
	if err != nil {
		return err
	}
	c.Set(codeKey, l.Code)
	resp := r.linkResponse(l)
	c.Response().Header().Set(echo.HeaderLocation, resp.ShortURL)
	return c.JSON(http.StatusCreated, resp)
}

func (r *Region) getLink(c echo.Context) error {
	l, err := r.current(c.Param("code"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.linkResponse(l))
}

func (r *Region) patchLink(c echo.Context) error {
	code := c.Param("code")
	var req patchRequest
	if err := decodeJSON(c, &req); err != nil {
		// A missing or deleted link answers 404 or 410 whatever the body.
		if _, cerr := r.current(code); cerr != nil {
			return cerr
		}
		return err
	}
	u := UpdateRequest{URL: req.URL, RedirectStatus: req.RedirectStatus}
	var expiresErr error
	switch raw := strings.TrimSpace(string(req.ExpiresAt)); raw {
	case "":
	case "null":
		u.ClearExpiry = true
	default:
		var t time.Time
		if err := json.Unmarshal(req.ExpiresAt, &t); err != nil {
			expiresErr = events.FieldError("expires_at", "must be an RFC 3339 time or null")
		} else {
			u.ExpiresAt = &t
		}
	}
	l, err := r.updateLink(c.Request().Context(), c.Get(actorKey).(string), code, u, expiresErr)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.linkResponse(l))
}

func (r *Region) deleteLink(c echo.Context) error {
	if err := r.DeleteLink(c.Request().Context(), c.Get(actorKey).(string), c.Param("code")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (r *Region) linkResponse(l events.Link) LinkResponse {
	return LinkResponse{
		Code: l.Code, ShortURL: strings.TrimSuffix(r.cfg.PublicURL, "/") + "/" + l.Code, URL: l.URL,
		Region: l.Origin, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt, ExpiresAt: l.ExpiresAt,
		RedirectStatus: l.RedirectStatus, Alias: l.Alias,
	}
}

func (r *Region) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "region": r.cfg.Name})
}

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready      bool              `json:"ready"`
	Region     string            `json:"region"`
	Checks     map[string]string `json:"checks"`
	StreamLast uint64            `json:"stream_last_seq"`
	Applied    uint64            `json:"applied_seq"`
}

// Ready reports whether the region can serve: NATS connected, the
// projection caught up at start-up with the region's own stream and with
// every reachable peer's, and since then not stalled, and the projector not
// failing.
func (r *Region) Ready(ctx context.Context) Readiness {
	rd := Readiness{Ready: true, Region: r.cfg.Name, Checks: map[string]string{}}
	fail := func(check, why string) { rd.Ready = false; rd.Checks[check] = why }
	if r.nc == nil || !r.nc.IsConnected() {
		fail("nats", "not connected")
	} else {
		rd.Checks["nats"] = "ok"
	}
	rd.Applied = r.store.Checkpoint(r.stream)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if st, err := r.js.State(ctx, r.stream); err != nil {
		fail("stream", err.Error())
	} else {
		rd.StreamLast = st.LastSeq
		if why := r.catchup.own(rd.Applied, rd.StreamLast, r.cfg.Now()); why != "" {
			fail("projection", why)
		} else {
			rd.Checks["projection"] = "ok"
		}
	}
	if err := r.projector.Err(); err != nil {
		fail("projector", err.Error())
	}
	// A stream stopped at an event this binary does not understand is
	// reported but does not fail readiness: every region running this
	// binary stops at the same event, so failing would drain them all,
	// while each still serves everything before it.
	if halted := r.store.Halted(); len(halted) > 0 {
		var parts []string
		for _, stream := range slices.Sorted(maps.Keys(halted)) {
			h := halted[stream]
			parts = append(parts, fmt.Sprintf("%s stopped at #%d (%s)", stream, h.Seq, h.Reason))
		}
		rd.Checks["streams"] = "serving, but " + strings.Join(parts, "; ") + ": upgrade the binary (docs/runbooks/stream-halted.md)"
	}
	if why := r.caughtUpWithPeers(); why != "" {
		fail("peers", why)
	} else if len(r.cfg.Peers) > 0 {
		rd.Checks["peers"] = r.catchup.note
	}
	return rd
}

func (r *Region) readyz(c echo.Context) error {
	rd := r.Ready(c.Request().Context())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
		c.Response().Header().Set("Retry-After", "1")
	}
	return c.JSON(status, rd)
}

// RegionsResponse is the answer of GET /api/v1/regions: this region, its
// peers, and per origin region the lag and the RPO a failover would have.
type RegionsResponse struct {
	Region        string                 `json:"region"`
	Time          time.Time              `json:"time"`
	Durability    string                 `json:"durability"`
	Fsync         string                 `json:"fsync"`
	Peers         []string               `json:"peers"`
	AliasRegister string                 `json:"alias_register"` // "available" or "unavailable"
	Origins       []replicator.OriginLag `json:"origins"`
	// Rejected counts, by reason (events.Reasons), the records the
	// projection refused to fold since it was built: forged or malformed
	// events (docs/runbooks/events-rejected.md). Absent when none.
	Rejected map[events.Reason]uint64 `json:"rejected,omitempty"`
	// Halted names the streams the projection stopped at an event this
	// binary does not understand (docs/runbooks/stream-halted.md).
	Halted map[string]projections.Halt `json:"halted,omitempty"`
}

// Regions returns what GET /api/v1/regions serves.
func (r *Region) Regions(ctx context.Context) RegionsResponse {
	resp := RegionsResponse{Region: r.cfg.Name, Time: r.cfg.Now().UTC(), Durability: r.cfg.Durability,
		Fsync: string(r.cfg.Fsync), Peers: []string{}, AliasRegister: "unavailable", Origins: r.monitor.Snapshot()}
	if rej := r.store.Rejected(); len(rej) > 0 {
		resp.Rejected = rej
	}
	if h := r.store.Halted(); len(h) > 0 {
		resp.Halted = h
	}
	for _, p := range r.cfg.Peers {
		resp.Peers = append(resp.Peers, p.Name)
	}
	if r.aliases.Available(ctx) {
		resp.AliasRegister = "available"
	}
	return resp
}

func (r *Region) regions(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	return c.JSON(http.StatusOK, r.Regions(ctx))
}

// ProjectionInfo is the answer of GET /api/v1/projection: what auditors and
// tests compare across regions.
type ProjectionInfo struct {
	Region      string            `json:"region"`
	Digest      string            `json:"digest"` // SHA-256 over every link row
	Links       int               `json:"links"`
	Checkpoints map[string]uint64 `json:"checkpoints"` // last applied sequence per stream
	Skipped     uint64            `json:"skipped"`     // records refused at the fold: the sum of Rejected
	// Rejected counts the records refused at the fold by reason.
	Rejected map[events.Reason]uint64 `json:"rejected,omitempty"`
}

func (r *Region) projectionInfo(c echo.Context) error {
	digest, err := r.store.Digest()
	if err != nil {
		return err
	}
	n, err := r.store.Count()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ProjectionInfo{Region: r.cfg.Name, Digest: digest, Links: n,
		Checkpoints: r.store.Checkpoints(), Skipped: r.store.Skipped(), Rejected: r.store.Rejected()})
}
