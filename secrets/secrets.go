package secrets

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nkeys"

	"shortener/events"
)

// The files of a secrets folder. A real deployment may keep them anywhere
// and give each by path; these are the names Generate writes and the
// defaults a --secrets folder implies.
const (
	CAFile    = "ca.crt"     // the CA certificates every peer and client trusts (PEM, one or more)
	CAKeyFile = "ca.key"     // the CA's private key: only Generate and Issue read it
	CertFile  = "nats.crt"   // the NATS servers' certificate, signed by the CA
	KeyFile   = "nats.key"   // its private key
	UsersFile = "users.json" // every user's role and public nkeys

	HTTPCertFile = "http.crt" // an HTTPS certificate for the regions' HTTP listeners (IssueHTTP), optional
	HTTPKeyFile  = "http.key"
)

// ServiceName is the DNS name in every NATS server certificate, and the
// name that clients and peer servers verify, whatever address they dialled:
// a server is who it says it is when it holds a certificate for this name
// from the cluster's own CA. Addresses change (NAT, fault proxies, compose
// networks), the CA does not; certificates also carry the hosts they are
// made for, so that a stock nats client can check by address.
const ServiceName = "nats.shortener.internal"

// PeerName is the TLS server name a server of region asks for when it
// dials a route or a gateway: the dialer says which region it is in the
// clear (fault proxies in chaos runs read it), and the certificate names
// every such name with one wildcard, *.nats.shortener.internal.
func PeerName(region string) string { return region + "." + ServiceName }

// The roles a user can have; region builds each role's permissions.
const (
	RoleRegion  = "region"  // one region's application: writes its own stream only
	RoleAudit   = "audit"   // reads the log: audit, status, the drills' checks
	RoleBackup  = "backup"  // reads the log and takes stream snapshots
	RoleBench   = "bench"   // reads the log; writes the benchmarks' scratch streams only
	RoleRestore = "restore" // restores backed-up streams (shortener restore --into): creates, never deletes
	RoleSwitch  = "switch"  // the DNS switch's instances: their shared drains and overrides (KV SWITCH) only
)

// Roles lists every role, for validation.
var Roles = []string{RoleRegion, RoleAudit, RoleBackup, RoleBench, RoleRestore, RoleSwitch}

// User is one NATS user. A user may have several keys during a rotation:
// any of them is accepted until the old ones are retired. A region user's
// retired keys are kept: servers no longer admit them, but the events the
// region signed with them are still in the log, and the fold checks their
// signatures (events.KeyRing).
type User struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Region  string   `json:"region,omitempty"`  // RoleRegion only
	Keys    []string `json:"keys"`              // public user nkeys (U...), oldest first
	Retired []string `json:"retired,omitempty"` // RoleRegion only: former keys, for signatures only
}

// Users is the users table every NATS server is configured with.
type Users struct {
	Users []User `json:"users"`
}

// Regions returns the regions that have a user, in table order.
func (u Users) Regions() []string {
	var out []string
	for _, x := range u.Users {
		if x.Role == RoleRegion {
			out = append(out, x.Region)
		}
	}
	return out
}

// SigningKeys returns every region's public keys, current and retired:
// the keys whose signatures the fold accepts (events.NewKeyRing).
func (u Users) SigningKeys() map[string][]string {
	out := map[string][]string{}
	for _, x := range u.Users {
		if x.Role == RoleRegion {
			out[x.Region] = append(slices.Clone(x.Keys), x.Retired...)
		}
	}
	return out
}

// KeyRing is SigningKeys as an events.KeyRing, each key named by its
// public nkey.
func (u Users) KeyRing() (*events.KeyRing, error) {
	keys := map[string]map[string]ed25519.PublicKey{}
	for region, pubs := range u.SigningKeys() {
		keys[region] = map[string]ed25519.PublicKey{}
		for _, pub := range pubs {
			raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(pub))
			if err != nil {
				return nil, fmt.Errorf("region %s: key %s: %w", region, pub, err)
			}
			keys[region][pub] = raw
		}
	}
	return events.NewKeyRing(keys)
}

// Find returns the user named name.
func (u Users) Find(name string) (User, bool) {
	i := slices.IndexFunc(u.Users, func(x User) bool { return x.Name == name })
	if i < 0 {
		return User{}, false
	}
	return u.Users[i], true
}

