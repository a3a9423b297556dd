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

type createRequest struct {
	URL            string     `json:"url"`
	Alias          string     `json:"alias"`
	ExpiresAt      *time.Time `json:"expires_at"`
	RedirectStatus int        `json:"redirect_status"`
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
	e.IPExtractor = echo.ExtractIPDirect() // never trust X-Forwarded-For from clients
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
	e.Use(r.observe)
	e.Use(middleware.Recover())

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
			return events.Errorf(events.Unauthorized, "send a valid API key in X-Api-Key or Authorization: Bearer")
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
		return events.Errorf(events.NotFound, "no link with this code")
	}
	now := r.cfg.Now()
	if !e.Servable(now) {
		if e.Deleted {
			return events.Errorf(events.Gone, "this link was deleted")
		}
		return events.Errorf(events.Gone, "this link has expired")
	}
	c.Response().Header().Set(echo.HeaderLocation, e.URL)
	c.Response().WriteHeader(int(e.Status))
	if r.clicks != nil && c.Request().Method == http.MethodGet {
		r.clicks.record(c, code, now)
	}
	return nil
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
		t.cacheLookup.Add(ctx, 1, t.hit...)
		return e, true, nil
	}
	t.cacheLookup.Add(ctx, 1, t.miss...)
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
	var req createRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	now := r.cfg.Now()
	url, err := events.NormalizeURL(req.URL, r.cfg.MaxURLLen)
	if err != nil {
		return err
	}
	if req.Alias != "" {
		if err := events.ValidateAlias(req.Alias); err != nil {
			return err
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
		return events.FieldError("expires_at", "must be in the future")
	}
	if req.RedirectStatus == 0 {
		req.RedirectStatus = events.DefaultRedirectStatus
	} else if !events.ValidRedirectStatus(req.RedirectStatus) {
		return events.FieldError("redirect_status", "must be 301, 302, 307 or 308")
	}
	payload := events.LinkCreated{URL: url, Alias: req.Alias != "", ExpiresAt: req.ExpiresAt, RedirectStatus: req.RedirectStatus}
	actor := c.Get(actorKey).(string)

	ctx, cancel := context.WithTimeout(c.Request().Context(), r.cfg.CreateTimeout)
	defer cancel()
	var code string
	for attempt := 0; ; attempt++ {
		code = req.Alias
		if code == "" {
			code = events.NewCode(r.cfg.Digit)
		}
		env, err := events.New(events.TypeLinkCreated, code, r.cfg.Name, actor, now, payload)
		if err != nil {
			return err
		}
		if req.Alias != "" {
			// The register decides, before anything is written: one winner
			// across every region, 409 for the rest, 503 without quorum.
			claim := replicator.AliasClaim{Region: r.cfg.Name, EventID: env.ID, Time: env.Time}
			sctx, span := r.tel.span(ctx, "alias.claim")
			err := r.aliases.Claim(sctx, req.Alias, claim)
			end(span, err)
			if err != nil {
				return err
			}
			// Remembered until the link is applied here: if the event is
			// never written (a crash or a failed append right after the
			// claim), the claim is released instead of holding the alias
			// forever (region/claims.go).
			if err := r.store.PutClaim(projections.PendingClaim{Alias: req.Alias, EventID: env.ID, Time: r.cfg.Now()}); err != nil {
				// Nothing written and nothing to reconcile from: give the
				// alias back now, or no link could ever have it.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				if _, rerr := r.aliases.Release(rctx, req.Alias, env.ID); rerr != nil {
					r.log.Error("alias claimed, its claim not recorded and not released", "alias", req.Alias, "event", env.ID, "err", rerr)
				}
				cancel()
				return &events.Error{Kind: events.Unavailable, RetryAfter: time.Second, Err: err,
					Message: "the region cannot record the alias claim now; try again"}
			}
		}
		var seq uint64
		seq, err = r.write(ctx, env, true)
		if err == nil && r.cfg.Durability == DurabilityReplicated {
			err = r.replication.Wait(ctx, seq)
		}
		if events.KindOf(err) == events.Conflict {
			if req.Alias != "" {
				return &events.Error{Kind: events.Conflict, Field: "alias", Message: "this alias is already taken"}
			}
			if attempt < 5 {
				continue // a generated code drawn twice: draw again
			}
		}
		if err != nil {
			return err
		}
		break
	}
	if req.Alias != "" {
		_ = r.store.DropClaim(req.Alias) // applied: nothing left to reconcile
	}
	l, found, err := r.store.Get(code)
	if err != nil {
		return err
	}
	if !found {
		return events.Errorf(events.Internal, "link %s applied but not found", code)
	}
	c.Set(codeKey, code)
	resp := r.linkResponse(l)
	c.Response().Header().Set(echo.HeaderLocation, resp.ShortURL)
	return c.JSON(http.StatusCreated, resp)
}

