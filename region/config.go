package region

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
	"shortener/secrets"
)

// MaxRedirectMaxAge bounds Config.RedirectMaxAge: a permanent redirect a
// browser keeps longer than this is one a takedown cannot reach.
const MaxRedirectMaxAge = 24 * time.Hour

// ParseRedirectMaxAge reads a --redirect-max-age value for
// Config.RedirectMaxAge: a duration from 0 (browsers ask every time) to
// MaxRedirectMaxAge; "" is the default.
func ParseRedirectMaxAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxRedirectMaxAge {
		return 0, fmt.Errorf("--redirect-max-age %q: want a duration from 0 to 24h, e.g. 1h", s)
	}
	if d == 0 {
		return -1, nil // max-age=0 (0 is the default in Config)
	}
	return d, nil
}

// ParseClickCommitEvery reads a --click-commit-every value for
// Config.ClickCommitEvery: above 0 and at most a minute; "" is the default.
func ParseClickCommitEvery(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > time.Minute {
		return 0, fmt.Errorf("--click-commit-every %q: want a duration above 0 and at most 1m, e.g. 2s", s)
	}
	return d, nil
}

// Config describes one region's process.
type Config struct {
	Name  string // region name, e.g. "us-east"; also the NATS cluster name
	Digit byte   // first character of the region's generated codes, '0' to '9'
	// Digits is the digit of every region of the cluster, this one
	// included (= Digit): a create of a generated code is folded only
	// from the region whose digit starts it (events.Rules). Every region
	// and the auditor must be given the same table. Default
	// events.DefaultDigits with this region's Digit merged in.
	Digits    map[string]byte
	Instance  string // this app instance, unique within the region; names its consumers (default Name)
	HTTPAddr  string // listen address of the API and redirects, e.g. "127.0.1.1:8080"
	PublicURL string // base of short_url in answers (default "http://" + HTTPAddr)
	DataDir   string // state: DataDir/nats (JetStream) and DataDir/projection (Pebble)

	NATS    NATSConfig // the embedded server, unless NATSURL is set
	NATSURL string     // an external NATS to use instead of embedded servers

	// NATSServerSecrets are the embedded servers' credentials: TLS on every
	// listener (routes and gateways mutual), and the users they admit with
	// each role's permissions (region/natsauth.go). Required unless
	// NATSURL is set. NATSClientSecrets are the application's own user,
	// one of the table's region users for this region: always required.
	NATSServerSecrets *secrets.Server
	NATSClientSecrets *secrets.Client
	// Keys are every region's public keys, current and retired: the fold
	// refuses an event not signed by one of its origin's. By default the
	// users table of NATSServerSecrets' (required with NATSURL). The
	// region signs what it writes with NATSClientSecrets' key.
	Keys *events.KeyRing
	// NATSInsecure runs the embedded servers as they were before they
	// were locked: no TLS, no users, anyone may write. Only for the
	// plaintext baseline of the benchmarks (bench create); never in a
	// deployment.
	NATSInsecure bool

	// HTTPCert, when set, is the certificate the HTTP listener serves
	// HTTPS with (PublicURL then defaults to https://).
	HTTPCert *tls.Certificate
	Peers    []Peer // the other regions of the supercluster

	// Durability of creates: "local" (201 after the local ack and
	// projection) or "replicated" (201 only once another region's mirror
	// also holds the event).
	Durability string

	Fsync replicator.Fsync
	// MaxSchema is the newest event schema the projection folds (default
	// events.SchemaVersion); a stream stops at a later one
	// (projections.Options.MaxSchema). Tests raise it to stand for an
	// upgraded binary.
	MaxSchema    int
	MaxURLLen    int      // default events.DefaultMaxURLLen, at most events.FoldMaxURLLen
	CacheSize    int      // LRU entries, default 100,000
	APIKeyHashes []string // hex SHA-256 of every accepted API key
	RateLimit    float64  // API requests per second per key; 0 = default 200, <0 = off
	// Targets are the rules a link's target must pass at create and update
	// (region/targets.go).
	Targets Targets
	// Limits bound what one client address may spend on misses: redirects
	// that serve nothing and requests without a valid key (region/limits.go).
	Limits        Limits
	CreateTimeout time.Duration // how long a write waits for its projection, default 5s
	// ClaimGrace is how old a pending alias claim must be before a missing
	// event counts as never written (region/claims.go); default
	// CreateTimeout + 30 s.
	ClaimGrace time.Duration
	// DisableClicks turns click analytics off (region/clicks.go): no click
	// streams, no click store, nothing recorded.
	DisableClicks bool
	// ClickQueue is how many clicks may wait to be recorded; beyond it a
	// click is dropped (and counted). Default 65536.
	ClickQueue int
	// ClickQueueBytes bounds the bytes of the waiting clicks' headers
	// (code, User-Agent, Referer, each header cut to 1 KiB) the same way:
	// a client chooses them, and ClickQueue clicks of 2 KiB each held 134
	// MB while the click path stalled. The flusher may hold as much again
	// in the batch it is publishing. Default 16 MiB.
	ClickQueueBytes int
	// ClickCommitEvery is how long the click projection folds click
	// batches in memory before it commits them (region/clicks.go): longer
	// writes each busy counter less often, and /stats is that much later.
	// Default 10 s (docs/decisions.md, "Click analytics").
	ClickCommitEvery time.Duration
	// RedirectMaxAge is how long a browser or proxy may keep a permanent
	// redirect (301, 308) before asking again: an update or a takedown
	// reaches its users within it. Default one hour, at most a day;
	// negative: max-age=0. Temporary redirects (302, 307) are never kept
	// (private, max-age=0), and no redirect is kept past its link's
	// expiry.
	RedirectMaxAge time.Duration
	// FaultInjection registers the fault injection endpoints
	// (region/faults.go) for chaos runs. Never on in production.
	FaultInjection bool

	Logger *slog.Logger
	Now    func() time.Time // injected clock; default time.Now

	// Telemetry (package telemetry holds the SDK and exporters; cmd wires it). A nil
	// MeterProvider records nothing; MetricsHandler serves GET /metrics
	// (404 without one); a nil TracerProvider turns tracing off, at no
	// cost on the request path.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	MetricsHandler http.Handler

	// SwitchAdmin is the DNS switch's admin address (host:port), whose
	// GET /v1/state the status page shows; "" leaves the switch out.
	SwitchAdmin string
}