// Validate checks the table: known roles, a region for each region user,
// unique names, and every key a public user nkey.
func (u Users) Validate() error {
	seen := map[string]bool{}
	keys := map[string]string{}  // public key -> user
	regions := map[string]bool{} // regions with a user
	for _, x := range u.Users {
		if x.Name == "" || seen[x.Name] {
			return fmt.Errorf("user %q: empty or repeated name", x.Name)
		}
		seen[x.Name] = true
		if !slices.Contains(Roles, x.Role) {
			return fmt.Errorf("user %s: unknown role %q", x.Name, x.Role)
		}
		if (x.Role == RoleRegion) != (x.Region != "") {
			return fmt.Errorf("user %s: a region (and only a region user) names its region", x.Name)
		}
		if x.Role == RoleRegion {
			// The region becomes part of its permissions' subjects:
			// "links.<region>.>" must not be a wildcard.
			if err := events.ValidateRegion(x.Region); err != nil {
				return fmt.Errorf("user %s: region %q: %v", x.Name, x.Region, err)
			}
			if regions[x.Region] {
				return fmt.Errorf("user %s: region %s has another user", x.Name, x.Region)
			}
			regions[x.Region] = true
		}
		if len(x.Keys) == 0 {
			return fmt.Errorf("user %s: no key", x.Name)
		}
		if len(x.Retired) > 0 && x.Role != RoleRegion {
			return fmt.Errorf("user %s: only a region user keeps retired keys", x.Name)
		}
		for _, k := range slices.Concat(x.Keys, x.Retired) {
			if !nkeys.IsValidPublicUserKey(k) {
				return fmt.Errorf("user %s: %q is not a public user nkey", x.Name, k)
			}
			if other, dup := keys[k]; dup {
				return fmt.Errorf("user %s: key %s is also %s's (a server would give it one role only)", x.Name, k, other)
			}
			keys[k] = x.Name
		}
	}
	return nil
}

// RegionUser is the user name of region's application.
func RegionUser(region string) string { return "region-" + region }

// SwitchUser is the DNS switch's user.
const SwitchUser = "switch"

// ToolUsers are the operator tools' users that Generate makes.
var ToolUsers = []struct{ Name, Role string }{
	{"audit", RoleAudit}, {"backup", RoleBackup}, {"bench", RoleBench}, {"restore", RoleRestore}, {SwitchUser, RoleSwitch},
}

// SeedFile is where the folder dir keeps user's seed.
func SeedFile(dir, user string) string { return filepath.Join(dir, user+".nk") }

// Options says what Generate makes.
type Options struct {
	Regions []string // a user for each region
	Hosts   []string // addresses and names the servers are reached at, added to their certificate
	// Validity of the servers' certificate, default 397 days; the CA's is
	// ten years.
	Validity time.Duration
	Now      time.Time // default time.Now
}

// Exists reports whether dir holds a users table, the sign of a set.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, UsersFile))
	return err == nil
}

// Generate makes a new set in dir: a CA, the servers' certificate, and a
// user with a fresh nkey for every region and every tool. dir is created
// 0700 and must not hold a set already.
func Generate(dir string, o Options) error {
	if Exists(dir) {
		return fmt.Errorf("%s already holds a secrets set (%s)", dir, UsersFile)
	}
	if len(o.Regions) == 0 {
		return errors.New("secrets: no regions")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	now := cmpTime(o.Now)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "shortener cluster CA", Organization: []string{"shortener"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
		return err
	}
	if err := Issue(dir, o.Hosts, o.Validity, now); err != nil {
		return err
	}
	var users Users
	for _, r := range o.Regions {
		users.Users = append(users.Users, User{Name: RegionUser(r), Role: RoleRegion, Region: r})
	}
	for _, t := range ToolUsers {
		users.Users = append(users.Users, User{Name: t.Name, Role: t.Role})
	}
	for i := range users.Users {
		pub, err := newSeed(SeedFile(dir, users.Users[i].Name))
		if err != nil {
			return err
		}
		users.Users[i].Keys = []string{pub}
	}
	return WriteUsers(filepath.Join(dir, UsersFile), users)
}

// Issue writes a fresh servers' certificate and key into dir (CertFile,
// KeyFile), signed by the CA in dir, for ServiceName and hosts: the step of
// a certificate rotation. validity 0 is 397 days.
func Issue(dir string, hosts []string, validity time.Duration, now time.Time) error {
	return issue(dir, CertFile, KeyFile, []string{ServiceName, "*." + ServiceName}, hosts,
		// Servers dial each other (routes, gateways) with the same
		// certificate they serve, so it is a client's too.
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, validity, now)
}

// IssueHTTP writes an HTTPS certificate for the regions' HTTP listeners
// (HTTPCertFile, HTTPKeyFile) into dir, signed by the CA in dir, for the
// addresses and names clients use: hosts must not be empty.
func IssueHTTP(dir string, hosts []string, validity time.Duration, now time.Time) error {
	if len(hosts) == 0 {
		return errors.New("an HTTPS certificate needs the addresses or names clients reach the regions at (--host)")
	}
	return issue(dir, HTTPCertFile, HTTPKeyFile, nil, hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, validity, now)
}

func issue(dir, certFile, keyFile string, names, hosts []string, usage []x509.ExtKeyUsage, validity time.Duration, now time.Time) error {
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	if validity <= 0 {
		validity = 397 * 24 * time.Hour
	}
	now = cmpTime(now)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cmp.Or(append(slices.Clone(names), hosts...)...), Organization: []string{"shortener"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		DNSNames:     slices.Clone(names),
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if ca.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The key first: a certificate without its key is refused at load,
	// while a new key beside an old certificate is too, so either order
	// leaves a half-written pair that Load names.
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, certFile), "CERTIFICATE", der, 0o644)
}