// write appends e and waits until the local projection has applied it.
func (r *Region) write(ctx context.Context, e events.Envelope, create bool) (uint64, error) {
	t := r.tel
	start := time.Now()
	pctx, span := t.span(ctx, "jetstream.publish", attribute.String("stream", r.stream), attribute.String("event.type", string(e.Type)))
	seq, err := r.events.Append(pctx, e, create)
	if span != nil && err == nil {
		span.SetAttributes(attribute.Int64("stream.seq", int64(seq)))
	}
	end(span, err)
	if err != nil {
		t.publishDur.Record(ctx, time.Since(start).Seconds(), t.publishErr...)
		return 0, err
	}
	t.publishDur.Record(ctx, time.Since(start).Seconds(), t.publishOK...)
	start = time.Now()
	wctx, span := t.span(ctx, "projection.wait", attribute.Int64("stream.seq", int64(seq)))
	err = r.store.WaitApplied(wctx, r.stream, seq)
	end(span, err)
	if err != nil {
		t.waitDur.Record(ctx, time.Since(start).Seconds(), t.waitErr...)
	} else {
		t.waitDur.Record(ctx, time.Since(start).Seconds(), t.waitOK...)
	}
	if err != nil {
		return seq, &events.Error{Kind: events.Unavailable, RetryAfter: time.Second, Err: err,
			Message: "the change is stored in the event log but not yet applied here; it will be shortly (code " + e.Code + ")"}
	}
	return seq, nil
}

// current returns the live state of code for an update or a delete: NotFound
// if it was never created, Gone if deleted.
func (r *Region) current(code string) (events.Link, error) {
	if err := events.ValidateCode(code); err != nil {
		return events.Link{}, events.Errorf(events.NotFound, "no link with this code")
	}
	l, found, err := r.store.Get(code)
	if err != nil {
		return l, err
	}
	if !found {
		return l, events.Errorf(events.NotFound, "no link with this code")
	}
	if l.Deleted {
		return l, events.Errorf(events.Gone, "this link was deleted")
	}
	return l, nil
}

func (r *Region) getLink(c echo.Context) error {
	l, err := r.current(c.Param("code"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.linkResponse(l))
}

func (r *Region) patchLink(c echo.Context) error {
	l, err := r.current(c.Param("code"))
	if err != nil {
		return err
	}
	var req patchRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	now := r.cfg.Now()
	var p events.LinkUpdated
	if req.URL != nil {
		url, err := events.NormalizeURL(*req.URL, r.cfg.MaxURLLen)
		if err != nil {
			return err
		}
		p.URL = &url
	}
	if req.RedirectStatus != nil {
		if !events.ValidRedirectStatus(*req.RedirectStatus) {
			return events.FieldError("redirect_status", "must be 301, 302, 307 or 308")
		}
		p.RedirectStatus = req.RedirectStatus
	}
	switch raw := strings.TrimSpace(string(req.ExpiresAt)); raw {
	case "":
	case "null":
		p.ClearExpiry = true
	default:
		var t time.Time
		if err := json.Unmarshal(req.ExpiresAt, &t); err != nil {
			return events.FieldError("expires_at", "must be an RFC 3339 time or null")
		}
		if !t.After(now) {
			return events.FieldError("expires_at", "must be in the future")
		}
		p.ExpiresAt = &t
	}
	if p.URL == nil && p.RedirectStatus == nil && p.ExpiresAt == nil && !p.ClearExpiry {
		return events.FieldError("body", "nothing to change: give url, expires_at or redirect_status")
	}
	if err := r.change(c, l, events.TypeLinkUpdated, now, p); err != nil {
		return err
	}
	l, _, err = r.store.Get(l.Code)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.linkResponse(l))
}

func (r *Region) deleteLink(c echo.Context) error {
	l, err := r.current(c.Param("code"))
	if err != nil {
		return err
	}
	if err := r.change(c, l, events.TypeLinkDeleted, r.cfg.Now(), events.LinkDeleted{}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// change writes an update or a delete of the existing link l, timed to fold
// after l's last event, and waits until the local projection applied it.
func (r *Region) change(c echo.Context, l events.Link, typ events.Type, now time.Time, payload any) error {
	env, err := events.New(typ, l.Code, r.cfg.Name, c.Get(actorKey).(string), events.NextTime(now, l), payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), r.cfg.CreateTimeout)
	defer cancel()
	_, err = r.write(ctx, env, false)
	return err
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
	if info, err := r.streamH.Info(ctx); err != nil {
		fail("stream", err.Error())
	} else {
		rd.StreamLast = info.State.LastSeq
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
