package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"shortener/dnsswitch"
	"shortener/procs"
	"shortener/region/regiontest"
)

// haSwitch is one instance of the DNS switch run as a child process.
type haSwitch struct {
	name, host string
	proc       *procs.Proc
	client     *dnsswitch.Client
}

func (s *haSwitch) dnsAddr() string { return s.host + ":8053" }

// startSwitch starts an instance of the switch on host, serving us-east
// (at usEast, health-checked) and eu-west (at euWest), with args after
// those. It returns once its admin API answers.
func startSwitch(t *testing.T, name, host, usEast, euWest, keyFile string, args ...string) *haSwitch {
	t.Helper()
	dir := t.TempDir()
	all := append([]string{"switch", "serve", "--dns", host + ":8053", "--admin", host + ":8054",
		"--region", "us-east=" + usEast, "--region", "eu-west=" + euWest, "--prefer", "us-east=eu-west",
		"--interval", "100ms", "--api-key-file", keyFile, "--state", filepath.Join(dir, "state.json"), "--log-level", "warn"}, args...)
	log := filepath.Join(dir, "switch.log")
	p, err := startTestProc(t, name, log, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := procs.WaitHTTP(context.Background(), "http://"+host+":8054/v1/state", p.Done(), 30*time.Second, http.StatusOK); err != nil {
		out, _ := os.ReadFile(log)
		t.Fatalf("switch %s: %v\n%s", name, err, out)
	}
	return &haSwitch{name: name, host: host, proc: p, client: &dnsswitch.Client{Addr: host + ":8054", APIKey: regiontest.APIKey}}
}

// resolve asks server for the zone's address from a client at src.
func resolve(server, src string, timeout time.Duration) (string, error) {
	c := &dns.Client{Timeout: timeout, Dialer: &net.Dialer{Timeout: timeout, LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(devZone), dns.TypeA)
	r, _, err := c.Exchange(q, server)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return "", fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return "", fmt.Errorf("answer %v", r.Answer[0])
	}
	return a.A.String(), nil
}

// TestSwitchInstancesShareState: two instances of the switch keep their
// drains and overrides in the global cluster's KV bucket. A change made
// through either is answered by both; with the bucket out of reach a change
// is refused (503) and the answers go on; one instance SIGKILLed while
// clients resolve through both (the second on a failed first, as a
// resolver with two name servers does) costs no resolution beyond that one
// retry. Negative control: two instances with a state file each do not
// share a change.
func TestSwitchInstancesShareState(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	cfg := reg.Config()
	usEast := cfg.NATS.Host
	euWest := regiontest.Host() // nothing there: down, but an override sends clients to it anyway
	globalURL := fmt.Sprintf("nats://%s:%d", cfg.NATS.GlobalHost, cfg.NATS.GlobalClientPort)
	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte(regiontest.APIKey), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := []string{"--nats", globalURL, "--global-members", "1", "--secrets", regiontest.SecretsDir()}
	a := startSwitch(t, "switch-a", regiontest.Host(), usEast, euWest, keyFile, shared...)
	b := startSwitch(t, "switch-b", regiontest.Host(), usEast, euWest, keyFile, shared...)
	client := strings.TrimSuffix(usEast, ".1") + ".10" // in us-east's /24: its clients
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	answers := func(s *haSwitch, want string) error {
		got, err := resolve(s.dnsAddr(), client, time.Second)
		if err != nil || got != want {
			return fmt.Errorf("%s answers us-east's clients %q (%v), want %s", s.name, got, err, want)
		}
		return nil
	}
	for _, s := range []*haSwitch{a, b} {
		regiontest.WaitFor(t, 30*time.Second, func() error { return answers(s, usEast) })
	}

	// A change through one is answered by both, either way round.
	if err := a.client.Override(ctx, "us-east", "eu-west"); err != nil {
		t.Fatalf("override through %s: %v", a.name, err)
	}
	for _, s := range []*haSwitch{a, b} {
		regiontest.WaitFor(t, 10*time.Second, func() error { return answers(s, euWest) })
	}
	if err := b.client.Drain(ctx, "eu-west", true); err != nil {
		t.Fatalf("drain through %s: %v", b.name, err)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		st, err := a.client.State(ctx)
		if err != nil {
			return err
		}
		for _, r := range st.Regions {
			if r.Name == "eu-west" && r.Drained {
				return nil
			}
		}
		return fmt.Errorf("%s does not show eu-west drained through %s: %+v", a.name, b.name, st.Regions)
	})
	if err := b.client.Drain(ctx, "eu-west", false); err != nil {
		t.Fatal(err)
	}
	if err := b.client.Override(ctx, "us-east", ""); err != nil {
		t.Fatalf("clear the override through %s: %v", b.name, err)
	}
	for _, s := range []*haSwitch{a, b} {
		regiontest.WaitFor(t, 10*time.Second, func() error { return answers(s, usEast) })
	}

	// Negative control: instances with a state file each.
	c := startSwitch(t, "switch-c", regiontest.Host(), usEast, euWest, keyFile)
	d := startSwitch(t, "switch-d", regiontest.Host(), usEast, euWest, keyFile)
	regiontest.WaitFor(t, 30*time.Second, func() error { return answers(d, usEast) })
	if err := c.client.Override(ctx, "us-east", "eu-west"); err != nil {
		t.Fatal(err)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error { return answers(c, euWest) })
	time.Sleep(2 * time.Second) // several times what the shared instances took
	if err := answers(d, usEast); err != nil {
		t.Fatalf("instances with a state file each shared a change: %v", err)
	}

	// One instance SIGKILLed while clients resolve through both.
	var total, retried, failed, afterKill atomic.Int64
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				got, err := resolve(a.dnsAddr(), client, 300*time.Millisecond)
				if err != nil {
					retried.Add(1)
					got, err = resolve(b.dnsAddr(), client, time.Second)
				}
				switch {
				case err != nil || got != usEast:
					failed.Add(1)
				case killed.Load():
					afterKill.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	// Some resolutions through both before the kill, and some after it:
	// counted, not timed, so a slow machine only makes the run longer.
	regiontest.WaitFor(t, 30*time.Second, func() error {
		if n := total.Load(); n < 200 {
			return fmt.Errorf("%d resolutions before the kill", n)
		}
		return nil
	})
	if err := a.proc.Kill(10 * time.Second); err != nil {
		t.Fatalf("SIGKILL %s: %v", a.name, err)
	}
	killed.Store(true)
	regiontest.WaitFor(t, 30*time.Second, func() error {
		if n := afterKill.Load() + failed.Load(); n < 500 {
			return fmt.Errorf("%d resolutions after the kill", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("resolutions %d, retried on the second instance %d, failed after the retry %d, answered after the kill %d",
		total.Load(), retried.Load(), failed.Load(), afterKill.Load())
	if failed.Load() != 0 || retried.Load() == 0 || afterKill.Load() < 500 {
		t.Fatalf("resolutions %d, retried %d, failed %d, after the kill %d: want none failed, and the kill seen (retries) with resolutions after it",
			total.Load(), retried.Load(), failed.Load(), afterKill.Load())
	}

	// The bucket out of reach: a change is refused, the answers go on.
	reg.Stop(t)
	err := b.client.Drain(ctx, "eu-west", true)
	if err == nil || !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("drain with the global cluster gone: %v, want refused", err)
	}
	if st, err := b.client.State(ctx); err != nil || st.Regions[1].Drained {
		t.Fatalf("%s after the refused drain: %v %+v", b.name, err, st.Regions)
	}
	if _, err := resolve(b.dnsAddr(), client, time.Second); err != nil {
		t.Fatalf("%s stopped answering with the global cluster gone: %v", b.name, err)
	}
}
