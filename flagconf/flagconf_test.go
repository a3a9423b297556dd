package flagconf_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"shortener/flagconf"
)

type settings struct {
	name, data, http string
	port             int
	rate             float64
	quiet            bool
	peers, hashes    []string
}

func flags(s *settings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringVar(&s.name, "name", "", "")
	fs.StringVar(&s.data, "data", "", "")
	fs.StringVar(&s.http, "http", "default-http", "")
	fs.IntVar(&s.port, "nats-port", 4222, "")
	fs.Float64Var(&s.rate, "rate-limit", 200, "")
	fs.BoolVar(&s.quiet, "no-clicks", false, "")
	fs.StringArrayVar(&s.peers, "peer", nil, "")
	fs.StringSliceVar(&s.hashes, "api-key-hash", nil, "")
	return fs
}

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestPrecedence: the command line over the environment over the file,
// each flag on its own; what none of them sets keeps its default.
func TestPrecedence(t *testing.T) {
	var s settings
	fs := flags(&s)
	if err := fs.Parse([]string{"--http", "cli-http"}); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"SHORTENER_HTTP": "env-http", "SHORTENER_DATA": "env-data", "SHORTENER_NAME": "", "SHORTENER_CONFIG": "ignored.toml",
		"SHORTENER_PEER": "eu-west=10.0.2.1,10.0.2.2 ap-south=10.0.3.1", "OTHER_NAME": "ignored"})
	if err := flagconf.ApplyEnv(fs, "SHORTENER", e, []string{"config"}); err != nil {
		t.Fatal(err)
	}
	file := write(t, "r.toml", `name = "file-name"
data = "file-data"
http = "file-http"
peers = ["x=1.2.3.4"]
nats_port = 5222
rate_limit = -1
no_clicks = true
api_key_hashes = ["ab", "cd"]
`)
	if err := flagconf.LoadFile(file, fs, map[string]string{"peers": "peer", "api_key_hashes": "api-key-hash"}, nil); err != nil {
		t.Fatal(err)
	}
	want := settings{name: "file-name", data: "env-data", http: "cli-http", port: 5222, rate: -1, quiet: true,
		peers: []string{"eu-west=10.0.2.1,10.0.2.2", "ap-south=10.0.3.1"}, hashes: []string{"ab", "cd"}}
	if s.name != want.name || s.data != want.data || s.http != want.http || s.port != want.port || s.rate != want.rate ||
		s.quiet != want.quiet || !slices.Equal(s.peers, want.peers) || !slices.Equal(s.hashes, want.hashes) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

// TestRefusals: every bad input is an error naming where it came from and
// what is wrong, and nothing panics.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, file, body string
		env              map[string]string
		want             string
	}{
		{"unknown key", "r.toml", `nmae = "us-east"`, nil, `unknown key "nmae"`},
		{"flag spelling with dashes", "r.toml", `"nats-port" = 1`, nil, `unknown key "nats-port"`},
		{"a list for one value", "r.toml", `name = ["a", "b"]`, nil, "name: a list for a setting of one value"},
		{"a table", "r.toml", "[name]\nx = 1", nil, "name: map"},
		{"not a number", "r.toml", `nats_port = "many"`, nil, "nats_port: invalid argument"},
		{"not TOML", "r.toml", `name = `, nil, "r.toml"},
		{"json unknown", "r.json", `{"name": "a", "extra": 1}`, nil, `unknown key "extra"`},
		{"json not an object", "r.json", `[1]`, nil, "r.json"},
		{"another format", "r.yaml", `name: a`, nil, "want a .toml or a .json file"},
		{"bad environment", "", "", map[string]string{"SHORTENER_NATS_PORT": "x"}, "$SHORTENER_NATS_PORT"},
		{"a command-line-only key", "r.toml", `http = "a:1"`, nil, `unknown key "http"`},
		{"two keys for one flag", "r.toml", "peer = [\"a=1\"]\npeers = [\"b=2\"]", nil, `"peer" and "peers" are the same setting`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s settings
			fs := flags(&s)
			var err error
			if c.env != nil {
				err = flagconf.ApplyEnv(fs, "SHORTENER", env(c.env), nil)
			} else {
				err = flagconf.LoadFile(write(t, c.file, c.body), fs, map[string]string{"peers": "peer"}, []string{"http"})
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v; want an error with %q", err, c.want)
			}
		})
	}
	var s settings
	if err := flagconf.LoadFile(filepath.Join(t.TempDir(), "none.toml"), flags(&s), nil, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestPrintReadsBack: what Print writes, LoadFile reads back into the same
// values; a secret is masked, an empty one is left as it is.
func TestPrintReadsBack(t *testing.T) {
	var s settings
	fs := flags(&s)
	if err := fs.Parse([]string{"--data", "nats://someone:s3cret@nats.example:4222", "--name", "us-east", "--peer", "eu-west=10.0.2.1,10.0.2.2", "--api-key-hash", "abcd", "--nats-port", "1", "--no-clicks"}); err != nil {
		t.Fatal(err)
	}
	var withURL bytes.Buffer
	if err := flagconf.Print(&withURL, fs, nil, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(withURL.String(), "s3cret") || !strings.Contains(withURL.String(), "nats://%28masked%29@nats.example:4222") {
		t.Errorf("a URL's password is printed:\n%s", withURL.String())
	}
	var out bytes.Buffer
	if err := flagconf.Print(&out, fs, []string{"data"}, []string{"api-key-hash", "http"}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, "abcd") || !strings.Contains(text, `api_key_hash = ["(masked)"]`) && !strings.Contains(text, `api_key_hash = "(masked)"`) {
		t.Fatalf("the secret is not masked:\n%s", text)
	}
	if strings.Contains(text, "data") {
		t.Fatalf("a skipped flag is printed:\n%s", text)
	}
	var back settings
	bfs := flags(&back)
	if err := flagconf.LoadFile(write(t, "back.toml", strings.ReplaceAll(text, `"(masked)"`, `"abcd"`)), bfs, nil, nil); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if back.name != "us-east" || back.port != 1 || !back.quiet || !slices.Equal(back.peers, s.peers) || !slices.Equal(back.hashes, []string{"abcd"}) {
		t.Fatalf("read back %+v from\n%s", back, text)
	}
}

// FuzzLoadFile: no config file panics the loader.
func FuzzLoadFile(f *testing.F) {
	f.Add(`name = "a"`, true)
	f.Add(`peers = ["a", 1, true, 2.5]`, true)
	f.Add(`{"nats_port": 1e400}`, false)
	f.Add(`{"peer": [[1]]}`, false)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string, isTOML bool) {
		name := "c.json"
		if isTOML {
			name = "c.toml"
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var s settings
		_ = flagconf.LoadFile(p, flags(&s), map[string]string{"peers": "peer"}, []string{"http"})
	})
}
