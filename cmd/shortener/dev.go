package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"shortener/chaos/runner"
	"shortener/procs"
)

// devRegions is the dev topology of DESIGN.md. "Region core" runs the first
// one; "Three regions" runs all three.
var devRegions = procs.DevRegions

// topologyOn places the dev regions on network prefix net ("127.0": region
// N on 127.0.N.1, the switch on 127.0.0.1): tests use another prefix so
// that they never meet a cluster of make run.
func topologyOn(net string, count int) procs.Topology { return procs.TopologyOn(net, devZone, count) }

// topologyRegion finds a region of the running cluster, or says which
// regions there are.
func topologyRegion(t procs.Topology, name string) (procs.Region, error) {
	if r, ok := t.Region(name); ok {
		return r, nil
	}
	var names []string
	for _, r := range t.Regions {
		names = append(names, r.Name)
	}
	return procs.Region{}, usageError{fmt.Errorf("no region %q: the dev regions are %s", name, strings.Join(names, ", "))}
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
			key, err := apiKey(filepath.Join(dir, "api-key"), true)
			if err != nil {
				return err
			}
			newSupervisor := procs.NewSupervisor
			if withChaos { // fault proxies on every NATS link, fault injection on
				newSupervisor = runner.NewSupervisor
			}
			return newSupervisor(procs.Options{Dir: dir, Key: key, Topology: topologyOn(netPrefix, count), Prefer: devPrefer,
				Fsync: fsync, Durability: durability, Out: cmd.OutOrStdout()}).Run(cmd.Context())
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
