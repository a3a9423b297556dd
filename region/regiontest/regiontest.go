// Package regiontest starts real regions for tests, drills and chaos runs:
// embedded NATS servers, Pebble stores and HTTP servers on their own
// loopback addresses, and a small client for the API.
package regiontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"shortener/events"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
)

// APIKey is the API key every test region accepts.
const APIKey = "test-api-key"

// Host returns a fresh loopback address 127.A.B.1 for a test region (its
// global member takes 127.A.B.2), chosen at random so that test packages
// running at once do not collide; the ports are the standard ones.
func Host() string {
	return fmt.Sprintf("127.%d.%d.1", 64+rand.IntN(180), rand.IntN(256))
}

// Config returns a region configuration on a fresh loopback address with
// its state in dir. A default region (us-east, eu-west, ap-south) has its
// digit of events.DefaultDigits, so that regions started together own
// distinct generated codes; any other name has '1'.
func Config(name, dir string) region.Config {
	digit, ok := events.DefaultDigits[name]
	if !ok {
		digit = '1'
	}
	host := Host()
	level := slog.LevelWarn
	if os.Getenv("SHORTENER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	srv, cli := Credentials(name)
	return region.Config{
		Name: name, Digit: digit, HTTPAddr: host + ":8080", DataDir: dir,
		APIKeyHashes: []string{region.HashAPIKey(APIKey)}, RateLimit: -1,
		// Tests poll for links that are not there yet from loopback: the
		// per-address limit of misses is tested on its own (limits_test.go).
		Limits:            region.Limits{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		NATSServerSecrets: srv, NATSClientSecrets: cli,
		// Tests read click counts soon after the clicks: the default (10 s)
		// favours the redirects over how fresh /stats is.
		ClickCommitEvery: time.Second,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test_region", name),
	}
}

// Regions are the regions the test secrets have users for.
var Regions = []string{"us-east", "eu-west", "ap-south"}

var secretsOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "shortener-test-secrets-")
	if err != nil {
		return "", err
	}
	return dir, secrets.Generate(dir, secrets.Options{Regions: Regions})
})

// SecretsDir returns the folder of the test process's secrets: one set,
// made on first use with secrets.Generate, for Regions and the tools. Child
// processes a test starts are given it with --secrets.
func SecretsDir() string {
	dir, err := secretsOnce()
	if err != nil {
		panic("regiontest: generate secrets: " + err.Error())
	}
	return dir
}

// Credentials returns the embedded servers' credentials of the test secrets
// and the client credentials of region's user.
func Credentials(region string) (*secrets.Server, *secrets.Client) {
	p := secrets.Paths{Dir: SecretsDir()}.Resolve(secrets.RegionUser(region))
	srv, err := secrets.LoadServer(p)
	if err != nil {
		panic("regiontest: " + err.Error())
	}
	cli, err := secrets.LoadClient(secrets.RegionUser(region), p)
	if err != nil {
		panic("regiontest: " + err.Error())
	}
	return srv, cli
}

// Signer is the key region signs its events with, in the test secrets.
func Signer(region string) events.Signer {
	_, cli := Credentials(region)
	return cli
}

// KeyRing is every region's keys in the test secrets: what the regions'
// projections check signatures against.
func KeyRing() *events.KeyRing {
	users, err := secrets.LoadUsers(filepath.Join(SecretsDir(), secrets.UsersFile))
	if err != nil {
		panic("regiontest: " + err.Error())
	}
	k, err := users.KeyRing()
	if err != nil {
		panic("regiontest: " + err.Error())
	}
	return k
}

// NATSOptions are the options that connect as user (a region's user, as
// secrets.RegionUser names it, or a tool's) with the test secrets.
func NATSOptions(user string) []nats.Option {
	c, err := secrets.LoadClient(user, secrets.Paths{Dir: SecretsDir()}.Resolve(user))
	if err != nil {
		panic("regiontest: " + err.Error())
	}
	return c.NATSOptions()
}

