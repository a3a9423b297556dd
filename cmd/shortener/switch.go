package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"shortener/dnsswitch"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
)

// The dev switch's addresses (DESIGN.md: the DNS switch on 127.0.0.1:8053).
const (
	devSwitchDNS   = "127.0.0.1:8053"
	devSwitchAdmin = "127.0.0.1:8054"
	devZone        = "short.test"
)

// devPrefer is where each dev region's clients go when it is unavailable.
var devPrefer = map[string][]string{
	"us-east":  {"eu-west", "ap-south"},
	"eu-west":  {"us-east", "ap-south"},
	"ap-south": {"eu-west", "us-east"},
}

func switchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "switch",
		Short: "The DNS failover switch: serve it, drain or override regions, show its answers",
	}
	cmd.AddCommand(switchServeCmd(), switchStatusCmd(), switchDrainCmd(true), switchDrainCmd(false), switchOverrideCmd())
	return cmd
}

func switchServeCmd() *cobra.Command {
	var (
		dnsAddr, admin, zone, stateFile, keyFile, logLevel, checkCA, natsURLs string
		regions, prefer                                                       []string
		ttl, interval, timeout, rise                                          time.Duration
		fall, httpPort, members                                               int
		creds                                                                 natsSecretFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the zone: each client gets its home region while healthy, else the next healthy one",
		Long: `An authoritative DNS server (UDP and TCP) for one zone. A query for the zone
apex is answered with the address of the asking client's home region (a client
whose source address is in 127.0.N.0/24 belongs to region N) while that region
answers /readyz with 200 and is not drained, else with the next healthy region
of the home's preference list. <region>.<zone> always answers that region.

Health: /readyz every --interval; --fall failures in a row take a region out;
it comes back only after passing every check for --rise (hysteresis).

  shortener switch serve --region us-east=127.0.1.1 --region eu-west=127.0.2.1 \
      --prefer us-east=eu-west,ap-south`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg := dnsswitch.Config{Zone: zone, DNSAddr: dnsAddr, AdminAddr: admin, TTL: ttl,
				CheckInterval: interval, CheckTimeout: timeout, Fall: fall, Rise: rise, StateFile: stateFile,
				Prefer: map[string][]string{}, Logger: log.With("component", "switch")}
			if len(regions) == 0 {
				for _, r := range devRegions {
					regions = append(regions, r.Name+"="+r.Host)
				}
				if len(prefer) == 0 {
					cfg.Prefer = devPrefer
				}
			}
			scheme := "http"
			if checkCA != "" {
				pool, err := caPool(checkCA)
				if err != nil {
					return usageError{err}
				}
				scheme, cfg.CheckTLS = "https", &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
			}
			for _, spec := range regions {
				r, err := dnsswitch.ParseRegion(spec, scheme, httpPort)
				if err != nil {
					return usageError{err}
				}
				cfg.Regions = append(cfg.Regions, r)
			}
			for _, p := range prefer {
				if err := dnsswitch.ParsePrefer(p, cfg.Prefer); err != nil {
					return usageError{err}
				}
			}
			if key, err := apiKey(keyFile, false); err == nil {
				cfg.APIKeyHashes = []string{region.HashAPIKey(key)}
			} else {
				log.Warn("no API key: drains and overrides are refused", "err", err)
			}
			if natsURLs != "" {
				shared, closeNATS, err := switchSharedState(natsURLs, creds, members)
				if err != nil {
					return err
				}
				defer closeNATS()
				cfg.Shared = shared
			}
			sw, err := dnsswitch.Open(cfg)
			if err != nil {
				return usageError{err}
			}
			defer sw.Close()
			return sw.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dnsAddr, "dns", devSwitchDNS, "DNS listen address, UDP and TCP")
	fl.StringVar(&admin, "admin", devSwitchAdmin, "admin HTTP address (state, drain, override); empty for none")
	fl.StringVar(&zone, "zone", devZone, "the zone served")
	fl.StringArrayVar(&regions, "region", nil, "a region behind the switch, NAME=IPv4 (repeatable; default the dev regions)")
	fl.StringArrayVar(&prefer, "prefer", nil, "where HOME's clients go when it is down, HOME=REGION,REGION (repeatable)")
	fl.IntVar(&httpPort, "http-port", 8080, "the regions' HTTP port, for /readyz")
	fl.StringVar(&checkCA, "check-ca", "", "check the regions over HTTPS, trusting the CA certificates in this file (regions started with --tls-cert)")
	fl.DurationVar(&ttl, "ttl", time.Second, "TTL of every answer")
	fl.DurationVar(&interval, "interval", 250*time.Millisecond, "health check interval")
	fl.DurationVar(&timeout, "timeout", 500*time.Millisecond, "health check timeout")
	fl.IntVar(&fall, "fall", 2, "failed checks in a row that take a region out")
	fl.DurationVar(&rise, "rise", 3*time.Second, "how long a region must pass every check to come back")
	fl.StringVar(&stateFile, "state", "var/dev/switch/state.json", "file keeping drains and overrides across restarts (one instance; see --nats)")
	fl.StringVar(&natsURLs, "nats", "", "NATS URLs of the global cluster's members, comma-separated: drains and overrides are kept in its KV bucket "+replicator.SwitchBucket+", shared by every instance of the switch given the same (instead of --state)")
	fl.IntVar(&members, "global-members", 3, "members of the global cluster: the bucket gets as many replicas, up to 3")
	creds.register(fl, false)
	fl.StringVar(&keyFile, "api-key-file", "var/dev/api-key", "API key that authorises drains and overrides (or $SHORTENER_API_KEY)")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func switchStatusCmd() *cobra.Command {
	var admin string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "What the switch answers each region's clients now, each region's health, and recent changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printSwitch(cmd.Context(), cmd.OutOrStdout(), admin, 10)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", devSwitchAdmin, "the switch's admin address")
	return cmd
}

