//go:build hosts

package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The regions of docs/deploy.md and their hosts' addresses there, then
// us-east's second instance (a client of us-east's NATS, with us-east's
// secrets).
var hosts = []struct{ name, addr, region string }{
	{"us-east", "10.77.0.1", "us-east"}, {"eu-west", "10.77.0.2", "eu-west"}, {"ap-south", "10.77.0.3", "ap-south"},
	{"us-east-b", "10.77.0.11", "us-east"},
}

// all is every host's index; ap-south (2) is the one the test cuts off.
var all = []int{0, 1, 2, 3}

// tomlBlocks returns the ```toml blocks of a markdown page by the file
// name their first line gives ("# us-east.toml").
func tomlBlocks(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(page, -1) {
		first, _, _ := strings.Cut(m[1], "\n")
		if name, ok := strings.CutPrefix(first, "# "); ok {
			out[strings.TrimSuffix(name, ".toml")] = m[1]
		}
	}
	return out
}

// sh runs a command and fails the test on an error.
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// eventually polls fn every 200 ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDeployOnThreeHosts runs docs/deploy.md: three regions and us-east's
// second instance, each in a network namespace of its own on a bridge and
// started from its config on that page, TLS and credentials on. A link
// made in each redirects in all; ap-south's host is cut off the bridge
// while the others take creates; after the heal every acknowledged link
// redirects everywhere.
func TestDeployOnThreeHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("cannot run under CI: needs root (network namespaces, a bridge, an iptables rule)")
		}
		t.Skip("needs root (network namespaces); CI runs it")
	}
	page, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	configs := tomlBlocks(t, string(page))
	for _, h := range hosts {
		if configs[h.name] == "" || !strings.Contains(configs[h.name], `"`+h.addr+`:8080"`) {
			t.Fatalf("docs/deploy.md has no config block for %s on %s", h.name, h.addr)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shortener")
	build := exec.Command("go", "build", "-o", bin, "./cmd/shortener")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Three "hosts": a namespace each, its own address on a bridge. The
	// test process reaches them through the bridge's own address.
	id := make([]byte, 2)
	_, _ = rand.Read(id)
	tag := hex.EncodeToString(id)
	br := "shbr" + tag
	sh(t, "ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	sh(t, "ip", "addr", "add", "10.77.0.254/24", "dev", br)
	sh(t, "ip", "link", "set", br, "up")
	// Docker's FORWARD policy is DROP, and bridged traffic goes through it.
	rule := []string{"FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"}
	sh(t, "iptables", append([]string{"-I"}, rule...)...)
	t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
	ns := make([]string, len(hosts))
	hostSide := make([]string, len(hosts))
	for i, h := range hosts {
		ns[i] = fmt.Sprintf("sh%s-%d", tag, i+1)
		hostSide[i] = fmt.Sprintf("shv%s%d", tag, i+1)
		sh(t, "ip", "netns", "add", ns[i])
		n := ns[i]
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
		sh(t, "ip", "link", "add", hostSide[i], "type", "veth", "peer", "name", "eth0", "netns", ns[i])
		sh(t, "ip", "link", "set", hostSide[i], "master", br, "up")
		sh(t, "ip", "-n", ns[i], "addr", "add", h.addr+"/24", "dev", "eth0")
		sh(t, "ip", "-n", ns[i], "link", "set", "eth0", "up")
		sh(t, "ip", "-n", ns[i], "link", "set", "lo", "up")
	}

	// Credentials, as the page makes them.
	sec := filepath.Join(dir, "secrets")
	sh(t, bin, "secrets", "init", "--dir", sec, "--region", "us-east", "--region", "eu-west", "--region", "ap-south")
	sh(t, bin, "secrets", "http-cert", "--dir", sec, "--host", hosts[0].addr, "--host", hosts[1].addr, "--host", hosts[2].addr, "--host", hosts[3].addr)
	caPEM, err := os.ReadFile(filepath.Join(sec, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	apiKey := "sk_hosts_" + tag

	// The regions, each in its namespace, from the page's config.
	for _, r := range []string{"us-east", "eu-west", "ap-south"} {
		sh(t, bin, "secrets", "export", "--dir", sec, "--out", filepath.Join(sec, r), r)
	}
	base := func(i int) string { return "https://" + hosts[i].addr + ":8080" }
	ready := func(i int) {
		t.Helper()
		eventually(t, 2*time.Minute, hosts[i].name+" ready", func() error {
			res, err := client.Get(base(i) + "/readyz")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", res.StatusCode)
			}
			return nil
		})
	}
	for i, h := range hosts {
		if h.name != h.region {
			ready(0) // a second instance needs its region's NATS up to open
		}
		cfg := filepath.Join(dir, h.name+".toml")
		if err := os.WriteFile(cfg, []byte(configs[h.name]), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, h.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns[i], bin, "region", "--config", cfg,
			"--data", filepath.Join(dir, h.name), "--secrets", filepath.Join(sec, h.region),
			"--tls-cert", filepath.Join(sec, "http.crt"), "--tls-key", filepath.Join(sec, "http.key"))
		cmd.Env = append(os.Environ(), "SHORTENER_API_KEY="+apiKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		name := h.name
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("%s's log (end):\n%s", name, b)
			}
		})
	}
	for i := range hosts {
		ready(i)
	}

	create := func(i int, url string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"url": url})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base(i)+"/api/v1/links", bytes.NewReader(body))
		req.Header.Set("X-Api-Key", apiKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("create in %s: %v", hosts[i].name, err)
		}
		defer res.Body.Close()
		var out struct{ Code string }
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusCreated || out.Code == "" {
			t.Fatalf("create in %s: %d %v", hosts[i].name, res.StatusCode, err)
		}
		return out.Code
	}
	redirects := func(i int, code, url string) error {
		res, err := client.Get(base(i) + "/" + code)
		if err != nil {
			return err
		}
		res.Body.Close()
		if got := res.Header.Get("Location"); got != url {
			return fmt.Errorf("%s answers %d for %s, Location %q", hosts[i].name, res.StatusCode, code, got)
		}
		return nil
	}
	acked := map[string]string{} // code -> URL
	everywhere := func(what string, regions []int) {
		t.Helper()
		eventually(t, 2*time.Minute, what, func() error {
			var errs []error
			for code, url := range acked {
				for _, i := range regions {
					if err := redirects(i, code, url); err != nil {
						errs = append(errs, err)
					}
				}
			}
			return errors.Join(errs...)
		})
	}
	for i, h := range hosts {
		url := "https://example.com/made-in-" + h.name
		acked[create(i, url)] = url
	}
	everywhere("every region's link in every region and instance", all)

	// A real partition: ap-south's host loses its link to the bridge.
	sh(t, "ip", "link", "set", hostSide[2], "down")
	if err := redirects(2, "x", ""); err == nil {
		t.Fatal("ap-south still answers across the cut")
	}
	for n := range 5 {
		for _, i := range []int{0, 1, 3} {
			url := fmt.Sprintf("https://example.com/during-the-cut/%s/%d", hosts[i].name, n)
			acked[create(i, url)] = url
		}
	}
	everywhere("us-east, its second instance and eu-west hold each other's links during the cut", []int{0, 1, 3})
	sh(t, "ip", "link", "set", hostSide[2], "up")
	everywhere("every acknowledged link in every region and instance after the heal", all)
	// And the projections agree, row for row.
	eventually(t, time.Minute, "one projection digest in every region", func() error {
		var digests []string
		for i := range hosts {
			req, _ := http.NewRequest(http.MethodGet, base(i)+"/api/v1/projection", nil)
			req.Header.Set("X-Api-Key", apiKey)
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			var p struct {
				Digest string
				Links  int
			}
			err = json.NewDecoder(res.Body).Decode(&p)
			res.Body.Close()
			if err != nil || p.Links != len(acked) {
				return fmt.Errorf("%s: %d links, want %d (%v)", hosts[i].name, p.Links, len(acked), err)
			}
			digests = append(digests, p.Digest)
		}
		for _, d := range digests {
			if d == "" || d != digests[0] {
				return fmt.Errorf("digests %v", digests)
			}
		}
		return nil
	})
	t.Logf("%d acknowledged links redirect in all three regions and us-east's second instance, one projection digest", len(acked))
}
