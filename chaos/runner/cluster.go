package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"shortener/chaos/netfault"
	"shortener/procs"
)

// A chaos cluster (what a chaos run starts, and `shortener dev --chaos`)
// is a dev cluster that puts a netfault proxy in front of every NATS
// gateway and route listener: region N's regional server (127.X.N.1) is
// dialled by the others at 127.X.N.3 and its member of "global"
// (127.X.N.2) at 127.X.N.4, same ports, and each advertises its proxy's
// address so that gossip never hands a peer the direct one. The
// supervisor owns the proxies; partitions and slow or lossy links are
// asked of it over the control socket, like region-down.

// NewSupervisor returns the supervisor of a chaos cluster: the dev
// cluster of o with fault proxies on every NATS link, its regions started
// with --fault-injection, and the link-fault endpoints on its control
// socket (POST /net/cut|heal|degrade|restore/A/B, /net/heal-all, GET /net).
// It does no I/O; o's Network, RegionArgs and Routes are replaced.
func NewSupervisor(o procs.Options) *procs.Supervisor {
	f := &faultNet{regions: o.Topology.Regions}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o.Network = func() (io.Closer, error) { return f.start(log) }
	o.RegionArgs = regionArgs
	o.Routes = f.routes
	sv := procs.NewSupervisor(o)
	f.journal = sv.Journal
	return sv
}

// proxyHosts returns the addresses at which the other regions reach a
// region's regional server and global member in a chaos cluster.
func proxyHosts(r procs.Region) (regional, global string) {
	base := strings.TrimSuffix(r.Host, ".1")
	return base + ".3", base + ".4"
}

// regionArgs are the extra flags of a region in a chaos cluster.
func regionArgs(r procs.Region, all []procs.Region) []string {
	reg, glob := proxyHosts(r)
	args := []string{"--fault-injection", "--nats-advertise", reg, "--nats-global-advertise", glob}
	for _, p := range all {
		if p.Name != r.Name {
			preg, pglob := proxyHosts(p)
			args = append(args, "--peer-nats", p.Name+"="+preg+","+pglob)
		}
	}
	return args
}

// faultNet is a chaos cluster's fault proxies and their endpoints on the
// control socket.
type faultNet struct {
	regions []procs.Region
	net     atomic.Pointer[netfault.Net] // nil until started; the control socket listens before
	journal func(line []byte)
}

// start starts the proxies of every region.
func (f *faultNet) start(log *slog.Logger) (io.Closer, error) {
	n := netfault.New(log)
	for _, r := range f.regions {
		reg, glob := proxyHosts(r)
		for _, p := range []struct{ listen, target string }{
			{reg + ":7222", r.Host + ":7222"},
			{glob + ":7222", procs.GlobalHost(r.Host) + ":7222"},
			{glob + ":6222", procs.GlobalHost(r.Host) + ":6222"},
		} {
			if err := n.Front(r.Name, p.listen, p.target); err != nil {
				n.Close()
				return nil, fmt.Errorf("chaos proxy %s -> %s: %w", p.listen, p.target, err)
			}
		}
	}
	f.net.Store(n)
	return n, nil
}

// netEntry is a journal line of a link fault.
type netEntry struct {
	Time   time.Time      `json:"time"`
	Action string         `json:"action"` // cut, heal, degrade, restore, heal-all
	Region string         `json:"region"`
	Peer   string         `json:"peer"`
	Params map[string]any `json:"params,omitempty"`
}

func (f *faultNet) journalNet(e netEntry) {
	line, _ := json.Marshal(e)
	f.journal(line)
}

var errNoProxies = errors.New("this dev cluster has no fault proxies: start it with --chaos")

// routes adds the link-fault endpoints of the control socket (pause and
// resume a region are procs'): cut, heal, degrade and restore the links
// between two regions.
func (f *faultNet) routes(mux *http.ServeMux) {
	link := func(action string, do func(n *netfault.Net, a, b string, q url.Values) (map[string]any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n := f.net.Load()
			if n == nil {
				procs.WriteError(w, errNoProxies)
				return
			}
			a, b := r.PathValue("a"), r.PathValue("b")
			for _, n := range []string{a, b} {
				if _, ok := procs.RegionNamed(f.regions, n); !ok {
					procs.WriteError(w, fmt.Errorf("no region %q in this dev cluster", n))
					return
				}
			}
			if a == b {
				procs.WriteError(w, fmt.Errorf("a link joins two different regions, not %s and itself", a))
				return
			}
			at := time.Now()
			params, err := do(n, a, b, r.URL.Query())
			if err != nil {
				procs.WriteError(w, err)
				return
			}
			f.journalNet(netEntry{Time: at.UTC(), Action: action, Region: a, Peer: b, Params: params})
			_ = json.NewEncoder(w).Encode(procs.ProcInfo{Name: a + "-" + b, At: at})
		}
	}
	mux.HandleFunc("POST /net/cut/{a}/{b}", link("cut", func(n *netfault.Net, a, b string, _ url.Values) (map[string]any, error) {
		n.Cut(a, b)
		return nil, nil
	}))
	mux.HandleFunc("POST /net/heal/{a}/{b}", link("heal", func(n *netfault.Net, a, b string, _ url.Values) (map[string]any, error) {
		n.Heal(a, b)
		return nil, nil
	}))
	mux.HandleFunc("POST /net/degrade/{a}/{b}", link("degrade", func(n *netfault.Net, a, b string, q url.Values) (map[string]any, error) {
		var d netfault.Degradation
		var err error
		for _, p := range []struct {
			name string
			to   *time.Duration
		}{{"latency", &d.Latency}, {"jitter", &d.Jitter}, {"reset", &d.ResetEvery}} {
			if v := q.Get(p.name); v != "" {
				if *p.to, err = time.ParseDuration(v); err != nil || *p.to < 0 {
					return nil, fmt.Errorf("%s=%q: want a duration like 200ms", p.name, v)
				}
			}
		}
		n.Degrade(a, b, d)
		return map[string]any{"latency": d.Latency.String(), "jitter": d.Jitter.String(), "reset_every": d.ResetEvery.String()}, nil
	}))
	mux.HandleFunc("POST /net/restore/{a}/{b}", link("restore", func(n *netfault.Net, a, b string, _ url.Values) (map[string]any, error) {
		n.Restore(a, b)
		return nil, nil
	}))
	mux.HandleFunc("GET /net", func(w http.ResponseWriter, r *http.Request) {
		n := f.net.Load()
		if n == nil {
			procs.WriteError(w, errNoProxies)
			return
		}
		_ = json.NewEncoder(w).Encode(n.State())
	})
	mux.HandleFunc("POST /net/heal-all", func(w http.ResponseWriter, r *http.Request) {
		n := f.net.Load()
		if n == nil {
			procs.WriteError(w, errNoProxies)
			return
		}
		at := time.Now()
		n.HealAll()
		f.journalNet(netEntry{Time: at.UTC(), Action: "heal-all"})
		_ = json.NewEncoder(w).Encode(procs.ProcInfo{Name: "all", At: at})
	})
}
