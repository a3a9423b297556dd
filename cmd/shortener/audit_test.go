package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"shortener/auditor"
	"shortener/region/regiontest"
)

// audit runs shortener audit in this process and returns its exit status
// and output.
func audit(t *testing.T, natsURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"audit", "--nats", natsURL, "--timeout", "60s", "--secrets", regiontest.SecretsDir()}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestAuditCommands: each audit subcommand reaches the auditor (package
// auditor tests what it finds) with its flags, prints what it prints, and
// exits 0 on success, 1 on a finding and 2 on a mistake in the command
// line, with one line on stderr.
func TestAuditCommands(t *testing.T) {
	t.Setenv("SHORTENER_API_KEY", regiontest.APIKey)
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	natsURL := reg.NATSURL()
	endpoint := "--endpoint=us-east=" + reg.URL
	r, err := regiontest.NewClient(reg.URL).Create(context.Background(), map[string]any{"url": "https://example.com/x"})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create: %v %+v", err, r)
	}
	code := r.Str("code")

	status, out, errOut := audit(t, natsURL, "replay", "--region", "us-east", endpoint)
	if status != 0 || !strings.Contains(out, "MATCH") || !strings.Contains(out, "events/s") {
		t.Fatalf("replay: exit %d\n%s\n%s", status, out, errOut)
	}
	if status, out, errOut := audit(t, natsURL, "verify", endpoint); status != 0 || !strings.Contains(out, "VERIFY OK") {
		t.Fatalf("verify: exit %d\n%s\n%s", status, out, errOut)
	}
	if status, out, errOut := audit(t, natsURL, "history", code); status != 0 || !strings.Contains(out, "LinkCreated") {
		t.Fatalf("history: exit %d\n%s\n%s", status, out, errOut)
	}
	status, out, errOut = audit(t, natsURL, "--json", "at", time.Now().UTC().Format(time.RFC3339Nano), code)
	var got auditor.LinkAt
	if status != 0 || json.Unmarshal([]byte(out), &got) != nil || got.URL != "https://example.com/x" {
		t.Fatalf("at: exit %d\n%s\n%s", status, out, errOut)
	}
	if status, out, errOut := audit(t, natsURL, "export", "--skip-heartbeats"); status != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("export: exit %d\n%s\n%s", status, out, errOut)
	}
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"history", "no such code!"}, 2, "code"},
		{[]string{"replay", "--region", "ap-south", endpoint}, 1, "holds no copy"},
		{[]string{"replay", "--region", "us-east", "--region", "eu-west", "--out", t.TempDir() + "/x"}, 1, "holds no copy"},
		{[]string{"replay", "--out", t.TempDir() + "/x", "--until", "1", "--region", "us-east", "--region", "us-east"}, 2, "--out keeps one store"},
	} {
		status, out, errOut := audit(t, natsURL, tc.args...)
		if status != tc.status || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) || !strings.HasPrefix(errOut, "shortener: ") {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and one line with %q", tc.args, status, errOut, out, tc.status, tc.want)
		}
	}
}

// TestAuditErrors: mistakes and an unreachable cluster are one line and
// a non-zero status.
func TestAuditErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"replay", "--until", "yesterday"}, 2, "until"},
		{[]string{"at", "noon"}, 2, "time"},
		{[]string{"history"}, 1, "accepts 1 arg"},
		{[]string{"verify", "--range-size", "0"}, 2, "range-size"},
		{[]string{"history", "abc"}, 1, "connect to nats"},
	} {
		status, out, errOut := audit(t, "nats://127.0.0.1:1", tc.args...)
		if status != tc.status || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and one line with %q", tc.args, status, errOut, out, tc.status, tc.want)
		}
	}
}