// ExportRegion copies into out what region's hosts need of the set in dir
// and nothing more: the CA certificates, the servers' certificate and key,
// the users table, the region's own seed, and the HTTPS certificate if
// there is one. Not the CA's key, not the other users' seeds: a host that
// is broken into then cannot mint certificates or write as another region.
func ExportRegion(dir, region, out string) error {
	user := RegionUser(region)
	users, err := LoadUsers(filepath.Join(dir, UsersFile))
	if err != nil {
		return err
	}
	if _, ok := users.Find(user); !ok {
		return fmt.Errorf("%s: no user %s", filepath.Join(dir, UsersFile), user)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(out, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		mode os.FileMode
	}{{CAFile, 0o644}, {CertFile, 0o644}, {KeyFile, 0o600}, {UsersFile, 0o644}, {user + ".nk", 0o600}, {HTTPCertFile, 0o644}, {HTTPKeyFile, 0o600}}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, os.ErrNotExist) && (f.name == HTTPCertFile || f.name == HTTPKeyFile) {
			continue
		}
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(out, f.name), data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// NextSeedFile is where AddKey writes a user's new seed until UseKey puts
// it in use.
func NextSeedFile(dir, user string) string { return SeedFile(dir, user) + ".next" }

// AddKey gives user in the table of dir a fresh nkey, kept beside the old
// ones, and writes its seed to NextSeedFile: the first step of a credential
// rotation. It returns the new public key. The seed in use does not change
// yet: a region signs its events with its seed, and every region must have
// the table with the new key (be restarted with it) before any event is
// signed with it, or those that do not know it yet refuse the events.
func AddKey(dir, user string) (string, error) {
	path := filepath.Join(dir, UsersFile)
	users, err := LoadUsers(path)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(users.Users, func(x User) bool { return x.Name == user })
	if i < 0 {
		return "", fmt.Errorf("%s: no user %q", path, user)
	}
	if _, err := os.Stat(NextSeedFile(dir, user)); err == nil {
		return "", fmt.Errorf("%s exists: a rotation of %s is under way (use-key, then retire-keys)", NextSeedFile(dir, user), user)
	}
	// The table first: a crash between the two leaves an extra key that
	// servers admit (harmless, retired later), never a seed they refuse.
	kp, pub, err := newUserKey()
	if err != nil {
		return "", err
	}
	users.Users[i].Keys = append(users.Users[i].Keys, pub)
	if err := WriteUsers(path, users); err != nil {
		return "", err
	}
	return pub, writeSeed(NextSeedFile(dir, user), kp)
}

// AddToolUser adds the tool user name (one of ToolUsers) to the table of
// dir, with a fresh nkey whose seed goes to SeedFile: for a folder made
// before that tool had a user (the DNS switch's, 2026-12-07). Every server
// admits it once restarted with the new table.
func AddToolUser(dir, name string) (string, error) {
	i := slices.IndexFunc(ToolUsers, func(t struct{ Name, Role string }) bool { return t.Name == name })
	if i < 0 {
		return "", fmt.Errorf("no tool user %q (the tools' users: audit, backup, bench, restore, switch)", name)
	}
	path := filepath.Join(dir, UsersFile)
	users, err := LoadUsers(path)
	if err != nil {
		return "", err
	}
	if _, ok := users.Find(name); ok {
		return "", fmt.Errorf("%s: user %q exists already", path, name)
	}
	if _, err := os.Stat(SeedFile(dir, name)); err == nil {
		return "", fmt.Errorf("%s exists, but no user %q in %s: move it away first", SeedFile(dir, name), name, path)
	}
	kp, pub, err := newUserKey()
	if err != nil {
		return "", err
	}
	// The seed first: a crash between the two leaves a seed nobody admits,
	// which the next attempt refuses to overwrite (named above).
	if err := writeSeed(SeedFile(dir, name), kp); err != nil {
		return "", err
	}
	users.Users = append(users.Users, User{Name: name, Role: ToolUsers[i].Role, Keys: []string{pub}})
	return pub, WriteUsers(path, users)
}

// UseKey puts the seed AddKey made in use (NextSeedFile over SeedFile): the
// second step of a rotation, once every server and region has the table
// with the new key. It returns the key now in use.
func UseKey(dir, user string) (string, error) {
	next := NextSeedFile(dir, user)
	data, err := readPrivate(next)
	if err != nil {
		return "", fmt.Errorf("no new seed of %s to use (secrets add-key first): %w", user, err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", next, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, UsersFile)
	users, err := LoadUsers(path)
	if err != nil {
		return "", err
	}
	if u, ok := users.Find(user); !ok || !slices.Contains(u.Keys, pub) {
		return "", fmt.Errorf("%s: its key %s is not a key of %s in %s", next, pub, user, path)
	}
	return pub, os.Rename(next, SeedFile(dir, user))
}

// RetireKeys drops every key of user but the newest from those servers
// admit: the last step of a credential rotation, once every process uses
// the new seed. A region user's old keys move to its Retired list, since
// the events it signed with them stay in the log.
func RetireKeys(dir, user string) (retired int, err error) {
	path := filepath.Join(dir, UsersFile)
	users, err := LoadUsers(path)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(users.Users, func(x User) bool { return x.Name == user })
	if i < 0 {
		return 0, fmt.Errorf("%s: no user %q", path, user)
	}
	if _, err := os.Stat(NextSeedFile(dir, user)); err == nil {
		return 0, fmt.Errorf("%s exists: put the new seed in use first (secrets use-key), or the seed in use would be retired", NextSeedFile(dir, user))
	}
	keys := users.Users[i].Keys
	users.Users[i].Keys = keys[len(keys)-1:]
	if users.Users[i].Role == RoleRegion {
		users.Users[i].Retired = append(users.Users[i].Retired, keys[:len(keys)-1]...)
	}
	return len(keys) - 1, WriteUsers(path, users)
}

// WriteUsers writes the users table to path (0644: public keys only).
func WriteUsers(path string, u Users) error {
	if err := u.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'), 0o644)
}

// LoadUsers reads and validates a users table.
func LoadUsers(path string) (Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Users{}, fmt.Errorf("users table: %w", err)
	}
	var u Users
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return Users{}, fmt.Errorf("users table %s: %w", path, err)
	}
	if err := u.Validate(); err != nil {
		return Users{}, fmt.Errorf("users table %s: %w", path, err)
	}
	if len(u.Users) == 0 {
		return Users{}, fmt.Errorf("users table %s: no users", path)
	}
	return u, nil
}

func newSeed(path string) (string, error) {
	kp, pub, err := newUserKey()
	if err != nil {
		return "", err
	}
	return pub, writeSeed(path, kp)
}

func writeSeed(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	return writeFile(path, append(seed, '\n'), 0o600)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certs, err := readCerts(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	data, err := readPrivate(keyPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	// The newest CA certificate is the signing one (a rotation appends).
	ca := certs[len(certs)-1]
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of the last certificate in %s", keyPath, filepath.Join(dir, CAFile))
	}
	return ca, key, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("secrets: crypto/rand failed: " + err.Error())
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFile replaces path atomically (a temporary file renamed over it) with
// the given mode, so that a reader never sees half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func cmpTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// LoadCertificate reads a certificate and its key (which others must not
// be able to read), e.g. the HTTP listener's.
func LoadCertificate(certFile, keyFile string) (tls.Certificate, error) {
	return tlsPair(certFile, keyFile)
}

// tlsPair reads a certificate and its key.
func tlsPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := readPrivate(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// newUserKey makes a fresh user nkey and returns it with its public key.
func newUserKey() (nkeys.KeyPair, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, "", err
	}
	return kp, pub, nil
}
