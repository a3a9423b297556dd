package procs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"shortener/secrets"
)

// Options configure a dev cluster's supervisor.
type Options struct {
	// Dir is the state directory: a folder per region and for the switch,
	// the NATS credentials (Secrets), the control socket and the journal.
	Dir string
	// Bin is the shortener executable the processes run (empty: this one).
	Bin string
	// Key is the API key, given to every process in SHORTENER_API_KEY.
	Key string
	// Topology places the regions and the switch.
	Topology Topology
	// Prefer is, for each region, where its clients go when it is
	// unavailable (the switch's --prefer; absent regions are left out).
	Prefer map[string][]string
	// Fsync and Durability are the regions' --fsync and --durability.
	Fsync, Durability string
	// Out gets the cluster's table and what happens to its processes.
	Out io.Writer
	// Network, when set, starts what sits between the regions (a chaos
	// cluster's fault proxies) once the control socket listens; it is
	// closed after the processes have stopped.
	Network func() (io.Closer, error)
	// RegionArgs, when set, gives a region's extra flags.
	RegionArgs func(r Region, all []Region) []string
	// Routes, when set, adds endpoints to the control socket.
	Routes func(mux *http.ServeMux)
	// Ready, when set, is closed once every region and the switch answer.
	Ready chan<- struct{}
}

// Supervisor owns a dev cluster's processes: it starts them, restarts a
// region on `dev up`, SIGKILLs one on `dev down`, SIGTERMs one on `dev
// stop` (all asked over the control socket <dir>/control.sock), and stops
// them all when Run's context ends.
type Supervisor struct {
	o   Options
	out io.Writer

	mu    sync.Mutex
	procs map[string]*Proc // the live process of each region and of the switch; nil once stopping
	ended map[*Proc]string // stopped on purpose: "SIGKILL" by `dev down`, "SIGTERM" by `dev stop`

	journalMu sync.Mutex
}

// NewSupervisor returns the supervisor of a dev cluster; it does no I/O.
func NewSupervisor(o Options) *Supervisor {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	return &Supervisor{o: o, out: out, procs: map[string]*Proc{}, ended: map[*Proc]string{}}
}

// SecretsDir is the NATS credentials folder of the dev cluster on dir.
func SecretsDir(dir string) string { return filepath.Join(dir, "secrets") }

// EnsureSecrets makes the dev cluster's credentials on its first start: a
// user for every dev region (so that a cluster started with fewer can grow)
// and every tool, and a certificate that also names the regions' addresses.
func EnsureSecrets(dir string, topo Topology) error {
	if secrets.Exists(dir) {
		return nil
	}
	var names, hosts []string
	for _, r := range DevRegions {
		names = append(names, r.Name)
	}
	for _, r := range topo.Regions {
		g, _ := strings.CutSuffix(r.Host, ".1")
		hosts = append(hosts, r.Host, g+".2")
	}
	if err := secrets.Generate(dir, secrets.Options{Regions: names, Hosts: hosts}); err != nil {
		return fmt.Errorf("make the dev cluster's NATS credentials: %w", err)
	}
	return nil
}

