package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"shortener/events"
	"shortener/procs"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
	"shortener/telemetry"
)

// regionFlags are the settings of one region process, from flags or a JSON
// config file with the same names.
type regionFlags struct {
	Name        string   `json:"name"`
	Digit       string   `json:"digit"`
	Digits      string   `json:"digits"`
	Instance    string   `json:"instance"`
	HTTP        string   `json:"http"`
	PublicURL   string   `json:"public_url"`
	Data        string   `json:"data"`
	NATSHost    string   `json:"nats_host"`
	NATSClient  string   `json:"nats_client_listen"`
	NATSPort    int      `json:"nats_port"`
	ClusterPort int      `json:"cluster_port"`
	GatewayPort int      `json:"gateway_port"`
	NATSURL     string   `json:"nats_url"`
	Peers       []string `json:"peers"`
	// Fault proxies (chaos/netfault): the hosts this region's servers
	// advertise, and where each peer's servers are dialled.
	NATSAdvertise       string   `json:"nats_advertise"`
	NATSGlobalAdvertise string   `json:"nats_global_advertise"`
	PeerNATS            []string `json:"peer_nats"`
	Durability          string   `json:"durability"`
	Fsync               string   `json:"fsync"`
	MaxURLLen           int      `json:"max_url_len"`
	CacheSize           int      `json:"cache_size"`
	RateLimit           float64  `json:"rate_limit"`
	KeyHashes           []string `json:"api_key_hashes"`
	KeyFile             string   `json:"api_key_file"`
	LogLevel            string   `json:"log_level"`
	MemoryLimit         string   `json:"memory_limit"`
	SwitchAdmin         string   `json:"switch_admin"`
	OTLP                string   `json:"otlp_endpoint"`
	NoClicks            bool     `json:"no_clicks"`
	ClickCommitEvery    string   `json:"click_commit_every"`
	RedirectMaxAge      string   `json:"redirect_max_age"`
	FaultInjection      bool     `json:"fault_injection"`
	TraceSample         float64  `json:"trace_sample"`
	natsSecretFlags
	httpTLSFlags
	InsecureNATS bool `json:"insecure_nats"`
}

// natsSecretFlags name a process's NATS credentials: a secrets folder
// (shortener secrets init) and, for files kept elsewhere, each file.
type natsSecretFlags struct {
	Secrets   string `json:"secrets"`
	NATSCA    string `json:"nats_ca"`
	NATSCert  string `json:"nats_cert"`
	NATSKey   string `json:"nats_key"`
	NATSUsers string `json:"nats_users"`
	NATSSeed  string `json:"nats_seed"`
}