func switchDrainCmd(drain bool) *cobra.Command {
	var admin, keyFile string
	use, short := "drain REGION", "Send nobody to REGION, whatever its health (its clients go to the next region)"
	if !drain {
		use, short = "undrain REGION", "Answer REGION again once it is healthy"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return switchDrain(cmd.Context(), cmd.OutOrStdout(), admin, keyFile, args[0], drain)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", devSwitchAdmin, "the switch's admin address")
	cmd.Flags().StringVar(&keyFile, "api-key-file", "var/dev/api-key", "API key (or $SHORTENER_API_KEY)")
	return cmd
}

func switchOverrideCmd() *cobra.Command {
	var admin, keyFile string
	var clear bool
	cmd := &cobra.Command{
		Use:   "override CLIENTS [REGION]",
		Short: "Answer the clients of one region with another region, whatever the health of either (--clear to undo)",
		Args: func(_ *cobra.Command, args []string) error {
			if (clear && len(args) != 1) || (!clear && len(args) != 2) {
				return usageError{fmt.Errorf("want CLIENTS REGION, or CLIENTS --clear")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			to := ""
			if !clear {
				to = args[1]
			}
			return switchChange(cmd.Context(), cmd.OutOrStdout(), admin, keyFile, func(ctx context.Context, c *dnsswitch.Client) error {
				return c.Override(ctx, args[0], to)
			})
		},
	}
	cmd.Flags().StringVar(&admin, "admin", devSwitchAdmin, "the switch's admin address")
	cmd.Flags().StringVar(&keyFile, "api-key-file", "var/dev/api-key", "API key (or $SHORTENER_API_KEY)")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the override of CLIENTS")
	return cmd
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("want %s", names)}
		}
		return nil
	}
}

// switchChange makes a change through the switch's admin API with the API
// key of keyFile, then prints the switch's state.
func switchChange(ctx context.Context, out io.Writer, admin, keyFile string, change func(context.Context, *dnsswitch.Client) error) error {
	key, err := apiKey(keyFile, false)
	if err != nil {
		return err
	}
	c := &dnsswitch.Client{Addr: admin, APIKey: key, HTTP: &http.Client{Timeout: 5 * time.Second}}
	if err := change(ctx, c); err != nil {
		var refused *dnsswitch.APIError
		if errors.As(err, &refused) {
			return err
		}
		return fmt.Errorf("no switch answers at %s (is the cluster running? make run): %v", admin, shortErr(err))
	}
	return printSwitch(ctx, out, admin, 3)
}

// switchDrain drains region (drain false: undrains it), then prints the
// switch's state.
func switchDrain(ctx context.Context, out io.Writer, admin, keyFile, region string, drain bool) error {
	return switchChange(ctx, out, admin, keyFile, func(ctx context.Context, c *dnsswitch.Client) error {
		return c.Drain(ctx, region, drain)
	})
}

// printSwitch prints the switch's answers, regions and its last changes.
func printSwitch(ctx context.Context, out io.Writer, admin string, changes int) error {
	st, err := (&dnsswitch.Client{Addr: admin, HTTP: &http.Client{Timeout: 2 * time.Second}}).State(ctx)
	if err != nil {
		return fmt.Errorf("no switch answers at %s (is the cluster running? make run): %v", admin, shortErr(err))
	}
	return st.Print(out, time.Now(), changes)
}

// switchSharedState connects to the global cluster as the switch's NATS
// user and returns the store of the switch's shared state there, and what
// closes the connection.
func switchSharedState(urls string, creds natsSecretFlags, members int) (dnsswitch.SharedState, func(), error) {
	if members < 1 {
		return nil, nil, usageError{fmt.Errorf("--global-members must be at least 1, not %d", members)}
	}
	cred, err := creds.client(secrets.SwitchUser)
	if err != nil {
		return nil, nil, err
	}
	// No reconnect buffer: a change published while the connection is down
	// fails now instead of landing after the operator was told 503.
	nc, err := nats.Connect(urls, append(cred.NATSOptions(), nats.Name("shortener switch"),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", urls, err)
	}
	c, err := replicator.Connect(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return replicator.NewSwitchStore(c, members), nc.Close, nil
}
