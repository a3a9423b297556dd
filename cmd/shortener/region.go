package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"shortener/events"
	"shortener/flagconf"
	"shortener/procs"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
	"shortener/telemetry"
)

// regionFlags are the settings of one region process: from flags, from
// $SHORTENER_<FLAG> or from a config file whose keys are the flag names
// with underscores (flagconf).
type regionFlags struct {
	Name        string
	Digit       string
	Digits      string
	Instance    string
	HTTP        string
	PublicURL   string
	Data        string
	NATSHost    string
	NATSClient  string
	NATSPort    int
	ClusterPort int
	GatewayPort int
	GlobalHost  string
	GlobalNATS  int
	GlobalRoute int
	GlobalGW    int
	NATSURL     string
	Peers       []string
	// Fault proxies (chaos/netfault): the hosts this region's servers
	// advertise, and where each peer's servers are dialled.
	NATSAdvertise       string
	NATSGlobalAdvertise string
	PeerNATS            []string
	Durability          string
	Fsync               string
	MaxURLLen           int
	CacheSize           int
	RateLimit           float64
	KeyHashes           []string
	KeyFile             string
	LogLevel            string
	MemoryLimit         string
	JSMaxStore          string
	MissLimit           float64
	MissBurst           int
	LimitExempt         []string
	TrustedProxies      []string
	AllowPrivate        bool
	Blocklist           string
	SwitchAdmin         string
	OTLP                string
	NoClicks            bool
	ClickCommitEvery    string
	RedirectMaxAge      string
	FaultInjection      bool
	TraceSample         float64
	natsSecretFlags
	httpTLSFlags
	InsecureNATS bool
}

// natsSecretFlags name a process's NATS credentials: a secrets folder
// (shortener secrets init) and, for files kept elsewhere, each file.
type natsSecretFlags struct {
	Secrets   string
	NATSCA    string
	NATSCert  string
	NATSKey   string
	NATSUsers string
	NATSSeed  string
}

// httpTLSFlags are the HTTP listener's certificate.
type httpTLSFlags struct {
	TLSCert string
	TLSKey  string
}

func (s *natsSecretFlags) register(fl *pflag.FlagSet, server bool) {
	fl.StringVar(&s.Secrets, "secrets", os.Getenv("SHORTENER_SECRETS"), "folder of the NATS credentials as shortener secrets init makes it ($SHORTENER_SECRETS)")
	fl.StringVar(&s.NATSCA, "nats-ca", "", "CA certificates NATS servers are verified with (default <secrets>/"+secrets.CAFile+")")
	fl.StringVar(&s.NATSSeed, "nats-seed", "", "this process's NATS user seed (default <secrets>/<user>.nk)")
	fl.StringVar(&s.NATSUsers, "nats-users", "", "the users table, with the regions' keys events are signed with (default <secrets>/"+secrets.UsersFile+")")
	if server {
		fl.StringVar(&s.NATSCert, "nats-cert", "", "the embedded NATS servers' certificate (default <secrets>/"+secrets.CertFile+")")
		fl.StringVar(&s.NATSKey, "nats-key", "", "its private key (default <secrets>/"+secrets.KeyFile+")")
	}
}

// keys loads the regions' keys from the users table: what a replay checks
// the events' signatures with.
func (s natsSecretFlags) keys(user string) (*events.KeyRing, error) {
	p := s.paths(user)
	if p.Users == "" {
		return nil, usageError{fmt.Errorf("no users table (the regions' signing keys): give --secrets or --nats-users")}
	}
	users, err := secrets.LoadUsers(p.Users)
	if err != nil {
		return nil, usageError{err}
	}
	k, err := users.KeyRing()
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", p.Users, err)}
	}
	return k, nil
}

func (s natsSecretFlags) paths(user string) secrets.Paths {
	return secrets.Paths{Dir: s.Secrets, CA: s.NATSCA, Cert: s.NATSCert, Key: s.NATSKey, Users: s.NATSUsers, Seed: s.NATSSeed}.Resolve(user)
}