// Run starts the cluster (every region, then the switch once they are
// ready), prints where everything is, and stops it all when ctx ends.
func (sv *Supervisor) Run(ctx context.Context) error {
	o, out, topo := sv.o, sv.out, sv.o.Topology
	regions, dir := topo.Regions, o.Dir
	if o.Bin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		sv.o.Bin, o.Bin = self, self
	}
	if err := EnsureSecrets(SecretsDir(dir), topo); err != nil {
		return err
	}
	ctl, err := sv.listenControl()
	if err != nil {
		return err
	}
	defer ctl.Close()
	defer sv.stopAll()
	if o.Network != nil {
		nw, err := o.Network()
		if err != nil {
			return err
		}
		defer nw.Close()
	}
	data, _ := json.MarshalIndent(topo, "", "  ")
	if err := os.WriteFile(TopologyFile(dir), data, 0o644); err != nil {
		return err
	}
	defer os.Remove(TopologyFile(dir))
	for _, r := range regions {
		if _, err := sv.Start(r.Name); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "starting %d region(s) and the DNS switch; logs under %s/<region>/region.log\n", len(regions), dir)
	for _, r := range regions {
		if err := sv.proc(r.Name).WaitReady(ctx, "http://"+r.Host+":8080/readyz", 90*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", r.Name, err, filepath.Join(dir, r.Name, "region.log"))
		}
	}
	if _, err := sv.Start("switch"); err != nil {
		return err
	}
	if err := WaitHTTP(ctx, "http://"+topo.SwitchAdmin+"/v1/state", sv.proc("switch").Done(), 10*time.Second, http.StatusOK); err != nil {
		return fmt.Errorf("switch: %w (see %s)", err, filepath.Join(dir, "switch", "switch.log"))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tHTTP\tNATS\tGLOBAL MEMBER\tPID\tSTATE")
	for _, r := range regions {
		gh := r.Host[:len(r.Host)-1] + "2"
		fmt.Fprintf(tw, "%s\thttp://%s:8080\tnats://%s:4222\tnats://%s:4222\t%d\t%s\n", r.Name, r.Host, r.Host, gh, sv.proc(r.Name).PID(), filepath.Join(dir, r.Name))
	}
	fmt.Fprintf(tw, "switch\tadmin http://%s\tdns %s (udp, tcp)\tzone %s\t%d\t%s\n", topo.SwitchAdmin, topo.SwitchDNS, topo.Zone, sv.proc("switch").PID(), filepath.Join(dir, "switch"))
	tw.Flush()
	fmt.Fprintf(out, "\nAPI key: %s (in %s)\n", o.Key, filepath.Join(dir, "api-key"))
	fmt.Fprintf(out, "try:     curl -si -H \"X-Api-Key: $(cat %s)\" -d '{\"url\":\"https://example.com/\"}' http://%s:8080/api/v1/links\n", filepath.Join(dir, "api-key"), regions[0].Host)
	dnsHost, dnsPort, _ := net.SplitHostPort(topo.SwitchDNS)
	fmt.Fprintf(out, "         dig @%s -p %s -b %s0 %s   (what %s's clients are answered)\n", dnsHost, dnsPort, regions[len(regions)-1].Host, topo.Zone, regions[len(regions)-1].Name)
	fmt.Fprintln(out, "         make status | make region-down REGION=us-east | make region-up REGION=us-east")
	fmt.Fprintln(out, "Ctrl-C stops the cluster.")
	if o.Ready != nil {
		close(o.Ready)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping")
	return nil
}

// Regions are the regions of the cluster.
func (sv *Supervisor) Regions() []Region { return sv.o.Topology.Regions }

func (sv *Supervisor) proc(name string) *Proc {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.procs[name]
}

// Start starts the process of a region (or of the switch, named "switch")
// unless it runs.
func (sv *Supervisor) Start(name string) (*Proc, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.procs == nil {
		return nil, fmt.Errorf("the dev cluster is stopping")
	}
	if p := sv.procs[name]; p != nil && p.Running() {
		return nil, fmt.Errorf("%s is running (pid %d)", name, p.PID())
	}
	spec, err := sv.spec(name)
	if err != nil {
		return nil, err
	}
	p, err := Start(spec)
	if err != nil {
		return nil, err
	}
	sv.procs[name] = p
	go sv.watch(p, spec.Dir)
	return p, nil
}

// watch says how a process ended, unless the cluster is stopping.
func (sv *Supervisor) watch(p *Proc, dir string) {
	<-p.Done()
	sv.mu.Lock()
	how := sv.ended[p]
	stopping := sv.procs == nil
	sv.mu.Unlock()
	name, now := p.Name(), time.Now().Format("15:04:05.000")
	switch {
	case how == "SIGKILL":
		fmt.Fprintf(sv.out, "%s  %s killed (SIGKILL, pid %d) by region-down; make region-up REGION=%s starts it again\n", now, name, p.PID(), name)
	case how != "":
		fmt.Fprintf(sv.out, "%s  %s stopped (%s, pid %d): %v; make region-up REGION=%s starts it again\n", now, name, how, p.PID(), p.Err(), name)
	case !stopping:
		fmt.Fprintf(sv.out, "%s  %s exited: %v (log: %s)\n", now, name, p.Err(), dir)
	}
}

// spec is how the supervisor starts the region or switch named name.
func (sv *Supervisor) spec(name string) (Spec, error) {
	o, topo := sv.o, sv.o.Topology
	env := []string{"SHORTENER_API_KEY=" + o.Key}
	if name == "switch" {
		sdir := filepath.Join(o.Dir, "switch")
		args := []string{"switch", "serve", "--state", filepath.Join(sdir, "state.json"),
			"--dns", topo.SwitchDNS, "--admin", topo.SwitchAdmin, "--zone", topo.Zone}
		for _, r := range topo.Regions {
			args = append(args, "--region", r.Name+"="+r.Host)
			var present []string
			for _, n := range o.Prefer[r.Name] {
				if _, ok := topo.Region(n); ok {
					present = append(present, n)
				}
			}
			if len(present) > 0 {
				args = append(args, "--prefer", r.Name+"="+strings.Join(present, ","))
			}
		}
		return Spec{Name: "switch", Bin: o.Bin, Args: args, Env: env, Dir: sdir, Log: filepath.Join(sdir, "switch.log"),
			PIDFile: filepath.Join(sdir, "pid"), Group: true}, nil
	}
	r, ok := topo.Region(name)
	if !ok {
		return Spec{}, fmt.Errorf("no region %q in this dev cluster", name)
	}
	rdir := filepath.Join(o.Dir, r.Name)
	cfg := RegionConfig{Name: r.Name, Digit: r.Digit, HTTP: r.Host + ":8080", Data: rdir, Fsync: o.Fsync,
		Durability: o.Durability, SwitchAdmin: topo.SwitchAdmin, Secrets: SecretsDir(o.Dir), Peers: topo.Regions,
		LimitExempt: []string{DevClients}}
	if o.RegionArgs != nil {
		cfg.Extra = o.RegionArgs(r, topo.Regions)
	}
	// Group: Ctrl-C reaches the supervisor, which stops its children in order.
	return Spec{Name: r.Name, Bin: o.Bin, Args: cfg.Args(), Env: env, Dir: rdir, Log: filepath.Join(rdir, "region.log"),
		PIDFile: filepath.Join(rdir, "pid"), Group: true}, nil
}

// region returns the live-or-not process of a region (not the switch).
func (sv *Supervisor) region(name string) (*Proc, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	p := sv.procs[name]
	if p == nil || name == "switch" {
		return nil, fmt.Errorf("no region %q in this dev cluster", name)
	}
	return p, nil
}

// ResetProjection moves a stopped region's projection aside (to
// projection.old, replacing an older one) so that the region rebuilds it
// from the log when it starts: the cache drill's rebuild.
func (sv *Supervisor) ResetProjection(name string) (time.Time, error) {
	p, err := sv.region(name)
	if err != nil {
		return time.Time{}, err
	}
	if p.Running() {
		return time.Time{}, fmt.Errorf("%s is running (pid %d): stop it first (make region-stop)", name, p.PID())
	}
	dir := filepath.Join(sv.o.Dir, name, "projection")
	if _, err := os.Stat(dir); err != nil {
		return time.Time{}, fmt.Errorf("%s has no projection to reset: %w", name, err)
	}
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return time.Time{}, err
	}
	if err := os.Rename(dir, old); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// Kill SIGKILLs a region's process (a crash, not a shutdown), waits until
// it is gone, and returns when the signal was sent.
func (sv *Supervisor) Kill(name string) (*Proc, time.Time, error) {
	p, err := sv.ending(name, "SIGKILL")
	if err != nil {
		return nil, time.Time{}, err
	}
	at := time.Now()
	return p, at, p.Kill(10 * time.Second)
}

// Stop asks a region's process to shut down (SIGTERM: it stops taking
// connections, lets in-flight requests finish for up to 5 s, closes its
// store and NATS servers) and waits up to 15 s for it to exit; a process
// still running then is SIGKILLed and forced is true.
func (sv *Supervisor) Stop(name string) (p *Proc, at time.Time, forced bool, err error) {
	p, err = sv.ending(name, "SIGTERM")
	if err != nil {
		return nil, time.Time{}, false, err
	}
	at = time.Now()
	forced, err = p.Stop(15 * time.Second)
	return p, at, forced, err
}

// ending marks a running region's process as stopped on purpose.
func (sv *Supervisor) ending(name, how string) (*Proc, error) {
	p, err := sv.region(name)
	if err != nil {
		return nil, err
	}
	if !p.Running() {
		return nil, fmt.Errorf("%s is not running", name)
	}
	sv.mu.Lock()
	sv.ended[p] = how
	sv.mu.Unlock()
	return p, nil
}

// Signal sends sig to a running region's process (SIGSTOP pauses it,
// SIGCONT resumes it).
func (sv *Supervisor) Signal(name string, sig syscall.Signal) (*Proc, error) {
	p, err := sv.region(name)
	if err != nil {
		return nil, err
	}
	if !p.Running() {
		return nil, fmt.Errorf("%s is not running", name)
	}
	return p, p.Signal(sig)
}

// stopAll stops every process (SIGTERM, SIGKILL after 10 s): the switch
// first, then the regions.
func (sv *Supervisor) stopAll() {
	sv.mu.Lock()
	var all []*Proc
	if p := sv.procs["switch"]; p != nil {
		all = append(all, p)
	}
	for _, r := range sv.o.Topology.Regions {
		if p := sv.procs[r.Name]; p != nil {
			all = append(all, p)
		}
	}
	sv.procs = nil
	sv.mu.Unlock()
	StopAll(sv.out, all, 10*time.Second)
}
