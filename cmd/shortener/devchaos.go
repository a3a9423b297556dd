package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"shortener/chaos/netfault"
)

// A dev cluster started with --chaos (what `shortener chaos` starts) puts
// a netfault proxy in front of every NATS gateway and route listener:
// region N's regional server (127.X.N.1) is dialled by the others at
// 127.X.N.3 and its member of "global" (127.X.N.2) at 127.X.N.4, same ports,
// and each advertises its proxy's address so that gossip never hands a peer
// the direct one. The supervisor owns the proxies; partitions and slow or
// lossy links are asked of it over the control socket, like region-down.

// chaosHosts returns the addresses at which the other regions reach a
// region's regional server and global member in a chaos cluster.
func chaosHosts(r devRegion) (regional, global string) {
	base := strings.TrimSuffix(r.Host, ".1")
	return base + ".3", base + ".4"
}

// chaosRegionArgs are the extra flags of a region in a chaos cluster.
func chaosRegionArgs(r devRegion, all []devRegion) []string {
	reg, glob := chaosHosts(r)
	args := []string{"--fault-injection", "--nats-advertise", reg, "--nats-global-advertise", glob}
	for _, p := range all {
		if p.Name != r.Name {
			preg, pglob := chaosHosts(p)
			args = append(args, "--peer-nats", p.Name+"="+preg+","+pglob)
		}
	}
	return args
}

// startChaosNet starts the proxies of every region.
func (sv *supervisor) startChaosNet(log *slog.Logger) error {
	sv.net = netfault.New(log)
	for _, r := range sv.regions {
		reg, glob := chaosHosts(r)
		for _, f := range []struct{ listen, target string }{
			{reg + ":7222", r.Host + ":7222"},
			{glob + ":7222", globalHost(r.Host) + ":7222"},
			{glob + ":6222", globalHost(r.Host) + ":6222"},
		} {
			if err := sv.net.Front(r.Name, f.listen, f.target); err != nil {
				sv.net.Close()
				return fmt.Errorf("chaos proxy %s -> %s: %w", f.listen, f.target, err)
			}
		}
	}
	return nil
}

// netEntry is a journal line of a link fault.
type netEntry struct {
	Time   time.Time      `json:"time"`
	Action string         `json:"action"` // cut, heal, degrade, restore
	Region string         `json:"region"`
	Peer   string         `json:"peer"`
	Params map[string]any `json:"params,omitempty"`
}

// chaosRoutes adds the link-fault endpoints of the control socket (pause
// and resume a region are procs'): in a chaos cluster, cut, heal, degrade
// and restore the links between two regions.
func (sv *supervisor) chaosRoutes(mux *http.ServeMux) {
	link := func(action string, f func(a, b string, q url.Values) (map[string]any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if sv.net == nil {
				writeCtlError(w, errors.New("this dev cluster has no fault proxies: start it with --chaos"))
				return
			}
			a, b := r.PathValue("a"), r.PathValue("b")
			for _, n := range []string{a, b} {
				if _, ok := devRegionNamed(sv.regions, n); !ok {
					writeCtlError(w, fmt.Errorf("no region %q in this dev cluster", n))
					return
				}
			}
			if a == b {
				writeCtlError(w, fmt.Errorf("a link joins two different regions, not %s and itself", a))
				return
			}
			at := time.Now()
			params, err := f(a, b, r.URL.Query())
			if err != nil {
				writeCtlError(w, err)
				return
			}
			sv.journalNet(netEntry{Time: at.UTC(), Action: action, Region: a, Peer: b, Params: params})
			_ = json.NewEncoder(w).Encode(procInfo{Name: a + "-" + b, At: at})
		}
	}
	mux.HandleFunc("POST /net/cut/{a}/{b}", link("cut", func(a, b string, _ url.Values) (map[string]any, error) {
		sv.net.Cut(a, b)
		return nil, nil
	}))
	mux.HandleFunc("POST /net/heal/{a}/{b}", link("heal", func(a, b string, _ url.Values) (map[string]any, error) {
		sv.net.Heal(a, b)
		return nil, nil
	}))
	mux.HandleFunc("POST /net/degrade/{a}/{b}", link("degrade", func(a, b string, q url.Values) (map[string]any, error) {
		var d netfault.Degradation
		var err error
		for _, f := range []struct {
			name string
			to   *time.Duration
		}{{"latency", &d.Latency}, {"jitter", &d.Jitter}, {"reset", &d.ResetEvery}} {
			if v := q.Get(f.name); v != "" {
				if *f.to, err = time.ParseDuration(v); err != nil || *f.to < 0 {
					return nil, fmt.Errorf("%s=%q: want a duration like 200ms", f.name, v)
				}
			}
		}
		sv.net.Degrade(a, b, d)
		return map[string]any{"latency": d.Latency.String(), "jitter": d.Jitter.String(), "reset_every": d.ResetEvery.String()}, nil
	}))
	mux.HandleFunc("POST /net/restore/{a}/{b}", link("restore", func(a, b string, _ url.Values) (map[string]any, error) {
		sv.net.Restore(a, b)
		return nil, nil
	}))
	mux.HandleFunc("GET /net", func(w http.ResponseWriter, r *http.Request) {
		if sv.net == nil {
			writeCtlError(w, errors.New("this dev cluster has no fault proxies: start it with --chaos"))
			return
		}
		_ = json.NewEncoder(w).Encode(sv.net.State())
	})
	mux.HandleFunc("POST /net/heal-all", func(w http.ResponseWriter, r *http.Request) {
		if sv.net == nil {
			writeCtlError(w, errors.New("this dev cluster has no fault proxies: start it with --chaos"))
			return
		}
		at := time.Now()
		sv.net.HealAll()
		sv.journalNet(netEntry{Time: at.UTC(), Action: "heal-all"})
		_ = json.NewEncoder(w).Encode(procInfo{Name: "all", At: at})
	})
}

func (sv *supervisor) journalNet(e netEntry) {
	line, _ := json.Marshal(e)
	sv.appendJournal(line)
}

// controlDo asks the running dev cluster's supervisor and decodes the
// answer into out (nil: discard it).
func controlDo(ctx context.Context, dir, method, path string, out any) error {
	sock := controlSocket(dir)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://dev"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no dev cluster is running under %s (start one with make run)", dir)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// globalHost is where a region's member of "global" listens: the address
// after its regional server (region.Config's default).
func globalHost(host string) string {
	ip := net.ParseIP(host).To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1).String()
}
