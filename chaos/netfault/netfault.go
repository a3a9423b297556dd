package netfault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// holdFor bounds how long a new connection is held, nothing of the
	// dialer's forwarded, while the proxy tells who dials. It is no longer
	// than nats-server's gateway auth timeout (2 s without TLS): a listener
	// drops a gateway that has not sent CONNECT by then anyway.
	holdFor = 2 * time.Second
	// speakFirst is how long a listener's INFO that is not a gateway's
	// (a route's) is held waiting for the dialer's CONNECT. nats-server
	// 2.10+ routes send CONNECT at once, before reading anything
	// (createRoute), so the INFO reaches a refused dialer never; a dialer
	// that waits for INFO first still gets it after this.
	speakFirst  = 250 * time.Millisecond
	dialTimeout = 2 * time.Second
	maxHello    = 64 << 10 // longest first line read (an INFO with every URL of a cluster)
	chunkSize   = 32 << 10
	queueLen    = 64 // chunks in flight per direction: the backpressure of a slow link
	pollEvery   = 25 * time.Millisecond
)

// Degradation is a slow or lossy link between two regions.
//
// A TCP proxy cannot drop bytes inside a stream without corrupting the
// protocol, so "loss" here is what the servers see of a lossy link once TCP
// gives up: connections reset at random, plus latency. The zero value is a
// healthy link.
type Degradation struct {
	// Latency is added to every chunk in each direction: a round trip
	// across the link (a request and its reply) takes 2×Latency more.
	Latency time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each chunk. A
	// chunk is never sent before the one read before it, so jitter delays
	// but never reorders: a late chunk holds back the ones behind it, as on
	// a TCP stream.
	Jitter time.Duration
	// ResetEvery makes the link lossy: each connection between the two
	// regions is reset (RST to both servers) after a random interval,
	// exponentially distributed with this mean; the servers redial, and
	// the new connection draws its own interval. 0: no resets.
	ResetEvery time.Duration
}

// String is the degradation as an operator reads it.
func (d Degradation) String() string {
	return fmt.Sprintf("latency %s jitter %s reset every %s", d.Latency, d.Jitter, d.ResetEvery)
}

type degradationJSON struct {
	Latency    string `json:"latency"`
	Jitter     string `json:"jitter"`
	ResetEvery string `json:"reset_every"`
}

