package secrets_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"shortener/events"
	"shortener/secrets"
)

func generate(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := secrets.Generate(dir, secrets.Options{Regions: []string{"us-east", "eu-west"}, Hosts: []string{"127.0.1.1", "nats.example"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGenerateAndLoad: a generated set loads for a server and for every
// user; secrets are 0600 in a 0700 folder; the certificate names the
// service and the hosts; a second Generate on the same folder is refused.
func TestGenerateAndLoad(t *testing.T) {
	dir := generate(t)
	srv, err := secrets.LoadServer(secrets.Paths{Dir: dir}.Resolve(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Users.Regions(); strings.Join(got, ",") != "us-east,eu-west" {
		t.Errorf("regions %v", got)
	}
	if len(srv.Leaf.IPAddresses) != 1 || srv.Leaf.DNSNames[0] != secrets.ServiceName || srv.Leaf.DNSNames[2] != "nats.example" {
		t.Errorf("certificate names %v %v", srv.Leaf.DNSNames, srv.Leaf.IPAddresses)
	}
	for _, u := range srv.Users.Users {
		c, err := secrets.LoadClient(u.Name, secrets.Paths{Dir: dir}.Resolve(u.Name))
		if err != nil {
			t.Fatalf("user %s: %v", u.Name, err)
		}
		if c.PublicKey() != u.Keys[0] {
			t.Errorf("user %s: seed's key %s, table's %s", u.Name, c.PublicKey(), u.Keys[0])
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %04o", fi.Mode().Perm())
	}
	for _, f := range []string{secrets.CAKeyFile, secrets.KeyFile, "audit.nk", "region-us-east.nk"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v", f, err, fi.Mode().Perm())
		}
	}
	if err := secrets.Generate(dir, secrets.Options{Regions: []string{"us-east"}}); err == nil {
		t.Error("a second Generate over a set succeeded")
	}
}

// TestLoadNamesTheFile: every way a file can be wrong is refused with one
// message naming that file.
func TestLoadNamesTheFile(t *testing.T) {
	dir := generate(t)
	other := generate(t)
	p := secrets.Paths{Dir: dir}.Resolve("audit")
	cases := []struct {
		name  string
		paths func() secrets.Paths
		prep  func()
		want  string
	}{
		{"missing CA", func() secrets.Paths { q := p; q.CA = filepath.Join(dir, "nope.crt"); return q }, nil, "nope.crt"},
		{"CA not PEM", func() secrets.Paths { q := p; q.CA = p.Users; return q }, nil, secrets.UsersFile},
		{"key readable by others", func() secrets.Paths { return p }, func() { os.Chmod(p.Key, 0o644) }, "chmod 600"},
		{"certificate from another CA", func() secrets.Paths { q := p; q.CA = filepath.Join(other, secrets.CAFile); return q }, nil, secrets.CertFile},
		{"key of another certificate", func() secrets.Paths { q := p; q.Key = filepath.Join(other, secrets.KeyFile); return q }, nil, secrets.KeyFile},
		{"users table damaged", func() secrets.Paths { q := p; q.Users = p.CA; return q }, nil, secrets.CAFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.prep != nil {
				c.prep()
				defer os.Chmod(p.Key, 0o600)
			}
			_, err := secrets.LoadServer(c.paths())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadServer: %v; want an error naming %q", err, c.want)
			}
		})
	}
	os.Chmod(p.Seed, 0o640)
	if _, err := secrets.LoadClient("audit", p); err == nil || !strings.Contains(err.Error(), "audit.nk") {
		t.Errorf("LoadClient with a group-readable seed: %v", err)
	}
	os.Chmod(p.Seed, 0o600)
	os.WriteFile(p.Seed, []byte("SUNOTASEED\n"), 0o600)
	if _, err := secrets.LoadClient("audit", p); err == nil || !strings.Contains(err.Error(), "audit.nk") {
		t.Errorf("LoadClient with a damaged seed: %v", err)
	}
}

// TestRotateKey: a new key is accepted beside the old one until the old
// one is retired; the seed file holds the new key.
func TestRotateKey(t *testing.T) {
	dir := generate(t)
	oldPub := mustUser(t, dir, "region-eu-west").Keys[0]
	pub, err := secrets.AddKey(dir, "region-eu-west")
	if err != nil {
		t.Fatal(err)
	}
	if keys := mustUser(t, dir, "region-eu-west").Keys; len(keys) != 2 || keys[0] != oldPub || keys[1] != pub {
		t.Errorf("keys after AddKey: %v", keys)
	}
	c, err := secrets.LoadClient("region-eu-west", secrets.Paths{Dir: dir}.Resolve("region-eu-west"))
	if err != nil || c.PublicKey() != oldPub {
		t.Errorf("seed in use after AddKey: %v %v, want the old one still", err, c)
	}
	if _, err := secrets.AddKey(dir, "region-eu-west"); err == nil {
		t.Error("a second AddKey during a rotation succeeded")
	}
	if _, err := secrets.RetireKeys(dir, "region-eu-west"); err == nil {
		t.Error("RetireKeys before UseKey succeeded: it would retire the seed in use")
	}
	if got, err := secrets.UseKey(dir, "region-eu-west"); err != nil || got != pub {
		t.Fatalf("UseKey: %s %v", got, err)
	}
	if c, err = secrets.LoadClient("region-eu-west", secrets.Paths{Dir: dir}.Resolve("region-eu-west")); err != nil || c.PublicKey() != pub {
		t.Errorf("seed after UseKey: %v %v", err, c)
	}
	if _, err := secrets.UseKey(dir, "region-eu-west"); err == nil {
		t.Error("UseKey with no new seed succeeded")
	}
	if n, err := secrets.RetireKeys(dir, "region-eu-west"); err != nil || n != 1 {
		t.Errorf("RetireKeys: %d %v", n, err)
	}
	if u := mustUser(t, dir, "region-eu-west"); len(u.Keys) != 1 || u.Keys[0] != pub || len(u.Retired) != 1 || u.Retired[0] != oldPub {
		t.Errorf("keys after RetireKeys: %v, retired %v", u.Keys, u.Retired)
	}
	// The retired key no longer logs in, but the events it signed still
	// verify: the key ring holds both, and only for eu-west.
	users, err := secrets.LoadUsers(filepath.Join(dir, secrets.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := users.KeyRing()
	if err != nil {
		t.Fatal(err)
	}
	if !ring.Has("eu-west", oldPub) || !ring.Has("eu-west", pub) || ring.Has("us-east", oldPub) {
		t.Errorf("key ring after the rotation: regions %v", ring.Regions())
	}
	sig, err := events.Sign(c, []byte("event"))
	if err != nil {
		t.Fatal(err)
	}
	if rej := ring.Verify("eu-west", []byte("event"), sig); rej != nil {
		t.Errorf("an event signed with the new seed: %v", rej)
	}
	// A tool's retired keys are not kept.
	if _, err := secrets.AddKey(dir, "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.UseKey(dir, "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.RetireKeys(dir, "audit"); err != nil {
		t.Fatal(err)
	}
	if u := mustUser(t, dir, "audit"); len(u.Keys) != 1 || len(u.Retired) != 0 {
		t.Errorf("audit after a rotation: %v, retired %v", u.Keys, u.Retired)
	}
	if _, err := secrets.AddKey(dir, "nobody"); err == nil {
		t.Error("AddKey for an unknown user succeeded")
	}
}

func mustUser(t *testing.T, dir, name string) secrets.User {
	t.Helper()
	u, err := secrets.LoadUsers(filepath.Join(dir, secrets.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	x, ok := u.Find(name)
	if !ok {
		t.Fatalf("no user %s", name)
	}
	return x
}

// FuzzLoadUsers: no users table, however damaged, panics the loader, and
// whatever loads validates.
func FuzzLoadUsers(f *testing.F) {
	f.Add([]byte(`{"users":[{"name":"audit","role":"audit","keys":["UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"]}]}`))
	f.Add([]byte(`{"users":[{"name":"r","role":"region","keys":[]}]}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "users.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		u, err := secrets.LoadUsers(path)
		if err == nil {
			if verr := u.Validate(); verr != nil {
				t.Fatalf("loaded a table that does not validate: %v", verr)
			}
		}
	})
}

// TestExportRegion: a region's export loads as that region's server and
// client, and holds neither the CA's key nor any other user's seed.
func TestExportRegion(t *testing.T) {
	dir := generate(t)
	out := filepath.Join(t.TempDir(), "eu-west")
	if err := secrets.ExportRegion(dir, "eu-west", out); err != nil {
		t.Fatal(err)
	}
	p := secrets.Paths{Dir: out}.Resolve("region-eu-west")
	if _, err := secrets.LoadServer(p); err != nil {
		t.Errorf("server from the export: %v", err)
	}
	if _, err := secrets.LoadClient("region-eu-west", p); err != nil {
		t.Errorf("client from the export: %v", err)
	}
	for _, f := range []string{secrets.CAKeyFile, "region-us-east.nk", "audit.nk", "backup.nk", "restore.nk"} {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			t.Errorf("the export holds %s", f)
		}
	}
	if err := secrets.ExportRegion(dir, "nowhere", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("an export for a region without a user succeeded")
	}
}

// Client.Sign is the nkey's signature: the same bytes nkeys makes, and
// nkeys verifies them.
func TestClientSignIsTheNkeys(t *testing.T) {
	dir := generate(t)
	p := secrets.Paths{Dir: dir}.Resolve("region-us-east")
	c, err := secrets.LoadClient("region-us-east", p)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := os.ReadFile(p.Seed)
	kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"id":"x"}`)
	got, err := c.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := kp.Sign(data)
	if !bytes.Equal(got, want) || kp.Verify(data, got) != nil {
		t.Fatal("Client.Sign is not the nkey's signature")
	}
}

// TestAddToolUser: a folder made without the switch's user gets it, with a
// seed that loads and matches the table; a second add, an unknown tool and
// a stray seed are refused.
func TestAddToolUser(t *testing.T) {
	dir := generate(t)
	path := filepath.Join(dir, secrets.UsersFile)
	users, err := secrets.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	// The folder as made before the switch had a user.
	users.Users = slices.DeleteFunc(users.Users, func(u secrets.User) bool { return u.Name == secrets.SwitchUser })
	if err := secrets.WriteUsers(path, users); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(secrets.SeedFile(dir, secrets.SwitchUser)); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.LoadClient(secrets.SwitchUser, secrets.Paths{Dir: dir}.Resolve(secrets.SwitchUser)); err == nil {
		t.Fatal("the switch's user loads from a folder without it")
	}
	pub, err := secrets.AddToolUser(dir, secrets.SwitchUser)
	if err != nil {
		t.Fatal(err)
	}
	c, err := secrets.LoadClient(secrets.SwitchUser, secrets.Paths{Dir: dir}.Resolve(secrets.SwitchUser))
	if err != nil || c.PublicKey() != pub {
		t.Fatalf("the added user: %v, key %v want %s", err, c, pub)
	}
	if users, err = secrets.LoadUsers(path); err != nil {
		t.Fatal(err)
	}
	if u, ok := users.Find(secrets.SwitchUser); !ok || u.Role != secrets.RoleSwitch || len(u.Keys) != 1 || u.Keys[0] != pub {
		t.Fatalf("the table's switch user: %+v %v", u, ok)
	}
	if fi, err := os.Stat(secrets.SeedFile(dir, secrets.SwitchUser)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed: %v %v", err, fi)
	}
	if _, err := secrets.AddToolUser(dir, secrets.SwitchUser); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second add: %v", err)
	}
	if _, err := secrets.AddToolUser(dir, "region-us-east"); err == nil || !strings.Contains(err.Error(), "no tool user") {
		t.Fatalf("a region's user as a tool: %v", err)
	}
	users.Users = slices.DeleteFunc(users.Users, func(u secrets.User) bool { return u.Name == secrets.SwitchUser })
	if err := secrets.WriteUsers(path, users); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.AddToolUser(dir, secrets.SwitchUser); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("over a stray seed: %v", err)
	}
}
