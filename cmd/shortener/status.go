package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"shortener/events"
	"shortener/region"
)

func statusCmd() *cobra.Command {
	var targets []string
	var admin string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print every region's view of every other: lag, mirror state and the RPO a failover would have now",
		Long: `Prints what the DNS switch answers each region's clients, and the health
it sees. Then asks each region for GET /api/v1/regions and prints one row per (region, origin):
how many of the origin's events the region lacks (LAG), how old the newest
origin event it holds is, whether the mirror is live, and the RPO bound of
failing the origin's clients over to this region now. Without --region it
asks the dev cluster of make run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if admin != "" {
				if err := printSwitch(cmd.Context(), out, admin, 5); err != nil {
					fmt.Fprintf(out, "SWITCH: %v\n", err)
				}
				fmt.Fprintln(out)
			}
			if len(targets) == 0 {
				for _, r := range devRegions {
					targets = append(targets, r.Name+"=http://"+r.Host+":8080")
				}
			}
			return printStatus(cmd.Context(), out, targets)
		},
	}
	cmd.Flags().StringArrayVar(&targets, "region", nil, "a region to ask, NAME=http://host:port (repeatable)")
	cmd.Flags().StringVar(&admin, "switch", devSwitchAdmin, "the DNS switch's admin address; empty to leave it out")
	return cmd
}

func printStatus(ctx context.Context, out io.Writer, targets []string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tORIGIN\tHELD SEQ\tLAG EVENTS\tLAG\tMIRROR\tRPO EVENTS\tRPO\tALIASES\tDURABILITY")
	down := 0
	var refused []string
	for _, t := range targets {
		name, url, ok := strings.Cut(t, "=")
		if !ok {
			return usageError{fmt.Errorf("--region %q: want NAME=http://host:port", t)}
		}
		var rr region.RegionsResponse
		err := getJSON(ctx, client, url+"/api/v1/regions", &rr)
		if err != nil {
			fmt.Fprintf(tw, "%s\tUNREACHABLE\t\t\t\t\t\t\t\t%v\n", name, shortErr(err))
			down++
			continue
		}
		if len(rr.Rejected) > 0 {
			var parts []string
			for _, reason := range events.Reasons {
				if n := rr.Rejected[reason]; n > 0 {
					parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
				}
			}
			refused = append(refused, fmt.Sprintf("%s: REFUSED EVENTS %s (docs/runbooks/events-rejected.md)", rr.Region, strings.Join(parts, " ")))
		}
		for _, stream := range slices.Sorted(maps.Keys(rr.Halted)) {
			h := rr.Halted[stream]
			refused = append(refused, fmt.Sprintf("%s: STREAM HALTED %s at #%d (%s): upgrade the binary (docs/runbooks/stream-halted.md)", rr.Region, stream, h.Seq, h.Reason))
		}
		for _, o := range rr.Origins {
			mirror := "live"
			switch {
			case o.Local:
				mirror = "(own)"
			case o.MirrorActive: // live
			case o.MirrorCopying:
				mirror = "CATCHING UP" // moving, its newest event not yet recent
			case o.MirrorActiveAgo < 0:
				mirror = "never"
			default:
				mirror = fmt.Sprintf("DOWN %.0fs", o.MirrorActiveAgo)
			}
			if o.OriginBehind {
				mirror += " ORIGIN BEHIND" // the origin lost events its mirror holds
			}
			if o.OriginDiverged {
				mirror += fmt.Sprintf(" DIVERGED #%d", o.DivergedAt) // and took others at their sequences
			}
			switch {
			case o.MirrorError == "":
			case o.MirrorActive || o.MirrorCopying:
				// Events arrive, so what nats-server reports is a warning:
				// "stalled on flow control" on a moving mirror means its
				// write backlog delays the flow-control reply.
				mirror += " (warn: " + o.MirrorError + ")"
			default:
				mirror += " ERR " + o.MirrorError
			}
			lag, rpo, rpoS, lagS := "-", "-", "-", "-"
			if !o.Local {
				lag = fmt.Sprint(o.LagEvents)
				if !o.OriginReachable {
					lag += "+?"
				}
				rpo, rpoS, lagS = fmt.Sprint(o.RPOEvents), fmt.Sprintf("%.1fs", o.RPOSeconds), fmt.Sprintf("%.1fs", o.LagSeconds)
				if !o.RPOKnown {
					rpo, rpoS = "UNKNOWN", "UNKNOWN" // never seen the origin and a live mirror together
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rr.Region, o.Origin, o.LastSeq, lag, lagS, mirror, rpo, rpoS, rr.AliasRegister, rr.Durability)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range refused {
		fmt.Fprintln(out, line)
	}
	if down == len(targets) {
		return fmt.Errorf("no region answered: is the cluster running (make run)?")
	}
	return nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
