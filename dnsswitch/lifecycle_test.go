package dnsswitch_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"shortener/dnsswitch"
	"shortener/region/regiontest"
)

// config is a switch of two regions on ports the system picks, with fast
// health checks against rs.
func config(rs ...*readyServer) dnsswitch.Config {
	cfg := dnsswitch.Config{Zone: "short.test", DNSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", CheckInterval: 10 * time.Millisecond}
	for i, r := range rs {
		cfg.Regions = append(cfg.Regions, dnsswitch.Region{Name: fmt.Sprintf("r%d", i+1),
			Addr:     netip.MustParseAddr(fmt.Sprintf("127.0.%d.1", i+1)),
			Home:     netip.MustParsePrefix(fmt.Sprintf("127.0.%d.0/24", i+1)),
			ReadyURL: r.URL + "/readyz"})
	}
	return cfg
}

// runAsync runs sw.Run(ctx) in a goroutine; the channel gets what it returns.
func runAsync(ctx context.Context, sw *dnsswitch.Switch) <-chan error {
	ran := make(chan error, 1)
	go func() { ran <- sw.Run(ctx) }()
	return ran
}

// returned waits for Run to return. The limit only bounds a failure: a Run
// that does not return.
func returned(t *testing.T, ran <-chan error) error {
	t.Helper()
	select {
	case err := <-ran:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// noGoroutinesAbove polls until no more goroutines run than before, and
// fails with their stacks if some stay.
func noGoroutinesAbove(t *testing.T, before int) {
	t.Helper()
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, %d before the switch ran:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func TestRunReturnsTheErrorOfATakenPort(t *testing.T) {
	rs := newReadyServer(t)
	for _, tc := range []struct {
		name, listener string
		take           func(t *testing.T, cfg *dnsswitch.Config) // binds the port cfg then asks for
	}{
		{"dns udp", "dns udp", func(t *testing.T, cfg *dnsswitch.Config) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			cfg.DNSAddr = pc.LocalAddr().String()
		}},
		{"dns tcp", "dns tcp", func(t *testing.T, cfg *dnsswitch.Config) {
			// A TCP port whose UDP twin is free: the switch binds UDP, then
			// fails on TCP, and must let UDP go.
			for {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				pc, err := net.ListenPacket("udp", ln.Addr().String())
				if err != nil {
					ln.Close()
					continue
				}
				pc.Close()
				t.Cleanup(func() { ln.Close() })
				cfg.DNSAddr = ln.Addr().String()
				return
			}
		}},
		{"admin", "admin", func(t *testing.T, cfg *dnsswitch.Config) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			cfg.AdminAddr = ln.Addr().String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(rs)
			tc.take(t, &cfg)
			before := runtime.NumGoroutine()
			sw, err := dnsswitch.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sw.Close()
			err = returned(t, runAsync(context.Background(), sw))
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), tc.listener) {
				t.Fatalf("Run with the %s port taken returned %v, want address in use on %s", tc.name, err, tc.listener)
			}
			if werr := sw.WaitReady(context.Background()); werr != err {
				t.Errorf("WaitReady after a failed Run: %v, want Run's error %v", werr, err)
			}
			noGoroutinesAbove(t, before)
			if tc.name == "dns tcp" {
				pc, err := net.ListenPacket("udp", cfg.DNSAddr)
				if err != nil {
					t.Fatalf("the UDP port is still bound after Run returned: %v", err)
				}
				pc.Close()
			}
		})
	}
}

func TestRunLeavesNoGoroutine(t *testing.T) {
	for _, stop := range []string{"ctx", "Close"} {
		t.Run("stopped by "+stop, func(t *testing.T) {
			rs := []*readyServer{newReadyServer(t), newReadyServer(t)}
			rs[1].ok.Store(false)
			before := runtime.NumGoroutine()
			sw, err := dnsswitch.Open(config(rs...))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ran := runAsync(ctx, sw)
			if err := sw.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			// Use every listener, and wait for both health checks to have
			// run (r2 is not ready: it is taken down).
			for _, proto := range []string{"udp", "tcp"} {
				if r := ask(t, sw, "127.0.1.10", proto, "short.test.", dns.TypeA); len(r.Answer) != 1 {
					t.Fatalf("over %s: %v", proto, r)
				}
			}
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := hc.Get("http://" + sw.AdminAddr() + "/v1/state")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			regiontest.WaitFor(t, 10*time.Second, func() error {
				if st := sw.State(); st.Regions[0].LastCheck.IsZero() || st.Regions[1].Healthy {
					return fmt.Errorf("health checks not done yet: %+v", st.Regions)
				}
				return nil
			})
			if n := runtime.NumGoroutine(); n < before+2+2 { // two DNS servers and two health checks at least
				t.Fatalf("%d goroutines while serving, %d before: the count does not see the switch's", n, before)
			}

			if stop == "ctx" {
				cancel()
			} else {
				sw.Close()
			}
			if err := returned(t, ran); err != nil {
				t.Fatalf("Run stopped by %s returned %v", stop, err)
			}
			noGoroutinesAbove(t, before)
			sw.Close()
			sw.Close() // idempotent
			if err := sw.Run(ctx); err == nil {
				t.Error("a second Run returned nil")
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	rs := newReadyServer(t)
	t.Run("before Run", func(t *testing.T) {
		sw, err := dnsswitch.Open(config(rs))
		if err != nil {
			t.Fatal(err)
		}
		sw.Close()
		sw.Close()
		if err := sw.Run(context.Background()); !errors.Is(err, dnsswitch.ErrClosed) {
			t.Errorf("Run after Close: %v, want ErrClosed", err)
		}
		if err := sw.WaitReady(context.Background()); !errors.Is(err, dnsswitch.ErrClosed) {
			t.Errorf("WaitReady after Close: %v, want ErrClosed", err)
		}
	})
	t.Run("concurrently, while running", func(t *testing.T) {
		before := runtime.NumGoroutine()
		sw, err := dnsswitch.Open(config(rs))
		if err != nil {
			t.Fatal(err)
		}
		ran := runAsync(context.Background(), sw)
		if err := sw.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		for range 3 {
			go func() { sw.Close(); closed <- struct{}{} }()
		}
		for range 3 {
			<-closed
		}
		select { // every Close returned only after Run had
		case err := <-ran:
			if err != nil {
				t.Fatalf("Run stopped by Close returned %v", err)
			}
		default:
			t.Fatal("Close returned before Run did")
		}
		noGoroutinesAbove(t, before)
	})
}
