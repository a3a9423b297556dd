package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// runRegion runs shortener region with args and returns its exit status,
// standard output and standard error.
func runRegion(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"region"}, args...), &stdout, &stderr)
	return code, stdout.String(), strings.TrimSpace(stderr.String())
}

// TestRegionHasNoDefaults: a region started without its name, data folder
// or HTTP listener is a usage error (it used to become us-east on the dev
// addresses and folder), and so is one without a digit unless the digits
// table names it.
func TestRegionHasNoDefaults(t *testing.T) {
	for _, env := range []string{"SHORTENER_NAME", "SHORTENER_DATA", "SHORTENER_HTTP", "SHORTENER_DIGIT", "SHORTENER_DIGITS"} {
		t.Setenv(env, "")
		os.Unsetenv(env)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "give --name, --data and --http"},
		{"no data", []string{"--name", "us-east", "--http", "127.0.0.1:0"}, "give --name, --data and --http"},
		{"no http", []string{"--name", "us-east", "--data", t.TempDir()}, "give --name, --data and --http"},
		{"no digit", []string{"--name", "us-east", "--data", t.TempDir(), "--http", "127.0.0.1:0"}, "give --digit"},
		{"a JetStream disk too small", []string{"--name", "us-east", "--digit", "1", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--jetstream-max-store", "10MiB", "--api-key-hash", strings.Repeat("ab", 32)}, "--jetstream-max-store"},
		{"a table without it", []string{"--name", "us-east", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--digits", "eu-west=2"}, "give --digit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, msg := runRegion(t, c.args...)
			if code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", code, msg, c.want)
			}
		})
	}
}

// TestRegionPrintConfig: the command line over $SHORTENER_<FLAG> over the
// config file, shown by --print-config as a TOML file that reads back,
// with the key hashes masked; a bad key in the file or a bad value in the
// environment is one line and exit 2.
func TestRegionPrintConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "eu-west.toml")
	if err := os.WriteFile(file, []byte(`name = "eu-west"
digits = "us-east=1,eu-west=2"
data = "/from/the/file"
http = "10.0.2.1:8080"
nats_port = 4333
peers = ["us-east=10.0.1.1,10.0.1.2", "ap-south=10.0.3.1"]
api_key_hashes = ["`+strings.Repeat("ab", 32)+`"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHORTENER_HTTP", "10.0.2.9:8080")
	t.Setenv("SHORTENER_CACHE_SIZE", "5000")
	code, out, msg := runRegion(t, "--config", file, "--print-config", "--data", "/from/the/command/line")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	var got map[string]any
	if _, err := toml.Decode(out, &got); err != nil {
		t.Fatalf("--print-config is not TOML: %v\n%s", err, out)
	}
	for key, want := range map[string]any{"name": "eu-west", "data": "/from/the/command/line", "http": "10.0.2.9:8080",
		"cache_size": int64(5000), "nats_port": int64(4333), "fsync": "always"} {
		if got[key] != want {
			t.Errorf("%s = %v (%T), want %v", key, got[key], got[key], want)
		}
	}
	if peers, _ := got["peer"].([]any); len(peers) != 2 || peers[0] != "us-east=10.0.1.1,10.0.1.2" {
		t.Errorf("peer = %v", got["peer"])
	}
	if strings.Contains(out, "abab") || !strings.Contains(out, "(masked)") {
		t.Errorf("the key hash is not masked:\n%s", out)
	}

	if err := os.WriteFile(file, []byte("name = \"eu-west\"\nnmae = \"typo\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := runRegion(t, "--config", file); code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, `unknown key "nmae"`) {
		t.Errorf("a typo in the file: exit %d, %q", code, msg)
	}
	t.Setenv("SHORTENER_NATS_PORT", "lots")
	if code, _, msg := runRegion(t, "--print-config"); code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "$SHORTENER_NATS_PORT") {
		t.Errorf("a bad value in the environment: exit %d, %q", code, msg)
	}
}

// TestVersion: one line naming the build.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "shortener ") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("exit %d, %q", code, out.String())
	}
}
