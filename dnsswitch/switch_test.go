package dnsswitch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"shortener/dnsswitch"
	"shortener/region/regiontest"
)

// readyServer is a /readyz whose answer the test flips.
type readyServer struct {
	*httptest.Server
	ok atomic.Bool
}

func newReadyServer(t *testing.T) *readyServer {
	rs := &readyServer{}
	rs.ok.Store(true)
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if rs.ok.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(rs.Close)
	return rs
}

type switchRig struct {
	sw    *dnsswitch.Switch
	ready []*readyServer
	names []string
}

func startSwitch(t *testing.T, stateFile string) *switchRig {
	t.Helper()
	rig := &switchRig{names: []string{"us-east", "eu-west", "ap-south"}}
	cfg := dnsswitch.Config{Zone: "short.test", DNSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		TTL: time.Second, CheckInterval: 20 * time.Millisecond, CheckTimeout: 200 * time.Millisecond, Fall: 2, Rise: 400 * time.Millisecond,
		Prefer:       map[string][]string{"us-east": {"eu-west", "ap-south"}, "eu-west": {"us-east", "ap-south"}, "ap-south": {"eu-west", "us-east"}},
		StateFile:    stateFile,
		APIKeyHashes: []string{hashKey("operator-key")}}
	for i, n := range rig.names {
		rs := newReadyServer(t)
		rig.ready = append(rig.ready, rs)
		cfg.Regions = append(cfg.Regions, dnsswitch.Region{Name: n,
			Addr:     netip.MustParseAddr(fmt.Sprintf("127.0.%d.1", i+1)),
			Home:     netip.MustParsePrefix(fmt.Sprintf("127.0.%d.0/24", i+1)),
			ReadyURL: rs.URL + "/readyz"})
	}
	sw, err := dnsswitch.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rig.sw = sw
	serve(t, sw)
	return rig
}

