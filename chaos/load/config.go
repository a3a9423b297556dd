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
)

// maxBacklogCap bounds the default backlog so the op queue (allocated up
// front) stays small even at very high rates.
const maxBacklogCap = 1 << 18

// Target is one region of the service under load.
type Target struct {
	// Name is the region name, e.g. "us-east"; it keys Report.Targets.
	// Empty means BaseURL.
	Name string
	// BaseURL is the region's base URL, e.g. "http://127.0.1.1:8080".
	BaseURL string
	// LocalAddr is an optional source IP to bind outgoing connections to,
	// e.g. "127.0.1.50"; "" lets the kernel choose.
	LocalAddr string
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
