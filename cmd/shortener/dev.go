package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"shortener/chaos/netfault"
	"shortener/procs"
)

// The dev cluster's names as the rest of cmd (and the files moving out of
// it) use them: the engine is package procs.
type (
	devRegion   = procs.Region
	devTopology = procs.Topology
	procInfo    = procs.ProcInfo
)

// devRegions is the dev topology of DESIGN.md. "Region core" runs the first
// one; "Three regions" runs all three.
var devRegions = procs.DevRegions

// topologyOn places the dev regions on network prefix net ("127.0": region
// N on 127.0.N.1, the switch on 127.0.0.1): tests use another prefix so
// that they never meet a cluster of make run.
func topologyOn(net string, count int) devTopology { return procs.TopologyOn(net, devZone, count) }

func loadTopology(dir string) (devTopology, error) { return procs.LoadTopology(dir) }

// topologyRegion finds a region of the running cluster, or says which
// regions there are.
func topologyRegion(t devTopology, name string) (devRegion, error) {
	if r, ok := t.Region(name); ok {
		return r, nil
	}
	var names []string
	for _, r := range t.Regions {
		names = append(names, r.Name)
	}
	return devRegion{}, usageError{fmt.Errorf("no region %q: the dev regions are %s", name, strings.Join(names, ", "))}
}

func devRegionNamed(regions []devRegion, name string) (devRegion, bool) {
	return procs.RegionNamed(regions, name)
}

// controlSocket is the control socket of the dev cluster on dir.
func controlSocket(dir string) string { return procs.ControlSocket(dir) }

// devSecrets is the NATS credentials folder of the dev cluster on dir.
func devSecrets(dir string) string { return procs.SecretsDir(dir) }

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

type devOptions struct {
	dir, fsync, durability string
	// chaos puts fault proxies in front of every NATS gateway and route
	// listener and starts the regions with --fault-injection (devchaos.go).
	chaos bool
	// ready, when set, is closed once every region and the switch answer.
	ready chan<- struct{}
}

// supervisor is the dev cluster's procs.Supervisor with what a --chaos
// cluster adds to it (devchaos.go): the fault proxies and their endpoints
// on the control socket.
type supervisor struct {
	*procs.Supervisor
	regions []devRegion
	net     *netfault.Net // the fault proxies of a --chaos cluster, else nil
}

func (sv *supervisor) appendJournal(line []byte) { sv.Journal(line) }

func writeCtlError(w http.ResponseWriter, err error) { procs.WriteError(w, err) }

// runDev runs the dev cluster of topo until ctx ends.
func runDev(ctx context.Context, out io.Writer, o devOptions, topo devTopology) error {
	key, err := apiKey(filepath.Join(o.dir, "api-key"), true)
	if err != nil {
		return err
	}
	sv := &supervisor{regions: topo.Regions}
	po := procs.Options{Dir: o.dir, Key: key, Topology: topo, Prefer: devPrefer, Fsync: o.fsync,
		Durability: o.durability, Out: out, Ready: o.ready}
	if o.chaos {
		po.Network = func() (io.Closer, error) {
			if err := sv.startChaosNet(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
				return nil, err
			}
			return sv.net, nil
		}
		po.RegionArgs = chaosRegionArgs
		po.Routes = sv.chaosRoutes
	}
	sv.Supervisor = procs.NewSupervisor(po)
	return sv.Run(ctx)
}

// waitHTTPReady polls url until it answers 200, the process ends (exited)
// or the timeout passes.
func waitHTTPReady(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) error {
	return procs.WaitHTTP(ctx, url, exited, timeout, http.StatusOK)
}

// waitHTTP polls url until it answers want.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration, want int) error {
	return procs.WaitHTTP(ctx, url, exited, timeout, want)
}

// child and stopChildren are the bench cluster's processes (bench_regions.go)
// until it starts them with procs.Start and stops them with procs.StopAll.
type child struct {
	name string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func stopChildren(out io.Writer, children []*child) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
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
