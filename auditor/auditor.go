package auditor

import (
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

	"github.com/nats-io/nats.go"

	"shortener/events"
	"shortener/replicator"
)

// Options say which cluster an Auditor reads and how it reports.
type Options struct {
	// NATS is the supercluster's NATS URLs, comma-separated (any one
	// reachable server will do).
	NATS string
	// NATSOptions authenticate the connection (the audit tool user's
	// credentials); Open adds its name, timeout and reconnects.
	NATSOptions []nats.Option
	// Endpoints maps a region's name to its API's base URL
	// (http://host:port, no trailing slash).
	Endpoints map[string]string
	// APIKey returns the API key the regions' APIs are called with. It is
	// called on each request, and only then: a command that asks no API
	// needs no key.
	APIKey func() (string, error)
	// Digits is every region's digit, as the regions were given it; nil
	// means events.DefaultDigits.
	Digits map[string]byte
	// Keys are the regions' keys (the users table): a replay refuses an
	// event not signed by its origin, as the regions do. Nil checks no
	// signatures (a cluster run without credentials).
	Keys *events.KeyRing
	// JSON makes the reports JSON (lines) instead of text.
	JSON bool
	// Progress receives progress lines (nil: discarded).
	Progress io.Writer
}

// Auditor reads the event log of a running cluster and the regions'
// projections, and checks one against the other. Open it, Close it.
type Auditor struct {
	nc        *nats.Conn
	js        *replicator.Conn
	log       replicator.LogCopies
	progress  io.Writer
	endpoints map[string]string
	api       API
	json      bool
	rules     events.Rules // what every replayed event is checked against
}

// Rules are what every event the auditor replays is checked against, as
// the regions check it when they fold: the one place the auditor builds
// its events.Rules (digits nil: events.DefaultDigits; keys nil: no
// signatures checked).
func Rules(digits map[string]byte, keys *events.KeyRing) events.Rules {
	return events.Rules{Digits: digits, Keys: keys}
}

// Open connects to the NATS of o and lists the copies of the event log
// (every LINKS_* stream). It fails when no copy is found.
func Open(ctx context.Context, o Options) (*Auditor, error) {
	a := &Auditor{progress: o.Progress, endpoints: maps.Clone(o.Endpoints), json: o.JSON, rules: Rules(o.Digits, o.Keys),
		api: API{Client: &http.Client{Timeout: time.Minute}, Key: o.APIKey}}
	if a.progress == nil {
		a.progress = io.Discard
	}
	if a.endpoints == nil {
		a.endpoints = map[string]string{}
	}
	nc, err := nats.Connect(o.NATS, append(slices.Clip(o.NATSOptions), nats.Name("shortener audit"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w (is the cluster running: make run?)", o.NATS, err)
	}
	a.nc = nc
	if a.js, err = replicator.Connect(nc); err != nil {
		nc.Close()
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if a.log, err = replicator.DiscoverLog(dctx, a.js); err != nil {
		nc.Close()
		return nil, err
	}
	if len(a.log) == 0 {
		nc.Close()
		return nil, fmt.Errorf("no event log (LINKS_* streams) at %s", o.NATS)
	}
	return a, nil
}

// Close closes the connection to NATS.
func (a *Auditor) Close() { a.nc.Close() }

// API calls regions' HTTP APIs with the API key.
type API struct {
	Client *http.Client
	// Key returns the API key; called on each request.
	Key func() (string, error)
}

// Get fetches a region's API path (base is its base URL) as JSON into v;
// status is the HTTP status (0 when no answer came). Any status but 200
// is an error.
func (c API) Get(ctx context.Context, base, path string, v any) (status int, err error) {
	if c.Key == nil {
		return 0, errors.New("API key: none given")
	}
	key, err := c.Key()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, fmt.Errorf("GET %s%s: status %d: %s", base, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}
