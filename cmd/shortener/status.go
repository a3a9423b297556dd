package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"shortener/status"
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
			var ts []status.Target
			for _, t := range targets {
				name, url, ok := strings.Cut(t, "=")
				if !ok {
					return usageError{fmt.Errorf("--region %q: want NAME=http://host:port", t)}
				}
				ts = append(ts, status.Target{Name: name, URL: url})
			}
			if len(ts) == 0 {
				for _, r := range devRegions {
					ts = append(ts, status.Target{Name: r.Name, URL: r.URL()})
				}
			}
			return status.Print(cmd.Context(), out, ts)
		},
	}
	cmd.Flags().StringArrayVar(&targets, "region", nil, "a region to ask, NAME=http://host:port (repeatable)")
	cmd.Flags().StringVar(&admin, "switch", devSwitchAdmin, "the DNS switch's admin address; empty to leave it out")
	return cmd
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	return status.GetJSON(ctx, c, url, v)
}

func shortErr(err error) string { return status.ShortErr(err) }