// MarshalJSON writes the durations as strings like "150ms", for reports.
func (d Degradation) MarshalJSON() ([]byte, error) {
	return json.Marshal(degradationJSON{d.Latency.String(), d.Jitter.String(), d.ResetEvery.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Degradation) UnmarshalJSON(b []byte) error {
	var j degradationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var out Degradation
	for _, f := range []struct {
		s  string
		to *time.Duration
	}{{j.Latency, &out.Latency}, {j.Jitter, &out.Jitter}, {j.ResetEvery, &out.ResetEvery}} {
		if f.s == "" {
			continue
		}
		v, err := time.ParseDuration(f.s)
		if err != nil {
			return fmt.Errorf("degradation: %w", err)
		}
		*f.to = v
	}
	*d = out
	return nil
}

// delay is the delay of one chunk.
func (d *Degradation) delay() time.Duration {
	if d == nil {
		return 0
	}
	lat := d.Latency
	if d.Jitter > 0 {
		lat += rand.N(d.Jitter)
	}
	return lat
}

// Link is one pair of regions as State reports it: its faults and the
// connections proxied between them. A and B are in order; A == B is the
// traffic inside one region that goes through its own proxies.
type Link struct {
	A           string       `json:"a"`
	B           string       `json:"b"`
	Cut         bool         `json:"cut,omitempty"`
	Degradation *Degradation `json:"degradation,omitempty"`
	Open        int          `json:"open"`    // connections open now
	Proxied     int64        `json:"proxied"` // connections let through
	Refused     int64        `json:"refused"` // new connections closed because of a cut
	Severed     int64        `json:"severed"` // open connections closed by Cut
	Reset       int64        `json:"reset"`   // connections reset by Degradation.ResetEvery
}

// State is a snapshot of a Net for reports.
type State struct {
	Links []Link `json:"links"` // every pair with a fault or with traffic, in order
	// Unidentified counts connections whose dialer's region was never
	// told (see Net); Unrefused of them were let through because no cut
	// touched the listener's region.
	Unidentified int64 `json:"unidentified"`
	Unrefused    int64 `json:"unrefused"`
}

// Link returns the link between a and b, zero (but named) if it has seen
// neither fault nor traffic.
func (s State) Link(a, b string) Link {
	p := mkpair(a, b)
	for _, l := range s.Links {
		if l.A == p.a && l.B == p.b {
			return l
		}
	}
	return Link{A: p.a, B: p.b}
}

// pair is an unordered pair of regions, stored in order.
type pair struct{ a, b string }

func mkpair(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

func (p pair) has(r string) bool { return p.a == r || p.b == r }

type counters struct {
	open                             int
	proxied, refused, severed, reset int64
}

// Net is a set of TCP proxies in front of the NATS gateway and route
// listeners of several regions, and the faults between those regions.
//
// Who dials: on loopback every connection comes from 127.0.0.1, so the
// source address names no region. A NATS listener speaks first with
// `INFO {json}` whose server_id is its own ID: the proxy in front of it
// knows its region (from Front) and records ID→region in a registry shared
// by all proxies of the Net. The dialer sends `CONNECT {json}` whose "name"
// is its server ID (gateway.go sendGatewayConnect, route.go
// sendRouteConnect), looked up in the registry. A gateway dialer sends
// CONNECT only after reading the listener's INFO, so that INFO is forwarded
// at once; a route dialer (nats-server 2.10+, pooled or not) sends CONNECT
// at once, so a route listener's INFO is held until the dialer is told, and
// released after speakFirst if the dialer waits for it: either order works.
// A dialer not in the registry yet (a server just restarted has a new ID and
// nobody has dialled it since) is told by its own INFO, which follows its
// CONNECT and carries its advertised address (gateway_url for a gateway,
// ip or host:port for a route): any address given to Front, as listen or
// target, names a region. Failing that, the registry is polled until the
// connection has been held for holdFor.
//
// A dialer never told (its advertised address is nobody's Front, e.g. a
// server started without the advertise settings) is counted in
// State.Unidentified and fails closed: refused while any cut touches the
// listener's region, and severed by any later Cut of that region; no
// degradation applies to it.
//
// A gateway dialer that is refused has read the listener's INFO before the
// proxy could tell who it is: for a moment it counts the gateway as
// connected (its log says "registered") before the proxy closes it. Nothing
// it sends reaches the listener.
type Net struct {
	log    *slog.Logger
	ctx    context.Context // ends at Close: cancels dials and holds
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	listeners    []net.Listener
	addrs        map[string]string // listen and target addresses (host:port) -> region
	ids          map[string]string // NATS server ID -> region
	cuts         map[pair]bool
	degraded     map[pair]Degradation
	conns        map[*conn]struct{} // every connection open, identified or not
	links        map[pair]*counters
	unidentified int64
	unrefused    int64
}

// New returns an empty Net that logs to log (nil: slog.Default()). It does
// no I/O: Front starts proxies.
func New(log *slog.Logger) *Net {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Net{log: log.With("component", "netfault"), ctx: ctx, cancel: cancel,
		addrs: map[string]string{}, ids: map[string]string{}, cuts: map[pair]bool{},
		degraded: map[pair]Degradation{}, conns: map[*conn]struct{}{}, links: map[pair]*counters{}}
}

// errClosed is returned by Front after Close.
var errClosed = errors.New("netfault: closed")

// proxy is one listener of a Net.
type proxy struct {
	region, target string
	dialer         net.Dialer
}

// Front starts a proxy listening on listen (host:port) that forwards to
// target (host:port), the gateway or route listener of a server of region.
// The proxy dials target from listen's host, so the server sees proxied
// connections come from the proxy's address. Servers must advertise listen
// (Gateway.Advertise, Cluster.Advertise) or gossip leads their peers around
// the proxy.
func (n *Net) Front(region, listen, target string) error {
	if region == "" {
		return fmt.Errorf("front %s: a region is required", listen)
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("front %s: target %q: %w", listen, target, err)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("front %s: %w", listen, err)
	}
	p := &proxy{region: region, target: target, dialer: net.Dialer{Timeout: dialTimeout}}
	if a, ok := l.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		p.dialer.LocalAddr = &net.TCPAddr{IP: a.IP}
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		l.Close()
		return errClosed
	}
	n.listeners = append(n.listeners, l)
	for _, a := range []string{listen, l.Addr().String(), target} {
		if k := canonAddr(a); k != "" && !strings.HasSuffix(k, ":0") {
			n.addrs[k] = region
		}
	}
	n.wg.Add(1)
	n.mu.Unlock()
	n.log.Debug("proxy started", "region", region, "listen", l.Addr().String(), "target", target)
	go n.accept(p, l)
	return nil
}

// Cut partitions regions a and b: every open proxied connection between a
// server of a and a server of b is reset at once, and new ones are refused
// (accepted, then closed) until Heal. Other pairs are untouched. Cutting a
// region from itself is ignored.
func (n *Net) Cut(a, b string) {
	if a == b {
		n.log.Warn("cut of a region from itself ignored", "region", a)
		return
	}
	p := mkpair(a, b)
	n.mu.Lock()
	n.cuts[p] = true
	n.link(p)
	victims := n.on(p, true)
	n.mu.Unlock()
	for _, c := range victims {
		c.close(closeCut)
	}
	n.log.Info("cut", "a", a, "b", b, "severed", len(victims))
}

// Heal lifts the cut between a and b: the servers' next dial gets through
// (nats-server redials gateways and routes about once a second).
func (n *Net) Heal(a, b string) {
	n.mu.Lock()
	delete(n.cuts, mkpair(a, b))
	n.mu.Unlock()
	n.log.Info("heal", "a", a, "b", b)
}

// HealAll lifts every cut and restores every degraded link: the network is
// whole again.
func (n *Net) HealAll() {
	n.mu.Lock()
	clear(n.cuts)
	clear(n.degraded)
	for c := range n.conns {
		c.setDegradation(nil)
	}
	n.mu.Unlock()
	n.log.Info("heal all")
}

// Degrade makes the link between a and b slow or lossy, replacing any
// degradation it had. It applies at once to the open connections between
// them (to the chunks read from then on) and to new ones. Negative
// durations count as 0; the zero Degradation is Restore.
func (n *Net) Degrade(a, b string, d Degradation) {
	if a == b {
		n.log.Warn("degradation of a region's link to itself ignored", "region", a)
		return
	}
	d.Latency, d.Jitter, d.ResetEvery = max(d.Latency, 0), max(d.Jitter, 0), max(d.ResetEvery, 0)
	if d == (Degradation{}) {
		n.Restore(a, b)
		return
	}
	p := mkpair(a, b)
	n.mu.Lock()
	n.degraded[p] = d
	n.link(p)
	for _, c := range n.on(p, false) {
		c.setDegradation(&d)
	}
	n.mu.Unlock()
	n.log.Info("degrade", "a", a, "b", b, "latency", d.Latency, "jitter", d.Jitter, "reset_every", d.ResetEvery)
}

// Restore makes the link between a and b healthy again (a cut stays).
func (n *Net) Restore(a, b string) {
	p := mkpair(a, b)
	n.mu.Lock()
	delete(n.degraded, p)
	for _, c := range n.on(p, false) {
		c.setDegradation(nil)
	}
	n.mu.Unlock()
	n.log.Info("restore", "a", a, "b", b)
}

// State returns the faults in force and the connection counts per pair.
func (n *Net) State() State {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := State{Unidentified: n.unidentified, Unrefused: n.unrefused}
	for p, k := range n.links {
		l := Link{A: p.a, B: p.b, Cut: n.cuts[p], Open: k.open, Proxied: k.proxied,
			Refused: k.refused, Severed: k.severed, Reset: k.reset}
		if d, ok := n.degraded[p]; ok {
			l.Degradation = &d
		}
		s.Links = append(s.Links, l)
	}
	slices.SortFunc(s.Links, func(x, y Link) int {
		if c := strings.Compare(x.A, y.A); c != 0 {
			return c
		}
		return strings.Compare(x.B, y.B)
	})
	return s
}

// Close stops every proxy and closes every connection they hold. The
// faults are forgotten.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.cancel()
	var errs []error
	for _, l := range n.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	var all []*conn
	for c := range n.conns {
		all = append(all, c)
	}
	n.mu.Unlock()
	for _, c := range all {
		c.close(closeShutdown)
	}
	n.wg.Wait()
	return errors.Join(errs...)
}

// link returns the counters of p. n.mu held.
func (n *Net) link(p pair) *counters {
	k := n.links[p]
	if k == nil {
		k = &counters{}
		n.links[p] = k
	}
	return k
}

// on returns the identified connections between the regions of p. With
// failClosed, connections whose dialer is unknown and whose listener is in
// p count too (after one more look at the registry). n.mu held.
func (n *Net) on(p pair, failClosed bool) []*conn {
	var out []*conn
	for c := range n.conns {
		if !c.admitted {
			continue // decided against the faults when admitted, under n.mu
		}
		dialer := c.dialer
		if dialer == "" && c.dialerID != "" {
			dialer = n.ids[c.dialerID] // told since it was admitted
		}
		switch {
		case dialer != "" && mkpair(c.listener, dialer) == p:
			out = append(out, c)
		case dialer == "" && failClosed && p.has(c.listener):
			out = append(out, c)
		}
	}
	return out
}

func (n *Net) accept(p *proxy, l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("accept", "listen", l.Addr().String(), "err", err)
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		n.wg.Add(1)
		go n.serve(p, c)
	}
}

