package region

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"shortener/events"
)

// Limits are what one client address may spend on answers that serve
// nothing: redirects that answer 404 or 410 (someone walking the code
// space) and API requests without a valid key (someone guessing keys).
// Each address has a token bucket of Burst tokens refilled at PerSecond;
// a miss with the bucket empty answers 429 instead. A redirect that is
// served never costs a token and is never refused, whatever the bucket
// holds. Addresses in Exempt (the project's own load, chaos and drill
// clients) are never limited. IPv6 addresses count by their /64, which
// one client usually holds whole.
type Limits struct {
	PerSecond float64 // tokens per second; 0: default 10; < 0: no limit
	Burst     int     // bucket size; 0: default 50
	Exempt    []netip.Prefix
	// TrustedProxies are the addresses whose X-Forwarded-For is believed:
	// a request from one of them counts against the address it forwarded
	// for (the right-most one not itself a trusted proxy). Without them
	// the header is ignored: anyone can write it.
	TrustedProxies []netip.Prefix
}

// limitedClients bounds how many addresses the buckets are kept for (the
// least recently seen go first). While it is full a new address starts
// with one token instead of a full bucket: otherwise a client holding more
// addresses than this (an IPv6 /48 is 65,536 /64s) would evict its own
// buckets and come back to full ones every time.
const limitedClients = 1 << 16

// missLimiter is the per address buckets of Limits.
type missLimiter struct {
	limit   rate.Limit
	burst   int
	exempt  []netip.Prefix
	clients *lru.Cache[netip.Addr, *rate.Limiter]
}

// newMissLimiter returns nil when l turns the limit off.
func newMissLimiter(l Limits) *missLimiter {
	if l.PerSecond < 0 {
		return nil
	}
	clients, _ := lru.New[netip.Addr, *rate.Limiter](limitedClients) // only errs on a size <= 0
	return &missLimiter{limit: rate.Limit(l.PerSecond), burst: l.Burst, exempt: l.Exempt, clients: clients}
}

// allow spends one of the client's tokens on a miss, or reports none left
// with how long until the next.
func (m *missLimiter) allow(c echo.Context, now time.Time) (bool, time.Duration) {
	if m == nil {
		return true, 0
	}
	addr, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return true, 0 // not an address (a test's pipe): nothing to key it by
	}
	return m.allowAddr(addr.Unmap(), now)
}

// allowAddr is allow for the client address addr.
func (m *missLimiter) allowAddr(addr netip.Addr, now time.Time) (bool, time.Duration) {
	if slices.ContainsFunc(m.exempt, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		return true, 0
	}
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	l, ok := m.clients.Get(addr)
	if !ok {
		l = rate.NewLimiter(m.limit, m.burst)
		if m.clients.Len() >= limitedClients && m.burst > 1 {
			// Full: a new address may be one of many a client cycles
			// through to evict its own buckets (65,536 /64s are one /48),
			// so it starts with one token, not a full bucket.
			l.AllowN(now, m.burst-1)
		}
		if prev, found, _ := m.clients.PeekOrAdd(addr, l); found {
			l = prev
		}
	}
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitMiss is the error of a request answered with what: the error
// itself while the client has tokens, else a 429 saying when to come back
// (and the refusal is counted by reason).
func (r *Region) limitMiss(c echo.Context, reason string, what error) error {
	ok, wait := r.misses.allow(c, r.cfg.Now())
	if ok {
		return what
	}
	r.tel.countLimited(c.Request().Context(), reason)
	return &events.Error{Kind: events.RateLimited, Message: limitMessages[reason], RetryAfter: max(wait, time.Second)} // the problem rounds it up
}

// The reasons a miss is limited for: a metric label, so a closed set.
const (
	limitNotFound = "not_found" // a redirect that found no servable link
	limitAuth     = "auth"      // an API request without a valid key
)

var limitMessages = map[string]string{
	limitNotFound: "too many requests for links that do not exist from this address; try again later",
	limitAuth:     "too many requests without a valid API key from this address; try again later",
}

// prefixNet is p as the net package writes it.
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ipExtractor is how the region finds a request's client address: the
// connection's peer, or, from a trusted proxy, the address it forwarded
// for.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect() // never trust X-Forwarded-For from clients
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(prefixNet(p)))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// ParseLimits reads the flags of Limits: --miss-limit (not 0; negative:
// off), --miss-burst (at least 1), and the address blocks of
// --limit-exempt and --trusted-proxy (CIDR or single addresses). The
// error names the flag.
func ParseLimits(perSecond float64, burst int, exempt, trustedProxies []string) (Limits, error) {
	if perSecond == 0 || burst < 1 {
		return Limits{}, fmt.Errorf("--miss-limit must not be 0 (negative: off) and --miss-burst at least 1")
	}
	l := Limits{PerSecond: perSecond, Burst: burst}
	var err error
	if l.Exempt, err = parsePrefixes("--limit-exempt", exempt); err != nil {
		return Limits{}, err
	}
	if l.TrustedProxies, err = parsePrefixes("--trusted-proxy", trustedProxies); err != nil {
		return Limits{}, err
	}
	return l, nil
}

// parsePrefixes reads the values of flag, each an address block (CIDR) or
// a single address, into prefixes.
func parsePrefixes(flag string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%s %q: want an address block like 10.0.0.0/8 or an address", flag, v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