// serve runs sw until the test ends and waits until it serves; at the end
// Run must have returned nil.
func serve(t *testing.T, sw *dnsswitch.Switch) {
	t.Helper()
	ran := make(chan error, 1)
	go func() { ran <- sw.Run(context.Background()) }()
	t.Cleanup(func() {
		sw.Close()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if err := sw.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// hashKey is how the switch is given an API key: its hex SHA-256.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ask queries the switch from source address src over proto.
func ask(t *testing.T, sw *dnsswitch.Switch, src, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	if proto == "tcp" {
		c.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	} else {
		c.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, sw.DNSAddr())
	if err != nil {
		t.Fatalf("query %s %s from %s: %v", name, proto, src, err)
	}
	return r
}

func answerOf(t *testing.T, sw *dnsswitch.Switch, src string) (string, uint32) {
	t.Helper()
	r := ask(t, sw, src, "udp", "short.test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
		t.Fatalf("answer to %s: %v", src, r)
	}
	a := r.Answer[0].(*dns.A)
	return a.A.String(), a.Hdr.Ttl
}

func TestAnswersEachClientWithItsHome(t *testing.T) {
	rig := startSwitch(t, "")
	for i := range rig.names {
		src := fmt.Sprintf("127.0.%d.10", i+1)
		got, ttl := answerOf(t, rig.sw, src)
		if want := fmt.Sprintf("127.0.%d.1", i+1); got != want || ttl != 1 {
			t.Errorf("client %s: answered %s ttl %d, want %s ttl 1", src, got, ttl, want)
		}
	}
	if got, _ := answerOf(t, rig.sw, "127.0.0.1"); got != "127.0.1.1" {
		t.Errorf("a client of no region got %s, want the first region", got)
	}
	r := ask(t, rig.sw, "127.0.2.10", "tcp", "SHORT.test.", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.2.1" {
		t.Errorf("over TCP, any case: %v", r)
	}
	r = ask(t, rig.sw, "127.0.3.10", "udp", "us-east.short.test.", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.1.1" {
		t.Errorf("us-east.short.test: %v", r)
	}
	if r := ask(t, rig.sw, "127.0.1.10", "udp", "nope.short.test.", dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
		t.Errorf("unknown name: %v", r)
	}
	if r := ask(t, rig.sw, "127.0.1.10", "udp", "example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Errorf("other zone: %v", r)
	}
	if r := ask(t, rig.sw, "127.0.1.10", "udp", "short.test.", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("AAAA: want no data with the SOA, got %v", r)
	}
}

func TestFailsOverWithHysteresis(t *testing.T) {
	rig := startSwitch(t, "")
	want := func(src, addr string, within time.Duration) {
		t.Helper()
		regiontest.WaitFor(t, within, func() error {
			if got, _ := answerOf(t, rig.sw, src); got != addr {
				return fmt.Errorf("client %s answered %s, want %s", src, got, addr)
			}
			return nil
		})
	}
	rig.ready[0].ok.Store(false) // us-east not ready
	want("127.0.1.10", "127.0.2.1", 2*time.Second)
	want("127.0.2.10", "127.0.2.1", time.Second) // others unmoved
	rig.ready[1].ok.Store(false)                 // eu-west too: us-east's clients go to ap-south
	want("127.0.1.10", "127.0.3.1", 2*time.Second)
	want("127.0.2.10", "127.0.3.1", 2*time.Second)

	// eu-west flaps: ready for 100 ms, then not, for 1.5 s: it never comes back.
	stop := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stop) {
		rig.ready[1].ok.Store(true)
		time.Sleep(100 * time.Millisecond)
		rig.ready[1].ok.Store(false)
		time.Sleep(100 * time.Millisecond)
		if got, _ := answerOf(t, rig.sw, "127.0.2.10"); got != "127.0.3.1" {
			t.Fatalf("a flapping eu-west got its clients back: %s", got)
		}
	}
	// Steadily ready: back after Rise (400 ms), not before.
	back := time.Now()
	rig.ready[1].ok.Store(true)
	want("127.0.2.10", "127.0.2.1", 3*time.Second)
	if took := time.Since(back); took < 350*time.Millisecond {
		t.Errorf("eu-west came back after %v, before the 400 ms rise", took)
	}
	want("127.0.1.10", "127.0.2.1", time.Second)
	rig.ready[0].ok.Store(true)
	want("127.0.1.10", "127.0.1.1", 3*time.Second)

	// Nothing healthy: fail open to the home region.
	for _, r := range rig.ready {
		r.ok.Store(false)
	}
	regiontest.WaitFor(t, 2*time.Second, func() error {
		if st := rig.sw.State(); st.Answers[2].Why != "no healthy region: fail open" || st.Answers[2].Region != "ap-south" {
			return fmt.Errorf("answers with nothing healthy: %+v", st.Answers)
		}
		return nil
	})
	want("127.0.3.10", "127.0.3.1", time.Second)
	if n := len(rig.sw.State().Transitions); n < 7 {
		t.Errorf("%d transitions recorded, want at least 7", n)
	}
}

func TestDrainAndOverrideSurviveRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "switch.json")
	rig := startSwitch(t, state)
	admin := "http://" + rig.sw.AdminAddr()
	do := func(method, path, key string) int {
		req, _ := http.NewRequest(method, admin+path, nil)
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := do(http.MethodPut, "/v1/drain/us-east", ""); s != http.StatusUnauthorized {
		t.Fatalf("drain without a key: %d", s)
	}
	if s := do(http.MethodPut, "/v1/drain/us-east", "wrong"); s != http.StatusUnauthorized {
		t.Fatalf("drain with a bad key: %d", s)
	}
	if s := do(http.MethodPut, "/v1/drain/mars", "operator-key"); s != http.StatusBadRequest {
		t.Fatalf("drain of an unknown region: %d", s)
	}
	if s := do(http.MethodPut, "/v1/drain/us-east", "operator-key"); s != http.StatusOK {
		t.Fatalf("drain: %d", s)
	}
	if got, _ := answerOf(t, rig.sw, "127.0.1.10"); got != "127.0.2.1" {
		t.Fatalf("drained us-east still answered: %s", got)
	}
	if s := do(http.MethodPut, "/v1/override/ap-south?to=us-east", "operator-key"); s != http.StatusOK {
		t.Fatalf("override: %d", s)
	}
	if got, _ := answerOf(t, rig.sw, "127.0.3.10"); got != "127.0.1.1" {
		t.Fatalf("override ap-south -> us-east: answered %s", got)
	}

	rig2 := startSwitch(t, state) // a restarted switch keeps both
	if got, _ := answerOf(t, rig2.sw, "127.0.1.10"); got != "127.0.2.1" {
		t.Fatalf("after a restart, drained us-east answered: %s", got)
	}
	if got, _ := answerOf(t, rig2.sw, "127.0.3.10"); got != "127.0.1.1" {
		t.Fatalf("after a restart, the override is gone: %s", got)
	}
	if err := rig2.sw.Drain("us-east", false); err != nil {
		t.Fatal(err)
	}
	if err := rig2.sw.Override("ap-south", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := answerOf(t, rig2.sw, "127.0.1.10"); got != "127.0.1.1" {
		t.Fatalf("undrained us-east: answered %s", got)
	}
	if got, _ := answerOf(t, rig2.sw, "127.0.3.10"); got != "127.0.3.1" {
		t.Fatalf("override cleared: answered %s", got)
	}
}

func TestClient(t *testing.T) {
	rig := startSwitch(t, "")
	ctx := context.Background()
	c := &dnsswitch.Client{Addr: rig.sw.AdminAddr(), APIKey: "wrong"}
	var refused *dnsswitch.APIError
	if err := c.Drain(ctx, "us-east", true); !errors.As(err, &refused) || refused.Status != http.StatusUnauthorized {
		t.Fatalf("drain with a bad key: %v, want a 401 APIError", err)
	}
	c.APIKey = "operator-key"
	if err := c.Drain(ctx, "mars", true); !errors.As(err, &refused) || refused.Status != http.StatusBadRequest {
		t.Fatalf("drain of an unknown region: %v, want a 400 APIError", err)
	}
	if err := c.Drain(ctx, "us-east", true); err != nil {
		t.Fatal(err)
	}
	if err := c.Override(ctx, "ap-south", "us-east"); err != nil {
		t.Fatal(err)
	}
	for home, want := range map[string]string{"us-east": "eu-west", "eu-west": "eu-west", "ap-south": "us-east"} {
		if got, err := c.Answer(ctx, home); err != nil || got != want {
			t.Errorf("clients of %s answered %q (%v), want %s", home, got, err, want)
		}
	}
	if got, _ := answerOf(t, rig.sw, "127.0.1.10"); got != "127.0.2.1" {
		t.Errorf("over DNS, drained us-east's clients got %s", got)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := st.Print(&out, time.Now(), 2); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CLIENTS OF", "us-east     EU-WEST", "DRAINED", "override", "overrides map[ap-south:us-east]", "last changes:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printed state lacks %q:\n%s", want, out.String())
		}
	}
	if err := c.Drain(ctx, "us-east", false); err != nil {
		t.Fatal(err)
	}
	if err := c.Override(ctx, "ap-south", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Answer(ctx, "ap-south"); err != nil || got != "ap-south" {
		t.Errorf("after undrain and clear: ap-south answered %q (%v)", got, err)
	}
	if _, err := (&dnsswitch.Client{Addr: "127.0.0.1:1"}).State(ctx); err == nil {
		t.Error("State from no switch: no error")
	}
}
