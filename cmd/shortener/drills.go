package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/drills"
)

// drillsCmd is `shortener drills`: the DR drills against the running dev
// cluster (make drills, make drill NAME=...), with a DR report.
func drillsCmd() *cobra.Command {
	var dir, reportDir string
	var names []string
	o := drills.Options{}
	cmd := &cobra.Command{
		Use:   "drills",
		Short: "Run the DR drills against the running dev cluster and write a DR report (Markdown and JSON)",
		Long: `Runs the DR drills (` + strings.Join(drills.Names(), ", ") + `) one after the other against the dev
cluster running on --dir (make run), under load from shortener load through the
DNS switch. Each drill checks its steady state, runs its method watched by its
abort condition (the healthy regions' error budget burning too fast), always
rolls back, and measures its criteria. The journal goes to stdout as it
happens; the report to --report-dir/dr-report.{md,json}, with the load
histories next to it. Exits 1 when a drill does not pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, n := range names {
				ok := false
				for _, k := range drills.Names() {
					ok = ok || n == k
				}
				if !ok {
					return usageError{fmt.Errorf("--drill %q: the drills are %s", n, strings.Join(drills.Names(), ", "))}
				}
			}
			out := cmd.OutOrStdout()
			cl, err := drills.OpenDev(dir)
			if err != nil {
				return err
			}
			o.ReportDir, o.Log = reportDir, out
			rep, err := drills.RunDrills(cmd.Context(), cl, names, o)
			if err != nil {
				return err
			}
			jp, mp, err := rep.Write(reportDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			rep.WriteMarkdown(out)
			fmt.Fprintf(out, "DR report: %s, %s\n", mp, jp)
			if !rep.Passed {
				var failed []string
				for _, d := range rep.Drills {
					if d.Status != "pass" {
						failed = append(failed, d.Name+" "+d.Status)
					}
				}
				return fmt.Errorf("DR drills failed: %s (report %s)", strings.Join(failed, ", "), mp)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "var/dev", "state directory of the running dev cluster")
	f.StringVar(&reportDir, "report-dir", "var/drills", "where the DR report and the load histories go")
	f.StringSliceVar(&names, "drill", nil, "run only these drills ("+strings.Join(drills.Names(), ", ")+"); default all")
	f.StringVar(&o.Region, "region", "", "the region the drills act on (default the first)")
	f.Float64Var(&o.Rate, "rate", 240, "load in operations per second over all clients")
	f.DurationVar(&o.RTOTarget, "rto-target", 5*time.Second, "a dead region's clients must be served again within this")
	f.DurationVar(&o.RefillTarget, "refill-target", 10*time.Second, "the cache hit rate must be back above 80% within this")
	f.Float64Var(&o.SLO, "slo", 0.9999, "redirect success objective of the healthy regions (the error budget is 1-SLO)")
	f.DurationVar(&o.MethodTimeout, "method-timeout", 4*time.Minute, "bound on each drill's method (then it fails and rolls back)")
	f.Float64Var(&o.BurnAbort, "abort-burn", 10, "abort a drill when the healthy regions burn the error budget this many times faster than allowed")
	return cmd
}

// verifyDev runs audit verify on the dev cluster under dir.
func verifyDev(ctx context.Context, dir string) (string, error) {
	dc, err := drills.OpenDev(dir)
	if err != nil {
		return "", err
	}
	return dc.Verify(ctx)
}
