package region_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// TestTargetsRefusedAtTheAPI: a create or an update to a blocklisted host,
// the service itself or a private address is a 400 problem on field url
// naming the rule, and nothing is written; the blocklist file is read
// again when it changes, a file that does not parse is refused (the list
// in use stays) and counted, and one that does not parse at start stops
// the region, naming its line.
func TestTargetsRefusedAtTheAPI(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "blocklist")
	if err := os.WriteFile(list, []byte("evil.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := regiontest.Config("us-east", filepath.Join(dir, "region"))
	cfg.Targets = region.Targets{Blocklist: list, ReloadEvery: 50 * time.Millisecond}
	withMetrics(t, &cfg)
	r := regiontest.Start(t, cfg)
	c := regiontest.NewClient(r.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	refused := func(url, rule string) {
		t.Helper()
		resp, err := c.Create(ctx, map[string]any{"url": url})
		if err != nil || resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Raw), "rule "+rule) || resp.Str("field") != "url" {
			t.Errorf("create %s: %v %d %s; want 400 on url naming rule %s", url, err, resp.Status, resp.Raw, rule)
		}
	}
	refused("https://www.evil.example/x", "blocklist")
	refused(r.URL+"/loop", "own_host")
	refused("http://169.254.169.254/latest/meta-data/", "private_address")
	refused("http://localhost:9000/admin", "private_address")

	ok, err := c.Create(ctx, map[string]any{"url": "https://example.com/fine"})
	if err != nil || ok.Status != http.StatusCreated {
		t.Fatalf("create a public target: %v %s", err, ok.Raw)
	}
	code := ok.Str("code")
	upd, err := c.Do(ctx, http.MethodPatch, "/api/v1/links/"+code, map[string]any{"url": "http://10.1.2.3/"})
	if err != nil || upd.Status != http.StatusBadRequest || !strings.Contains(string(upd.Raw), "private_address") {
		t.Errorf("update to a private address: %v %d %s", err, upd.Status, upd.Raw)
	}
	if got, _ := c.Do(ctx, http.MethodGet, "/api/v1/links/"+code, nil); got.Str("url") != "https://example.com/fine" {
		t.Errorf("the link after the refused update: %s", got.Raw)
	}

	// A new list is read within its reload interval.
	if err := os.WriteFile(list, []byte("evil.example\nnow-bad.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		resp, err := c.Create(ctx, map[string]any{"url": "https://now-bad.example/"})
		if err != nil {
			return err
		}
		if resp.Status != http.StatusBadRequest {
			return fmt.Errorf("create answers %d, not yet 400", resp.Status)
		}
		return nil
	})
	// One that does not parse is refused: the list in use stays.
	if err := os.WriteFile(list, []byte("evil.example\nnot a host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		if v, _ := regiontest.Scrape(t, r.URL).Value("shortener_blocklist_reloads_total", map[string]string{"result": "refused"}); v < 1 {
			return fmt.Errorf("no refused reload counted yet")
		}
		return nil
	})
	refused("https://now-bad.example/", "blocklist")

	// At start, it stops the region, naming the line.
	bad := regiontest.Config("eu-west", filepath.Join(dir, "bad"))
	bad.Targets = region.Targets{Blocklist: list}
	reg, err := region.New(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Open(ctx); err == nil || !strings.Contains(err.Error(), list+":2") {
		t.Errorf("a region with a bad blocklist opened: %v; want an error naming %s:2", err, list)
		reg.Close()
	}
}