// NATS connects to natsURL as user (with the test secrets); the test's
// cleanup closes the connection. A test that inspects streams itself makes
// its own JetStream client of it: only replicator talks JetStream outside
// tests.
func NATS(t testing.TB, natsURL, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL, NATSOptions(user)...)
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", natsURL, user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Replicator connects to natsURL as user (with the test secrets) and
// returns replicator's handle on that connection; the test's cleanup
// closes it.
func Replicator(t testing.TB, natsURL, user string) *replicator.Conn {
	t.Helper()
	c, err := replicator.Connect(NATS(t, natsURL, user))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Running is a region started by Start.
type Running struct {
	*region.Region
	URL    string // http://host:8080
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start opens and runs a region and waits until it is ready; the test's
// cleanup stops it.
func Start(t testing.TB, cfg region.Config) *Running {
	t.Helper()
	r, err := region.New(cfg)
	if err != nil {
		t.Fatalf("region.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Open(ctx); err != nil {
		t.Fatalf("open region: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	run := &Running{Region: r, URL: "http://" + r.Addr(), cancel: stop, done: make(chan error, 1)}
	go func() { run.done <- r.Run(runCtx) }()
	t.Cleanup(func() { run.Stop(t) })
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// The alias register opens in the background; tests that claim
	// aliases right away need it.
	for r.Regions(ctx).AliasRegister != "available" {
		if ctx.Err() != nil {
			t.Fatal("alias register never became available")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return run
}

// ClusterConfigs returns the configurations of regions started together
// (StartCluster): each on its own loopback address with its state under
// dir/<name>, the others as its peers.
func ClusterConfigs(dir string, names ...string) []region.Config {
	cfgs := make([]region.Config, len(names))
	for i, n := range names {
		cfgs[i] = Config(n, filepath.Join(dir, n))
	}
	for i := range cfgs {
		for j, o := range cfgs {
			if i != j {
				host, _, _ := strings.Cut(o.HTTPAddr, ":")
				cfgs[i].Peers = append(cfgs[i].Peers, region.Peer{Name: o.Name, Host: host})
			}
		}
	}
	return cfgs
}

// StartCluster opens the regions of cfgs together (the JetStream meta
// leader and the alias register need them all), runs them, and waits until
// every one is ready with its alias register available; the test's cleanup
// stops them.
func StartCluster(t testing.TB, cfgs []region.Config) []*Running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := make([]*Running, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		r, err := region.New(cfg)
		if err != nil {
			t.Fatalf("region.New %s: %v", cfg.Name, err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		out[i] = &Running{Region: r, cancel: stop, done: make(chan error, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = r.Open(ctx); errs[i] != nil {
				return
			}
			out[i].URL = "http://" + r.Addr()
			go func() { out[i].done <- r.Run(runCtx) }()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Cleanup(func() { out[i].Stop(t) })
		} else {
			t.Cleanup(func() { out[i].Close() })
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open region %s: %v", cfgs[i].Name, err)
		}
	}
	for _, r := range out {
		if err := r.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		for r.Regions(ctx).AliasRegister != "available" {
			if ctx.Err() != nil {
				t.Fatalf("%s: alias register never became available", r.Config().Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// Stop shuts the region down gracefully and waits for it.
func (r *Running) Stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("region stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("region did not stop in 30s")
		}
	})
}

// Client calls a region's API.
type Client struct {
	Base string
	Key  string
	HTTP *http.Client
}

// NewClient returns a client of base that sends APIKey and never follows
// redirects.
func NewClient(base string) *Client {
	return &Client{Base: base, Key: APIKey, HTTP: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is an answer: status, headers and the body decoded as JSON
// (a link or a problem).
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Str returns a string field of the body.
func (r Response) Str(field string) string {
	s, _ := r.Body[field].(string)
	return s
}

// Do sends method to path with body (JSON-encoded unless it is a string or
// nil).
func (c *Client) Do(ctx context.Context, method, path string, body any) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if c.Key != "" {
		req.Header.Set("X-Api-Key", c.Key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	out.Raw, err = io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	if len(out.Raw) > 0 && out.Raw[0] == '{' {
		_ = json.Unmarshal(out.Raw, &out.Body)
	}
	return out, nil
}

// Create posts a link and returns the answer.
func (c *Client) Create(ctx context.Context, body any) (Response, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/links", body)
}

// WaitFor polls fn every 20 ms until it returns nil or the timeout passes,
// and then fails the test with fn's last error.
func WaitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
