package region_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"shortener/region"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// violations records the asynchronous errors a connection gets (the
// server's -ERR for a permission violation).
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

// waitFor polls until a violation naming subject arrived.
func (v *violations) waitFor(t *testing.T, subject string) {
	t.Helper()
	regiontest.WaitFor(t, 10*time.Second, func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range v.errs {
			if strings.Contains(e, "ermissions") && strings.Contains(e, subject) {
				return nil
			}
		}
		return errors.New("no permissions violation for " + subject + " yet: " + strings.Join(v.errs, "; "))
	})
}

func connectAs(t *testing.T, natsURL, user string) (*nats.Conn, jetstream.JetStream, *violations) {
	t.Helper()
	v := &violations{}
	nc, err := nats.Connect(natsURL, append(regiontest.NATSOptions(user), nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, v
}

// TestNATSRefusesStrangers: every client listener of a region (its
// regional server and its member of "global") refuses a connection without
// TLS, one with TLS but no credentials, and one with a well-formed nkey that
// is not in the users table; the region's own user gets in (the positive
// control).
func TestNATSRefusesStrangers(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	reg := regiontest.Start(t, cfg)
	host := strings.TrimSuffix(strings.TrimPrefix(reg.URL, "http://"), ":8080")
	global := strings.TrimSuffix(host, ".1") + ".2"
	stranger, _ := nkeys.CreateUser()
	strangerPub, _ := stranger.PublicKey()
	_, cli := regiontest.Credentials("us-east")
	for _, u := range []string{"nats://" + host + ":4222", "nats://" + global + ":4222"} {
		for _, c := range []struct {
			name string
			opts []nats.Option
			want string
		}{
			{"plaintext, anonymous", nil, "tls"},
			{"TLS, anonymous", []nats.Option{nats.Secure(cli.TLS())}, "authorization violation"},
			{"TLS, an nkey not in the table", []nats.Option{nats.Secure(cli.TLS()), nats.Nkey(strangerPub, stranger.Sign)}, "authorization violation"},
		} {
			nc, err := nats.Connect(u, append(c.opts, nats.Timeout(5*time.Second))...)
			if err == nil {
				nc.Close()
				t.Errorf("%s at %s: connected; want refused", c.name, u)
				continue
			}
			if !strings.Contains(strings.ToLower(err.Error()), c.want) {
				t.Errorf("%s at %s: %v; want an error about %q", c.name, u, err, c.want)
			}
		}
		nc, err := nats.Connect(u, regiontest.NATSOptions(secrets.RegionUser("us-east"))...)
		if err != nil {
			t.Errorf("the region's own user at %s: %v", u, err)
			continue
		}
		nc.Close()
	}
}

// TestNATSPermissions: a region's user writes its own stream and nothing
// else (no other region's subjects, no stream deletion or update, no
// purge); a tool's read-only user reads and cannot write anything; the
// other region's user, with its own stream, is the positive control.
func TestNATSPermissions(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	reg := regiontest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := regiontest.NewClient(reg.URL)
	if r, err := c.Create(ctx, map[string]any{"url": "https://example.com/owned"}); err != nil || r.Status != 201 {
		t.Fatalf("create: %v %d", err, r.Status)
	}

	// eu-west's user creates its own stream here and writes to it.
	_, euJS, _ := connectAs(t, reg.NATSURL(), secrets.RegionUser("eu-west"))
	euCfg := replicator.StreamConfig("eu-west")
	euCfg.Placement = nil // one server: no eu-west cluster here
	euStream, err := euJS.CreateStream(ctx, euCfg)
	if err != nil {
		t.Fatalf("eu-west's user creates its own stream: %v", err)
	}
	if _, err := euJS.Publish(ctx, replicator.Subject("eu-west", "2abcdefg"), []byte(`{}`)); err != nil {
		t.Fatalf("eu-west's user writes its own subject: %v", err)
	}

	usNC, usJS, usV := connectAs(t, reg.NATSURL(), secrets.RegionUser("us-east"))
	// A rollup would erase every claim of the alias register in one
	// publish: the bucket refuses it, and the alias stays.
	if r, err := c.Create(ctx, map[string]any{"url": "https://example.com/claimed", "alias": "claimed-alias"}); err != nil || r.Status != 201 {
		t.Fatalf("claim an alias: %v %d", err, r.Status)
	}
	rollup := nats.NewMsg("$KV." + replicator.AliasBucket + ".wipe")
	rollup.Header.Set("Nats-Rollup", "all")
	if _, err := usJS.PublishMsg(ctx, rollup); err == nil {
		t.Error("a rollup of the alias register was accepted")
	}
	akv, err := usJS.KeyValue(ctx, replicator.AliasBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := akv.Get(ctx, "claimed-alias"); err != nil {
		t.Errorf("the claimed alias after the rollup attempt: %v", err)
	}
	// Core publishes: a violation is an asynchronous -ERR.
	for _, subj := range []string{replicator.Subject("eu-west", "2forged1"), "$JS.API.STREAM.DELETE." + replicator.StreamName("us-east"),
		"$JS.API.STREAM.PURGE." + replicator.StreamName("eu-west"), "$JS.API.STREAM.UPDATE." + replicator.StreamName("us-east"),
		// It may make its own mirrors again, no one else's.
		"$JS.API.STREAM.DELETE." + replicator.MirrorName("us-east", "eu-west"), "$JS.API.STREAM.DELETE." + replicator.MirrorName("eu-west", "ap-south")} {
		if err := usNC.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		usV.waitFor(t, subj)
	}
	// Through the JetStream API: refused, and nothing changed.
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	if err := usJS.DeleteStream(dctx, replicator.StreamName("us-east")); err == nil {
		t.Error("us-east's user deleted its own stream")
	}
	dcancel()
	if info, err := euStream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("eu-west's stream after us-east's attempts: %v, %+v; want 1 message", err, info)
	}
	if _, err := usJS.Stream(ctx, replicator.StreamName("us-east")); err != nil {
		t.Errorf("us-east's stream after the delete attempt: %v", err)
	}

	// The auditor reads (the positive control) and cannot write.
	auNC, auJS, auV := connectAs(t, reg.NATSURL(), "audit")
	info, err := auJS.Stream(ctx, replicator.StreamName("us-east"))
	if err != nil {
		t.Fatalf("audit reads stream info: %v", err)
	}
	for _, subj := range []string{replicator.Subject("us-east", "1forged1"), "$KV." + replicator.AliasBucket + ".squat",
		"$JS.API.STREAM.CREATE.EVIL", "$JS.API.STREAM.DELETE." + replicator.StreamName("us-east")} {
		if err := auNC.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		auV.waitFor(t, subj)
	}
	// Nothing the auditor sent was stored: no message on its subject, no
	// alias squatted (a -ERR alone could come with a write).
	if m, err := info.GetLastMsgForSubject(ctx, replicator.Subject("us-east", "1forged1")); err == nil {
		t.Errorf("the auditor's publish was stored in us-east's stream: #%d", m.Sequence)
	}
	kv, err := auJS.KeyValue(ctx, replicator.AliasBucket)
	if err != nil {
		t.Fatalf("audit reads the alias register: %v", err)
	}
	if e, err := kv.Get(ctx, "squat"); err == nil {
		t.Errorf("the auditor's put was stored in the alias register: %q", e.Value())
	}
	// The switch's user writes its own bucket only, and reads nothing else:
	// not the log (a read of it is refused before JetStream sees it).
	swNC, _, swV := connectAs(t, reg.NATSURL(), secrets.SwitchUser)
	for _, subj := range []string{replicator.Subject("us-east", "1forged2"), "$KV." + replicator.AliasBucket + ".squat2",
		"$JS.API.STREAM.CREATE.EVIL", "$JS.API.STREAM.INFO." + replicator.StreamName("us-east"),
		"$JS.API.DIRECT.GET." + replicator.StreamName("us-east"), "$JS.API.CONSUMER.CREATE." + replicator.StreamName("us-east")} {
		if err := swNC.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		swV.waitFor(t, subj)
	}
	// Nobody but the server's own inboxes: no user subscribes to the log.
	if _, err := auNC.SubscribeSync("links.>"); err != nil {
		t.Fatal(err)
	}
	auV.waitFor(t, "links.>")
}

// TestNATSPeersNeedTheClusterCertificate: a server holding a certificate
// from another CA can join the region's cluster neither as a route nor as
// a gateway, and a server with the cluster's own certificate but a gateway
// name the region does not know is refused too. A server with the right
// certificate and a known name joins both ways (the positive control),
// and the refused ones are judged over three times as long as it took.
func TestNATSPeersNeedTheClusterCertificate(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	reg := regiontest.Start(t, cfg)
	host := strings.TrimSuffix(strings.TrimPrefix(reg.URL, "http://"), ":8080")
	good, _ := regiontest.Credentials("us-east")
	otherDir := t.TempDir()
	if err := secrets.Generate(otherDir, secrets.Options{Regions: []string{"us-east", "eu-west"}}); err != nil {
		t.Fatal(err)
	}
	rogue, err := secrets.LoadServer(secrets.Paths{Dir: otherDir}.Resolve(""))
	if err != nil {
		t.Fatal(err)
	}
	start := func(name, gateway string, sec *secrets.Server) *server.Server {
		h := regiontest.Host()
		opts := &server.Options{ServerName: name, Host: h, Port: -1, NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "us-east", Host: h, Port: -1, TLSConfig: sec.PeerTLS("eu-west"), TLSTimeout: 2},
			Routes:  []*url.URL{{Scheme: "nats-route", Host: host + ":6222"}},
		}
		if gateway != "" {
			opts.Cluster = server.ClusterOpts{}
			opts.Routes = nil
			opts.Gateway = server.GatewayOpts{Name: gateway, Host: h, Port: -1, TLSConfig: sec.PeerTLS("eu-west"), TLSTimeout: 2,
				Gateways: []*server.RemoteGatewayOpts{{Name: "us-east", URLs: []*url.URL{{Scheme: "nats", Host: host + ":7222"}}}}}
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("test server did not start")
		}
		t.Cleanup(s.Shutdown)
		return s
	}
	// Joined: connected for a whole second. A refused gateway is counted
	// for the moment between the region's INFO and its refusal.
	since := map[*server.Server]time.Time{}
	joined := func(s *server.Server) bool {
		if s.NumRoutes() == 0 && s.NumOutboundGateways() == 0 {
			delete(since, s)
			return false
		}
		if since[s].IsZero() {
			since[s] = time.Now()
		}
		return time.Since(since[s]) >= time.Second
	}

	begin := time.Now()
	okRoute := start("member-ok", "", good)
	okGW := start("gateway-ok", region.GlobalCluster, good) // a gateway the region knows
	regiontest.WaitFor(t, 20*time.Second, func() error {
		if !joined(okRoute) || !joined(okGW) {
			return errors.New("a server with the cluster's certificate has not joined")
		}
		return nil
	})
	took := time.Since(begin)
	okRoute.Shutdown()
	okGW.Shutdown()

	refused := map[string]*server.Server{
		"a route with another CA's certificate":         start("member-rogue", "", rogue),
		"a gateway with another CA's certificate":       start("gateway-rogue", "eu-west", rogue),
		"a gateway with the right certificate, unknown": start("gateway-unknown", "evil", good),
	}
	deadline := time.Now().Add(max(3*took, 3*time.Second))
	for time.Now().Before(deadline) {
		for what, s := range refused {
			if joined(s) {
				t.Fatalf("%s joined the region's cluster", what)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the right certificate joined in %s; the others were refused for %s", took.Round(time.Millisecond), max(3*took, 3*time.Second).Round(time.Millisecond))
}

// TestHTTPSAndCertificateGauge: with a certificate the HTTP listener serves
// HTTPS only, and /metrics reports how long each certificate the region
// holds has left (the NATS servers', the CA's, the HTTP listener's).
func TestHTTPSAndCertificateGauge(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	withMetrics(t, &cfg)
	cfg.SwitchAdmin = ""
	dir := regiontest.SecretsDir()
	cert, err := secrets.LoadCertificate(filepath.Join(dir, secrets.CertFile), filepath.Join(dir, secrets.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPCert = &cert
	reg := regiontest.Start(t, cfg)
	_, cli := regiontest.Credentials("us-east")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cli.TLS()}}
	base := "https://" + reg.Addr()
	resp, err := hc.Get(base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/healthz: %v %v", base, err, resp)
	}
	resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + reg.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the HTTPS listener")
		}
	}
	fams := regiontest.ScrapeWith(t, hc, base)
	for _, c := range []struct {
		cert string
		min  time.Duration
	}{{"nats", 300 * 24 * time.Hour}, {"ca", 9 * 365 * 24 * time.Hour}, {"http", 300 * 24 * time.Hour}} {
		v, ok := fams.Value("shortener_certificate_remaining_seconds", map[string]string{"region": "us-east", "cert": c.cert})
		if !ok || v < c.min.Seconds() {
			t.Errorf("shortener_certificate_remaining_seconds{cert=%q} = %v (present %t); want at least %s", c.cert, v, ok, c.min)
		}
	}
}
