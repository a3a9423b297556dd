package secrets

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Paths names the files of one process's credentials. Empty fields take
// the defaults of Dir (the --secrets folder).
type Paths struct {
	Dir   string // a folder laid out as Generate writes it
	CA    string // trusted CA certificates (PEM)
	Cert  string // the NATS servers' certificate
	Key   string // its key
	Users string // the users table
	Seed  string // this process's user seed
}

// Resolve fills the empty paths from Dir, the seed as user's.
func (p Paths) Resolve(user string) Paths {
	def := func(v *string, name string) {
		if *v == "" && p.Dir != "" {
			*v = filepath.Join(p.Dir, name)
		}
	}
	def(&p.CA, CAFile)
	def(&p.Cert, CertFile)
	def(&p.Key, KeyFile)
	def(&p.Users, UsersFile)
	if p.Seed == "" && p.Dir != "" && user != "" {
		p.Seed = SeedFile(p.Dir, user)
	}
	return p
}

// Server is what an embedded NATS server needs: the certificate it serves
// and dials peers with, the CAs it verifies peers and is verified with, and
// the users it admits.
type Server struct {
	Cert  tls.Certificate
	Leaf  *x509.Certificate
	CA    *x509.CertPool
	CAs   []*x509.Certificate
	Users Users
}

// LoadServer reads a server's credentials. Every error names the file and
// the problem.
func LoadServer(p Paths) (*Server, error) {
	for name, v := range map[string]string{"CA certificate": p.CA, "certificate": p.Cert, "key": p.Key, "users table": p.Users} {
		if v == "" {
			return nil, fmt.Errorf("no NATS %s given (--secrets or its own flag)", name)
		}
	}
	cas, err := readCerts(p.CA)
	if err != nil {
		return nil, err
	}
	pair, err := tlsPair(p.Cert, p.Key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", p.Cert, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	for _, name := range []string{ServiceName, PeerName("any-region")} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil, fmt.Errorf("certificate %s: not valid for %s under the CA in %s: %w", p.Cert, name, p.CA, err)
		}
	}
	users, err := LoadUsers(p.Users)
	if err != nil {
		return nil, err
	}
	return &Server{Cert: pair, Leaf: leaf, CA: pool, CAs: cas, Users: users}, nil
}

// PeerTLS is the TLS of routes and gateways of a server in region: both
// ends show the cluster's certificate from the CA, whichever dialled, and
// the dialer asks for PeerName(region).
func (s *Server) PeerTLS(region string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.Cert},
		RootCAs:      s.CA,
		ClientCAs:    s.CA,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   PeerName(region),
	}
}

// ClientListenerTLS is the TLS of the client port: the server's certificate;
// clients prove who they are with their nkey, not a certificate.
func (s *Server) ClientListenerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.Cert}}
}

// Expiries lists when each certificate a server holds stops being valid:
// its own and every CA's, by a short name for metrics.
func (s *Server) Expiries() map[string]time.Time {
	out := map[string]time.Time{"nats": s.Leaf.NotAfter}
	for i, c := range s.CAs {
		name := "ca"
		if i > 0 {
			name = fmt.Sprintf("ca-%d", i)
		}
		out[name] = c.NotAfter
	}
	return out
}

// Client is one user's connection credentials: the CAs a server must be
// signed by, and the user's key pair.
type Client struct {
	User string // the user's name, for messages
	CA   *x509.CertPool
	key  nkeys.KeyPair
	pub  string
	priv ed25519.PrivateKey // key's, expanded once: nkeys expands it on every signature
}

// LoadClient reads the CA certificates and a user's seed.
func LoadClient(user string, p Paths) (*Client, error) {
	if p.CA == "" || p.Seed == "" {
		return nil, fmt.Errorf("no NATS credentials for %s: give --secrets (or the CA and seed files)", user)
	}
	cas, err := readCerts(p.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	data, err := readPrivate(p.Seed)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", p.Seed, err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("seed %s: not a user nkey seed", p.Seed)
	}
	_, raw, err := nkeys.DecodeSeed(bytes.TrimSpace(data))
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed %s: not an ed25519 seed", p.Seed)
	}
	return &Client{User: user, CA: pool, key: kp, pub: pub, priv: ed25519.NewKeyFromSeed(raw)}, nil
}

// PublicKey is the user's public nkey.
func (c *Client) PublicKey() string { return c.pub }

// Sign signs data with the user's key: a region signs the events it writes
// (events.Signer).
func (c *Client) Sign(data []byte) ([]byte, error) { return ed25519.Sign(c.priv, data), nil }

// TLS is the client side of a connection to a NATS server of the cluster.
func (c *Client) TLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.CA, ServerName: ServiceName}
}

// NATSOptions are the connection options that authenticate as the user
// over TLS. A nil Client connects as before: plaintext and anonymous (the
// tests that exercise nats-server's refusal use it).
func (c *Client) NATSOptions() []nats.Option {
	if c == nil {
		return nil
	}
	return []nats.Option{nats.Secure(c.TLS()), nats.Nkey(c.pub, c.key.Sign)}
}

// NkeyOptions authenticate as the user without TLS: for an in-process
// connection to an embedded server, which has no network to protect. Nil
// for a nil Client.
func (c *Client) NkeyOptions() []nats.Option {
	if c == nil {
		return nil
	}
	return []nats.Option{nats.Nkey(c.pub, c.key.Sign)}
}

// CAPool reads the CA certificates of a PEM file into a pool.
func CAPool(path string) (*x509.CertPool, error) {
	cas, err := readCerts(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool, nil
}

// readCerts reads every certificate of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", path)
	}
	return out, nil
}

// readPrivate reads a key or seed file, refusing one that others may read
// (as ssh does): a secret that leaked to the host's other users is no
// secret.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s: mode %04o lets others read it; chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("private key %s: empty", path)
	}
	return data, nil
}
