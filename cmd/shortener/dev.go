package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos/netfault"
	"shortener/secrets"
)

// devRegion is one region of the dev cluster: region N binds 127.0.N.1 with
// the same ports in every region.
type devRegion struct {
	Name  string `json:"name"`
	Digit byte   `json:"digit"`
	Host  string `json:"host"`
}

// devTopology is where a running dev cluster's regions and switch are; the
// supervisor writes it to <dir>/cluster.json for region-down, region-up
// and status.
type devTopology struct {
	Regions     []devRegion `json:"regions"`
	SwitchDNS   string      `json:"switch_dns"`
	SwitchAdmin string      `json:"switch_admin"`
	Zone        string      `json:"zone"`
}

// topologyOn places the dev regions on network prefix net ("127.0": region
// N on 127.0.N.1, the switch on 127.0.0.1): tests use another prefix so
// that they never meet a cluster of make run.
func topologyOn(net string, count int) devTopology {
	t := devTopology{SwitchDNS: net + ".0.1:8053", SwitchAdmin: net + ".0.1:8054", Zone: devZone}
	for i, r := range devRegions[:count] {
		r.Host = fmt.Sprintf("%s.%d.1", net, i+1)
		t.Regions = append(t.Regions, r)
	}
	return t
}

func topologyFile(dir string) string { return filepath.Join(dir, "cluster.json") }

// loadTopology reads the topology of the dev cluster running on dir.
func loadTopology(dir string) (devTopology, error) {
	var t devTopology
	data, err := os.ReadFile(topologyFile(dir))
	if err != nil {
		return t, fmt.Errorf("no dev cluster is running under %s (start one with make run)", dir)
	}
	if err := json.Unmarshal(data, &t); err != nil || len(t.Regions) == 0 {
		return t, fmt.Errorf("%s is damaged: restart the cluster (make run)", topologyFile(dir))
	}
	return t, nil
}

func (t devTopology) region(name string) (devRegion, error) {
	if r, ok := devRegionNamed(t.Regions, name); ok {
		return r, nil
	}
	var names []string
	for _, r := range t.Regions {
		names = append(names, r.Name)
	}
	return devRegion{}, usageError{fmt.Errorf("no region %q: the dev regions are %s", name, strings.Join(names, ", "))}
}

// devRegions is the dev topology of DESIGN.md. "Region core" runs the first
// one; "Three regions" runs all three.
var devRegions = []devRegion{
	{Name: "us-east", Digit: '1', Host: "127.0.1.1"},
	{Name: "eu-west", Digit: '2', Host: "127.0.2.1"},
	{Name: "ap-south", Digit: '3', Host: "127.0.3.1"},
}

func devCmd() *cobra.Command {
	var dir, fsync, durability, netPrefix string
	var count int
	var withChaos bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the dev cluster (what make run starts): regions and the DNS switch as child processes, state under var/dev",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 || count > len(devRegions) {
				return usageError{fmt.Errorf("--regions must be 1 to %d", len(devRegions))}
			}
			if !regexp.MustCompile(`^127\.\d{1,3}$`).MatchString(netPrefix) {
				return usageError{fmt.Errorf("--net %q: want 127.X", netPrefix)}
			}
			return runDev(cmd.Context(), cmd.OutOrStdout(), devOptions{dir: dir, fsync: fsync, durability: durability, chaos: withChaos}, topologyOn(netPrefix, count))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	cmd.Flags().StringVar(&fsync, "fsync", "always", "JetStream fsync: always or interval")
	cmd.Flags().IntVar(&count, "regions", 3, "how many regions to run (1 to 3)")
	cmd.Flags().StringVar(&durability, "durability", "local", "durability of creates: local or replicated")
	cmd.Flags().StringVar(&netPrefix, "net", "127.0", "network prefix: region N on PREFIX.N.1, the switch on PREFIX.0.1")
	_ = cmd.Flags().MarkHidden("net")
	cmd.Flags().BoolVar(&withChaos, "chaos", false, "put fault proxies on every NATS link (127.0.N.3 and .4) and turn fault injection on, as shortener chaos does")
	cmd.AddCommand(devDownCmd(), devStopCmd(), devUpCmd())
	return cmd
}

