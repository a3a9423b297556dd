package region

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// The link workflow: create, update and delete as methods that the HTTP
// handlers (region/http.go) and any other caller share. Each validates,
// appends its event through the region's signed log, and returns only once
// the local projection has applied it (read-your-writes).

// CreateRequest is a link to create, as POST /api/v1/links takes it.
type CreateRequest struct {
	URL            string     `json:"url"`
	Alias          string     `json:"alias"`      // empty for a generated code
	ExpiresAt      *time.Time `json:"expires_at"` // nil for a link that never expires
	RedirectStatus int        `json:"redirect_status"`
}

// UpdateRequest is a change to a link; nil fields stay as they are.
type UpdateRequest struct {
	URL            *string
	ExpiresAt      *time.Time // a new expiry, in the future
	ClearExpiry    bool       // remove the expiry (not with ExpiresAt)
	RedirectStatus *int
}

// CreateLink creates the link req describes on behalf of actor and returns
// it as the local projection applied it. An alias is claimed in the alias
// register before anything is written, and the claim is given back if it
// cannot be recorded; a generated code drawn twice is drawn again. In
// replicated durability it also waits until another region holds the event.
// The whole create is bounded by Config.CreateTimeout.
//
// Errors (events.Error kinds): Invalid for a bad URL, alias, expiry or
// redirect status (with the field); Conflict when the alias is taken;
// Unavailable, with a retry delay, when the alias register has no quorum,
// the claim cannot be recorded, the event log does not answer, the event is
// stored but not yet applied here, or (replicated) no other region holds it
// yet; Internal otherwise.
func (r *Region) CreateLink(ctx context.Context, actor string, req CreateRequest) (events.Link, error) {
	now := r.cfg.Now()
	url, err := events.NormalizeURL(req.URL, r.cfg.MaxURLLen)
	if err != nil {
		return events.Link{}, err
	}
	if err := r.targets.check(url); err != nil {
		return events.Link{}, err
	}
	if req.Alias != "" {
		if err := events.ValidateAlias(req.Alias); err != nil {
			return events.Link{}, err
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
		return events.Link{}, events.FieldError("expires_at", "must be in the future")
	}
	if req.RedirectStatus == 0 {
		req.RedirectStatus = events.DefaultRedirectStatus
	} else if !events.ValidRedirectStatus(req.RedirectStatus) {
		return events.Link{}, events.FieldError("redirect_status", "must be 301, 302, 307 or 308")
	}
	payload := events.LinkCreated{URL: url, Alias: req.Alias != "", ExpiresAt: req.ExpiresAt, RedirectStatus: req.RedirectStatus}

	ctx, cancel := context.WithTimeout(ctx, r.cfg.CreateTimeout)
	defer cancel()
	var code string
	for attempt := 0; ; attempt++ {
		code = req.Alias
		if code == "" {
			code = events.NewCode(r.cfg.Digit)
		}
		env, err := events.New(events.TypeLinkCreated, code, r.cfg.Name, actor, now, payload)
		if err != nil {
			return events.Link{}, err
		}
		if req.Alias != "" {
			if err := r.claimAlias(ctx, req.Alias, env); err != nil {
				return events.Link{}, err
			}
		}
		var seq uint64
		seq, err = r.write(ctx, env, true)
		if err == nil && r.cfg.Durability == DurabilityReplicated {
			err = r.replication.Wait(ctx, seq)
		}
		if events.KindOf(err) == events.Conflict {
			if req.Alias != "" {
				return events.Link{}, &events.Error{Kind: events.Conflict, Field: "alias", Message: "this alias is already taken"}
			}
			if attempt < 5 {
				continue // a generated code drawn twice: draw again
			}
		}
		if err != nil {
			return events.Link{}, err
		}
		break
	}
	if req.Alias != "" {
		_ = r.store.DropClaim(req.Alias) // applied: nothing left to reconcile
	}
	l, found, err := r.store.Get(code)
	if err != nil {
		return events.Link{}, err
	}
	if !found {
		return events.Link{}, events.Errorf(events.Internal, "link %s applied but not found", code)
	}
	return l, nil
}

// claimAlias claims alias for the create env in the alias register and
// records the claim until the link is applied here.
func (r *Region) claimAlias(ctx context.Context, alias string, env events.Envelope) error {
	// The register decides, before anything is written: one winner
	// across every region, 409 for the rest, 503 without quorum.
	claim := replicator.AliasClaim{Region: r.cfg.Name, EventID: env.ID, Time: env.Time}
	sctx, span := r.tel.span(ctx, "alias.claim")
	err := r.aliases.Claim(sctx, alias, claim)
	end(span, err)
	if err != nil {
		return err
	}
	// Remembered until the link is applied here: if the event is
	// never written (a crash or a failed append right after the
	// claim), the claim is released instead of holding the alias
	// forever (region/claims.go).
	if err := r.store.PutClaim(projections.PendingClaim{Alias: alias, EventID: env.ID, Time: r.cfg.Now()}); err != nil {
		// Nothing written and nothing to reconcile from: give the
		// alias back now, or no link could ever have it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if _, rerr := r.aliases.Release(rctx, alias, env.ID); rerr != nil {
			r.log.Error("alias claimed, its claim not recorded and not released", "alias", alias, "event", env.ID, "err", rerr)
		}
		cancel()
		return &events.Error{Kind: events.Unavailable, RetryAfter: time.Second, Err: err,
			Message: "the region cannot record the alias claim now; try again"}
	}
	return nil
}

