package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	// MinTTL is the shortest time an answer is used: a TTL of 0 ("do not
	// cache") is resolved again after MinTTL instead of once per request.
	MinTTL = 100 * time.Millisecond
	// RetryResolve is how soon a failed resolve is tried again.
	RetryResolve = 250 * time.Millisecond
)

// endpoint is where a target's requests go: an address and the region
// behind it. A target's current endpoint is replaced, never modified, so a
// pointer comparison tells whether it changed.
type endpoint struct {
	addr   string // host:port to dial
	region string // the Config.Regions name of addr, "" when unknown
}

// DNSStats counts a DNS target's resolves.
type DNSStats struct {
	// Resolves counts the queries answered with an address.
	Resolves int64
	// Failures counts the queries that failed (timeout, error code, no A
	// record); the last answer stayed in use.
	Failures int64
	// Moves counts the times the answer's address changed.
	Moves int64
}

// dnsClient resolves one target's host through its DNS server, from its
// source address.
type dnsClient struct {
	server  string
	name    dnsmessage.Name
	local   net.IP // nil: any
	port    string
	timeout time.Duration

	resolves, failures, moves atomic.Int64
}

func newDNSClient(t Target, u hostPort, timeout time.Duration) (*dnsClient, error) {
	host := u.host
	if !strings.HasSuffix(host, ".") {
		host += "."
	}
	name, err := dnsmessage.NewName(host)
	if err != nil {
		return nil, fmt.Errorf("load: target %s: host %q: %w", t.Name, u.host, err)
	}
	c := &dnsClient{server: t.DNS, name: name, port: u.port, timeout: timeout}
	if t.LocalAddr != "" {
		c.local = net.ParseIP(t.LocalAddr)
	}
	return c, nil
}

func (c *dnsClient) stats() DNSStats {
	return DNSStats{Resolves: c.resolves.Load(), Failures: c.failures.Load(), Moves: c.moves.Load()}
}

// resolve asks for the A record of the host over UDP (over TCP when the
// answer is truncated) and returns the first address with its TTL.
func (c *dnsClient) resolve(ctx context.Context) (netip.Addr, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	id := uint16(rand.Uint32())
	q, err := c.query(id)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	resp, err := c.exchange(ctx, "udp", id, q)
	if err == nil {
		var p dnsmessage.Parser
		var h dnsmessage.Header
		if h, err = p.Start(resp); err == nil && h.Truncated {
			resp, err = c.exchange(ctx, "tcp", id, q)
		}
	}
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return c.parse(id, resp)
}

func (c *dnsClient) query(id uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 2, 514), dnsmessage.Header{ID: id, RecursionDesired: false})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: c.name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(msg, uint16(len(msg)-2)) // the TCP length prefix
	return msg, nil
}

// exchange sends q (with its 2-byte length prefix, used over TCP only) from
// the source address and returns the response with id.
func (c *dnsClient) exchange(ctx context.Context, network string, id uint16, q []byte) ([]byte, error) {
	d := net.Dialer{}
	if c.local != nil {
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: c.local}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: c.local}
		}
	}
	conn, err := d.DialContext(ctx, network, c.server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	if network == "tcp" {
		if _, err := conn.Write(q); err != nil {
			return nil, err
		}
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return nil, err
		}
		resp := make([]byte, binary.BigEndian.Uint16(n[:]))
		_, err := io.ReadFull(conn, resp)
		return resp, err
	}
	if _, err := conn.Write(q[2:]); err != nil {
		return nil, err
	}
	buf := make([]byte, 1232)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return buf[:n], nil
		}
		// A stray or late datagram: keep waiting for ours.
	}
}

// parse returns the first A record for the name in resp.
func (c *dnsClient) parse(id uint16, resp []byte) (netip.Addr, time.Duration, error) {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad dns response: %w", err)
	}
	if h.ID != id || !h.Response {
		return netip.Addr{}, 0, errors.New("bad dns response: not ours")
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return netip.Addr{}, 0, fmt.Errorf("dns: %s", strings.TrimPrefix(h.RCode.String(), "RCode"))
	}
	if err := p.SkipAllQuestions(); err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad dns response: %w", err)
	}
	for {
		ah, err := p.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			return netip.Addr{}, 0, errors.New("dns: no A record")
		}
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("bad dns response: %w", err)
		}
		if ah.Type != dnsmessage.TypeA || ah.Class != dnsmessage.ClassINET || !strings.EqualFold(ah.Name.String(), c.name.String()) {
			if err := p.SkipAnswer(); err != nil {
				return netip.Addr{}, 0, fmt.Errorf("bad dns response: %w", err)
			}
			continue
		}
		a, err := p.AResource()
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("bad dns response: %w", err)
		}
		return netip.AddrFrom4(a.A), time.Duration(ah.TTL) * time.Second, nil
	}
}

// hostPort is a base URL's host and port (the scheme's default when absent).
type hostPort struct{ host, port string }

// dnsEvent is one resolve as the history records it.
type dnsEvent struct {
	at      time.Time
	ep      *endpoint
	ttl     time.Duration
	changed bool
	err     error
}

// refresh resolves t's host once and installs a changed address; a failure
// keeps the current endpoint. It returns when the answer expires.
func (r *runner) refresh(ctx context.Context, t *target) (time.Time, dnsEvent) {
	ip, ttl, err := t.dns.resolve(ctx)
	now := time.Now()
	ev := dnsEvent{at: now, ttl: ttl, err: err}
	if err != nil {
		if ctx.Err() == nil { // not the end of the run
			t.dns.failures.Add(1)
		}
		ev.ep = t.cur.Load()
		return now.Add(RetryResolve), ev
	}
	t.dns.resolves.Add(1)
	addr := net.JoinHostPort(ip.String(), t.dns.port)
	old := t.cur.Load()
	ev.ep = old
	if old == nil || old.addr != addr {
		ev.ep = &endpoint{addr: addr, region: r.regionOf(addr)}
		t.cur.Store(ev.ep)
		ev.changed = true
		if old != nil {
			t.dns.moves.Add(1)
			t.tr.CloseIdleConnections()
		}
	}
	return now.Add(max(ttl, MinTTL)), ev
}

// resolveLoop re-resolves t's host whenever its answer expires, until ctx
// ends.
func (r *runner) resolveLoop(ctx context.Context, t *target, ti int32, expires time.Time) {
	timer := time.NewTimer(time.Until(expires))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var ev dnsEvent
		expires, ev = r.refresh(ctx, t)
		if ctx.Err() != nil {
			return
		}
		r.recordDNS(ti, ev)
		timer.Reset(time.Until(expires))
	}
}
