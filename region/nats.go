package region

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"shortener/replicator"
)

// GlobalCluster is the name of the stretched NATS cluster that holds the
// alias register, one member per region.
const GlobalCluster = "global"

// serverSpec is one embedded server: which cluster it belongs to and where
// it listens.
type serverSpec struct {
	name, cluster, host             string
	clientPort, clusterPort, gwPort int
	clientHost                      string // where clients connect, if not host
	storeDir                        string
	advertise                       string   // host told to peers for gateways and routes, "" for host
	tag                             string   // "region:<name>": the global cluster places replicas on distinct regions
	routes                          []string // cluster addresses of the other members of its cluster
}

func hostPort(h string, p int) string { return h + ":" + strconv.Itoa(p) }

// natsServers returns the specs of a region's two embedded servers: the
// regional server (cluster named after the region, holding its streams) and
// its member of the stretched "global" cluster.
func natsServers(c Config) (regional, global serverSpec) {
	regional = serverSpec{name: c.Name, cluster: c.Name, host: c.NATS.Host,
		clientPort: c.NATS.ClientPort, clusterPort: c.NATS.ClusterPort, gwPort: c.NATS.GatewayPort,
		storeDir: filepath.Join(c.DataDir, "nats"), clientHost: c.NATS.ClientListen}
	global = serverSpec{name: GlobalCluster + "-" + c.Name, cluster: GlobalCluster, host: c.NATS.GlobalHost,
		clientPort: c.NATS.GlobalClientPort, clusterPort: c.NATS.GlobalClusterPort, gwPort: c.NATS.GlobalGatewayPort,
		storeDir: filepath.Join(c.DataDir, "nats-global")}
	regional.tag, global.tag = "region:"+c.Name, "region:"+c.Name
	regional.advertise, global.advertise = c.NATS.Advertise, c.NATS.GlobalAdvertise
	for _, p := range c.Peers {
		global.routes = append(global.routes, hostPort(p.NATSGlobalHost, p.GlobalClusterPort))
	}
	return regional, global
}

// gatewayMap lists the gateway addresses of every cluster of the
// supercluster: each region's regional server, and every member of global.
func gatewayMap(c Config) map[string][]string {
	// A server gossips the gateway URLs it was configured with to every
	// gateway that dials it (implicit discovery), so its own region's
	// servers are listed at their advertised addresses too: a direct one
	// would lead the peers around a fault proxy.
	m := map[string][]string{
		c.Name:        {hostPort(cmp.Or(c.NATS.Advertise, c.NATS.Host), c.NATS.GatewayPort)},
		GlobalCluster: {hostPort(cmp.Or(c.NATS.GlobalAdvertise, c.NATS.GlobalHost), c.NATS.GlobalGatewayPort)},
	}
	for _, p := range c.Peers {
		m[p.Name] = []string{hostPort(p.NATSHost, p.GatewayPort)}
		m[GlobalCluster] = append(m[GlobalCluster], hostPort(p.NATSGlobalHost, p.GlobalGatewayPort))
	}
	return m
}