type child struct {
	name string // region name, or "switch"
	dir  string // its state directory
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type devOptions struct {
	dir, fsync, durability string
	// chaos puts fault proxies in front of every NATS gateway and route
	// listener and starts the regions with --fault-injection (devchaos.go).
	chaos bool
	// ready, when set, is closed once every region and the switch answer.
	ready chan<- struct{}
}

// supervisor owns the dev cluster's processes: it starts them, restarts a
// region on `dev up`, SIGKILLs one on `dev down` (both asked over the
// control socket var/dev/control.sock), and stops them all on Ctrl-C.
type supervisor struct {
	o       devOptions
	self    string
	key     string
	topo    devTopology
	regions []devRegion
	out     io.Writer

	mu       sync.Mutex
	children map[string]*child // the live process of each region and of the switch
	killed   map[*child]string // stopped on purpose: "SIGKILL" by `dev down`, "SIGTERM" by `dev stop`

	journalMu sync.Mutex
	net       *netfault.Net // the fault proxies of a --chaos cluster, else nil
}

func runDev(ctx context.Context, out io.Writer, o devOptions, topo devTopology) error {
	regions := topo.Regions
	dir := o.dir
	key, err := apiKey(filepath.Join(dir, "api-key"), true)
	if err != nil {
		return err
	}
	if err := ensureDevSecrets(devSecrets(dir), topo); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sv := &supervisor{o: o, self: self, key: key, topo: topo, regions: regions, out: out,
		children: map[string]*child{}, killed: map[*child]string{}}
	ctl, err := sv.listenControl()
	if err != nil {
		return err
	}
	defer ctl.Close()
	defer sv.stopAll()
	if o.chaos {
		if err := sv.startChaosNet(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			return err
		}
		defer sv.net.Close()
	}
	data, _ := json.MarshalIndent(topo, "", "  ")
	if err := os.WriteFile(topologyFile(dir), data, 0o644); err != nil {
		return err
	}
	defer os.Remove(topologyFile(dir))
	for _, r := range regions {
		if _, err := sv.start(r.Name); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "starting %d region(s) and the DNS switch; logs under %s/<region>/region.log\n", len(regions), dir)
	for _, r := range regions {
		c := sv.child(r.Name)
		if err := waitHTTPReady(ctx, "http://"+r.Host+":8080/readyz", c.done, 90*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", r.Name, err, filepath.Join(dir, r.Name, "region.log"))
		}
	}
	if _, err := sv.start("switch"); err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+topo.SwitchAdmin+"/v1/state", sv.child("switch").done, 10*time.Second, http.StatusOK); err != nil {
		return fmt.Errorf("switch: %w (see %s)", err, filepath.Join(dir, "switch", "switch.log"))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tHTTP\tNATS\tGLOBAL MEMBER\tPID\tSTATE")
	for _, r := range regions {
		gh := r.Host[:len(r.Host)-1] + "2"
		fmt.Fprintf(tw, "%s\thttp://%s:8080\tnats://%s:4222\tnats://%s:4222\t%d\t%s\n", r.Name, r.Host, r.Host, gh, sv.child(r.Name).cmd.Process.Pid, filepath.Join(dir, r.Name))
	}
	fmt.Fprintf(tw, "switch\tadmin http://%s\tdns %s (udp, tcp)\tzone %s\t%d\t%s\n", topo.SwitchAdmin, topo.SwitchDNS, topo.Zone, sv.child("switch").cmd.Process.Pid, filepath.Join(dir, "switch"))
	tw.Flush()
	fmt.Fprintf(out, "\nAPI key: %s (in %s)\n", key, filepath.Join(dir, "api-key"))
	fmt.Fprintf(out, "try:     curl -si -H \"X-Api-Key: $(cat %s)\" -d '{\"url\":\"https://example.com/\"}' http://%s:8080/api/v1/links\n", filepath.Join(dir, "api-key"), regions[0].Host)
	dnsHost, dnsPort, _ := net.SplitHostPort(topo.SwitchDNS)
	fmt.Fprintf(out, "         dig @%s -p %s -b %s0 %s   (what %s's clients are answered)\n", dnsHost, dnsPort, regions[len(regions)-1].Host, topo.Zone, regions[len(regions)-1].Name)
	fmt.Fprintln(out, "         make status | make region-down REGION=us-east | make region-up REGION=us-east")
	fmt.Fprintln(out, "Ctrl-C stops the cluster.")
	if o.ready != nil {
		close(o.ready)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping")
	return nil
}

func (sv *supervisor) child(name string) *child {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.children[name]
}

// start starts the process of a region (or of the switch) unless it runs.
func (sv *supervisor) start(name string) (*child, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if c := sv.children[name]; c != nil {
		select {
		case <-c.done:
		default:
			return nil, fmt.Errorf("%s is running (pid %d)", name, c.cmd.Process.Pid)
		}
	}
	var c *child
	var err error
	if name == "switch" {
		c, err = startSwitchChild(sv.self, sv.o, sv.key, sv.topo)
	} else {
		r, ok := devRegionNamed(sv.regions, name)
		if !ok {
			return nil, fmt.Errorf("no region %q in this dev cluster", name)
		}
		c, err = startRegionChild(sv.self, sv.o, sv.key, r, sv.regions, sv.topo.SwitchAdmin)
	}
	if err != nil {
		return nil, err
	}
	sv.children[name] = c
	go func() {
		<-c.done
		sv.mu.Lock()
		how := sv.killed[c]
		stopping := sv.children == nil
		sv.mu.Unlock()
		switch {
		case how == "SIGKILL":
			fmt.Fprintf(sv.out, "%s  %s killed (SIGKILL, pid %d) by region-down; make region-up REGION=%s starts it again\n", time.Now().Format("15:04:05.000"), name, c.cmd.Process.Pid, name)
		case how != "":
			fmt.Fprintf(sv.out, "%s  %s stopped (%s, pid %d): %v; make region-up REGION=%s starts it again\n", time.Now().Format("15:04:05.000"), name, how, c.cmd.Process.Pid, c.err, name)
		case !stopping:
			fmt.Fprintf(sv.out, "%s  %s exited: %v (log: %s)\n", time.Now().Format("15:04:05.000"), name, c.err, c.dir)
		}
	}()
	return c, nil
}

// resetProjection moves a stopped region's projection aside (to
// projection.old, replacing an older one) so that the region rebuilds it
// from the log when it starts: the cache drill's rebuild.
func (sv *supervisor) resetProjection(name string) (time.Time, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	c := sv.children[name]
	if c == nil || name == "switch" {
		return time.Time{}, fmt.Errorf("no region %q in this dev cluster", name)
	}
	select {
	case <-c.done:
	default:
		return time.Time{}, fmt.Errorf("%s is running (pid %d): stop it first (make region-stop)", name, c.cmd.Process.Pid)
	}
	dir := filepath.Join(sv.o.dir, name, "projection")
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

// kill SIGKILLs a region's process (a crash, not a shutdown), waits until
// it is gone, and returns when the signal was sent.
func (sv *supervisor) kill(name string) (*child, time.Time, error) {
	c, at, _, err := sv.terminate(name, syscall.SIGKILL, 10*time.Second)
	return c, at, err
}

// stop asks a region's process to shut down (SIGTERM: it stops taking
// connections, lets in-flight requests finish for up to 5 s, closes its
// store and NATS servers) and waits up to 15 s for it to exit; a process
// still running then is SIGKILLed and forced is true.
func (sv *supervisor) stop(name string) (c *child, at time.Time, forced bool, err error) {
	c, at, forced, err = sv.terminate(name, syscall.SIGTERM, 15*time.Second)
	if forced {
		err = nil
	}
	return c, at, forced, err
}

// terminate sends sig to a region's process and waits up to wait for it to
// exit; when it does not, it is SIGKILLed (forced).
func (sv *supervisor) terminate(name string, sig syscall.Signal, wait time.Duration) (*child, time.Time, bool, error) {
	sv.mu.Lock()
	c := sv.children[name]
	if c == nil || name == "switch" {
		sv.mu.Unlock()
		return nil, time.Time{}, false, fmt.Errorf("no region %q in this dev cluster", name)
	}
	select {
	case <-c.done:
		sv.mu.Unlock()
		return nil, time.Time{}, false, fmt.Errorf("%s is not running", name)
	default:
	}
	sv.killed[c] = "SIGTERM"
	if sig == syscall.SIGKILL {
		sv.killed[c] = "SIGKILL"
	}
	sv.mu.Unlock()
	at := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		return nil, at, false, err
	}
	forced := false
	select {
	case <-c.done:
	case <-time.After(wait):
		if sig == syscall.SIGKILL {
			return nil, at, false, fmt.Errorf("%s (pid %d) still running %s after SIGKILL", name, c.cmd.Process.Pid, wait)
		}
		forced = true
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			return nil, at, true, fmt.Errorf("%s (pid %d) still running 10 s after SIGKILL", name, c.cmd.Process.Pid)
		}
	}
	_ = os.Remove(filepath.Join(c.dir, "pid"))
	return c, at, forced, nil
}

// stopAll sends SIGTERM to every process and SIGKILL to those still
// running after 10 s: the switch first, then the regions.
func (sv *supervisor) stopAll() {
	sv.mu.Lock()
	var all []*child
	if c := sv.children["switch"]; c != nil {
		all = append(all, c)
	}
	for _, r := range sv.regions {
		if c := sv.children[r.Name]; c != nil {
			all = append(all, c)
		}
	}
	sv.children = nil
	sv.mu.Unlock()
	stopChildren(sv.out, all)
}

func devRegionNamed(regions []devRegion, name string) (devRegion, bool) {
	for _, r := range regions {
		if r.Name == name {
			return r, true
		}
	}
	return devRegion{}, false
}

func startSwitchChild(self string, o devOptions, key string, topo devTopology) (*child, error) {
	sdir := filepath.Join(o.dir, "switch")
	args := []string{"switch", "serve", "--state", filepath.Join(sdir, "state.json"),
		"--dns", topo.SwitchDNS, "--admin", topo.SwitchAdmin, "--zone", topo.Zone}
	for _, r := range topo.Regions {
		args = append(args, "--region", r.Name+"="+r.Host)
		if p := devPrefer[r.Name]; len(p) > 0 {
			var present []string
			for _, n := range p {
				if _, ok := devRegionNamed(topo.Regions, n); ok {
					present = append(present, n)
				}
			}
			if len(present) > 0 {
				args = append(args, "--prefer", r.Name+"="+strings.Join(present, ","))
			}
		}
	}
	return startChild(self, "switch", sdir, "switch.log", args, key)
}

func startRegionChild(self string, o devOptions, key string, r devRegion, all []devRegion, switchAdmin string) (*child, error) {
	rdir := filepath.Join(o.dir, r.Name)
	args := []string{"region", "--name", r.Name, "--digit", string(r.Digit),
		"--http", r.Host + ":8080", "--data", rdir, "--fsync", o.fsync, "--durability", o.durability,
		"--switch-admin", switchAdmin, "--secrets", devSecrets(o.dir)}
	for _, p := range all {
		if p.Name != r.Name {
			args = append(args, "--peer", p.Name+"="+p.Host)
		}
	}
	if o.chaos {
		args = append(args, chaosRegionArgs(r, all)...)
	}
	return startChild(self, r.Name, rdir, "region.log", args, key)
}

// devSecrets is the NATS credentials folder of the dev cluster on dir.
func devSecrets(dir string) string { return filepath.Join(dir, "secrets") }

// ensureDevSecrets makes the dev cluster's credentials on its first start:
// a user for every dev region (so that a cluster started with fewer can grow)
// and every tool, and a certificate that also names the regions' addresses.
func ensureDevSecrets(dir string, topo devTopology) error {
	if secrets.Exists(dir) {
		return nil
	}
	var names, hosts []string
	for _, r := range devRegions {
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

// startChild starts self with args, logging to dir/logName and writing its
// pid to dir/pid.
func startChild(self, name, dir, logName string, args []string, key string) (*child, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "SHORTENER_API_KEY="+key)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the supervisor, which stops children in order
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	_ = os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	c := &child{name: name, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// stopChildren sends SIGTERM to every child and SIGKILL to those still
// running after 10 s.
func stopChildren(out io.Writer, children []*child) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGCONT) // a paused region could not stop
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			fmt.Fprintf(out, "%s did not stop in 10s: killing it\n", c.name)
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		_ = os.Remove(filepath.Join(c.dir, "pid"))
	}
}

// waitHTTPReady polls url until it answers 200, the process ends (exited)
// or the timeout passes.
func waitHTTPReady(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) error {
	return waitHTTP(ctx, url, exited, timeout, http.StatusOK)
}

// waitHTTP polls url until it answers want.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration, want int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s", timeout)
		case <-t.C:
		}
	}
}
