package load

import (
	"errors"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"time"
)

// Default values applied by Run to zero fields of Config.
const (
	DefaultWorkers   = 64
	DefaultTimeout   = 5 * time.Second
	DefaultURLPrefix = "https://example.com/load/"
	// DefaultResolveTimeout bounds one DNS query of a DNS target.
	DefaultResolveTimeout = time.Second
	// DefaultRegionsInterval is how often Run polls each Config.Regions
	// entry's GET /api/v1/regions into the history.
	DefaultRegionsInterval = 500 * time.Millisecond
)

// maxBacklogCap bounds the default backlog so the op queue (allocated up
// front) stays small even at very high rates.
const maxBacklogCap = 1 << 18

// Target is one client of the service under load: either a fixed region
// (BaseURL names it) or, with DNS set, the clients of one home region that
// find their region through the DNS switch.
type Target struct {
	// Name is the target's name, e.g. "us-east" (for a DNS target, the
	// home region of its clients); it keys Report.Targets and is the
	// history's "target". Empty means BaseURL.
	Name string
	// BaseURL is the service's base URL, e.g. "http://127.0.1.1:8080", or
	// with DNS "http://short.test:8080": its host is then resolved through
	// DNS and requests go to the answer's address at the URL's port, with
	// the URL's host in the Host header.
	BaseURL string
	// LocalAddr is an optional source IP to bind outgoing connections to,
	// e.g. "127.0.1.10"; "" lets the kernel choose. With DNS it is also the
	// source of the DNS queries, so the switch sees the client's home.
	LocalAddr string
	// DNS is the host:port of the DNS server that resolves BaseURL's host
	// (UDP, TCP when the answer is truncated), e.g. "127.0.0.1:8053"; ""
	// dials BaseURL's host as is. The first A record of the answer is used
	// for exactly its TTL (at least MinTTL), then the name is resolved again
	// in the background; a failed resolve keeps the last answer, is counted
	// in TargetReport.DNS and retried every RetryResolve. When the address
	// changes, new requests go to the new one: a worker's lean connection to
	// the old address is closed at its next use and net/http's idle ones at
	// once.
	DNS string
}

// Config describes one load run. Zero fields get the documented defaults.
type Config struct {
	// Targets are the regions to drive; operations are spread over them
	// round-robin (operation i goes to Targets[i%len(Targets)]).
	Targets []Target
	// Rate is the total intended operations per second across all targets
	// (open loop). 0 selects closed loop: every worker sends its next
	// operation as soon as the previous one completes (peak throughput).
	Rate float64
	// Duration is how long operations are scheduled for.
	Duration time.Duration
	// Workers is the number of concurrent in-flight requests (and so the
	// connection count per target); default DefaultWorkers.
	Workers int
	// CreateRatio is the share of operations (0..1) that are creates; the
	// rest are redirects.
	CreateRatio float64
	// AliasRatio is the share of operations (0..1, at most 1 -
	// CreateRatio) that claim a custom alias: creates with "alias", which
	// several operations contend for. Operation i claims AliasPrefix +
	// (i / AliasSpan in base 36): every name is fought over by the claims
	// of AliasSpan consecutive operations, spread over the targets, so
	// names are contended all through the run. An alias won is added to
	// the pool of the target that won it.
	AliasRatio float64
	// AliasPrefix starts every alias claimed (a letter first; the names
	// must be new to the service). Default "a".
	AliasPrefix string
	// AliasSpan is how many consecutive operations share an alias name;
	// default 50.
	AliasSpan int64
	// Codes is the initial pool of short codes for redirects, chosen
	// uniformly at random (seeded). Codes created during the run are added
	// to the pool of the target that created them. While a target's pool is
	// empty, a redirect drawn for it is sent as a create instead.
	Codes []string
	// APIKey is sent as X-Api-Key on creates.
	APIKey string
	// URLPrefix is the prefix of the long URLs created; a random suffix is
	// appended. Default DefaultURLPrefix.
	URLPrefix string
	// Seed seeds the operation sequence (kinds, codes, URL suffixes).
	Seed int64
	// History, when non-nil, receives every sent operation as one JSON line.
	History io.Writer
	// Progress, when non-nil, receives one human-readable line per second.
	Progress io.Writer
	// Timeout bounds each request; default DefaultTimeout.
	Timeout time.Duration
	// MaxBacklog bounds the number of open-loop operations that are due but
	// not yet picked up by a worker. An operation that finds the backlog
	// full is not sent and is counted as Missed. Default: one second of
	// operations at Rate, at least 1024 (capped at 262144). Ignored in
	// closed loop.
	MaxBacklog int
	// StdHTTP sends every operation with net/http. By default redirects to
	// http:// targets go through a lean HTTP/1.1 keep-alive client (one
	// connection per worker and target, no allocations per request) so the
	// generator is not the bottleneck of a peak-throughput measurement;
	// creates and https targets always use net/http.
	StdHTTP bool
	// ResolveTimeout bounds one DNS query; default DefaultResolveTimeout.
	ResolveTimeout time.Duration
	// Regions are the regions of the service by name and base URL. They
	// name the region behind an address (the "region" of history records,
	// progress and Second.Region: the region whose BaseURL has that
	// address's host and port) and, while History is set, Run polls each
	// one's GET /api/v1/regions every RegionsInterval and records the
	// answer as a "regions" history record.
	Regions []Region
	// RegionsInterval is the polling interval of Regions; default
	// DefaultRegionsInterval, negative disables polling.
	RegionsInterval time.Duration
	// AcceptRedirect, when set, decides whether a redirect's answer counts
	// as a success (OK) instead of any 301/302/307/308: it gets the code
	// requested, the status and the Location header (valid only during the
	// call; empty when there was none). It runs on the worker's hot path,
	// for every answer of every redirect, from many goroutines at once: it
	// must be quick, safe for concurrent use and should not allocate.
	AcceptRedirect func(code string, status int, location []byte) bool
}

