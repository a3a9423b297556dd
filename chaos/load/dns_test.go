package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testSwitch is a DNS server like the project's switch: short.test. A is
// answered by the query's source address (127.0.N.x gets answers[N]).
type testSwitch struct {
	addr     string
	ttl      uint32
	mu       sync.Mutex
	answers  map[byte]string
	truncate bool // UDP answers are truncated: the client must retry on TCP
	queries  []dnsQuery
}

type dnsQuery struct {
	src    netip.Addr
	net    string
	at     time.Time
	answer string
}

// startSwitch starts a switch on 127.0.0.1 (UDP and TCP on one port).
func startSwitch(t *testing.T, ttl uint32, answers map[byte]string) *testSwitch {
	t.Helper()
	sw := &testSwitch{ttl: ttl, answers: answers}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	sw.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: sw}, {Listener: ln, Handler: sw}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return sw
}

func (s *testSwitch) set(digit byte, ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[digit] = ip
}

func (s *testSwitch) log() []dnsQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

func (s *testSwitch) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	ap, _ := netip.ParseAddrPort(w.RemoteAddr().String())
	src := ap.Addr().Unmap()
	network := w.RemoteAddr().Network()
	s.mu.Lock()
	ans := ""
	if src.Is4() && src.As4()[0] == 127 {
		ans = s.answers[src.As4()[2]]
	}
	s.queries = append(s.queries, dnsQuery{src: src, net: network, at: time.Now(), answer: ans})
	truncate := s.truncate && network == "udp"
	s.mu.Unlock()
	switch {
	case len(req.Question) != 1 || req.Question[0].Name != "short.test." || req.Question[0].Qtype != dns.TypeA:
		m.Rcode = dns.RcodeNameError
	case ans == "":
		m.Rcode = dns.RcodeServerFailure
	case truncate:
		m.Truncated = true
	default:
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: "short.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.ttl},
			A:   net.ParseIP(ans),
		}}
	}
	w.WriteMsg(m)
}

// fakeStore is the links of a fake service: a link created in a region is
// visible in the others unless that region's replication is off.
type fakeStore struct {
	mu        sync.Mutex
	next      int
	origin    map[string]string // code -> creating region
	hidden    map[string]bool   // not replicated: only its origin has it
	paused    map[string]bool   // regions whose creates stay hidden
	createdAt map[string]time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{origin: map[string]string{}, hidden: map[string]bool{}, paused: map[string]bool{},
		createdAt: map[string]time.Time{}}
}

func (s *fakeStore) pause(region string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused[region] = true
}

func (s *fakeStore) create(region string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	code := region[:1] + strconv.Itoa(s.next)
	s.origin[code] = region
	s.createdAt[code] = time.Now()
	if s.paused[region] {
		s.hidden[code] = true
	}
	return code
}

func (s *fakeStore) has(region, code string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.origin[code]
	return ok && (!s.hidden[code] || o == region)
}

// hiddenOf returns the hidden codes of origin.
func (s *fakeStore) hiddenOf(origin string) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for c := range s.hidden {
		if s.origin[c] == origin {
			out[c] = true
		}
	}
	return out
}

// fakeRegion serves a region's API on 127.0.N.1:port from a fakeStore:
// creates, redirects (302, 404 when unknown here) and /api/v1/regions,
// whose RPO for an origin is the number of its hidden links.
type fakeRegion struct {
	name    string
	addr    string
	store   *fakeStore
	regions []string
	mu      sync.Mutex
	srv     *http.Server
	sources map[string]int // client requests by source IP
	polls   int
}

func (f *fakeRegion) url() string { return "http://" + f.addr }

func (f *fakeRegion) start() error {
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("region %s: %w", f.name, err)
	}
	srv := &http.Server{Handler: f}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

// kill closes the listener and every connection at once.
func (f *fakeRegion) kill() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (f *fakeRegion) seen() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.sources {
		out[k] = v
	}
	return out
}

