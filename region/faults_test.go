package region_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"shortener/region/regiontest"
)

// TestFaultInjectionOffByDefault: without FaultInjection the endpoints do
// not exist.
func TestFaultInjectionOffByDefault(t *testing.T) {
	r := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	c := regiontest.NewClient(r.URL)
	ctx := context.Background()
	for _, p := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/admin/faults"},
		{http.MethodPost, "/api/v1/admin/faults/disk-full"},
		{http.MethodPost, "/api/v1/admin/faults/clock"},
		{http.MethodPost, "/api/v1/admin/faults/projector-crash"},
	} {
		resp, err := c.Do(ctx, p.method, p.path, map[string]any{"on": true})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusNotFound {
			t.Errorf("%s %s without fault injection: %d, want 404", p.method, p.path, resp.Status)
		}
	}
}

func startFaulty(t *testing.T) (*regiontest.Running, *regiontest.Client) {
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.FaultInjection = true
	cfg.CreateTimeout = time.Second
	r := regiontest.Start(t, cfg)
	return r, regiontest.NewClient(r.URL)
}

// TestFaultBadBodies: every malformed request is a 400 problem naming the
// field, and changes nothing.
func TestFaultBadBodies(t *testing.T) {
	_, c := startFaulty(t)
	ctx := context.Background()
	for _, tc := range []struct {
		path, body, field string
	}{
		{"disk-full", `{}`, "on"},
		{"disk-full", `{"on":"yes"}`, "on"},
		{"disk-full", `{"on":true,"x":1}`, "x"},
		{"disk-full", `[`, "body"},
		{"disk-full", ``, "body"},
		{"clock", `{}`, "skew"},
		{"clock", `{"skew":"soon"}`, "skew"},
		{"clock", `{"skew":"25h"}`, "skew"},
		{"clock", `{"skew":"-25h"}`, "skew"},
		{"clock", `{"skew":90}`, "skew"},
		{"projector-crash", `{"now":true}`, "now"},
		{"projector-crash", `nope`, "body"},
	} {
		resp, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/"+tc.path, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusBadRequest || resp.Str("field") != tc.field ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("POST %s %s: %d %s, want a 400 problem on field %q", tc.path, tc.body, resp.Status, resp.Raw, tc.field)
		}
	}
	resp, err := c.Do(ctx, http.MethodGet, "/api/v1/admin/faults", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || resp.Body["disk_full"] != false || resp.Str("clock_skew") != "0s" ||
		resp.Body["projector_crash_armed"] != false {
		t.Fatalf("after bad requests only: %d %s, want no fault", resp.Status, resp.Raw)
	}
	noKey := regiontest.NewClient(c.Base)
	noKey.Key = ""
	if resp, _ := noKey.Do(ctx, http.MethodPost, "/api/v1/admin/faults/disk-full", `{"on":true}`); resp.Status != http.StatusUnauthorized {
		t.Fatalf("without the API key: %d, want 401", resp.Status)
	}
}

// TestFaultDiskFull: while every write of the projection fails with ENOSPC,
// creates answer 503, an alias claim is given back, readiness reports the
// stall; once the disk is freed the write that timed out is applied (the
// event was in the stream: nothing lost) and the alias can be claimed.
func TestFaultDiskFull(t *testing.T) {
	r, c := startFaulty(t)
	ctx := context.Background()
	before, err := r.Store().Count()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/disk-full", map[string]any{"on": true}); err != nil || resp.Status != http.StatusOK || resp.Body["disk_full"] != true {
		t.Fatalf("disk-full on: %v %d %s", err, resp.Status, resp.Raw)
	}
	resp, err := c.Create(ctx, map[string]any{"url": "https://example.com/while-full"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("create on a full disk: %d %s, want 503 with Retry-After", resp.Status, resp.Raw)
	}
	resp, err = c.Create(ctx, map[string]any{"url": "https://example.com/alias-while-full", "alias": "full-disk"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusServiceUnavailable {
		t.Fatalf("alias claim on a full disk: %d %s, want 503", resp.Status, resp.Raw)
	}
	// Heartbeats keep arriving and cannot be applied: after the stall
	// threshold the region says it is not ready.
	regiontest.WaitFor(t, 15*time.Second, func() error {
		resp, err := c.Do(ctx, http.MethodGet, "/readyz", nil)
		if err != nil {
			return err
		}
		if resp.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d %s while the projection cannot write", resp.Status, resp.Raw)
		}
		return nil
	})
	if n, _ := r.Store().Count(); n != before {
		t.Fatalf("%d links applied on a full disk, want %d", n, before)
	}

	if resp, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/disk-full", map[string]any{"on": false}); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("disk-full off: %v %d %s", err, resp.Status, resp.Raw)
	}
	regiontest.WaitFor(t, 15*time.Second, func() error {
		resp, err := c.Do(ctx, http.MethodGet, "/readyz", nil)
		if err != nil {
			return err
		}
		if resp.Status != http.StatusOK {
			return fmt.Errorf("readyz %d %s after the disk was freed", resp.Status, resp.Raw)
		}
		return nil
	})
	// The create that timed out had its event appended: it is applied now.
	if n, _ := r.Store().Count(); n != before+1 {
		t.Fatalf("%d links after the disk was freed, want %d (the create that timed out)", n, before+1)
	}
	resp, err = c.Create(ctx, map[string]any{"url": "https://example.com/alias-after", "alias": "full-disk"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated {
		t.Fatalf("the alias whose claim failed on a full disk: %d %s, want 201 (the claim was given back)", resp.Status, resp.Raw)
	}
}

// TestFaultClockSkew: the region's clock moves by the skew (event times
// follow it) and back.
func TestFaultClockSkew(t *testing.T) {
	_, c := startFaulty(t)
	ctx := context.Background()
	resp, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/clock", map[string]any{"skew": "90s"})
	if err != nil || resp.Status != http.StatusOK || resp.Str("clock_skew") != "1m30s" {
		t.Fatalf("clock skew: %v %d %s", err, resp.Status, resp.Raw)
	}
	skewed := func(want time.Duration) {
		t.Helper()
		resp, err := c.Create(ctx, map[string]any{"url": "https://example.com/skewed"})
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("create: %v %d %s", err, resp.Status, resp.Raw)
		}
		at, err := time.Parse(time.RFC3339Nano, resp.Str("created_at"))
		if err != nil {
			t.Fatalf("created_at %q: %v", resp.Str("created_at"), err)
		}
		if d := time.Until(at); d < want-5*time.Second || d > want+5*time.Second {
			t.Fatalf("created_at %v is %v from now, want about %v", at, d, want)
		}
	}
	skewed(90 * time.Second)
	if resp, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/clock", map[string]any{"skew": "0s"}); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("clock back: %v %d %s", err, resp.Status, resp.Raw)
	}
	skewed(0)
}
