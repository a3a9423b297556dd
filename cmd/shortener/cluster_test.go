//go:build regions

package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"shortener/procs"
	"shortener/region"
	"shortener/region/regiontest"
)

// cluster is three regions, each a child process of this test binary, on
// their own loopback addresses 127.A.B+i.1 (and .2 for the global member).
type cluster struct {
	t       *testing.T
	dir     string
	names   []string
	hosts   []string
	extra   []string
	procs   []*procs.Proc
	clients []*regiontest.Client
}

func newCluster(t *testing.T, extra ...string) *cluster {
	a, b := 64+rand.IntN(180), rand.IntN(250)
	c := &cluster{t: t, dir: t.TempDir(), names: []string{"us-east", "eu-west", "ap-south"}, extra: extra}
	for i := range c.names {
		c.hosts = append(c.hosts, fmt.Sprintf("127.%d.%d.1", a, b+i))
		c.clients = append(c.clients, regiontest.NewClient("http://"+c.hosts[i]+":8080"))
	}
	c.procs = make([]*procs.Proc, len(c.names))
	var wg sync.WaitGroup
	for i := range c.names {
		wg.Add(1)
		go func() { defer wg.Done(); c.procs[i] = c.spawn(i) }()
	}
	wg.Wait()
	for i := range c.names {
		if c.procs[i] == nil {
			t.FailNow()
		}
		c.waitReady(i)
	}
	// The alias register (R3 in "global") is elected in the background, and
	// a mirror whose first source request was lost while the gateways were
	// still connecting resumes only after nats-server's 30 s + 10 s retry:
	// the cluster is ready once every region sees every mirror live.
	for i := range c.names {
		regiontest.WaitFor(t, 90*time.Second, func() error {
			rr, err := c.regions(i)
			if err != nil {
				return err
			}
			if rr.AliasRegister != "available" {
				return fmt.Errorf("%s: alias register %s", c.names[i], rr.AliasRegister)
			}
			for _, o := range rr.Origins {
				if !o.RPOKnown {
					return fmt.Errorf("%s: mirror of %s not live yet", c.names[i], o.Origin)
				}
			}
			return nil
		})
	}
	return c
}

// config is region i's command line: the test API key, no rate limit, the
// test secrets, every other region a peer, then the cluster's extra flags.
func (c *cluster) config(i int) procs.RegionConfig {
	var peers []procs.Region
	for j := range c.names {
		peers = append(peers, procs.Region{Name: c.names[j], Host: c.hosts[j]})
	}
	return procs.RegionConfig{Name: c.names[i], Digit: byte('1' + i), HTTP: c.hosts[i] + ":8080",
		Data: filepath.Join(c.dir, c.names[i]), APIKeyHash: region.HashAPIKey(regiontest.APIKey),
		NoRateLimit: true, LimitExempt: []string{procs.DevClients}, LogLevel: "warn", Secrets: regiontest.SecretsDir(), Peers: peers, Extra: c.extra}
}

// spawn starts region i as a child process.
func (c *cluster) spawn(i int) *procs.Proc {
	p, err := startTestProc(c.t, c.names[i], filepath.Join(c.dir, c.names[i]+".log"), c.config(i).Args())
	if err != nil {
		c.t.Error(err)
		return nil
	}
	return p
}

func (c *cluster) waitReady(i int) {
	c.t.Helper()
	if err := c.procs[i].WaitReady(context.Background(), "http://"+c.hosts[i]+":8080/readyz", 90*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, c.names[i]+".log"))
		why := "no answer"
		if resp, gerr := http.Get("http://" + c.hosts[i] + ":8080/readyz"); gerr == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			why = string(body)
		}
		c.t.Fatalf("%s: %v; /readyz: %s\n%s", c.names[i], err, why, tail(log, 4000))
	}
}

// kill SIGKILLs region i and waits until it is gone.
func (c *cluster) kill(i int) {
	c.t.Helper()
	if err := c.procs[i].Kill(time.Minute); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) restart(i int) {
	c.procs[i] = c.spawn(i)
	c.waitReady(i)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// resolves reports whether code redirects to url in region i.
func (c *cluster) resolves(i int, code, url string) error {
	r, err := c.clients[i].Do(context.Background(), http.MethodGet, "/"+code, nil)
	if err != nil {
		return err
	}
	if r.Status/100 != 3 || r.Header.Get("Location") != url {
		return fmt.Errorf("%s in %s: %d to %q, want a redirect to %s", code, c.names[i], r.Status, r.Header.Get("Location"), url)
	}
	return nil
}

func (c *cluster) projection(i int) region.ProjectionInfo {
	c.t.Helper()
	var p region.ProjectionInfo
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.hosts[i]+":8080/api/v1/projection", nil)
	req.Header.Set("X-Api-Key", regiontest.APIKey)
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp, &p); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) regions(i int) (region.RegionsResponse, error) {
	var rr region.RegionsResponse
	err := getJSON(context.Background(), &http.Client{Timeout: 2 * time.Second}, "http://"+c.hosts[i]+":8080/api/v1/regions", &rr)
	return rr, err
}

func TestClusterLinksRedirectInEveryRegion(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	for i := range c.names {
		url := "https://example.com/from/" + c.names[i]
		r, err := c.clients[i].Create(ctx, map[string]any{"url": url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create in %s: %v %s", c.names[i], err, r.Raw)
		}
		code := r.Str("code")
		created := time.Now()
		for j := range c.names {
			regiontest.WaitFor(t, 2*time.Second, func() error { return c.resolves(j, code, url) })
		}
		t.Logf("created in %s, redirecting everywhere after %s", c.names[i], time.Since(created).Round(time.Millisecond))
	}
}

func TestClusterAliasRaceHasOneWinner(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	const n = 100
	type result struct {
		region int
		status int
	}
	results := make([][]result, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := 0; a < n; a++ {
		alias := fmt.Sprintf("race-%03d", a)
		for i := range c.names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.clients[i].Create(ctx, map[string]any{"url": "https://example.com/" + c.names[i] + "/" + alias, "alias": alias})
				st := 0
				if err == nil {
					st = r.Status
				}
				mu.Lock()
				results[a] = append(results[a], result{i, st})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for a, rs := range results {
		alias := fmt.Sprintf("race-%03d", a)
		winners := 0
		winner := -1
		for _, r := range rs {
			switch r.status {
			case http.StatusCreated:
				winners++
				winner = r.region
			case http.StatusConflict:
			default:
				t.Errorf("%s from %s: status %d, want 201 or 409", alias, c.names[r.region], r.status)
			}
		}
		if winners != 1 {
			t.Fatalf("%s: %d winners, want exactly one (%v)", alias, winners, rs)
		}
		url := "https://example.com/" + c.names[winner] + "/" + alias
		for j := range c.names {
			regiontest.WaitFor(t, 5*time.Second, func() error { return c.resolves(j, alias, url) })
		}
	}
}