// closeReason says why a proxied connection ended.
type closeReason int

const (
	closeEOF      closeReason = iota // one side closed or failed
	closeCut                         // Cut of its pair
	closeReset                       // Degradation.ResetEvery
	closeRefused                     // a cut in force when it was opened
	closeFailed                      // the handshake failed or was never told
	closeShutdown                    // Close
)

// conn is one proxied connection: client is the dialer's side, server the
// listener's.
type conn struct {
	n              *Net
	client, server net.Conn
	listener       string // region of the server behind the proxy
	dialerID       string // from the dialer's CONNECT
	// dialer is the dialer's region, "" if never told. Written by serve
	// before admission only.
	dialer   string
	admitted bool      // let through; under n.mu
	counted  *counters // the link whose open count includes it; under n.mu
	deg      atomic.Pointer[Degradation]
	changed  chan struct{} // a new degradation: the reset timer redraws
	done     chan struct{}
	once     sync.Once
}

func (c *conn) setDegradation(d *Degradation) {
	if d != nil {
		d2 := *d
		d = &d2
	}
	c.deg.Store(d)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// close ends the connection once; a cut or reset is an RST to both sides,
// as a broken link would be.
func (c *conn) close(why closeReason) {
	c.once.Do(func() {
		if why == closeCut || why == closeReset {
			for _, x := range []net.Conn{c.client, c.server} {
				if tc, ok := x.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		c.client.Close()
		c.server.Close()
		close(c.done)
		n := c.n
		n.mu.Lock()
		delete(n.conns, c)
		if k := c.counted; k != nil {
			k.open--
			switch why {
			case closeCut:
				k.severed++
			case closeReset:
				k.reset++
			}
		}
		n.mu.Unlock()
	})
}

// serve proxies one accepted connection: dial the listener, tell the
// dialer, admit or refuse, then pump both ways until either side ends.
func (n *Net) serve(p *proxy, client net.Conn) {
	defer n.wg.Done()
	server, err := p.dialer.DialContext(n.ctx, "tcp", p.target)
	if err != nil {
		client.Close()
		n.log.Debug("dial target", "region", p.region, "target", p.target, "err", err)
		return
	}
	c := &conn{n: n, client: client, server: server, listener: p.region,
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	n.conns[c] = struct{}{}
	n.mu.Unlock()

	hs, ok := n.identify(c)
	if !ok {
		c.close(closeFailed)
		return
	}
	if !n.admit(c) {
		c.close(closeRefused)
		n.log.Debug("refused", "listener", c.listener, "dialer", c.dialer, "dialer_id", c.dialerID, "target", p.target)
		return
	}
	_ = client.SetReadDeadline(time.Time{})
	_ = server.SetReadDeadline(time.Time{})
	n.pump(c, server, hs.cr, hs.toListener)
	n.pump(c, client, hs.sr, hs.toDialer)
	n.resets(c)
}

// admit decides, under n.mu so that a concurrent Cut either sees the
// connection or is seen by it, whether c may pass.
func (n *Net) admit(c *conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	if c.dialer == "" {
		n.unidentified++
		for p := range n.cuts {
			if p.has(c.listener) {
				n.log.Warn("refused a dialer never told: its advertised address is no proxy's", "listener", c.listener, "dialer_id", c.dialerID)
				return false
			}
		}
		n.unrefused++
		c.admitted = true
		return true
	}
	p := mkpair(c.listener, c.dialer)
	k := n.link(p)
	if n.cuts[p] {
		k.refused++
		return false
	}
	k.proxied++
	k.open++
	c.counted, c.admitted = k, true
	if d, ok := n.degraded[p]; ok {
		c.deg.Store(&d)
	}
	return true
}

// handshake is what identify read and holds back.
type handshake struct {
	cr, sr     *bufio.Reader // the dialer's and the listener's streams, past what was read
	toListener [][]byte      // the dialer's first lines, not forwarded yet
	toDialer   [][]byte      // the listener's INFO, if not forwarded yet
}

type line struct {
	b   []byte
	sni string // the server name of a TLS ClientHello, left unread in the reader
	tls bool   // the dialer opened with a TLS handshake
	err error
}

func (n *Net) readLine(r *bufio.Reader, out chan<- line) {
	defer n.wg.Done()
	b, err := r.ReadSlice('\n')
	out <- line{b: slices.Clone(b), err: err}
}

// readHello reads what a dialer opens with: a TLS ClientHello (left in the
// reader, to be forwarded as it is) whose server name it returns, or a
// protocol line.
func (n *Net) readHello(r *bufio.Reader, out chan<- line) {
	first, err := r.Peek(1)
	if err != nil || first[0] != tlsHandshake {
		n.readLine(r, out)
		return
	}
	defer n.wg.Done()
	head, err := r.Peek(5)
	if err != nil {
		out <- line{err: err}
		return
	}
	rec, err := r.Peek(5 + (int(head[3])<<8 | int(head[4])))
	if err != nil {
		out <- line{err: err}
		return
	}
	out <- line{tls: true, sni: serverName(rec)}
}

// identify reads the first line of each side and tells the dialer's
// region (see Net). It returns false if the connection cannot go on: a side
// closed or did not speak NATS within holdFor.
func (n *Net) identify(c *conn) (*handshake, bool) {
	deadline := time.Now().Add(holdFor)
	_ = c.client.SetReadDeadline(deadline)
	_ = c.server.SetReadDeadline(deadline)
	hs := &handshake{cr: bufio.NewReaderSize(c.client, maxHello), sr: bufio.NewReaderSize(c.server, maxHello)}
	lch, dch := make(chan line, 1), make(chan line, 1)
	n.wg.Add(2)
	go n.readLine(hs.sr, lch)
	go n.readHello(hs.cr, dch)
	timeout := time.NewTimer(holdFor)
	defer timeout.Stop()

	var (
		linfo      []byte // the listener's first line
		forwarded  bool   // linfo went to the dialer
		lgot, dgot bool
		speak      <-chan time.Time
	)
	release := func() bool {
		if forwarded || !lgot {
			return true
		}
		forwarded = true
		_, err := c.client.Write(linfo)
		return err == nil
	}
	for !lgot || !dgot {
		select {
		case l := <-lch:
			lgot, linfo = true, l.b
			if l.err != nil {
				return nil, false
			}
			info := parseInfo(linfo)
			if info.ID != "" {
				n.learn(info.ID, c.listener)
			}
			if info.Gateway != "" {
				if !release() { // a gateway dialer speaks only after the listener's INFO
					return nil, false
				}
			} else if !dgot {
				speak = time.After(speakFirst)
			}
		case d := <-dch:
			dgot = true
			if d.err != nil {
				return nil, false
			}
			if d.tls {
				// TLS from the first byte (routes and gateways with
				// TLS: nats-server shakes hands before INFO): the
				// listener says nothing until it gets the ClientHello,
				// which stays in hs.cr. Stop the listener's read (it
				// has read nothing) and name the dialer by the server
				// name it asked for.
				if !lgot {
					_ = c.server.SetReadDeadline(time.Unix(1, 0))
					if l := <-lch; len(l.b) > 0 {
						return nil, false
					}
				}
				if lgot && !forwarded && len(linfo) > 0 {
					hs.toDialer = [][]byte{linfo} // not seen with TLS first, kept all the same
				}
				c.dialer = n.regionOfName(d.sni)
				c.dialerID = d.sni
				return hs, true
			}
			hs.toListener = append(hs.toListener, d.b)
			c.dialerID = parseConnect(d.b)
		case <-speak:
			if !release() {
				return nil, false
			}
		case <-timeout.C:
			return nil, false
		case <-c.done:
			return nil, false
		}
	}
	c.dialer = n.regionOf(c.dialerID)
	if c.dialer == "" && c.dialerID != "" {
		// Not in the registry yet: the dialer's INFO, which follows its
		// CONNECT (a pooled route's, only once it has read the listener's),
		// names its advertised address.
		if !release() {
			return nil, false
		}
		n.wg.Add(1)
		go n.readLine(hs.cr, dch)
		select {
		case d := <-dch:
			if len(d.b) > 0 {
				hs.toListener = append(hs.toListener, d.b)
			}
			var ne net.Error
			if d.err != nil && !(errors.As(d.err, &ne) && ne.Timeout()) {
				return nil, false
			}
			if r := n.regionOfAddr(parseInfo(d.b)); r != "" {
				c.dialer = r
				n.learn(c.dialerID, r)
			}
		case <-c.done:
			return nil, false
		}
	}
	for c.dialer == "" && c.dialerID != "" && time.Now().Before(deadline) {
		select {
		case <-time.After(pollEvery):
		case <-c.done:
			return nil, false
		}
		c.dialer = n.regionOf(c.dialerID)
	}
	if !forwarded {
		hs.toDialer = [][]byte{linfo}
	}
	return hs, true
}

// tlsHandshake is the content type of a TLS handshake record.
const tlsHandshake = 0x16

// regionOfName returns the region a TLS server name starts with
// ("us-east.nats.example" -> us-east), if it is a region given to Front.
func (n *Net) regionOfName(name string) string {
	first, _, _ := strings.Cut(name, ".")
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.addrs {
		if r == first && first != "" {
			return r
		}
	}
	return ""
}

// serverName returns the server name (SNI) of the ClientHello in rec, a
// whole TLS handshake record, or "": crypto/tls parses it and the
// handshake stops there.
func serverName(rec []byte) string {
	var name string
	conn := tls.Server(&helloConn{r: bytes.NewReader(rec)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name = h.ServerName
			return nil, errHelloRead
		},
	})
	_ = conn.Handshake()
	return name
}

var errHelloRead = errors.New("netfault: hello read")

// helloConn is a net.Conn that reads one recorded ClientHello and writes
// nowhere.
type helloConn struct{ r io.Reader }

func (c *helloConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *helloConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

func (n *Net) learn(id, region string) {
	n.mu.Lock()
	n.ids[id] = region
	n.mu.Unlock()
}

func (n *Net) regionOf(id string) string {
	if id == "" {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ids[id]
}

// regionOfAddr returns the region of the first address in info that was
// given to Front.
func (n *Net) regionOfAddr(info natsInfo) string {
	var cands []string
	if info.GatewayURL != "" {
		cands = append(cands, info.GatewayURL)
	}
	if info.IP != "" {
		if u, err := url.Parse(info.IP); err == nil && u.Host != "" {
			cands = append(cands, u.Host)
		}
	}
	if info.Host != "" && info.Port > 0 {
		cands = append(cands, net.JoinHostPort(info.Host, strconv.Itoa(info.Port)))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range cands {
		if r := n.addrs[canonAddr(a)]; r != "" {
			return r
		}
	}
	return ""
}

// natsInfo is what a proxy reads of an INFO (server.Info's JSON names).
type natsInfo struct {
	ID         string `json:"server_id"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	IP         string `json:"ip"`          // a route's advertised URL, nats-route://host:port/
	Gateway    string `json:"gateway"`     // set only by a gateway
	GatewayURL string `json:"gateway_url"` // the server's advertised gateway address
}

func parseInfo(b []byte) natsInfo {
	var info natsInfo
	if rest, ok := protoArg(b, "INFO"); ok {
		_ = json.Unmarshal(rest, &info)
	}
	return info
}

// parseConnect returns the "name" of a CONNECT: the dialing server's ID.
func parseConnect(b []byte) string {
	var ci struct {
		Name string `json:"name"`
	}
	if rest, ok := protoArg(b, "CONNECT"); ok {
		_ = json.Unmarshal(rest, &ci)
	}
	return ci.Name
}

// protoArg returns what follows op (case-insensitive, as nats-server
// parses) on a protocol line.
func protoArg(b []byte, op string) ([]byte, bool) {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) <= len(op) || !strings.EqualFold(s[:len(op)], op) || (s[len(op)] != ' ' && s[len(op)] != '\t') {
		return nil, false
	}
	return []byte(strings.TrimSpace(s[len(op):])), true
}

// canonAddr is host:port with the host in lower case, "" if a is none.
func canonAddr(a string) string {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(strings.ToLower(h), p)
}

type chunk struct {
	b   []byte
	buf *[]byte // to return to bufs, nil for the handshake lines
	due time.Time
}

var bufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pump copies src to dst: first the held lines, then whatever src reads,
// each chunk due at its read time plus the link's delay and never before
// the chunk ahead of it. When src ends, what is queued is written and the
// whole connection closes.
func (n *Net) pump(c *conn, dst net.Conn, src io.Reader, first [][]byte) {
	ch := make(chan chunk, queueLen)
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		defer close(ch)
		var last time.Time
		send := func(k chunk) bool {
			k.due = time.Now().Add(c.deg.Load().delay())
			if k.due.Before(last) {
				k.due = last
			}
			last = k.due
			select {
			case ch <- k:
				return true
			case <-c.done:
				return false
			}
		}
		for _, b := range first {
			if !send(chunk{b: b}) {
				return
			}
		}
		for {
			bp := bufs.Get().(*[]byte)
			k, err := src.Read(*bp)
			if k > 0 {
				if !send(chunk{b: (*bp)[:k], buf: bp}) {
					return
				}
			} else {
				bufs.Put(bp)
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer n.wg.Done()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for k := range ch {
			if wait := time.Until(k.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-c.done:
					return
				}
			}
			_, err := dst.Write(k.b)
			if k.buf != nil {
				bufs.Put(k.buf)
			}
			if err != nil {
				break
			}
		}
		c.close(closeEOF)
	}()
}

// resets resets c at random times while its link is lossy, until it ends.
func (n *Net) resets(c *conn) {
	for {
		var fire <-chan time.Time
		var t *time.Timer
		if d := c.deg.Load(); d != nil && d.ResetEvery > 0 {
			t = time.NewTimer(max(time.Duration(rand.ExpFloat64()*float64(d.ResetEvery)), time.Millisecond))
			fire = t.C
		}
		select {
		case <-c.done:
		case <-c.changed:
		case <-fire:
			c.close(closeReset)
			n.log.Debug("reset", "listener", c.listener, "dialer", c.dialer)
		}
		if t != nil {
			t.Stop()
		}
		select {
		case <-c.done:
			return
		default:
		}
	}
}