func (f *fakeRegion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	if r.URL.Path != "/api/v1/regions" { // the regions poller is no client
		f.mu.Lock()
		if f.sources == nil {
			f.sources = map[string]int{}
		}
		f.sources[ap.Addr().String()]++
		f.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/links":
		code := f.store.create(f.name)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"code":%q,"region":%q}`, code, f.name)
	case r.URL.Path == "/api/v1/regions":
		f.mu.Lock()
		f.polls++
		f.mu.Unlock()
		var origins []OriginRPO
		for _, o := range f.regions {
			if o == f.name {
				origins = append(origins, OriginRPO{Origin: o, Local: true, RPOKnown: true, MirrorActive: true})
				continue
			}
			n := uint64(len(f.store.hiddenOf(o)))
			origins = append(origins, OriginRPO{Origin: o, RPOEvents: n, RPOSeconds: 0.25, RPOKnown: true,
				LagEvents: n, MirrorActive: n == 0, OriginReachable: true})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"region": f.name, "time": time.Now().UTC(), "origins": origins})
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		code := strings.TrimPrefix(r.URL.Path, "/")
		if !f.store.has(f.name, code) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Location", "https://example.com/"+code)
		w.WriteHeader(http.StatusFound)
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

var devNames = []string{"us-east", "eu-west", "ap-south"}

// startFakeRegions starts n fake regions on 127.0.N.1 with one port free on
// every address (not 8080, so a running dev cluster does not matter).
func startFakeRegions(t *testing.T, n int) []*fakeRegion {
	t.Helper()
	port := 0
	for try := 0; try < 50 && port == 0; try++ {
		ln, err := net.Listen("tcp", "127.0.1.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		free := true
		for i := 2; i <= n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.1:%d", i, p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		ln.Close()
		if free && p != 8080 {
			port = p
		}
	}
	if port == 0 {
		t.Fatal("no port free on every region address")
	}
	store := newFakeStore()
	var rs []*fakeRegion
	for i := range n {
		f := &fakeRegion{name: devNames[i], addr: fmt.Sprintf("127.0.%d.1:%d", i+1, port), store: store, regions: devNames[:n]}
		if err := f.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.kill)
		rs = append(rs, f)
	}
	return rs
}

func regionsOf(rs []*fakeRegion) []Region {
	var out []Region
	for _, f := range rs {
		out = append(out, Region{Name: f.name, BaseURL: f.url()})
	}
	return out
}

// clientsOf returns a DNS target per region: its clients at 127.0.N.10.
func clientsOf(rs []*fakeRegion, sw *testSwitch) []Target {
	_, port, _ := net.SplitHostPort(rs[0].addr)
	var out []Target
	for i, f := range rs {
		out = append(out, Target{Name: f.name, BaseURL: "http://short.test:" + port, DNS: sw.addr,
			LocalAddr: fmt.Sprintf("127.0.%d.10", i+1)})
	}
	return out
}

func TestDNSClientsFollowTheSwitch(t *testing.T) {
	rs := startFakeRegions(t, 2)
	east, west := rs[0], rs[1]
	sw := startSwitch(t, 1, map[byte]string{1: "127.0.1.1", 2: "127.0.2.1"})
	var hist syncBuffer
	var progress syncBuffer
	var switchedAt time.Time
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		// Move us-east's clients once us-east has served some of them.
		deadline := time.Now().Add(5 * time.Second)
		for east.seen()["127.0.1.10"] < 50 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		sw.set(1, "127.0.2.1")
		switchedAt = time.Now()
	}()
	rep := run(t, Config{
		Targets:     clientsOf(rs, sw),
		Regions:     regionsOf(rs),
		Rate:        200,
		Duration:    3 * time.Second,
		Workers:     8,
		CreateRatio: 0.2,
		APIKey:      "k",
		History:     &hist,
		Progress:    &progress,
	})
	<-switched
	if rep.Total.OK != rep.Total.Sent || rep.Total.Sent < 550 {
		t.Fatalf("sent %d ok %d", rep.Total.Sent, rep.Total.OK)
	}

	// (a) Every DNS query and every connection came from the client's
	// source address.
	bySrc := map[string][]dnsQuery{}
	for _, q := range sw.log() {
		bySrc[q.src.String()] = append(bySrc[q.src.String()], q)
	}
	if len(bySrc) != 2 || len(bySrc["127.0.1.10"]) == 0 || len(bySrc["127.0.2.10"]) == 0 {
		t.Fatalf("DNS queries by source: %v", bySrc)
	}
	if s := east.seen(); len(s) != 1 || s["127.0.1.10"] == 0 {
		t.Errorf("us-east served sources %v, want only 127.0.1.10", s)
	}
	if s := west.seen(); len(s) != 2 || s["127.0.1.10"] == 0 || s["127.0.2.10"] == 0 {
		t.Errorf("eu-west served sources %v, want 127.0.1.10 (after the move) and 127.0.2.10", s)
	}
	// The TTL is honoured: one query per second, give or take scheduling.
	for src, qs := range bySrc {
		if len(qs) < 3 || len(qs) > 5 {
			t.Errorf("%s: %d queries in a 3 s run with TTL 1 s", src, len(qs))
		}
		for i := 1; i < len(qs); i++ {
			if d := qs[i].at.Sub(qs[i-1].at); d < 950*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("%s: %v between queries %d and %d, want the 1 s TTL", src, d, i-1, i)
			}
		}
	}

	// (b) us-east's clients moved within the TTL plus one request.
	h, err := ReadHistory(strings.NewReader(hist.String()))
	if err != nil {
		t.Fatal(err)
	}
	var lastEast, firstWest time.Time
	for _, o := range h.Ops {
		if o.Target != "us-east" {
			if o.Region != "eu-west" {
				t.Fatalf("eu-west client served by %q: %+v", o.Region, o)
			}
			continue
		}
		switch o.Region {
		case "us-east":
			if o.Start.After(lastEast) {
				lastEast = o.Start
			}
		case "eu-west":
			if o.Start.Before(switchedAt) {
				t.Fatalf("us-east client at eu-west before the switch: %+v", o)
			}
			if firstWest.IsZero() || o.Start.Before(firstWest) {
				firstWest = o.Start
			}
		default:
			t.Fatalf("served by %q", o.Region)
		}
	}
	const slack = 150 * time.Millisecond
	if d := lastEast.Sub(switchedAt); d > time.Second+slack {
		t.Errorf("us-east's clients still sent to us-east %v after the switch (TTL 1 s)", d)
	}
	if firstWest.IsZero() || firstWest.Sub(switchedAt) > time.Second+slack {
		t.Errorf("first us-east client at eu-west %v after the switch", firstWest.Sub(switchedAt))
	}
	if st := rep.Targets["us-east"].DNS; st == nil || st.Moves != 1 || st.Failures != 0 || st.Resolves < 3 {
		t.Errorf("us-east DNS stats %+v", st)
	}
	if tr := rep.Targets["us-east"]; tr.Region != "eu-west" || tr.Addr != west.addr {
		t.Errorf("us-east ends at %s %s", tr.Region, tr.Addr)
	}
	last := rep.Targets["us-east"].Seconds[len(rep.Targets["us-east"].Seconds)-1]
	if last.Region != "eu-west" {
		t.Errorf("last second served by %q", last.Region)
	}
	if !strings.Contains(progress.String(), "us-east→eu-west") || !strings.Contains(progress.String(), " eu-west ") {
		t.Errorf("progress:\n%s", progress.String())
	}
	var secs bytes.Buffer
	if err := rep.WriteSeconds(&secs); err != nil || !strings.Contains(secs.String(), "eu-west") {
		t.Errorf("per-second report %v:\n%s", err, secs.String())
	}

	// (c) The history has every field.
	checkHistoryFields(t, h, rep)
	var moves []DNSRecord
	for _, d := range h.DNS {
		if d.Err != "" || d.TTL != 1 {
			t.Errorf("dns record %+v", d)
		}
		if d.Changed {
			moves = append(moves, d)
		}
	}
	if len(moves) != 3 || moves[2].Target != "us-east" || moves[2].Region != "eu-west" || moves[2].Time.Before(switchedAt) {
		t.Errorf("dns changes %+v", moves)
	}
	polls := map[string]int{}
	for _, r := range h.Regions {
		polls[r.Region]++
		if !r.OK || r.Status != 200 || r.Time.IsZero() || r.End.Before(r.Start) || len(r.Origins) != 2 {
			t.Fatalf("regions record %+v", r)
		}
		if o, ok := r.Origin(r.Region); !ok || !o.Local {
			t.Fatalf("regions record without its own origin %+v", r)
		}
	}
	// Every 500 ms for 3 s: 6 or 7 polls each.
	if polls["us-east"] < 6 || polls["us-east"] > 8 || polls["eu-west"] < 6 || polls["eu-west"] > 8 {
		t.Errorf("regions polls %v", polls)
	}
}

// checkHistoryFields checks what every op record holds.
func checkHistoryFields(t *testing.T, h *History, rep *Report) {
	t.Helper()
	if int64(len(h.Ops)) != rep.Total.Sent {
		t.Fatalf("%d ops in the history, %d sent", len(h.Ops), rep.Total.Sent)
	}
	addrs := map[string]string{}
	creates := 0
	for _, o := range h.Ops {
		if o.Intended.Before(rep.Start) || o.Start.Before(o.Intended) || o.End.Before(o.Start) {
			t.Fatalf("times out of order %+v", o)
		}
		if o.Addr == "" || o.Region == "" {
			t.Fatalf("op without addr or region %+v", o)
		}
		if a, ok := addrs[o.Region]; ok && a != o.Addr {
			t.Fatalf("region %s at %s and %s", o.Region, a, o.Addr)
		}
		addrs[o.Region] = o.Addr
		switch o.Op {
		case "create":
			creates++
			if !o.OK || !o.Ack || o.Status != 201 || o.Code == "" || !strings.HasPrefix(o.URL, DefaultURLPrefix) {
				t.Fatalf("create %+v", o)
			}
		case "redirect":
			if !o.OK || o.Ack || o.Status != 302 || o.URL != "https://example.com/"+o.Code {
				t.Fatalf("redirect %+v", o)
			}
		}
	}
	if creates == 0 {
		t.Fatal("no creates")
	}
}

func TestDNSTruncatedFallsBackToTCP(t *testing.T) {
	sw := startSwitch(t, 7, map[byte]string{3: "127.0.3.1"})
	sw.mu.Lock()
	sw.truncate = true
	sw.mu.Unlock()
	c, err := newDNSClient(Target{Name: "c", DNS: sw.addr, LocalAddr: "127.0.3.10"}, hostPort{"short.test", "80"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ip, ttl, err := c.resolve(context.Background())
	if err != nil || ip.String() != "127.0.3.1" || ttl != 7*time.Second {
		t.Fatalf("resolve: %v %v %v", ip, ttl, err)
	}
	qs := sw.log()
	if len(qs) != 2 || qs[0].net != "udp" || qs[1].net != "tcp" || qs[0].src.String() != "127.0.3.10" || qs[1].src.String() != "127.0.3.10" {
		t.Fatalf("queries %+v", qs)
	}
}

func TestDNSFailureKeepsTheLastAnswer(t *testing.T) {
	rs := startFakeRegions(t, 1)
	sw := startSwitch(t, 0, map[byte]string{1: "127.0.1.1"}) // TTL 0: resolved every MinTTL
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for rs[0].seen()["127.0.1.10"] < 20 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		sw.set(1, "") // SERVFAIL from now on
	}()
	rep := run(t, Config{Targets: clientsOf(rs, sw), Regions: regionsOf(rs), Rate: 100, Duration: time.Second,
		Workers: 4, CreateRatio: 0.5, APIKey: "k"})
	st := rep.Targets["us-east"].DNS
	if rep.Total.OK != rep.Total.Sent || rep.Total.Sent != 100 {
		t.Errorf("sent %d ok %d: a failing switch must not fail requests", rep.Total.Sent, rep.Total.OK)
	}
	if st.Failures == 0 || st.Resolves == 0 || st.Moves != 0 {
		t.Errorf("dns stats %+v", st)
	}

	// Without any answer at the start, Run refuses to start.
	_, err := Run(context.Background(), Config{Targets: clientsOf(rs, sw), Rate: 10, Duration: time.Second, Codes: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "resolve short.test") {
		t.Errorf("Run with a failing switch: %v", err)
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
