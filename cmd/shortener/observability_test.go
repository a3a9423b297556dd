//go:build regions

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"shortener/dnsswitch"
	"shortener/region"
	"shortener/region/regiontest"
)

// TestClusterObservability runs three regions as child processes (the
// binary's own telemetry wiring) and a DNS switch, then: scrapes /metrics
// after traffic and finds the series with plausible values; runs the
// runbooks' read-only commands against them; and loads /status in headless
// Chromium, checking that three regions and a chart render (with
// $STATUS_SCREENSHOT set, the screenshot is written there: the picture in
// docs/observability.md, docs/status.png).
func TestClusterObservability(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	c := newCluster(t, "--switch-admin", admin)
	sw := startTestSwitch(t, c, admin)
	ctx := context.Background()

	// Traffic: a create in us-east, redirects of it everywhere (a miss and
	// then hits), and an unknown code.
	r, err := c.clients[0].Create(ctx, map[string]any{"url": "https://example.com/observed"})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create: %v %d %s", err, r.Status, r.Raw)
	}
	code := r.Str("code")
	for i := range c.names {
		regiontest.WaitFor(t, 10*time.Second, func() error { return c.resolves(i, code, "https://example.com/observed") })
		for range 3 {
			if _, err := c.clients[i].Do(ctx, http.MethodGet, "/"+code, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.clients[i].Do(ctx, http.MethodGet, "/1nothere", nil); err != nil {
			t.Fatal(err)
		}
	}

	for i, name := range c.names {
		fams := regiontest.Scrape(t, "http://"+c.hosts[i]+":8080")
		at := map[string]string{"region": name}
		want := []struct {
			metric string
			labels map[string]string
			min    float64
		}{
			{"shortener_redirect_duration_seconds", map[string]string{"region": name, "status": "302"}, 3},
			{"shortener_redirect_duration_seconds", map[string]string{"region": name, "status": "404"}, 1},
			{"shortener_cache_lookups_total", map[string]string{"region": name, "result": "hit"}, 1},
			{"shortener_cache_lookups_total", map[string]string{"region": name, "result": "miss"}, 1},
			{"shortener_http_errors_total", map[string]string{"region": name, "status": "404"}, 1},
			{"shortener_alias_register_available", at, 1},
			{"shortener_store_size_bytes", at, 1},
			{"shortener_disk_size_bytes", at, 1},
			{"shortener_http_open_connections", at, 1},
			{"go_goroutine_count", nil, 10},
			{"go_memory_used_bytes", nil, 1 << 20},
			{"process_open_fds", nil, 5},
			{"shortener_events_applied_total", map[string]string{"region": name, "origin": name}, 1},
		}
		if i == 0 {
			want = append(want,
				struct {
					metric string
					labels map[string]string
					min    float64
				}{"shortener_api_request_duration_seconds", map[string]string{"region": name, "route": "/api/v1/links", "method": "POST", "status": "201"}, 1},
				struct {
					metric string
					labels map[string]string
					min    float64
				}{"shortener_publish_duration_seconds", map[string]string{"region": name, "result": "ok"}, 1})
		}
		for _, w := range want {
			v, ok := fams.Value(w.metric, w.labels)
			if !ok || v < w.min {
				t.Errorf("%s: %s%v = %v (present %t), want at least %v", name, w.metric, w.labels, v, ok, w.min)
			}
		}
		// Lag, mirror activity and RPO for both other regions, plausible:
		// live mirrors, heartbeats keep the lag near a second.
		for j, origin := range c.names {
			if j == i {
				continue
			}
			o := map[string]string{"region": name, "origin": origin}
			if v, ok := fams.Value("shortener_mirror_active", o); !ok || v != 1 {
				t.Errorf("%s: mirror of %s active = %v (present %t)", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_mirror_copying", o); !ok || v != 1 { // heartbeats move it every second
				t.Errorf("%s: mirror of %s copying = %v (present %t)", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_origin_behind", o); !ok || v != 0 {
				t.Errorf("%s: %s behind its mirror = %v (present %t)", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_origin_diverged", o); !ok || v != 0 {
				t.Errorf("%s: %s diverged from its mirror = %v (present %t)", name, origin, v, ok)
			}
			if _, ok := fams.Value("shortener_mirror_error", o); !ok {
				t.Errorf("%s: no mirror error gauge for %s", name, origin)
			}
			if v, ok := fams.Value("shortener_mirror_lag_seconds", o); !ok || v < 0 || v > 5 {
				t.Errorf("%s: lag of %s = %v s (present %t), want 0 to 5", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_mirror_lag_events", o); !ok || v > 100 {
				t.Errorf("%s: lag of %s = %v events (present %t)", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_rpo_known", o); !ok || v != 1 {
				t.Errorf("%s: RPO of %s known = %v (present %t)", name, origin, v, ok)
			}
			if v, ok := fams.Value("shortener_rpo_bound_seconds", o); !ok || v < 0 || v > 5 {
				t.Errorf("%s: RPO of %s = %v s (present %t)", name, origin, v, ok)
			}
			if _, ok := fams.Value("shortener_rpo_bound_events", o); !ok {
				t.Errorf("%s: no RPO bound in events for %s", name, origin)
			}
			if v, ok := fams.Value("shortener_events_applied_total", o); !ok || v < 1 {
				t.Errorf("%s: events applied from %s = %v (heartbeats at least)", name, origin, v)
			}
		}
	}

	t.Run("runbook commands", func(t *testing.T) { runRunbookCommands(t, c, admin) })
	t.Run("status page", func(t *testing.T) { statusPageInChromium(t, c) })
	_ = sw
}

// startTestSwitch starts a DNS switch in this process whose admin API is
// at admin, health-checking the cluster's regions.
func startTestSwitch(t *testing.T, c *cluster, admin string) *dnsswitch.Switch {
	t.Helper()
	cfg := dnsswitch.Config{Zone: devZone, DNSAddr: "127.0.0.1:0", AdminAddr: admin,
		APIKeyHashes: []string{region.HashAPIKey(regiontest.APIKey)}, StateFile: filepath.Join(c.dir, "switch-state.json")}
	for i, n := range c.names {
		addr := netip.MustParseAddr(c.hosts[i])
		cfg.Regions = append(cfg.Regions, dnsswitch.Region{Name: n, Addr: addr,
			Home: netip.PrefixFrom(addr, 24).Masked(), ReadyURL: "http://" + c.hosts[i] + ":8080/readyz"})
	}
	sw, err := dnsswitch.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- sw.Run(context.Background()) }()
	t.Cleanup(func() {
		sw.Close()
		if err := <-ran; err != nil {
			t.Errorf("switch: %v", err)
		}
	})
	if err := sw.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sw
}

// runRunbookCommands runs every read-only runbook command against the
// test cluster: dev addresses 127.0.N.1 become region N's host, the switch
// admin address the test switch's, var/dev/<region>/region.log the
// region's log; make status and switch status run as the binary would
// (in-process) with the cluster's addresses. Commands that change things
// (region-down/up, drain, override) are checked by TestRunbookCommandsExist
// only; the failover and switch tests exercise them.
func runRunbookCommands(t *testing.T, c *cluster, admin string) {
	hostOf := map[string]string{"127.0.0.1:8054": admin}
	logOf := map[string]string{}
	for i, n := range c.names {
		hostOf[fmt.Sprintf("127.0.%d.1:8080", i+1)] = c.hosts[i] + ":8080"
		logOf[filepath.Join("var/dev", n, "region.log")] = filepath.Join(c.dir, n+".log")
	}
	var targets []string
	for i, n := range c.names {
		targets = append(targets, "--region", n+"=http://"+c.hosts[i]+":8080")
	}
	ran := map[string]bool{}
	for _, cmd := range runbookCommands(t) {
		a := cmd.args
		key := strings.Join(a, " ")
		if ran[key] {
			continue
		}
		var err error
		switch {
		case key == "make status":
			err = runShortener(append([]string{"status", "--switch", admin}, targets...), "REGION")
		case len(a) >= 3 && a[0] == "./bin/shortener" && a[1] == "switch" && a[2] == "status":
			err = runShortener([]string{"switch", "status", "--admin", admin}, "CLIENTS OF")
		case a[0] == "curl":
			u, _ := url.Parse(a[len(a)-1])
			err = httpGet("http://" + hostOf[u.Host] + u.Path)
		case a[0] == "tail" || a[0] == "grep":
			path := a[len(a)-1]
			if logOf[path] == "" {
				err = fmt.Errorf("no log %s in the test cluster", path)
				break
			}
			args := append(append([]string{}, a[1:len(a)-1]...), logOf[path])
			out, xerr := exec.Command(a[0], args...).CombinedOutput()
			if xerr != nil && !(a[0] == "grep" && len(out) == 0) { // grep: no match is exit 1
				err = fmt.Errorf("%v: %s", xerr, out)
			}
		case a[0] == "df" || a[0] == "du":
			args := []string{"-h", c.dir}
			if out, xerr := exec.Command(a[0], args...).CombinedOutput(); xerr != nil {
				err = fmt.Errorf("%v: %s", xerr, out)
			}
		default:
			continue // changes the cluster: checked, not run
		}
		ran[key] = true
		if err != nil {
			t.Errorf("%s: %s: %v", cmd.file, cmd.line, err)
		}
	}
	if len(ran) < 10 {
		t.Errorf("ran only %d runbook commands", len(ran))
	}
	t.Logf("ran %d read-only runbook commands against the cluster", len(ran))
}

func runShortener(args []string, want string) error {
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		return fmt.Errorf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), want) {
		return fmt.Errorf("output lacks %q:\n%s", want, out.String())
	}
	return nil
}

func httpGet(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// statusPageInChromium loads /status of us-east in headless Chromium and
// waits until the page shows three regions, every one ready, the switch's
// answers, and charts with points drawn.
func statusPageInChromium(t *testing.T, c *cluster) {
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium: CI installs the Debian packages chromium and chromium-driver")
		}
		t.Skip("no chromium (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome),
		chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 1400))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser: no timeout on its context.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+c.hosts[0]+":8080/status")); err != nil {
		t.Fatalf("status page: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer tcancel()
	eval := func(expr string) int {
		n, err := chromedp.Run(tctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Errorf("%s: %v", expr, err)
		}
		return n
	}
	// A few seconds of samples make lines, not dots.
	_, err := chromedp.Run(tctx, chromedp.Poll[bool](`Number(document.body.dataset.samples || 0) >= 5 &&
			document.querySelectorAll('.card.ok[data-region]').length === 3 &&
			document.querySelectorAll('#answers tbody tr').length === 3`, chromedp.WithPollingTimeout(45*time.Second)))
	if err != nil {
		body, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("status page: %v\n%s", err, body)
	}
	regions := eval(`document.querySelectorAll('.card[data-region]').length`)
	ready := eval(`document.querySelectorAll('.card.ok[data-region]').length`)
	answers := eval(`document.querySelectorAll('#answers tbody tr').length`)
	points, err := chromedp.Run(tctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('canvas[data-region]')).map(c => c.dataset.region + '=' + (c.dataset.points || 0)).join(',')`))
	if err != nil {
		t.Fatal(err)
	}
	if regions != 3 || ready != 3 || answers != 3 {
		t.Errorf("status page shows %d regions (%d ready) and %d switch answers; want 3, 3, 3", regions, ready, answers)
	}
	charts := strings.Split(points, ",")
	if len(charts) != 3 {
		t.Errorf("charts: %q, want one per region", points)
	}
	for _, ch := range charts {
		name, n, _ := strings.Cut(ch, "=")
		// Two lines (lag, RPO) per other region, five samples or more each.
		if v, err := strconv.Atoi(n); err != nil || v < 20 {
			t.Errorf("chart of %s drew %s points, want at least 20", name, n)
		}
	}
	// And the canvas has ink on it, not only a data attribute.
	inked, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(() => { const c = document.querySelector('canvas[data-region]');
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let colored = 0; for (let i = 0; i < d.length; i += 4) if (d[i+3] > 0 && !(d[i] === d[i+1] && d[i+1] === d[i+2])) colored++;
		return colored > 200; })()`))
	if err != nil || !inked {
		t.Errorf("the first chart has no colored lines (err %v)", err)
	}
	if path := os.Getenv("STATUS_SCREENSHOT"); path != "" {
		// Half a minute of samples for the picture.
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](`Number(document.body.dataset.samples || 0) >= 30`,
			chromedp.WithPollingTimeout(50*time.Second))); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}
}