// Region is one region of the service.
type Region struct {
	// Name is the region's name, e.g. "eu-west".
	Name string
	// BaseURL is the region's own base URL, e.g. "http://127.0.2.1:8080".
	BaseURL string
}

// normalize validates cfg and returns it with defaults applied.
func (cfg Config) normalize() (Config, error) {
	if len(cfg.Targets) == 0 {
		return cfg, errors.New("load: no targets")
	}
	if cfg.Duration <= 0 {
		return cfg, errors.New("load: Duration must be positive")
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return cfg, errors.New("load: Rate must be a finite number >= 0")
	}
	if !(cfg.CreateRatio >= 0 && cfg.CreateRatio <= 1) {
		return cfg, errors.New("load: CreateRatio must be in [0, 1]")
	}
	if !(cfg.AliasRatio >= 0 && cfg.AliasRatio <= 1-cfg.CreateRatio) {
		return cfg, errors.New("load: AliasRatio must be in [0, 1 - CreateRatio]")
	}
	if cfg.AliasPrefix == "" {
		cfg.AliasPrefix = "a"
	}
	if cfg.AliasSpan <= 0 {
		cfg.AliasSpan = 50
	}
	if cfg.CreateRatio == 0 && len(cfg.Codes) == 0 {
		return cfg, errors.New("load: no Codes to redirect and CreateRatio is 0")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.URLPrefix == "" {
		cfg.URLPrefix = DefaultURLPrefix
	}
	if cfg.MaxBacklog <= 0 {
		b := math.Max(1024, math.Min(cfg.Rate, maxBacklogCap))
		cfg.MaxBacklog = int(b)
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = DefaultResolveTimeout
	}
	if cfg.RegionsInterval == 0 {
		cfg.RegionsInterval = DefaultRegionsInterval
	}
	for _, rg := range cfg.Regions {
		if rg.Name == "" {
			return cfg, errors.New("load: a region without a name")
		}
		if _, err := parseBase(rg.BaseURL); err != nil {
			return cfg, errors.New("load: region " + rg.Name + ": " + err.Error())
		}
	}
	ts := make([]Target, len(cfg.Targets))
	seen := make(map[string]bool, len(ts))
	for i, t := range cfg.Targets {
		if t.Name == "" {
			t.Name = t.BaseURL
		}
		if seen[t.Name] {
			return cfg, errors.New("load: duplicate target name " + t.Name)
		}
		seen[t.Name] = true
		if t.LocalAddr != "" && net.ParseIP(t.LocalAddr) == nil {
			return cfg, errors.New("load: target " + t.Name + ": LocalAddr is not an IP: " + t.LocalAddr)
		}
		if _, err := parseBase(t.BaseURL); err != nil {
			return cfg, errors.New("load: target " + t.Name + ": " + err.Error())
		}
		if t.DNS != "" {
			if _, port, err := net.SplitHostPort(t.DNS); err != nil || port == "" {
				return cfg, errors.New("load: target " + t.Name + ": DNS is not host:port: " + t.DNS)
			}
		}
		ts[i] = t
	}
	cfg.Targets = ts
	return cfg, nil
}

// parseBase parses a target base URL; the path loses its trailing slashes.
func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("BaseURL must be http or https: " + s)
	}
	if u.Host == "" {
		return nil, errors.New("BaseURL has no host: " + s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
