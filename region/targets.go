package region

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"shortener/events"
)

// Targets are the rules a link's target must pass when it is created or
// updated through the API (never at the fold: a rule changed later does
// not unmake links that were taken). Host names are not resolved: a name
// that points at a private address passes; a literal address does not.
type Targets struct {
	// AllowPrivate lets targets be literal loopback, private, link-local,
	// unspecified or multicast addresses and localhost (an intranet
	// shortener). The service's own hosts are refused either way: a link
	// to the shortener itself is a redirect loop or a way to hide one.
	AllowPrivate bool
	// Blocklist is a file of host names, one per line ("#" starts a
	// comment): each refuses itself and every name under it. It is read
	// again when it changes, within ReloadEvery (default 5 s); a file that
	// does not parse keeps the list in use, and is logged and counted.
	Blocklist   string
	ReloadEvery time.Duration
}

// The rules a target can be refused by: in the problem's message, and a
// metric label, so a closed set.
const (
	ruleBlocklist = "blocklist"
	ruleOwnHost   = "own_host"
	rulePrivate   = "private_address"
)

// blocklist is a parsed blocklist file: host names, each matching itself
// and every name under it.
type blocklist map[string]bool

// blocks reports the entry of l that host is or is under, if any.
func (l blocklist) blocks(host string) (string, bool) {
	for h := host; h != ""; {
		if l[h] {
			return h, true
		}
		_, rest, ok := strings.Cut(h, ".")
		if !ok {
			break
		}
		h = rest
	}
	return "", false
}