// Peer is another region of the supercluster. Its servers listen on the
// same ports as this region's (the dev topology: 127.0.N.1 and 127.0.N.2).
type Peer struct {
	Name       string
	Host       string // its regional server
	GlobalHost string // its member of "global"; default Host's last octet plus one
	// The peer's ports, when not the same as this region's: its regional
	// server's gateway port, and its global member's route and gateway
	// ports. 0: this region's own.
	GatewayPort, GlobalClusterPort, GlobalGatewayPort int
	// Where this region dials the peer's NATS gateway and route listeners,
	// if not at Host and GlobalHost: the chaos cluster puts fault proxies
	// there (chaos/netfault). Default Host and GlobalHost.
	NATSHost, NATSGlobalHost string
}

// The durability modes of creates.
const (
	DurabilityLocal      = "local"
	DurabilityReplicated = "replicated"
)

// NATSConfig is the embedded NATS of a region: the regional server (NATS
// cluster named after the region) and the region's member of the stretched
// cluster "global", joined by gateways.
type NATSConfig struct {
	Host       string // regional server; default the host of HTTPAddr
	ClientPort int    // default 4222
	// ClientListen is where the regional server takes clients, if not on
	// Host: an address on the region's own network, where its other app
	// instances reach it, while routes and gateways stay on Host (compose:
	// Host is on the backbone between regions). The app connects there
	// too. Not 0.0.0.0 when the global member shares the client port.
	ClientListen string
	ClusterPort  int   // default 6222
	GatewayPort  int   // default 7222
	MaxMemory    int64 // JetStream memory limit per server, default 256 MiB
	MaxStore     int64 // JetStream disk limit per server, default 8 GiB

	// The region's member of "global": default Host with its last octet
	// plus one (127.0.N.2 for 127.0.N.1), same ports.
	GlobalHost        string
	GlobalClientPort  int
	GlobalClusterPort int
	GlobalGatewayPort int

	// Advertise and GlobalAdvertise are the hosts the regional server and
	// the global member tell their peers to dial for gateways and routes
	// (the same ports), if not their own: a fault proxy's, so that gossip
	// never leads a peer around it (chaos/netfault). Default: none.
	Advertise, GlobalAdvertise string
}