// UpdateLink applies req to the link code on behalf of actor and returns
// the link as the local projection applied it. The change is timed to fold
// after the link's last event. It does not wait for replication, whatever
// the durability.
//
// Errors (events.Error kinds): NotFound if code was never created; Gone if
// it was deleted; Invalid for a bad URL, expiry or redirect status, or a
// request that changes nothing; Unavailable, with a retry delay, when the
// event log does not answer or the change is stored but not yet applied
// here; Internal otherwise.
func (r *Region) UpdateLink(ctx context.Context, actor, code string, req UpdateRequest) (events.Link, error) {
	return r.updateLink(ctx, actor, code, req, nil)
}

// updateLink is UpdateLink for the handler, which hands in expiresErr, its
// failure to read expires_at, to be reported in its turn among the checks
// (after the link's existence, the URL and the status).
func (r *Region) updateLink(ctx context.Context, actor, code string, req UpdateRequest, expiresErr error) (events.Link, error) {
	l, err := r.current(code)
	if err != nil {
		return events.Link{}, err
	}
	now := r.cfg.Now()
	var p events.LinkUpdated
	if req.URL != nil {
		url, err := events.NormalizeURL(*req.URL, r.cfg.MaxURLLen)
		if err != nil {
			return events.Link{}, err
		}
		if err := r.targets.check(url); err != nil {
			return events.Link{}, err
		}
		p.URL = &url
	}
	if req.RedirectStatus != nil {
		if !events.ValidRedirectStatus(*req.RedirectStatus) {
			return events.Link{}, events.FieldError("redirect_status", "must be 301, 302, 307 or 308")
		}
		p.RedirectStatus = req.RedirectStatus
	}
	switch {
	case expiresErr != nil:
		return events.Link{}, expiresErr
	case req.ClearExpiry && req.ExpiresAt != nil:
		return events.Link{}, events.FieldError("expires_at", "give a new expiry or clear it, not both")
	case req.ClearExpiry:
		p.ClearExpiry = true
	case req.ExpiresAt != nil:
		if !req.ExpiresAt.After(now) {
			return events.Link{}, events.FieldError("expires_at", "must be in the future")
		}
		p.ExpiresAt = req.ExpiresAt
	}
	if p.URL == nil && p.RedirectStatus == nil && p.ExpiresAt == nil && !p.ClearExpiry {
		return events.Link{}, events.FieldError("body", "nothing to change: give url, expires_at or redirect_status")
	}
	if err := r.change(ctx, actor, l, events.TypeLinkUpdated, now, p); err != nil {
		return events.Link{}, err
	}
	l, _, err = r.store.Get(l.Code)
	return l, err
}

// DeleteLink deletes the link code on behalf of actor. It does not wait for
// replication, whatever the durability.
//
// Errors (events.Error kinds): NotFound if code was never created; Gone if
// it is already deleted; Unavailable, with a retry delay, when the event
// log does not answer or the delete is stored but not yet applied here;
// Internal otherwise.
func (r *Region) DeleteLink(ctx context.Context, actor, code string) error {
	l, err := r.current(code)
	if err != nil {
		return err
	}
	return r.change(ctx, actor, l, events.TypeLinkDeleted, r.cfg.Now(), events.LinkDeleted{})
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

// change writes an update or a delete of the existing link l, timed to fold
// after l's last event, and waits until the local projection applied it.
func (r *Region) change(ctx context.Context, actor string, l events.Link, typ events.Type, now time.Time, payload any) error {
	env, err := events.New(typ, l.Code, r.cfg.Name, actor, events.NextTime(now, l), payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CreateTimeout)
	defer cancel()
	_, err = r.write(ctx, env, false)
	return err
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