// parseBlocklist reads a blocklist file's contents; the error names the
// first line that is not a host name.
func parseBlocklist(name string, data []byte) (blocklist, error) {
	l := blocklist{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := fmt.Errorf("blocklist %s:%d: %q is not a host name", name, n, line)
		if strings.ContainsAny(line, "/:?#@[]\\ \t") {
			return nil, bad
		}
		norm, err := events.NormalizeURL("https://"+line+"/", 0)
		if err != nil {
			return nil, bad
		}
		u, err := url.Parse(norm)
		if err != nil || strings.Trim(u.Hostname(), ".") == "" {
			return nil, bad
		}
		l[strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("blocklist %s: %w", name, err)
	}
	return l, nil
}

// targetGuard applies Targets.
type targetGuard struct {
	allowPrivate bool
	own          map[string]bool // the service's own hosts
	path         string
	every        time.Duration
	list         atomic.Pointer[blocklist]
	stamp        fileStamp // of the file in use
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// newTargetGuard returns the guard of t, refusing own as well, with an
// empty blocklist: open reads the file. It does no I/O.
func newTargetGuard(t Targets, own ...string) *targetGuard {
	g := &targetGuard{allowPrivate: t.AllowPrivate, own: map[string]bool{}, path: t.Blocklist, every: t.ReloadEvery}
	for _, h := range own {
		if h != "" {
			g.own[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		}
	}
	if g.every <= 0 {
		g.every = 5 * time.Second
	}
	empty := blocklist{}
	g.list.Store(&empty)
	return g
}

// open reads the blocklist, if there is one: an error names the file and
// its first bad line, and the region does not start.
func (g *targetGuard) open() error {
	if g.path == "" {
		return nil
	}
	_, err := g.reload()
	return err
}

// reload reads the file again if it changed: whether it did, and an error
// (the list in use kept) when it does not parse.
func (g *targetGuard) reload() (bool, error) {
	fi, err := os.Stat(g.path)
	if err != nil {
		return false, fmt.Errorf("blocklist: %w", err)
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if stamp == g.stamp {
		return false, nil
	}
	data, err := os.ReadFile(g.path)
	if err != nil {
		return false, fmt.Errorf("blocklist: %w", err)
	}
	l, err := parseBlocklist(g.path, data)
	if err != nil {
		g.stamp = stamp // refused once, not at every tick until it changes
		return true, err
	}
	g.stamp = stamp
	g.list.Store(&l)
	return true, nil
}

// check refuses a normalized target URL that a rule forbids, with an
// Invalid error on field url naming the rule.
func (g *targetGuard) check(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return events.FieldError("url", "not a URL")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	refuse := func(rule, why string) error {
		return events.FieldError("url", "refused by rule "+rule+": "+why)
	}
	if g.own[host] {
		return refuse(ruleOwnHost, "the target is this service's own host")
	}
	if entry, ok := (*g.list.Load()).blocks(host); ok {
		return refuse(ruleBlocklist, "the host is under "+entry+", which the blocklist names")
	}
	addr, literal, ok := hostAddress(host)
	if !ok {
		return refuse(rulePrivate, "the host is a number that is not a valid IPv4 address")
	}
	if g.allowPrivate {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return refuse(rulePrivate, "localhost")
	}
	if literal && (addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsUnspecified() || addr.IsMulticast() || addr.IsInterfaceLocalMulticast() || sharedAddress.Contains(addr)) {
		return refuse(rulePrivate, "the host is the address "+addr.String()+", which is not public")
	}
	return nil
}

// sharedAddress is the carrier-grade NAT block (RFC 6598): not public
// either, though netip does not call it private.
var sharedAddress = netip.MustParsePrefix("100.64.0.0/10")

// hostAddress reads host as a browser would: an IPv6 literal, or, when its
// last label is a number, an IPv4 address in any of the forms the URL
// standard accepts (2130706433, 0x7f.1, 0177.0.0.1 are all 127.0.0.1).
// literal is false for a name; ok is false for a host that ends in a
// number but is not a valid address (browsers refuse those).
func hostAddress(host string) (addr netip.Addr, literal, ok bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), true, true
	}
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	if last == "" && len(labels) > 1 {
		labels, last = labels[:len(labels)-1], labels[len(labels)-2]
	}
	if _, isNum := ipv4Part(last); !isNum && !allDigits(last) {
		return netip.Addr{}, false, true // a name
	}
	if len(labels) > 4 {
		return netip.Addr{}, false, false
	}
	var parts []uint64
	for _, l := range labels {
		n, isNum := ipv4Part(l)
		if !isNum {
			return netip.Addr{}, false, false
		}
		parts = append(parts, n)
	}
	var v uint64
	for i, p := range parts[:len(parts)-1] {
		if p > 255 {
			return netip.Addr{}, false, false
		}
		v |= p << (8 * (3 - i))
	}
	lastPart := parts[len(parts)-1]
	if lastPart >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, false, false
	}
	v |= lastPart
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return netip.AddrFrom4(b), true, true
}

// ipv4Part reads one part of an IPv4 host as the URL standard does: 0x
// hexadecimal, a leading 0 octal, else decimal.
func ipv4Part(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > 1<<32 {
		return 0, false
	}
	return n, true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// watchBlocklist reads the blocklist again whenever it changes, until ctx
// ends: a file that does not parse is refused (the list in use stays),
// logged and counted.
func (r *Region) watchBlocklist(ctx context.Context) error {
	g := r.targets
	if g.path == "" {
		return nil
	}
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := g.reload()
		switch {
		case err != nil:
			r.log.Error("blocklist refused; the list in use stays", "file", g.path, "error", err)
			r.tel.countBlocklistReload(ctx, false)
		case changed:
			r.log.Info("blocklist reloaded", "file", g.path, "hosts", len(*g.list.Load()))
			r.tel.countBlocklistReload(ctx, true)
		}
	}
}

// ownHosts are the hosts a link may not point at: the public URL's and
// the HTTP listener's (unless it listens on every address).
func ownHosts(c Config) []string {
	var out []string
	if u, err := url.Parse(c.PublicURL); err == nil {
		out = append(out, u.Hostname())
	}
	if h, _, err := net.SplitHostPort(c.HTTPAddr); err == nil && !isUnspecified(h) {
		out = append(out, h)
	}
	return out
}
