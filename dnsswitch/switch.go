package dnsswitch

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"shortener/replicator"
)

// Region is one region behind the switch.
type Region struct {
	Name string
	// Addr is the address the switch answers for this region.
	Addr netip.Addr
	// Home is the source prefix of this region's clients: a query from it
	// is answered with this region while the region is healthy.
	Home netip.Prefix
	// ReadyURL is health-checked; 200 is healthy.
	ReadyURL string
}

// Config configures a Switch. Zero durations get the defaults.
type Config struct {
	Zone      string // "short.test"
	DNSAddr   string // UDP and TCP, "127.0.0.1:8053"
	AdminAddr string // HTTP, "127.0.0.1:8054"; "" for none
	Regions   []Region
	// Prefer lists, per home region, the regions its clients go to when
	// the home region is not healthy, in order. A region missing here falls
	// back to the order of Regions.
	Prefer map[string][]string
	TTL    time.Duration // of every answer; default 1 s
	// Every CheckInterval each region's ReadyURL is asked, with
	// CheckTimeout. A healthy region is marked down after Fall failed
	// checks in a row; a down region is marked up only after it has passed
	// every check for Rise (hysteresis: a flapping region stays down).
	CheckInterval, CheckTimeout time.Duration // default 250 ms and 500 ms
	// CheckTLS, when set, verifies the regions' HTTPS certificates for
	// ReadyURLs that are https (the CA of a private set, say).
	CheckTLS *tls.Config
	Fall     int           // default 2
	Rise     time.Duration // default 3 s
	// StateFile keeps drains and overrides across restarts; "" keeps them
	// in memory only. Ignored when Shared is set.
	StateFile string
	// Shared, when set, keeps drains and overrides where every instance of
	// the switch reads and writes them (replicator.SwitchStore, a KV bucket
	// in the global cluster): a change made through one instance is
	// answered by all, and one that cannot be stored is refused.
	Shared SharedState
	// APIKeyHashes (hex SHA-256, as for regions) authorise the admin API's
	// changes (drain, override); reading the state needs no key.
	APIKeyHashes []string
	Logger       *slog.Logger
	Now          func() time.Time
}

// SharedState is the store of drains and overrides shared by the
// instances of a switch (replicator.SwitchStore).
type SharedState interface {
	// Change applies fn to the stored state and stores the result,
	// returning it with its revision; an error wrapping
	// replicator.ErrSwitchStateUnavailable means the store was not
	// confirmed.
	Change(ctx context.Context, fn func(*replicator.SwitchShared) error) (replicator.SwitchShared, uint64, error)
	// Watch calls fn with the stored state and every later one, with
	// their revisions, until ctx ends, reporting trouble through bad.
	Watch(ctx context.Context, fn func(replicator.SwitchShared, uint64), bad func(error)) error
}

// Switch is the DNS-style failover switch: an authoritative DNS server for
// one zone that answers each client with its home region while that region
// is healthy and not drained, else with the next healthy region in the
// home's preference list.
//
// Lifecycle: Open validates and loads the state file; Run binds and serves
// until its context ends or Close is called, and returns only after every
// goroutine it started has returned; Close stops Run and waits for it.
type Switch struct {
	cfg  Config
	zone string // fully qualified, lower case
	log  *slog.Logger
	hc   *http.Client
	keys *keyring

	life      sync.Mutex    // guards running, closed, the addresses and the closing of done
	running   bool          // Run was called
	closed    bool          // Close was called
	stop      chan struct{} // closed by Close
	ready     chan struct{} // closed once Run's listeners serve
	done      chan struct{} // closed when Run has returned, or by Close when Run never will
	runErr    error         // what Run returned; read after done
	dnsAddr   string
	adminAddr string

	mu          sync.Mutex
	health      map[string]*regionHealth
	drained     map[string]bool
	overrides   map[string]string // client home region -> region answered
	sharedRev   uint64            // revision of the shared state applied (Config.Shared)
	transitions []Transition
}