// client loads user's credentials; every error is a usage error naming
// the file.
func (s natsSecretFlags) client(user string) (*secrets.Client, error) {
	c, err := secrets.LoadClient(user, s.paths(user))
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func regionCmd() *cobra.Command {
	var f regionFlags
	var configFile, cpuProfile, allocProfile, execTrace string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "region",
		Short: "Run one region: embedded NATS, projection, HTTP API and redirects",
		Long: `Run one region. Every flag can also be given as $SHORTENER_<FLAG> (--nats-port
as SHORTENER_NATS_PORT; several values of --peer separated by spaces) or in a
config file (--config, TOML or JSON) whose keys are the flag names with
underscores (peers and api_key_hashes for --peer and --api-key-hash, as
lists). The command line wins over the environment, which wins over the file;
--print-config shows the result, the key hashes masked. --name, --data, --http
and --digit (or a --digits table naming the region) are required: the dev
cluster's defaults are only in shortener dev.

The API key is taken, in order, from --api-key-hash (hex SHA-256, repeatable),
from $SHORTENER_API_KEY, or from the file --api-key-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// What only the command line may say: which file, and what to do.
			cliOnly := []string{"config", "print-config", "help"}
			if err := flagconf.ApplyEnv(cmd.Flags(), "SHORTENER", os.LookupEnv, cliOnly); err != nil {
				return usageError{err}
			}
			if configFile != "" {
				if err := flagconf.LoadFile(configFile, cmd.Flags(), configAliases, cliOnly); err != nil {
					return usageError{err}
				}
			}
			if printConfig {
				if os.Getenv("SHORTENER_API_KEY") != "" {
					fmt.Fprintln(cmd.OutOrStdout(), "# the API key: from $SHORTENER_API_KEY (not shown)")
				}
				return flagconf.Print(cmd.OutOrStdout(), cmd.Flags(), cliOnly, []string{"api-key-hash"})
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), f.LogLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if cpuProfile != "" {
				stop, err := telemetry.StartCPUProfile(cpuProfile)
				if err != nil {
					return usageError{err}
				}
				defer stop()
			}
			if allocProfile != "" {
				stop, err := telemetry.StartAllocProfile(allocProfile)
				if err != nil {
					return usageError{err}
				}
				defer stop()
			}
			if execTrace != "" {
				stop, err := telemetry.StartExecTrace(execTrace)
				if err != nil {
					return usageError{err}
				}
				defer stop()
			}
			tel, err := telemetry.New(cmd.Context(), cfg.Name, f.OTLP, f.TraceSample)
			if errors.Is(err, telemetry.ErrOption) {
				return usageError{err}
			} else if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := tel.Shutdown(sctx); err != nil {
					log.Warn("telemetry shutdown", "err", err)
				}
			}()
			cfg.MeterProvider, cfg.MetricsHandler = tel.Meters, tel.Handler
			if tel.Tracer != nil {
				cfg.TracerProvider = tel.Tracer
			}
			r, err := region.New(cfg)
			if err != nil {
				return usageError{err}
			}
			if cfg.NATSInsecure {
				log.Error("--insecure-nats: the embedded NATS servers take anyone, without TLS: a benchmark's baseline, never a deployment")
			}
			if err := telemetry.TuneGC(f.MemoryLimit, log); errors.Is(err, telemetry.ErrOption) {
				return usageError{err}
			} else if err != nil {
				return err
			}
			if err := r.Open(cmd.Context()); err != nil {
				return err
			}
			return r.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configFile, "config", "", "config file, TOML (.toml) or JSON (.json), one key per flag")
	fl.BoolVar(&printConfig, "print-config", false, "print the settings the flags, $SHORTENER_<FLAG> and --config make together, as a TOML config file with the key hashes masked, and exit")
	fl.StringVar(&f.Name, "name", "", "region name, e.g. us-east (required)")
	fl.StringVar(&f.Digit, "digit", "", "the region's digit, 0-9: the first character of its generated codes, unique per region (required unless --digits names the region)")
	fl.StringVar(&f.Digits, "digits", "", "every region's digit, e.g. us-east=1,eu-west=2,ap-south=3: a create of a generated code folds only from the region whose digit starts it; the same in every region and in audit (default the dev table us-east=1,eu-west=2,ap-south=3, which this region must then be in with its --digit)")
	fl.StringVar(&f.Instance, "instance", "", "app instance name, unique within the region (default the region name)")
	fl.StringVar(&f.HTTP, "http", "", "HTTP listen address, e.g. 10.0.1.1:8080 (required)")
	fl.StringVar(&f.PublicURL, "public-url", "", "base of short URLs (default http://<http address>)")
	fl.StringVar(&f.Data, "data", "", "state directory (required)")
	fl.StringVar(&f.NATSHost, "nats-host", "", "embedded NATS listen host (default the HTTP host)")
	fl.IntVar(&f.NATSPort, "nats-port", 4222, "embedded NATS client port")
	fl.StringVar(&f.NATSClient, "nats-client-listen", "", "host the embedded regional NATS server takes clients on, e.g. its address on the region's own network for the region's other app instances (default --nats-host; routes and gateways stay there)")
	fl.IntVar(&f.ClusterPort, "cluster-port", 6222, "embedded NATS cluster port")
	fl.IntVar(&f.GatewayPort, "gateway-port", 7222, "embedded NATS gateway port")
	fl.StringVar(&f.GlobalHost, "global-host", "", "host the region's member of the stretched cluster \"global\" listens on (default --nats-host's IPv4 address plus one, as in the dev cluster)")
	fl.IntVar(&f.GlobalNATS, "global-client-port", 0, "the global member's client port (default --nats-port)")
	fl.IntVar(&f.GlobalRoute, "global-cluster-port", 0, "the global member's route port, which the other regions' global members dial (default --cluster-port)")
	fl.IntVar(&f.GlobalGW, "global-gateway-port", 0, "the global member's gateway port (default --gateway-port)")
	fl.StringVar(&f.NATSURL, "nats-url", "", "use this external NATS supercluster instead of embedded servers")
	fl.StringArrayVar(&f.Peers, "peer", nil, "another region, NAME=HOST[:GATEWAYPORT][,GLOBALHOST[:ROUTEPORT:GATEWAYPORT]] (repeatable; a port left out is this region's, GLOBALHOST defaults to HOST plus one)")
	fl.StringVar(&f.NATSAdvertise, "nats-advertise", "", "host the regional NATS server advertises for gateways (a fault proxy's; default its own)")
	fl.StringVar(&f.NATSGlobalAdvertise, "nats-global-advertise", "", "host the global member advertises for gateways and routes (a fault proxy's; default its own)")
	fl.StringArrayVar(&f.PeerNATS, "peer-nats", nil, "dial a peer's NATS gateways and routes here, NAME=HOST[,GLOBALHOST] (repeatable; default its --peer hosts)")
	fl.StringVar(&f.Durability, "durability", "local", "creates answer 201 after: local (the local ack) or replicated (another region's mirror holds the event)")
	fl.StringVar(&f.Fsync, "fsync", "always", "JetStream fsync: always (every write) or interval (every 2 minutes)")
	fl.IntVar(&f.MaxURLLen, "max-url-len", 2048, "longest target URL accepted, in bytes")
	fl.IntVar(&f.CacheSize, "cache-size", 100_000, "LRU cache entries")
	fl.Float64Var(&f.RateLimit, "rate-limit", 200, "API requests per second per key (negative: off)")
	fl.Float64Var(&f.MissLimit, "miss-limit", 10, "per client address, requests per second that may serve nothing (redirects answering 404 or 410, API requests without a valid key) before they are answered 429; a served redirect is never limited (negative: off)")
	fl.IntVar(&f.MissBurst, "miss-burst", 50, "per client address, how many such requests may come at once")
	fl.StringArrayVar(&f.LimitExempt, "limit-exempt", nil, "client addresses (CIDR or address) never limited by --miss-limit: your own load, probe and drill clients (repeatable)")
	fl.BoolVar(&f.AllowPrivate, "allow-private-targets", false, "let links point at literal loopback, private and link-local addresses and localhost (an intranet shortener); the service's own hosts stay refused")
	fl.StringVar(&f.Blocklist, "blocklist", "", "file of host names links may not point at (each with every name under it; one per line, # comments), read again when it changes")
	fl.StringArrayVar(&f.TrustedProxies, "trusted-proxy", nil, "proxies (CIDR or address) whose X-Forwarded-For names the client: their requests count against the address they forwarded for (repeatable; default none: the header is ignored)")
	fl.StringSliceVar(&f.KeyHashes, "api-key-hash", nil, "accepted API key, as hex SHA-256 (repeatable)")
	fl.StringVar(&f.KeyFile, "api-key-file", "", "file holding the API key")
	fl.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.SwitchAdmin, "switch-admin", "127.0.0.1:8054", "the DNS switch's admin address, shown on /status; empty to leave it out")
	fl.BoolVar(&f.NoClicks, "no-clicks", false, "turn click analytics off (no click streams, nothing recorded)")
	fl.StringVar(&f.RedirectMaxAge, "redirect-max-age", "1h", "how long browsers and proxies may keep a permanent redirect (301, 308) before asking again, at most 24h; 0: they ask every time (temporary redirects are never kept)")
	fl.StringVar(&f.ClickCommitEvery, "click-commit-every", "10s", "how long the click projection folds clicks in memory before writing them (longer: fewer writes, later /stats)")
	fl.BoolVar(&f.FaultInjection, "fault-injection", false, "serve the fault injection endpoints under /api/v1/admin/faults (chaos runs only; never in production)")
	fl.StringVar(&f.OTLP, "otlp-endpoint", "", "send traces over OTLP/HTTP to this URL, e.g. http://127.0.0.1:4318 (default: tracing off)")
	fl.Float64Var(&f.TraceSample, "trace-sample", 1, "share of new traces sampled when --otlp-endpoint is set, 0 to 1")
	fl.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file (written at a graceful stop; for benchmarks)")
	fl.StringVar(&allocProfile, "alloc-profile", "", "write the allocations of the whole run (a heap profile: go tool pprof -sample_index=alloc_space) to this file at a graceful stop; for benchmarks")
	fl.StringVar(&execTrace, "exec-trace", "", "write an execution trace (runtime/trace) of the whole run to this file (written at a graceful stop; for finding stalls, go tool trace)")
	f.natsSecretFlags.register(fl, true)
	fl.BoolVar(&f.InsecureNATS, "insecure-nats", false, "benchmarks only: embedded NATS without TLS or users, writable by anyone (the plaintext baseline of bench create)")
	_ = fl.MarkHidden("insecure-nats")
	fl.StringVar(&f.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fl.StringVar(&f.TLSKey, "tls-key", "", "the HTTPS certificate's private key (PEM, mode 0600)")
	fl.StringVar(&f.JSMaxStore, "jetstream-max-store", "8GiB", "disk the region's embedded JetStream servers may use each (streams and mirrors); writes are refused beyond it (docs/runbooks/disk-usage-high.md)")
	fl.StringVar(&f.MemoryLimit, "memory-limit", "0", "run the GC only near this heap size (GOGC=off), e.g. 1GiB; 0 keeps Go's defaults; $GOGC or $GOMEMLIMIT override")
	return cmd
}

// configAliases are the config file keys that are not a flag's name: the
// names of the JSON config before flagconf.
var configAliases = map[string]string{"peers": "peer", "api_key_hashes": "api-key-hash"}

func (f regionFlags) config() (region.Config, error) {
	fsync, err := replicator.ParseFsync(f.Fsync)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	if f.Name == "" || f.Data == "" || f.HTTP == "" {
		return region.Config{}, usageError{fmt.Errorf("give --name, --data and --http (or $SHORTENER_NAME, ... or --config): a region has no defaults; shortener dev starts the dev cluster")}
	}
	digit, digits, err := region.ParseDigit(f.Name, f.Digit, f.Digits)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	limits, err := region.ParseLimits(f.MissLimit, f.MissBurst, f.LimitExempt, f.TrustedProxies)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	maxStore, err := telemetry.ParseBytes(f.JSMaxStore)
	if err != nil || maxStore < 1<<30 {
		return region.Config{}, usageError{fmt.Errorf("--jetstream-max-store %q: want a size of at least 1GiB, e.g. 64GiB", f.JSMaxStore)}
	}
	var peers []region.Peer
	for _, spec := range f.Peers {
		p, err := region.ParsePeer(spec)
		if err != nil {
			return region.Config{}, usageError{err}
		}
		peers = append(peers, p)
	}
	for _, spec := range f.PeerNATS {
		name, hosts, _ := strings.Cut(spec, "=")
		if err := region.DialPeerAt(peers, name, hosts); err != nil {
			return region.Config{}, usageError{err}
		}
	}
	hashes := f.KeyHashes
	if len(hashes) == 0 {
		key, err := apiKey(f.KeyFile, false)
		if err != nil {
			return region.Config{}, err
		}
		hashes = []string{region.HashAPIKey(key)}
	}
	user := secrets.RegionUser(f.Name)
	var cli *secrets.Client
	var srv *secrets.Server
	if !f.InsecureNATS {
		if cli, err = f.client(user); err != nil {
			return region.Config{}, err
		}
	}
	var keys *events.KeyRing
	if f.NATSURL == "" && !f.InsecureNATS {
		if srv, err = secrets.LoadServer(f.paths(user)); err != nil {
			return region.Config{}, usageError{err}
		}
	} else if !f.InsecureNATS {
		// No embedded servers, so no server secrets: the users table
		// alone, for the regions' signing keys.
		users, err := secrets.LoadUsers(f.paths(user).Users)
		if err != nil {
			return region.Config{}, usageError{err}
		}
		if keys, err = users.KeyRing(); err != nil {
			return region.Config{}, usageError{err}
		}
	}
	var httpCert *tls.Certificate
	if f.TLSCert != "" || f.TLSKey != "" {
		if f.TLSCert == "" || f.TLSKey == "" {
			return region.Config{}, usageError{errors.New("--tls-cert and --tls-key go together")}
		}
		c, err := secrets.LoadCertificate(f.TLSCert, f.TLSKey)
		if err != nil {
			return region.Config{}, usageError{err}
		}
		httpCert = &c
	}
	clickCommit, err := region.ParseClickCommitEvery(f.ClickCommitEvery)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	redirectMaxAge, err := region.ParseRedirectMaxAge(f.RedirectMaxAge)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	return region.Config{
		Name: f.Name, Digit: digit, Digits: digits, Instance: f.Instance, HTTPAddr: f.HTTP, PublicURL: f.PublicURL,
		DataDir: f.Data, NATSURL: f.NATSURL, Fsync: fsync, MaxURLLen: f.MaxURLLen, CacheSize: f.CacheSize,
		RateLimit: f.RateLimit, APIKeyHashes: hashes, Peers: peers, Durability: f.Durability, SwitchAdmin: f.SwitchAdmin, DisableClicks: f.NoClicks, FaultInjection: f.FaultInjection,
		Limits:           limits,
		Targets:          region.Targets{AllowPrivate: f.AllowPrivate, Blocklist: f.Blocklist},
		ClickCommitEvery: clickCommit, RedirectMaxAge: redirectMaxAge, NATSServerSecrets: srv, NATSClientSecrets: cli, Keys: keys, HTTPCert: httpCert, NATSInsecure: f.InsecureNATS,
		NATS: region.NATSConfig{Host: f.NATSHost, ClientListen: f.NATSClient, ClientPort: f.NATSPort, ClusterPort: f.ClusterPort, GatewayPort: f.GatewayPort,
			Advertise: f.NATSAdvertise, GlobalAdvertise: f.NATSGlobalAdvertise, MaxStore: maxStore,
			GlobalHost: f.GlobalHost, GlobalClientPort: f.GlobalNATS, GlobalClusterPort: f.GlobalRoute, GlobalGatewayPort: f.GlobalGW},
	}, nil
}

// apiKey returns $SHORTENER_API_KEY, else the key in file; with generate
// set, a missing file is created with a fresh key (procs.APIKey).
func apiKey(file string, generate bool) (string, error) {
	if file == "" && strings.TrimSpace(os.Getenv("SHORTENER_API_KEY")) == "" {
		return "", usageError{errors.New("no API key: set $SHORTENER_API_KEY, --api-key-file or --api-key-hash")}
	}
	return procs.APIKey(file, generate)
}
