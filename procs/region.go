package procs

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Region is where a region runs: region N of a cluster binds Host
// (PREFIX.N.1, its regional NATS server and HTTP), and its member of the
// "global" cluster the next address (GlobalHost).
type Region struct {
	Name  string `json:"name"`
	Digit byte   `json:"digit"`
	Host  string `json:"host"`
}

// DevRegions is the dev topology of DESIGN.md, in the order a cluster of
// fewer regions takes them.
var DevRegions = []Region{
	{Name: "us-east", Digit: '1', Host: "127.0.1.1"},
	{Name: "eu-west", Digit: '2', Host: "127.0.2.1"},
	{Name: "ap-south", Digit: '3', Host: "127.0.3.1"},
}

// RegionNamed finds name in regions.
func RegionNamed(regions []Region, name string) (Region, bool) {
	for _, r := range regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// GlobalHost is where a region's member of "global" listens: the address
// after its regional server (region.Config's default).
func GlobalHost(host string) string {
	ip := net.ParseIP(host).To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1).String()
}

// RegionConfig is a region's command line: `shortener region` and its
// flags. Args is the one place that turns it into arguments; a zero field
// leaves its flag out (the region's default).
type RegionConfig struct {
	Name string
	// Digit is --digit ('1' to '9'); 0 leaves it out.
	Digit byte
	// HTTP is the address of the HTTP API (host:port); the NATS servers
	// bind the same host.
	HTTP string
	// Data is the state directory.
	Data string
	// Secrets is the NATS credentials folder (--secrets); InsecureNATS runs
	// plaintext NATS without authentication instead.
	Secrets      string
	InsecureNATS bool
	// Peers are the other regions (--peer NAME=HOST); a peer named Name is
	// skipped, so a cluster can give every region the whole list.
	Peers []Region
	// Fsync (always, interval), Durability (local, replicated),
	// SwitchAdmin (the DNS switch's admin address), APIKeyHash (instead of
	// SHORTENER_API_KEY in the environment) and LogLevel, when set.
	Fsync       string
	Durability  string
	SwitchAdmin string
	APIKeyHash  string
	LogLevel    string
	// NoRateLimit turns the per-client rate limit off (--rate-limit -1).
	NoRateLimit bool
	// LimitExempt are the client addresses (CIDR) whose misses are never
	// limited (--limit-exempt): the dev cluster's own load, chaos and
	// drill clients, all on loopback.
	LimitExempt []string
	// Extra flags, appended last (a later flag wins over an earlier one).
	Extra []string
}

// DevClients are the addresses of a dev cluster's own clients (the load,
// chaos and drill clients, the status and the tests): loopback, exempt
// from the limit of misses per address.
const DevClients = "127.0.0.0/8"

// Args is the region's command line after the executable.
func (c RegionConfig) Args() []string {
	args := []string{"region", "--name", c.Name}
	if c.Digit != 0 {
		args = append(args, "--digit", string(c.Digit))
	}
	args = append(args, "--http", c.HTTP, "--data", c.Data)
	for _, f := range []struct{ flag, val string }{
		{"--fsync", c.Fsync}, {"--durability", c.Durability}, {"--switch-admin", c.SwitchAdmin},
		{"--api-key-hash", c.APIKeyHash}, {"--log-level", c.LogLevel},
	} {
		if f.val != "" {
			args = append(args, f.flag, f.val)
		}
	}
	if c.NoRateLimit {
		args = append(args, "--rate-limit", "-1")
	}
	for _, p := range c.LimitExempt {
		args = append(args, "--limit-exempt", p)
	}
	if c.InsecureNATS {
		args = append(args, "--insecure-nats")
	} else if c.Secrets != "" {
		args = append(args, "--secrets", c.Secrets)
	}
	for _, p := range c.Peers {
		if p.Name != c.Name {
			args = append(args, "--peer", p.Name+"="+p.Host)
		}
	}
	return append(args, c.Extra...)
}

// Topology is where a dev cluster's regions and switch are; the supervisor
// writes it to <dir>/cluster.json for region-down, region-up and status.
type Topology struct {
	Regions     []Region `json:"regions"`
	SwitchDNS   string   `json:"switch_dns"`
	SwitchAdmin string   `json:"switch_admin"`
	Zone        string   `json:"zone"`
}

// TopologyOn places the first count dev regions on network prefix net
// ("127.0": region N on 127.0.N.1, the switch on 127.0.0.1:8053 and :8054)
// serving zone: tests use another prefix so that they never meet a cluster
// of make run.
func TopologyOn(net, zone string, count int) Topology {
	t := Topology{SwitchDNS: net + ".0.1:8053", SwitchAdmin: net + ".0.1:8054", Zone: zone}
	for i, r := range DevRegions[:count] {
		r.Host = net + "." + strconv.Itoa(i+1) + ".1"
		t.Regions = append(t.Regions, r)
	}
	return t
}

// TopologyFile is where the supervisor of a dev cluster on dir writes its
// topology.
func TopologyFile(dir string) string { return filepath.Join(dir, "cluster.json") }

// LoadTopology reads the topology of the dev cluster running on dir.
func LoadTopology(dir string) (Topology, error) {
	var t Topology
	data, err := os.ReadFile(TopologyFile(dir))
	if err != nil {
		return t, fmt.Errorf("no dev cluster is running under %s (start one with make run)", dir)
	}
	if err := json.Unmarshal(data, &t); err != nil || len(t.Regions) == 0 {
		return t, fmt.Errorf("%s is damaged: restart the cluster (make run)", TopologyFile(dir))
	}
	return t, nil
}

// Region finds a region of t by name.
func (t Topology) Region(name string) (Region, bool) { return RegionNamed(t.Regions, name) }

// The ports every dev region listens on (DESIGN.md, the dev topology).
const (
	devNATSPort = "4222"
	devHTTPPort = "8080"
)

// URL is the region's API and redirect base URL.
func (r Region) URL() string { return "http://" + r.Host + ":" + devHTTPPort }

// NATSURL is the region's regional NATS server.
func (r Region) NATSURL() string { return "nats://" + r.Host + ":" + devNATSPort }

// NATSURLs are the regions' NATS client URLs, in region order.
func (t Topology) NATSURLs() []string {
	var urls []string
	for _, r := range t.Regions {
		urls = append(urls, r.NATSURL())
	}
	return urls
}

// ClusterURLs map each NATS cluster (a region, and "global", whose member
// is on a region's GlobalHost) to a URL in it.
func (t Topology) ClusterURLs() map[string]string {
	m := map[string]string{}
	for _, r := range t.Regions {
		m[r.Name] = r.NATSURL()
		if _, ok := m["global"]; !ok {
			m["global"] = "nats://" + GlobalHost(r.Host) + ":" + devNATSPort
		}
	}
	return m
}

// Endpoints map each region's name to its URL.
func (t Topology) Endpoints() map[string]string {
	m := map[string]string{}
	for _, r := range t.Regions {
		m[r.Name] = r.URL()
	}
	return m
}
