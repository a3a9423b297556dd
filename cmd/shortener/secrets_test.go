package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegionRefusesBadCredentials: a region started with missing,
// unreadable or wrong NATS credentials exits at once with status 2 and one
// line naming the file or the user, before it listens on anything.
func TestRegionRefusesBadCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	var out bytes.Buffer
	if code := run([]string{"secrets", "init", "--dir", dir, "--region", "us-east", "--region", "eu-west"}, &out, &out); code != 0 {
		t.Fatalf("secrets init: exit %d: %s", code, out.String())
	}
	loose := filepath.Join(t.TempDir(), "loose")
	if code := run([]string{"secrets", "init", "--dir", loose, "--region", "us-east"}, &out, &out); code != 0 {
		t.Fatal(out.String())
	}
	if err := os.Chmod(filepath.Join(loose, "nats.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHORTENER_SECRETS", "")
	base := []string{"region", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--digit", "1", "--api-key-hash", strings.Repeat("ab", 32)}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", []string{"--name", "us-east"}, "give --secrets"},
		{"a folder without the files", []string{"--name", "us-east", "--secrets", t.TempDir()}, "ca.crt: no such file"},
		{"a key others can read", []string{"--name", "us-east", "--secrets", loose}, "nats.key: mode 0644"},
		{"a region the table does not know", []string{"--name", "ap-south", "--digit", "3", "--secrets", dir, "--nats-seed", filepath.Join(dir, "region-us-east.nk")}, "no region user region-ap-south"},
		{"another user's seed", []string{"--name", "us-east", "--secrets", dir, "--nats-seed", filepath.Join(dir, "region-eu-west.nk")}, "not a key of user region-us-east"},
		{"a CA that did not sign the certificate", []string{"--name", "us-east", "--secrets", dir, "--nats-ca", filepath.Join(loose, "ca.crt")}, "nats.crt: not valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append(append([]string{}, base...), c.args...), &stdout, &stderr)
			msg := strings.TrimSpace(stderr.String())
			if code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", code, msg, c.want)
			}
		})
	}
}