// natsOptions are the options of one embedded server. Every server of the
// supercluster gets a route to itself (JetStream refuses a clustered server
// without configured routes) and gateways to the other clusters: a server's
// Raft groups do not start until it has a remote, so even a lone region
// needs its global member. A *server.Options is consumed by NewServer: build
// a fresh one for every start.
func natsOptions(c Config, s serverSpec, gateways map[string][]string) *server.Options {
	var gws []*server.RemoteGatewayOpts
	for name, addrs := range gateways {
		if name == s.cluster {
			continue
		}
		var urls []*url.URL
		for _, a := range addrs {
			urls = append(urls, &url.URL{Scheme: "nats", Host: a})
		}
		gws = append(gws, &server.RemoteGatewayOpts{Name: name, URLs: urls})
	}
	var clusterAdv, gwAdv string
	if s.advertise != "" {
		// Routes cross regions only in "global": a regional cluster's
		// members (a region's instances) reach each other directly.
		gwAdv = hostPort(s.advertise, s.gwPort)
		if s.cluster == GlobalCluster {
			clusterAdv = hostPort(s.advertise, s.clusterPort)
		}
	}
	opts := openOptions(c, s, gws, clusterAdv, gwAdv)
	if c.NATSInsecure {
		return opts
	}
	// Every listener takes TLS only; clients authenticate with a user
	// nkey from the table, routes and gateways with the cluster's
	// certificate (both ends), and a gateway not in the configuration is
	// refused.
	sec := c.NATSServerSecrets
	peerTLS := sec.PeerTLS(c.Name)
	opts.Nkeys = nkeyUsers(sec.Users)
	opts.TLSConfig, opts.TLSTimeout, opts.TLS = sec.ClientListenerTLS(), 5, true
	opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = peerTLS, 5
	opts.Gateway.TLSConfig, opts.Gateway.TLSTimeout, opts.Gateway.RejectUnknown = peerTLS, 5, true
	return opts
}

// openOptions are a server's options without TLS or users.
func openOptions(c Config, s serverSpec, gws []*server.RemoteGatewayOpts, clusterAdv, gwAdv string) *server.Options {
	return &server.Options{
		ServerName: s.name,
		Host:       cmp.Or(s.clientHost, s.host),
		Port:       s.clientPort,
		Cluster: server.ClusterOpts{
			Name:      s.cluster,
			Host:      s.host,
			Port:      s.clusterPort,
			Advertise: clusterAdv,
		},
		Routes:             routeURLs(append([]string{hostPort(s.host, s.clusterPort)}, s.routes...)),
		Tags:               []string{s.tag},
		JetStreamUniqueTag: "region",
		Gateway: server.GatewayOpts{
			Name:           s.cluster,
			Host:           s.host,
			Port:           s.gwPort,
			Advertise:      gwAdv,
			Gateways:       gws,
			ConnectRetries: 1 << 20,
		},
		JetStream:          true,
		StoreDir:           s.storeDir,
		JetStreamMaxMemory: c.NATS.MaxMemory,
		JetStreamMaxStore:  c.NATS.MaxStore,
		SyncAlways:         c.Fsync == replicator.FsyncAlways,
		NoSigs:             true,
		MaxPayload:         1 << 20,
	}
}

func routeURLs(addrs []string) []*url.URL {
	var out []*url.URL
	for _, a := range addrs {
		out = append(out, &url.URL{Scheme: "nats-route", Host: a})
	}
	return out
}

// startNATS starts one embedded server and waits for its listeners.
func startNATS(opts *server.Options, log *slog.Logger) (*server.Server, error) {
	// Dial the gateways at once instead of after nats-server's default 1 s:
	// a mirror's first request to its origin goes out about 150 ms after
	// JetStream starts, and if no gateway is up yet it is lost and retried
	// only after 30 s + 10 s (srcConsumerWaitTime and the retry backoff in
	// server/stream.go). Measured: a restarted region's mirrors flowed again
	// after 1.0 to 1.3 s instead of 41.5 s. Process-wide; set per start so
	// that it holds whoever embeds the region.
	server.SetGatewaysSolicitDelay(0)
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server %s: %w", opts.ServerName, err)
	}
	s.SetLoggerV2(natsLogger{log.With("component", "nats", "server", opts.ServerName)}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s on %s did not start listening", opts.ServerName, hostPort(opts.Host, opts.Port))
	}
	return s, nil
}

// natsLogger sends the server's log to slog: notices at debug (they are
// many and routine), warnings and errors as such.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Waiting for routing") || strings.HasPrefix(msg, "JetStream has not established contact with a meta leader") {
		n.l.Info(msg) // routine while a supercluster forms
		return
	}
	n.l.Warn(msg)
}
func (n natsLogger) Fatalf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any) {}
func (n natsLogger) Tracef(format string, v ...any) {}