// withDefaults returns a copy of c with defaults filled in, or an error
// naming the first invalid setting.
func (c Config) withDefaults() (Config, error) {
	if err := events.ValidateRegion(c.Name); err != nil {
		return c, fmt.Errorf("region name %q: %v", c.Name, err)
	}
	if c.Digit < '0' || c.Digit > '9' {
		return c, fmt.Errorf("region digit must be 0 to 9, not %q", c.Digit)
	}
	if c.Digits == nil {
		// The default table is every region's and the auditor's default
		// too: a region that differs from it would refuse, and be
		// refused by, every region that kept it (code_owner), so it
		// must say so with a table that all are given.
		if d, ok := events.DefaultDigits[c.Name]; !ok || d != c.Digit {
			return c, fmt.Errorf("digits: %s with digit %c is not in the default table (%s): give every region and the auditor the same --digits", c.Name, c.Digit, events.FormatDigits(events.DefaultDigits))
		}
		c.Digits = events.MergeDigits(events.DefaultDigits, c.Name, c.Digit)
	}
	c.Digits = maps.Clone(c.Digits)
	if err := events.ValidateDigits(c.Digits); err != nil {
		return c, err
	}
	if d, ok := c.Digits[c.Name]; !ok || d != c.Digit {
		return c, fmt.Errorf("digits: the table must give this region (%s) its own digit %c", c.Name, c.Digit)
	}
	if c.Instance == "" {
		c.Instance = c.Name
	}
	if err := events.ValidateRegion(c.Instance); err != nil {
		return c, fmt.Errorf("instance name %q: %v", c.Instance, err)
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return c, fmt.Errorf("http address %q: %v", c.HTTPAddr, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return c, fmt.Errorf("http address %q: bad port", c.HTTPAddr)
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
		if c.HTTPCert != nil {
			c.PublicURL = "https://" + c.HTTPAddr
		}
	}
	if c.DataDir == "" {
		return c, fmt.Errorf("data directory is required")
	}
	if c.NATS.Host == "" {
		c.NATS.Host = host
	}
	if c.NATS.ClientPort == 0 {
		c.NATS.ClientPort = 4222
	}
	if c.NATS.ClusterPort == 0 {
		c.NATS.ClusterPort = 6222
	}
	if c.NATS.GatewayPort == 0 {
		c.NATS.GatewayPort = 7222
	}
	if c.NATS.GlobalHost == "" {
		if c.NATS.GlobalHost, err = nextHost(c.NATS.Host); err != nil {
			return c, err
		}
	}
	if c.NATS.GlobalClientPort == 0 {
		c.NATS.GlobalClientPort = c.NATS.ClientPort
	}
	if c.NATS.GlobalClusterPort == 0 {
		c.NATS.GlobalClusterPort = c.NATS.ClusterPort
	}
	if c.NATS.GlobalGatewayPort == 0 {
		c.NATS.GlobalGatewayPort = c.NATS.GatewayPort
	}
	for _, port := range []struct {
		name string
		n    int
	}{{"nats client", c.NATS.ClientPort}, {"cluster", c.NATS.ClusterPort}, {"gateway", c.NATS.GatewayPort},
		{"global client", c.NATS.GlobalClientPort}, {"global cluster", c.NATS.GlobalClusterPort}, {"global gateway", c.NATS.GlobalGatewayPort}} {
		if port.n < 1 || port.n > 65535 {
			return c, fmt.Errorf("%s port %d: want 1 to 65535", port.name, port.n)
		}
	}
	if c.NATS.Host == c.NATS.GlobalHost {
		for _, pair := range [][2]int{{c.NATS.ClientPort, c.NATS.GlobalClientPort}, {c.NATS.ClusterPort, c.NATS.GlobalClusterPort}, {c.NATS.GatewayPort, c.NATS.GlobalGatewayPort}} {
			if pair[0] == pair[1] {
				return c, fmt.Errorf("the global member on the regional host %s needs ports of its own (--global-client-port, --global-cluster-port, --global-gateway-port): port %d is taken twice", c.NATS.Host, pair[0])
			}
		}
	}
	seen := map[string]bool{c.Name: true}
	for i, p := range c.Peers {
		if err := events.ValidateRegion(p.Name); err != nil || seen[p.Name] {
			return c, fmt.Errorf("peer %q: a region name, distinct from this region and the other peers", p.Name)
		}
		seen[p.Name] = true
		if _, ok := c.Digits[p.Name]; !ok {
			return c, fmt.Errorf("digits: peer %s has no digit in the table (its creates would be refused)", p.Name)
		}
		if p.GlobalHost == "" {
			gh, err := nextHost(p.Host)
			if err != nil {
				return c, fmt.Errorf("peer %s: %v", p.Name, err)
			}
			c.Peers[i].GlobalHost = gh
		}
		if p.NATSHost == "" {
			c.Peers[i].NATSHost = c.Peers[i].Host
		}
		if p.NATSGlobalHost == "" {
			c.Peers[i].NATSGlobalHost = c.Peers[i].GlobalHost
		}
		c.Peers[i].GatewayPort = cmp.Or(p.GatewayPort, c.NATS.GatewayPort)
		c.Peers[i].GlobalClusterPort = cmp.Or(p.GlobalClusterPort, c.NATS.GlobalClusterPort)
		c.Peers[i].GlobalGatewayPort = cmp.Or(p.GlobalGatewayPort, c.NATS.GlobalGatewayPort)
	}
	switch c.Durability {
	case "":
		c.Durability = DurabilityLocal
	case DurabilityLocal, DurabilityReplicated:
	default:
		return c, fmt.Errorf("durability must be %q or %q, not %q", DurabilityLocal, DurabilityReplicated, c.Durability)
	}
	if c.NATS.MaxMemory == 0 {
		c.NATS.MaxMemory = 256 << 20
	}
	if c.NATS.MaxStore == 0 {
		c.NATS.MaxStore = 8 << 30
	}
	if c.Fsync == "" {
		c.Fsync = replicator.FsyncAlways
	}
	if _, err := replicator.ParseFsync(string(c.Fsync)); err != nil {
		return c, err
	}
	if c.MaxURLLen <= 0 {
		c.MaxURLLen = events.DefaultMaxURLLen
	}
	if c.MaxURLLen > events.FoldMaxURLLen {
		return c, fmt.Errorf("max URL length %d: at most %d, the longest every region folds", c.MaxURLLen, events.FoldMaxURLLen)
	}
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	if c.Limits.PerSecond == 0 {
		c.Limits.PerSecond = 10
	}
	if c.Limits.Burst <= 0 {
		c.Limits.Burst = 50
	}
	if c.CreateTimeout <= 0 {
		c.CreateTimeout = 5 * time.Second
	}
	if c.ClickQueue <= 0 {
		c.ClickQueue = 1 << 16
	}
	if c.ClickQueueBytes <= 0 {
		c.ClickQueueBytes = 16 << 20
	}
	if c.ClickCommitEvery <= 0 {
		c.ClickCommitEvery = 10 * time.Second
	}
	switch {
	case c.RedirectMaxAge == 0:
		c.RedirectMaxAge = time.Hour
	case c.RedirectMaxAge > MaxRedirectMaxAge:
		return c, fmt.Errorf("redirect max age %v: at most %v", c.RedirectMaxAge, MaxRedirectMaxAge)
	}
	if c.ClaimGrace <= 0 {
		c.ClaimGrace = c.CreateTimeout + 30*time.Second
	}
	if len(c.APIKeyHashes) == 0 {
		return c, fmt.Errorf("at least one API key is required")
	}
	if c.Keys == nil && c.NATSServerSecrets != nil && !c.NATSInsecure {
		k, err := c.NATSServerSecrets.Users.KeyRing()
		if err != nil {
			return c, err
		}
		c.Keys = k
	}
	if err := c.checkSecrets(); err != nil {
		return c, err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.DataDir = filepath.Clean(c.DataDir)
	c.Peers = append([]Peer(nil), c.Peers...)
	return c, nil
}

// checkSecrets refuses a region without credentials, and one whose own
// key its servers would not admit as this region's user.
func (c Config) checkSecrets() error {
	if c.NATSInsecure {
		return nil
	}
	if c.NATSClientSecrets == nil {
		return fmt.Errorf("no NATS credentials for the region's user %s", secrets.RegionUser(c.Name))
	}
	if c.NATSURL == "" {
		if c.NATSServerSecrets == nil {
			return fmt.Errorf("no NATS server credentials (certificate, key, CA, users table)")
		}
		u, ok := c.NATSServerSecrets.Users.Find(secrets.RegionUser(c.Name))
		if !ok || u.Role != secrets.RoleRegion || u.Region != c.Name {
			return fmt.Errorf("the users table has no region user %s", secrets.RegionUser(c.Name))
		}
		if !slices.Contains(u.Keys, c.NATSClientSecrets.PublicKey()) {
			return fmt.Errorf("the region's seed (public key %s) is not a key of user %s in the users table", c.NATSClientSecrets.PublicKey(), u.Name)
		}
		for _, p := range c.Peers {
			if _, ok := c.NATSServerSecrets.Users.Find(secrets.RegionUser(p.Name)); !ok {
				return fmt.Errorf("the users table has no region user %s for peer %s", secrets.RegionUser(p.Name), p.Name)
			}
		}
	}
	// The keys the fold checks signatures with: the region's own must be
	// among them, or every region would refuse what it writes.
	if c.Keys == nil {
		return fmt.Errorf("no region keys to check the events' signatures with (the users table)")
	}
	if !c.Keys.Has(c.Name, c.NATSClientSecrets.PublicKey()) {
		return fmt.Errorf("the region's seed (public key %s) is not a key of region %s in the users table: its events would be refused", c.NATSClientSecrets.PublicKey(), c.Name)
	}
	for _, p := range c.Peers {
		if !slices.Contains(c.Keys.Regions(), p.Name) {
			return fmt.Errorf("the users table has no keys of peer %s: its events would be refused", p.Name)
		}
	}
	return nil
}

// nextHost returns the IPv4 address after host: the global member's
// address in the dev topology (127.0.N.2 for 127.0.N.1).
func nextHost(host string) (string, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return "", fmt.Errorf("host %q: not an IPv4 address, so the global member's host cannot be the next one: give it (--global-host for this region, NAME=HOST,GLOBALHOST in --peer)", host)
	}
	b := ip.As4()
	b[3]++
	return netip.AddrFrom4(b).String(), nil
}

// rules are what the region's projection checks every event against.
func (c Config) rules() events.Rules { return events.Rules{Digits: c.Digits, Keys: c.Keys} }

// signer is what the region signs its events with: nil without
// credentials (NATSInsecure), when nothing checks signatures either.
func (c Config) signer() events.Signer {
	if c.NATSClientSecrets == nil {
		return nil
	}
	if c.Keys != nil {
		return c.Keys.Remembering(c.NATSClientSecrets)
	}
	return c.NATSClientSecrets
}

// projection is the configuration of the region's projection store.
func (c Config) projection(log *slog.Logger) projections.Options {
	return projections.Options{CacheSize: c.CacheSize, Logger: log, SyncWrites: true, Rules: c.rules(), MaxSchema: c.MaxSchema}
}

// ParsePeer reads a peer as the command line gives it, NAME=HOST[,GLOBALHOST].
func ParsePeer(spec string) (Peer, error) {
	bad := fmt.Errorf("--peer %q: want NAME=HOST[:GATEWAYPORT][,GLOBALHOST[:ROUTEPORT:GATEWAYPORT]] (ports 1-65535; the ports left out are this region's)", spec)
	name, hosts, ok := strings.Cut(spec, "=")
	regional, global, _ := strings.Cut(hosts, ",")
	if !ok || name == "" || regional == "" {
		return Peer{}, bad
	}
	p := Peer{Name: name}
	parts := strings.Split(regional, ":")
	if len(parts) > 2 {
		return Peer{}, bad
	}
	p.Host = parts[0]
	if len(parts) == 2 {
		if p.GatewayPort, ok = parsePort(parts[1]); !ok {
			return Peer{}, bad
		}
	}
	if global != "" {
		parts = strings.Split(global, ":")
		if len(parts) != 1 && len(parts) != 3 || parts[0] == "" {
			return Peer{}, bad
		}
		p.GlobalHost = parts[0]
		if len(parts) == 3 {
			var ok1, ok2 bool
			p.GlobalClusterPort, ok1 = parsePort(parts[1])
			p.GlobalGatewayPort, ok2 = parsePort(parts[2])
			if !ok1 || !ok2 {
				return Peer{}, bad
			}
		}
	}
	if p.Host == "" || strings.ContainsAny(p.Host+p.GlobalHost, "[]/ ,=") {
		return Peer{}, bad
	}
	return p, nil
}

// parsePort reads a TCP port, 1 to 65535.
func parsePort(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= 65535
}

// DialPeerAt makes this region dial peer name's NATS gateways and routes at
// hosts, HOST[,GLOBALHOST], instead of its own hosts (a fault proxy's).
func DialPeerAt(peers []Peer, name, hosts string) error {
	host, global, _ := strings.Cut(hosts, ",")
	i := slices.IndexFunc(peers, func(q Peer) bool { return q.Name == name })
	if name == "" || host == "" || i < 0 {
		return fmt.Errorf("--peer-nats %q: want NAME=HOST[,GLOBALHOST] for a region given with --peer", name+"="+hosts)
	}
	peers[i].NATSHost, peers[i].NATSGlobalHost = host, global
	return nil
}

// ParseDigit reads a region's --digit and --digits flags: the digit of
// region name (its own flag, else its entry in the table) and the table
// (nil when not given). Every error names the flag.
func ParseDigit(name, digit, table string) (byte, map[string]byte, error) {
	var digits map[string]byte
	if table != "" {
		var err error
		if digits, err = events.ParseDigits(table); err != nil {
			return 0, nil, fmt.Errorf("--digits: %w", err)
		}
		if d, ok := digits[name]; ok && digit == "" {
			digit = string(d)
		}
	}
	if digit == "" {
		return 0, nil, fmt.Errorf("give --digit (0-9, the first character of the region's codes, unique per region) or a --digits table that names %s", name)
	}
	if len(digit) != 1 || digit[0] < '0' || digit[0] > '9' {
		return 0, nil, fmt.Errorf("--digit must be one digit 0-9, not %q", digit)
	}
	return digit[0], digits, nil
}
