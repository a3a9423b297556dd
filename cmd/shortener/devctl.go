package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"shortener/dnsswitch"
	"shortener/procs"
	"shortener/status"
)

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func devDownCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down REGION",
		Short: "SIGKILL a region of the running dev cluster (a crash, not a shutdown); what make region-down runs",
		Args:  exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := procs.LoadTopology(dir)
			if err != nil {
				return err
			}
			if _, err := topologyRegion(topo, name); err != nil {
				return err
			}
			// What the others would lose if this region never came back: the
			// RPO they report just before the kill.
			var others []status.Target
			for _, r := range topo.Regions {
				others = append(others, status.Target{Name: r.Name, URL: r.URL()})
			}
			rpos := status.ReportedRPOs(ctx, others, name)
			p, err := procs.Control(ctx, dir, "/down/"+name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  %s killed with SIGKILL (pid %d) at %s\n", stamp(p.At), name, p.PID, p.At.UTC().Format(time.RFC3339Nano))
			for _, r := range rpos {
				fmt.Fprintf(out, "              RPO %s reported for %s just before: %s\n", r.Region, name, r.Text)
			}
			to, at, err := waitSwitch(ctx, topo.SwitchAdmin, name, func(answer string) bool { return answer != name }, 15*time.Second)
			if err != nil {
				fmt.Fprintf(out, "              the switch has not moved %s's clients: %v\n", name, err)
				return nil
			}
			fmt.Fprintf(out, "%s  the switch answers %s's clients with %s (%.1f s after the kill; clients follow within the 1 s TTL)\n", stamp(at), name, to, at.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	return cmd
}

func devUpCmd() *cobra.Command {
	var dir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "up REGION",
		Short: "Start a killed region of the running dev cluster again on the same state; what make region-up runs",
		Args:  exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := procs.LoadTopology(dir)
			if err != nil {
				return err
			}
			r, err := topologyRegion(topo, name)
			if err != nil {
				return err
			}
			p, err := procs.Control(ctx, dir, "/up/"+name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  %s started (pid %d) on its state in %s\n", stamp(p.At), name, p.PID, filepath.Join(dir, name))
			readyAt, err := procs.WaitReadyVerbose(ctx, out, r.URL()+"/readyz", p.At, timeout)
			if err != nil {
				return fmt.Errorf("%s: %w (see %s)", name, err, filepath.Join(dir, name, "region.log"))
			}
			fmt.Fprintf(out, "%s  %s ready: caught up with the other regions (%.1f s after the start)\n", stamp(readyAt), name, readyAt.Sub(p.At).Seconds())
			_, at, err := waitSwitch(ctx, topo.SwitchAdmin, name, func(answer string) bool { return answer == name }, 30*time.Second)
			if err != nil {
				fmt.Fprintf(out, "              the switch does not answer %s's clients with %s yet: %v (make status)\n", name, name, err)
				return nil
			}
			fmt.Fprintf(out, "%s  the switch answers %s's clients with %s again (%.1f s after the start)\n", stamp(at), name, name, at.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for the region to be ready")
	return cmd
}

// waitSwitch polls the switch until its answer to home's clients
// satisfies ok, and returns it and when it was seen.
func waitSwitch(ctx context.Context, admin, home string, ok func(string) bool, timeout time.Duration) (string, time.Time, error) {
	return (&dnsswitch.Client{Addr: admin, HTTP: &http.Client{Timeout: time.Second}}).WaitAnswer(ctx, home, ok, timeout)
}

func devStopCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "stop REGION",
		Short: "Stop a region of the running dev cluster gracefully (SIGTERM: drain, close); what make region-stop runs",
		Long: `Sends SIGTERM to a region's process: it stops taking connections, lets the
requests in flight finish (up to 5 s), closes its projection and NATS servers
and exits. A process still running 15 s later is SIGKILLed (reported as forced).
Drain it at the switch first (make region-drain) so that its clients are
elsewhere; make region-up starts it again.`,
		Args: exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := procs.LoadTopology(dir)
			if err != nil {
				return err
			}
			if _, err := topologyRegion(topo, name); err != nil {
				return err
			}
			p, err := procs.Control(ctx, dir, "/stop/"+name)
			if err != nil {
				return err
			}
			how := "exited"
			if p.Forced {
				how = "did not exit within 15 s: SIGKILLed"
			}
			fmt.Fprintf(out, "%s  %s stopped with SIGTERM (pid %d): %s after %.2f s\n", stamp(p.At), name, p.PID, how, p.Exited.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	return cmd
}