type regionHealth struct {
	Healthy   bool      `json:"healthy"`
	Since     time.Time `json:"since"` // when Healthy last changed
	Fails     int       `json:"consecutive_failures"`
	OKSince   time.Time `json:"ok_since,omitzero"` // start of the current run of passed checks
	LastCheck time.Time `json:"last_check,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	checked   bool
}

// Transition is a change of what the switch answers or of a region's state.
type Transition struct {
	Time   time.Time `json:"time"`
	Region string    `json:"region"`
	What   string    `json:"what"` // "down", "up", "drained", "undrained", "override", "override cleared"
	Detail string    `json:"detail,omitempty"`
}

// ErrClosed is what Run returns when Close came first.
var ErrClosed = errors.New("switch: closed")

// Open validates cfg, fills in the defaults and reads the state file (the
// drains and overrides kept across restarts). It binds nothing: Run does.
func Open(cfg Config) (*Switch, error) {
	if cfg.Zone == "" || len(cfg.Regions) == 0 {
		return nil, errors.New("switch: a zone and at least one region are needed")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 250 * time.Millisecond
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 500 * time.Millisecond
	}
	if cfg.Fall <= 0 {
		cfg.Fall = 2
	}
	if cfg.Rise <= 0 {
		cfg.Rise = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Switch{cfg: cfg, zone: dns.Fqdn(strings.ToLower(cfg.Zone)), log: cfg.Logger,
		hc:   &http.Client{Timeout: cfg.CheckTimeout, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg.CheckTLS}},
		stop: make(chan struct{}), ready: make(chan struct{}), done: make(chan struct{}),
		health: map[string]*regionHealth{}, drained: map[string]bool{}, overrides: map[string]string{}}
	for _, r := range cfg.Regions {
		if _, dup := s.health[r.Name]; dup || r.Name == "" {
			return nil, fmt.Errorf("switch: region name %q empty or given twice", r.Name)
		}
		if !r.Addr.Is4() {
			return nil, fmt.Errorf("switch: region %s: address %v is not IPv4", r.Name, r.Addr)
		}
		// Unknown until the first check; answered as if healthy so that a
		// restarted switch does not move everybody while it looks.
		s.health[r.Name] = &regionHealth{Healthy: true, Since: cfg.Now()}
	}
	for home, list := range cfg.Prefer {
		for _, n := range append([]string{home}, list...) {
			if _, ok := s.health[n]; !ok {
				return nil, fmt.Errorf("switch: preference of %s names unknown region %q", home, n)
			}
		}
	}
	var err error
	if s.keys, err = newKeyring(cfg.APIKeyHashes); err != nil {
		return nil, err
	}
	if cfg.Shared == nil {
		if err := s.loadState(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run binds the DNS listeners (UDP and TCP on one port) and the admin API,
// serves them and health-checks every region, until ctx ends or Close is
// called. It returns only after every goroutine it started has returned:
// nil when it was stopped, else the first error of a listener (a port
// already taken, a serve loop that ended by itself); later errors are
// logged. Run may be called once; after Close it returns ErrClosed.
func (s *Switch) Run(ctx context.Context) (err error) {
	s.life.Lock()
	switch {
	case s.closed:
		s.life.Unlock()
		return ErrClosed
	case s.running:
		s.life.Unlock()
		return errors.New("switch: Run called twice")
	}
	s.running = true
	s.life.Unlock()
	defer func() {
		s.runErr = err
		close(s.done)
	}()
	return s.run(ctx)
}

// ended is what a listener's serve loop returned.
type ended struct {
	what string
	err  error
}

// asked reports whether the loop ended because the switch stopped it.
func (e ended) asked() bool { return e.err == nil || errors.Is(e.err, http.ErrServerClosed) }

func (s *Switch) run(ctx context.Context) error {
	pc, tl, ln, err := s.listen()
	if err != nil {
		return err
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(s.zone, s.serveDNS)
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeRefused)
		_ = w.WriteMsg(m)
	})
	udp := &dns.Server{PacketConn: pc, Handler: mux}
	tcp := &dns.Server{Listener: tl, Handler: mux}
	var wg sync.WaitGroup
	ends := make(chan ended, 3) // one per listener: a serve loop never blocks on it
	udpUp := serveDNS(&wg, ends, "dns udp", udp)
	tcpUp := serveDNS(&wg, ends, "dns tcp", tcp)
	var admin *http.Server
	if ln != nil {
		admin = &http.Server{Handler: s.adminRoutes(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { ends <- ended{"admin http", admin.Serve(ln)} })
	}
	checks, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	for _, r := range s.cfg.Regions {
		wg.Go(func() { s.check(checks, r) })
	}
	if s.cfg.Shared != nil {
		wg.Go(func() {
			_ = s.cfg.Shared.Watch(checks, s.applyShared, func(err error) {
				s.log.Warn("switch: shared state", "err", err)
			})
		})
	}
	<-udpUp
	<-tcpUp
	s.life.Lock()
	s.dnsAddr = pc.LocalAddr().String()
	if ln != nil {
		s.adminAddr = ln.Addr().String()
	}
	close(s.ready)
	s.life.Unlock()
	s.log.Info("switch serving", "zone", s.zone, "dns", s.dnsAddr, "admin", s.adminAddr, "ttl", s.cfg.TTL)

	var first error
	select {
	case <-ctx.Done():
	case <-s.stop:
	case e := <-ends:
		first = fmt.Errorf("switch: %s stopped serving", e.what)
		if !e.asked() {
			first = fmt.Errorf("switch: %s: %w", e.what, e.err)
		}
	}
	stopChecks()
	_ = udp.Shutdown() // both have started (or failed): Shutdown does not race their start
	_ = tcp.Shutdown()
	if admin != nil {
		_ = admin.Close()
	}
	wg.Wait()
	// Closed already by their servers, unless one failed before serving.
	pc.Close()
	tl.Close()
	if ln != nil {
		ln.Close()
	}
	close(ends)
	for e := range ends {
		if e.asked() {
			continue
		}
		if first == nil {
			first = fmt.Errorf("switch: %s: %w", e.what, e.err)
			continue
		}
		s.log.Error("switch listener failed", "listener", e.what, "err", e.err)
	}
	s.log.Info("switch stopped", "err", first)
	return first
}

// listen binds the DNS port, UDP then TCP (the same port, also when asked
// for port 0: then a port whose TCP twin is taken is given back and another
// one tried), and the admin API's; on an error nothing stays bound.
func (s *Switch) listen() (pc net.PacketConn, tl, admin net.Listener, err error) {
	_, port, _ := net.SplitHostPort(s.cfg.DNSAddr)
	for tries := 1; ; tries++ {
		if pc, err = net.ListenPacket("udp", s.cfg.DNSAddr); err != nil {
			return nil, nil, nil, fmt.Errorf("switch: dns udp %s: %w", s.cfg.DNSAddr, err)
		}
		if tl, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || tries == 10 {
			return nil, nil, nil, fmt.Errorf("switch: dns tcp %s: %w", s.cfg.DNSAddr, err)
		}
	}
	if s.cfg.AdminAddr != "" {
		if admin, err = net.Listen("tcp", s.cfg.AdminAddr); err != nil {
			pc.Close()
			tl.Close()
			return nil, nil, nil, fmt.Errorf("switch: admin %s: %w", s.cfg.AdminAddr, err)
		}
	}
	return pc, tl, admin, nil
}

// serveDNS runs srv in a goroutine of wg that sends its end to ends. The
// channel returned is closed once srv serves or has failed to: a dns.Server
// shut down before it started would serve on regardless.
func serveDNS(wg *sync.WaitGroup, ends chan<- ended, what string, srv *dns.Server) <-chan struct{} {
	up := make(chan struct{})
	var once sync.Once
	srv.NotifyStartedFunc = func() { once.Do(func() { close(up) }) }
	wg.Go(func() {
		err := srv.ActivateAndServe()
		once.Do(func() { close(up) })
		ends <- ended{what, err}
	})
	return up
}

// WaitReady returns nil once Run serves, or Run's error if it ended before
// serving (ErrClosed if Close came first), or ctx's error.
func (s *Switch) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.done:
		select {
		case <-s.ready:
			return nil
		default:
		}
		if s.runErr == nil {
			return ErrClosed
		}
		return s.runErr
	case <-ctx.Done():
		return fmt.Errorf("switch not serving: %w", ctx.Err())
	}
}

// Close stops Run, if it runs, and waits for it to return: every goroutine
// Run started has then ended. It is safe to call more than once, before
// Run, and concurrently with it.
func (s *Switch) Close() {
	s.life.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		if !s.running {
			s.runErr = ErrClosed
			close(s.done)
		}
	}
	s.life.Unlock()
	<-s.done
}

// DNSAddr is the address the DNS server listens on (useful with port 0),
// "" until Run serves.
func (s *Switch) DNSAddr() string {
	s.life.Lock()
	defer s.life.Unlock()
	return s.dnsAddr
}

// AdminAddr is the admin API's address, "" until Run serves or without one.
func (s *Switch) AdminAddr() string {
	s.life.Lock()
	defer s.life.Unlock()
	return s.adminAddr
}

func (s *Switch) check(ctx context.Context, r Region) {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		err := s.probe(ctx, r.ReadyURL)
		if ctx.Err() != nil {
			return
		}
		s.record(r.Name, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Switch) probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %d", resp.StatusCode)
	}
	return nil
}

// record applies one check's result with hysteresis: Fall failures in a
// row take a region down; passing every check for Rise brings it back. The
// first check decides at once.
func (s *Switch) record(name string, err error) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health[name]
	h.LastCheck = now
	first := !h.checked
	h.checked = true
	if err != nil {
		h.LastError = err.Error()
		h.Fails++
		h.OKSince = time.Time{}
		if h.Healthy && (h.Fails >= s.cfg.Fall || first) {
			h.Healthy, h.Since = false, now
			s.transition(name, "down", h.LastError)
		}
		return
	}
	h.LastError, h.Fails = "", 0
	if h.OKSince.IsZero() {
		h.OKSince = now
	}
	if !h.Healthy && now.Sub(h.OKSince) >= s.cfg.Rise {
		h.Healthy, h.Since = true, now
		s.transition(name, "up", fmt.Sprintf("ready for %s", now.Sub(h.OKSince).Round(time.Millisecond)))
	}
}

// transition logs and keeps a change; s.mu is held.
func (s *Switch) transition(region, what, detail string) {
	tr := Transition{Time: s.cfg.Now().UTC(), Region: region, What: what, Detail: detail}
	s.transitions = append(s.transitions, tr)
	if len(s.transitions) > 200 {
		s.transitions = slices.Clone(s.transitions[len(s.transitions)-200:])
	}
	s.log.Info("switch "+what, "region", region, "detail", detail)
}

// homeOf returns the region whose clients come from src, or "" for none.
func (s *Switch) homeOf(src netip.Addr) string {
	src = src.Unmap()
	for _, r := range s.cfg.Regions {
		if r.Home.IsValid() && r.Home.Contains(src) {
			return r.Name
		}
	}
	return ""
}

// order is the list of regions tried for clients of home, home first.
func (s *Switch) order(home string) []string {
	if home == "" {
		home = s.cfg.Regions[0].Name
	}
	out := []string{home}
	out = append(out, s.cfg.Prefer[home]...)
	for _, r := range s.cfg.Regions {
		if !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// Choose returns the region answered to clients of home ("" for clients
// of no region) and why. s.mu must not be held.
func (s *Switch) Choose(home string) (region, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.choose(home)
}

func (s *Switch) choose(home string) (string, string) {
	if to, ok := s.overrides[home]; ok && home != "" {
		return to, "override"
	}
	order := s.order(home)
	for i, n := range order {
		if s.health[n].Healthy && !s.drained[n] {
			if i == 0 {
				return n, "home"
			}
			return n, "failover"
		}
	}
	// Nothing healthy: fail open to the first region not drained, so that
	// a broken health check cannot take the whole service off the air.
	for _, n := range order {
		if !s.drained[n] {
			return n, "no healthy region: fail open"
		}
	}
	return order[0], "every region drained: fail open"
}

func (s *Switch) addrOf(name string) netip.Addr {
	for _, r := range s.cfg.Regions {
		if r.Name == name {
			return r.Addr
		}
	}
	return netip.Addr{}
}

// serveDNS answers the zone: its apex resolves by the client's home
// region, <region>.<zone> to that region directly; SOA and NS describe the
// zone; other names are NXDOMAIN.
func (s *Switch) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		m.SetRcode(q, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	qs := q.Question[0]
	name := strings.ToLower(qs.Name)
	ttl := uint32(max(1, s.cfg.TTL.Round(time.Second)/time.Second))
	var addr netip.Addr
	switch {
	case name == s.zone:
		var src netip.Addr
		if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
			src = ap.Addr()
		}
		region, _ := s.Choose(s.homeOf(src))
		addr = s.addrOf(region)
	case strings.HasSuffix(name, "."+s.zone):
		addr = s.addrOf(strings.TrimSuffix(name, "."+s.zone))
		if !addr.IsValid() {
			m.SetRcode(q, dns.RcodeNameError)
			m.Ns = []dns.RR{s.soa()}
			_ = w.WriteMsg(m)
			return
		}
	}
	switch {
	case qs.Qtype == dns.TypeA || qs.Qtype == dns.TypeANY:
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: addr.AsSlice()}}
	case qs.Qtype == dns.TypeSOA && name == s.zone:
		m.Answer = []dns.RR{s.soa()}
	case qs.Qtype == dns.TypeNS && name == s.zone:
		m.Answer = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: s.zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: "ns." + s.zone}}
	default:
		m.Ns = []dns.RR{s.soa()} // no data of that type
	}
	_ = w.WriteMsg(m)
}

func (s *Switch) soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns." + s.zone, Mbox: "hostmaster." + s.zone, Serial: 1, Refresh: 60, Retry: 10, Expire: 600,
		Minttl: uint32(max(1, s.cfg.TTL/time.Second))}
}

// State is what the admin API serves and `make status` prints.
type State struct {
	Zone        string                 `json:"zone"`
	TTLSeconds  float64                `json:"ttl_seconds"`
	Regions     []RegionState          `json:"regions"`
	Answers     []Answer               `json:"answers"`
	Overrides   map[string]string      `json:"overrides"`
	Transitions []Transition           `json:"transitions"`
	Config      map[string]interface{} `json:"config"`
}

// RegionState is one region as the switch sees it.
type RegionState struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	URL     string `json:"url"` // the region's HTTP base, from its ReadyURL
	Drained bool   `json:"drained"`
	regionHealth
}

// Answer is what clients of one home region are answered now.
type Answer struct {
	Clients string `json:"clients"` // home region of the clients
	Region  string `json:"region"`
	Addr    string `json:"addr"`
	Why     string `json:"why"` // home, failover, override, fail open
}

// State returns the switch's view now.
func (s *Switch) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Zone: s.zone, TTLSeconds: s.cfg.TTL.Seconds(), Overrides: map[string]string{},
		Transitions: slices.Clone(s.transitions),
		Config: map[string]interface{}{"check_interval": s.cfg.CheckInterval.String(), "check_timeout": s.cfg.CheckTimeout.String(),
			"fall": s.cfg.Fall, "rise": s.cfg.Rise.String(), "prefer": s.cfg.Prefer}}
	for k, v := range s.overrides {
		st.Overrides[k] = v
	}
	for _, r := range s.cfg.Regions {
		st.Regions = append(st.Regions, RegionState{Name: r.Name, Addr: r.Addr.String(), URL: strings.TrimSuffix(r.ReadyURL, "/readyz"),
			Drained: s.drained[r.Name], regionHealth: *s.health[r.Name]})
		to, why := s.choose(r.Name)
		st.Answers = append(st.Answers, Answer{Clients: r.Name, Region: to, Addr: s.addrOf(to).String(), Why: why})
	}
	return st
}

// Drain stops answering region to anybody (or starts again), whatever its
// health. With a shared state, the change is stored there first: if it
// cannot be, it is refused (replicator.ErrSwitchStateUnavailable) and the
// answers stay as they were.
func (s *Switch) Drain(region string, drain bool) error {
	if err := s.known(region); err != nil {
		return err
	}
	if s.cfg.Shared != nil {
		return s.changeShared(func(st *replicator.SwitchShared) error {
			st.Drained = slices.DeleteFunc(st.Drained, func(n string) bool { return n == region })
			if drain {
				st.Drained = append(st.Drained, region)
				slices.Sort(st.Drained)
			}
			return nil
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drained[region] == drain {
		return nil
	}
	if drain {
		s.drained[region] = true
		s.transition(region, "drained", "by the operator")
	} else {
		delete(s.drained, region)
		s.transition(region, "undrained", "by the operator")
	}
	return s.saveState()
}

// Override answers clients of home with region to, whatever the health of
// either; to == "" clears it. With a shared state, as Drain.
func (s *Switch) Override(home, to string) error {
	if err := s.known(home); err != nil {
		return err
	}
	if to != "" {
		if err := s.known(to); err != nil {
			return err
		}
	}
	if s.cfg.Shared != nil {
		return s.changeShared(func(st *replicator.SwitchShared) error {
			if st.Overrides == nil {
				st.Overrides = map[string]string{}
			}
			if to == "" {
				delete(st.Overrides, home)
			} else {
				st.Overrides[home] = to
			}
			return nil
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if to == "" {
		if _, ok := s.overrides[home]; !ok {
			return nil
		}
		delete(s.overrides, home)
		s.transition(home, "override cleared", "by the operator")
		return s.saveState()
	}
	s.overrides[home] = to
	s.transition(home, "override", "clients of "+home+" sent to "+to+" by the operator")
	return s.saveState()
}

func (s *Switch) known(region string) error {
	if _, ok := s.health[region]; !ok { // the map's keys never change after Open
		return fmt.Errorf("no region %q behind the switch", region)
	}
	return nil
}

// changeShared stores a change in the shared state and applies what was
// stored here at once (the watch brings it to the other instances, and
// here again, which changes nothing).
func (s *Switch) changeShared(fn func(*replicator.SwitchShared) error) error {
	st, rev, err := s.cfg.Shared.Change(context.Background(), fn)
	if err != nil {
		return err
	}
	s.applyShared(st, rev)
	return nil
}

// applyShared makes st, stored at revision rev, the switch's drains and
// overrides, unless a later revision is applied already (the watch and a
// change made here can deliver them in either order), keeping only the
// regions it serves (a state written by a switch with more regions, or by
// hand), and records what changed.
func (s *Switch) applyShared(st replicator.SwitchShared, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.sharedRev {
		return
	}
	s.sharedRev = rev
	drained := map[string]bool{}
	for _, n := range st.Drained {
		if s.health[n] != nil {
			drained[n] = true
		}
	}
	overrides := map[string]string{}
	for k, v := range st.Overrides {
		if s.health[k] != nil && s.health[v] != nil {
			overrides[k] = v
		}
	}
	for _, r := range s.cfg.Regions {
		n := r.Name
		switch {
		case drained[n] && !s.drained[n]:
			s.transition(n, "drained", "by the operator (shared state)")
		case !drained[n] && s.drained[n]:
			s.transition(n, "undrained", "by the operator (shared state)")
		}
		switch to, ok := overrides[n]; {
		case ok && s.overrides[n] != to:
			s.transition(n, "override", "clients of "+n+" sent to "+to+" by the operator (shared state)")
		case !ok && s.overrides[n] != "":
			s.transition(n, "override cleared", "by the operator (shared state)")
		}
	}
	s.drained, s.overrides = drained, overrides
}

type savedState struct {
	Drained   []string          `json:"drained"`
	Overrides map[string]string `json:"overrides"`
}

func (s *Switch) loadState() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	data, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f savedState
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("switch state %s: %w", s.cfg.StateFile, err)
	}
	for _, n := range f.Drained {
		if _, ok := s.health[n]; ok {
			s.drained[n] = true
		}
	}
	for k, v := range f.Overrides {
		if s.health[k] != nil && s.health[v] != nil {
			s.overrides[k] = v
		}
	}
	return nil
}

// saveState writes drains and overrides atomically; s.mu is held.
func (s *Switch) saveState() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	f := savedState{Overrides: s.overrides}
	for n := range s.drained {
		f.Drained = append(f.Drained, n)
	}
	slices.Sort(f.Drained)
	data, _ := json.MarshalIndent(f, "", "  ")
	tmp := s.cfg.StateFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.cfg.StateFile)
}

// adminRoutes: GET /v1/state; PUT|DELETE /v1/drain/{region};
// PUT|DELETE /v1/override/{clients}?to=REGION. Changes need an API key.
func (s *Switch) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.State()) })
	change := func(fn func(r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !s.authorised(r) {
				writeProblem(w, http.StatusUnauthorized, "no or bad API key (X-Api-Key)")
				return
			}
			if err := fn(r); err != nil {
				if errors.Is(err, replicator.ErrSwitchStateUnavailable) {
					w.Header().Set("Retry-After", "2")
					writeProblem(w, http.StatusServiceUnavailable, err.Error()+"; the change is not confirmed (see GET /v1/state before trying again), and the switch keeps answering as before")
					return
				}
				writeProblem(w, http.StatusBadRequest, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, s.State())
		}
	}
	mux.HandleFunc("PUT /v1/drain/{region}", change(func(r *http.Request) error { return s.Drain(r.PathValue("region"), true) }))
	mux.HandleFunc("DELETE /v1/drain/{region}", change(func(r *http.Request) error { return s.Drain(r.PathValue("region"), false) }))
	mux.HandleFunc("PUT /v1/override/{clients}", change(func(r *http.Request) error {
		to := r.URL.Query().Get("to")
		if to == "" {
			return errors.New("give the region to send them to: ?to=REGION")
		}
		return s.Override(r.PathValue("clients"), to)
	}))
	mux.HandleFunc("DELETE /v1/override/{clients}", change(func(r *http.Request) error { return s.Override(r.PathValue("clients"), "") }))
	return mux
}

func (s *Switch) authorised(r *http.Request) bool {
	key := r.Header.Get("X-Api-Key")
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && key == "" {
		key = b
	}
	return s.keys.check(key)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

// ParseRegion reads a region behind the switch as the command line gives
// it, NAME=IPv4: its clients are the /24 of its address, and its health is
// <scheme>://ADDR:<port>/readyz.
func ParseRegion(spec, scheme string, port int) (Region, error) {
	name, addr, ok := strings.Cut(spec, "=")
	a, err := netip.ParseAddr(addr)
	if !ok || name == "" || err != nil || !a.Is4() {
		return Region{}, fmt.Errorf("--region %q: want NAME=IPv4", spec)
	}
	home, _ := a.Prefix(24)
	return Region{Name: name, Addr: a, Home: home, ReadyURL: fmt.Sprintf("%s://%s:%d/readyz", scheme, a, port)}, nil
}

// ParsePrefer reads where a home region's clients go when it is down,
// HOME=REGION,REGION, into prefer.
func ParsePrefer(spec string, prefer map[string][]string) error {
	home, list, ok := strings.Cut(spec, "=")
	if !ok || home == "" || list == "" {
		return fmt.Errorf("--prefer %q: want HOME=REGION,REGION", spec)
	}
	prefer[home] = strings.Split(list, ",")
	return nil
}