// httpTLSFlags are the HTTP listener's certificate.
type httpTLSFlags struct {
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
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
	cmd := &cobra.Command{
		Use:   "region",
		Short: "Run one region: embedded NATS, projection, HTTP API and redirects",
		Long: `Run one region from flags or a JSON config file (--config) whose keys are the
flag names with underscores. Flags given on the command line override the file.

The API key is taken, in order, from --api-key-hash (hex SHA-256, repeatable),
from $SHORTENER_API_KEY, or from the file --api-key-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := loadConfigFile(configFile, &f, cmd); err != nil {
					return err
				}
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
	fl.StringVar(&configFile, "config", "", "JSON config file")
	fl.StringVar(&f.Name, "name", "us-east", "region name")
	fl.StringVar(&f.Digit, "digit", "1", "the region's digit, 0-9: the first character of its generated codes, unique per region")
	fl.StringVar(&f.Digits, "digits", "", "every region's digit, e.g. us-east=1,eu-west=2,ap-south=3: a create of a generated code folds only from the region whose digit starts it; the same in every region and in audit (default the dev table us-east=1,eu-west=2,ap-south=3, which this region must then be in with its --digit)")
	fl.StringVar(&f.Instance, "instance", "", "app instance name, unique within the region (default the region name)")
	fl.StringVar(&f.HTTP, "http", "127.0.1.1:8080", "HTTP listen address")
	fl.StringVar(&f.PublicURL, "public-url", "", "base of short URLs (default http://<http address>)")
	fl.StringVar(&f.Data, "data", "var/dev/us-east", "state directory")
	fl.StringVar(&f.NATSHost, "nats-host", "", "embedded NATS listen host (default the HTTP host)")
	fl.IntVar(&f.NATSPort, "nats-port", 4222, "embedded NATS client port")
	fl.StringVar(&f.NATSClient, "nats-client-listen", "", "host the embedded regional NATS server takes clients on, e.g. its address on the region's own network for the region's other app instances (default --nats-host; routes and gateways stay there)")
	fl.IntVar(&f.ClusterPort, "cluster-port", 6222, "embedded NATS cluster port")
	fl.IntVar(&f.GatewayPort, "gateway-port", 7222, "embedded NATS gateway port")
	fl.StringVar(&f.NATSURL, "nats-url", "", "use this external NATS supercluster instead of embedded servers")
	fl.StringArrayVar(&f.Peers, "peer", nil, "another region, NAME=HOST[,GLOBALHOST] (repeatable; same ports as this region)")
	fl.StringVar(&f.NATSAdvertise, "nats-advertise", "", "host the regional NATS server advertises for gateways (a fault proxy's; default its own)")
	fl.StringVar(&f.NATSGlobalAdvertise, "nats-global-advertise", "", "host the global member advertises for gateways and routes (a fault proxy's; default its own)")
	fl.StringArrayVar(&f.PeerNATS, "peer-nats", nil, "dial a peer's NATS gateways and routes here, NAME=HOST[,GLOBALHOST] (repeatable; default its --peer hosts)")
	fl.StringVar(&f.Durability, "durability", "local", "creates answer 201 after: local (the local ack) or replicated (another region's mirror holds the event)")
	fl.StringVar(&f.Fsync, "fsync", "always", "JetStream fsync: always (every write) or interval (every 2 minutes)")
	fl.IntVar(&f.MaxURLLen, "max-url-len", 2048, "longest target URL accepted, in bytes")
	fl.IntVar(&f.CacheSize, "cache-size", 100_000, "LRU cache entries")
	fl.Float64Var(&f.RateLimit, "rate-limit", 200, "API requests per second per key (negative: off)")
	fl.StringSliceVar(&f.KeyHashes, "api-key-hash", nil, "accepted API key, as hex SHA-256 (repeatable)")
	fl.StringVar(&f.KeyFile, "api-key-file", "", "file holding the API key")
	fl.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.SwitchAdmin, "switch-admin", "127.0.0.1:8054", "the DNS switch's admin address, shown on /status; empty to leave it out")
	fl.BoolVar(&f.NoClicks, "no-clicks", false, "turn click analytics off (no click streams, nothing recorded)")
	fl.StringVar(&f.RedirectMaxAge, "redirect-max-age", "1h", "how long browsers and proxies may keep a permanent redirect (301, 308) before asking again, at most 24h; 0: they ask every time (temporary redirects are never kept)")
	fl.StringVar(&f.ClickCommitEvery, "click-commit-every", "2s", "how long the click projection folds clicks in memory before writing them (longer: fewer writes, later /stats)")
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
	fl.StringVar(&f.MemoryLimit, "memory-limit", "0", "run the GC only near this heap size (GOGC=off), e.g. 1GiB; 0 keeps Go's defaults; $GOGC or $GOMEMLIMIT override")
	return cmd
}

// loadConfigFile reads path into f, then re-applies the flags set on the
// command line so that they win.
func loadConfigFile(path string, f *regionFlags, cmd *cobra.Command) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	var fromFile regionFlags
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromFile); err != nil {
		return usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(data, &set); err != nil {
		return usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	cliSet := map[string]bool{}
	cmd.Flags().Visit(func(fl *pflag.Flag) { cliSet[fl.Name] = true })
	merged := *f
	for key := range set {
		if cliSet[strings.ReplaceAll(key, "_", "-")] || (key == "api_key_hashes" && cliSet["api-key-hash"]) || (key == "peers" && cliSet["peer"]) {
			continue
		}
		single, _ := json.Marshal(map[string]json.RawMessage{key: set[key]})
		if err := json.Unmarshal(single, &merged); err != nil {
			return usageError{fmt.Errorf("config %s: %s: %w", path, key, err)}
		}
	}
	*f = merged
	return nil
}

func (f regionFlags) config() (region.Config, error) {
	fsync, err := replicator.ParseFsync(f.Fsync)
	if err != nil {
		return region.Config{}, usageError{err}
	}
	if len(f.Digit) != 1 || f.Digit[0] < '0' || f.Digit[0] > '9' {
		return region.Config{}, usageError{fmt.Errorf("--digit must be one digit 0-9, not %q", f.Digit)}
	}
	var digits map[string]byte
	if f.Digits != "" {
		if digits, err = events.ParseDigits(f.Digits); err != nil {
			return region.Config{}, usageError{fmt.Errorf("--digits: %w", err)}
		}
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
	var clickCommit time.Duration
	if f.ClickCommitEvery != "" {
		if clickCommit, err = time.ParseDuration(f.ClickCommitEvery); err != nil || clickCommit <= 0 || clickCommit > time.Minute {
			return region.Config{}, usageError{fmt.Errorf("--click-commit-every %q: want a duration above 0 and at most 1m, e.g. 2s", f.ClickCommitEvery)}
		}
	}
	var redirectMaxAge time.Duration
	if f.RedirectMaxAge != "" {
		if redirectMaxAge, err = time.ParseDuration(f.RedirectMaxAge); err != nil || redirectMaxAge < 0 || redirectMaxAge > region.MaxRedirectMaxAge {
			return region.Config{}, usageError{fmt.Errorf("--redirect-max-age %q: want a duration from 0 to 24h, e.g. 1h", f.RedirectMaxAge)}
		}
		if redirectMaxAge == 0 {
			redirectMaxAge = -1 // max-age=0 (0 is the default in region.Config)
		}
	}
	return region.Config{
		Name: f.Name, Digit: f.Digit[0], Digits: digits, Instance: f.Instance, HTTPAddr: f.HTTP, PublicURL: f.PublicURL,
		DataDir: f.Data, NATSURL: f.NATSURL, Fsync: fsync, MaxURLLen: f.MaxURLLen, CacheSize: f.CacheSize,
		RateLimit: f.RateLimit, APIKeyHashes: hashes, Peers: peers, Durability: f.Durability, SwitchAdmin: f.SwitchAdmin, DisableClicks: f.NoClicks, FaultInjection: f.FaultInjection,
		ClickCommitEvery: clickCommit, RedirectMaxAge: redirectMaxAge, NATSServerSecrets: srv, NATSClientSecrets: cli, Keys: keys, HTTPCert: httpCert, NATSInsecure: f.InsecureNATS,
		NATS: region.NATSConfig{Host: f.NATSHost, ClientListen: f.NATSClient, ClientPort: f.NATSPort, ClusterPort: f.ClusterPort, GatewayPort: f.GatewayPort,
			Advertise: f.NATSAdvertise, GlobalAdvertise: f.NATSGlobalAdvertise},
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
