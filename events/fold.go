package events

import (
	"slices"
	"time"
)

// Link is the state of one link after folding its events.
type Link struct {
	Code           string     `json:"code"`
	URL            string     `json:"url"`
	RedirectStatus int        `json:"redirect_status"`
	Alias          bool       `json:"alias,omitempty"`
	Origin         string     `json:"origin"` // the region that created it
	Actor          string     `json:"actor,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	Deleted        bool       `json:"deleted,omitempty"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"`

	// Last is the (Time, ID) of the last event folded in, whether or not it
	// changed anything: the position from which the fold can go on
	// incrementally, and the floor for the time of the next event.
	LastTime time.Time `json:"last_time"`
	LastID   string    `json:"last_id"`
	Events   int       `json:"events"` // how many distinct events were folded
}

// Exists reports whether a LinkCreated has been folded in.
func (l Link) Exists() bool { return l.Code != "" && l.URL != "" }

// Expired reports whether the link has an expiry at or before now.
func (l Link) Expired(now time.Time) bool {
	return l.ExpiresAt != nil && !now.Before(*l.ExpiresAt)
}

// Servable reports whether the link redirects at now: it exists, is not
// deleted and has not expired.
func (l Link) Servable(now time.Time) bool {
	return l.Exists() && !l.Deleted && !l.Expired(now)
}

// Before reports whether event a folds before event b: by producer time,
// then by ID. Every region sorts by this, so every region folds the events
// of a code in the same order whatever order they arrived in.
func Before(a, b Envelope) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.ID < b.ID
}

// After reports whether e folds after the last event already in l, so that
// Apply(l, e) equals a fold of all of l's events plus e.
func (l Link) After(e Envelope) bool {
	if l.Events == 0 {
		return true
	}
	if !e.Time.Equal(l.LastTime) {
		return e.Time.After(l.LastTime)
	}
	return e.ID > l.LastID
}

// NextTime is the producer time for a new event on l: now, or just after the
// last event of l when the local clock is behind it. Causally later events
// thus always fold later, even across regions with skewed clocks.
func NextTime(now time.Time, l Link) time.Time {
	now = now.UTC()
	if l.Events > 0 && !now.After(l.LastTime) {
		return l.LastTime.Add(time.Microsecond)
	}
	return now
}

// Apply folds one event into l and returns the new state. Rules, in fold
// order: the first LinkCreated creates the link and any later one for the
// same code is ignored; updates and deletes before a create, or after a
// delete, are ignored; a delete is final. An event that is not valid leaves
// l unchanged apart from the position. Apply never fails.
func Apply(l Link, e Envelope) Link {
	payload, err := e.decodePayload()
	if err == nil && e.Code != "" && (l.Code == "" || l.Code == e.Code) {
		l = apply(l, e, payload)
	}
	if l.Events == 0 || l.After(e) {
		l.LastTime, l.LastID = e.Time, e.ID
	}
	l.Events++
	return l
}

func apply(l Link, e Envelope, pl payload) Link {
	switch e.Type {
	case TypeLinkCreated:
		p := pl.created
		if l.Exists() {
			return l
		}
		l.Code = e.Code
		l.URL = p.URL
		l.RedirectStatus = p.RedirectStatus
		l.Alias = p.Alias
		l.Origin = e.Origin
		l.Actor = e.Actor
		l.CreatedAt = e.Time
		l.UpdatedAt = e.Time
		l.ExpiresAt = cloneTime(p.ExpiresAt)
	case TypeLinkUpdated:
		p := pl.updated
		if !l.Exists() || l.Deleted {
			return l
		}
		if p.URL != nil {
			l.URL = *p.URL
		}
		if p.RedirectStatus != nil {
			l.RedirectStatus = *p.RedirectStatus
		}
		if p.ClearExpiry {
			l.ExpiresAt = nil
		}
		if p.ExpiresAt != nil {
			l.ExpiresAt = cloneTime(p.ExpiresAt)
		}
		l.UpdatedAt = e.Time
	case TypeLinkDeleted:
		if !l.Exists() || l.Deleted {
			return l
		}
		t := e.Time
		l.Deleted = true
		l.DeletedAt = &t
		l.UpdatedAt = e.Time
	}
	return l
}

// Fold returns the state of a link from all of its events, in any order and
// with duplicates: it sorts them with Before and applies each ID once.
func Fold(evs []Envelope) Link {
	sorted := slices.Clone(evs)
	slices.SortFunc(sorted, func(a, b Envelope) int {
		switch {
		case Before(a, b):
			return -1
		case Before(b, a):
			return 1
		}
		return 0
	})
	var l Link
	for i, e := range sorted {
		if i > 0 && sorted[i-1].ID == e.ID {
			continue
		}
		l = Apply(l, e)
	}
	return l
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
