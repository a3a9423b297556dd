//go:build regions

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"shortener/region/regiontest"
	"shortener/secrets"
)

// TestClusterRotation walks the rotation procedure of docs/security.md with
// the commands it names, one region at a time, on a running cluster: a new
// servers' certificate, then a new key for eu-west's user (added, rolled
// out, put in use: eu-west then signs its events with it) and the old one
// retired. After every restart the restarted region is ready and a link it
// creates reaches the two others, whose servers still hold the old
// certificate or users table: no step needs a full stop. At the end the
// retired seed is refused and the new one admitted.
func TestClusterRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := secrets.Generate(dir, secrets.Options{Regions: []string{"us-east", "eu-west", "ap-south"}}); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "--secrets", dir)
	ctx := context.Background()
	n := 0
	// roll restarts every region in turn (SIGTERM, start on the same
	// state and files) and has it create a link that must reach the others.
	roll := func(step string) {
		for i := range c.names {
			stopRegionProc(t, c.procs[i])
			c.restart(i)
			n++
			url := fmt.Sprintf("https://example.com/rotation/%d", n)
			r, err := c.clients[i].Create(ctx, map[string]any{"url": url})
			if err != nil || r.Status != 201 {
				t.Fatalf("%s: create in %s after its restart: %v %d %s", step, c.names[i], err, r.Status, r.Raw)
			}
			for j := range c.names {
				regiontest.WaitFor(t, 60*time.Second, func() error { return c.resolves(j, r.Str("code"), url) })
			}
			t.Logf("%s: %s restarted, its link resolves in every region", step, c.names[i])
		}
	}
	cli := func(args ...string) string {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 0 {
			t.Fatalf("shortener %s: exit %d: %s", strings.Join(args, " "), code, out.String())
		}
		return out.String()
	}

	before, _ := os.ReadFile(filepath.Join(dir, secrets.CertFile))
	t.Log(cli("secrets", "cert", "--dir", dir))
	if after, _ := os.ReadFile(filepath.Join(dir, secrets.CertFile)); bytes.Equal(before, after) {
		t.Fatal("secrets cert wrote the same certificate")
	}
	roll("new certificate")

	oldSeed := filepath.Join(t.TempDir(), "old.nk")
	seed, _ := os.ReadFile(secrets.SeedFile(dir, "region-eu-west"))
	if err := os.WriteFile(oldSeed, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(cli("secrets", "add-key", "--dir", dir, "region-eu-west"))
	roll("eu-west's new key beside the old")
	t.Log(cli("secrets", "use-key", "--dir", dir, "region-eu-west"))
	roll("eu-west signs with its new key")
	t.Log(cli("secrets", "retire-keys", "--dir", dir, "region-eu-west"))
	roll("eu-west's old key retired")

	natsURL := "nats://" + c.hosts[0] + ":4222"
	for _, s := range []struct {
		seed string
		ok   bool
	}{{oldSeed, false}, {secrets.SeedFile(dir, "region-eu-west"), true}} {
		cred, err := secrets.LoadClient("region-eu-west", secrets.Paths{Dir: dir, Seed: s.seed}.Resolve("region-eu-west"))
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(natsURL, append(cred.NATSOptions(), nats.Timeout(5*time.Second))...)
		if nc != nil {
			nc.Close()
		}
		if (err == nil) != s.ok {
			t.Errorf("connect with %s: %v; want admitted %t", s.seed, err, s.ok)
		}
	}
}
