package main

import (
	"os"

	"github.com/spf13/cobra"

	"shortener/bench/tracestat"
)

func benchTraceCmd() *cobra.Command {
	var o tracestat.Options
	var rows int
	var perSecond bool
	cmd := &cobra.Command{
		Use:   "trace FILE",
		Short: "Where a region's time went: summarise an execution trace (shortener region --exec-trace FILE)",
		Long: `Reads an execution trace and prints, for the window --from..--to: the share
of a core each kind of goroutine ran (by the function it was started with),
the garbage collector's phases and pauses, how long request goroutines
waited to run once runnable, and the stretches over 1 ms one goroutine ran
without a break, by what it was doing. --per-second prints the request
goroutines' share of a core in every second instead, to find the window of
a benchmark's phase. On a busy host every long slice is overstated: a
goroutine "runs" while the OS has taken its CPU away.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			s, err := tracestat.Summarize(f, o)
			if err != nil {
				return err
			}
			if perSecond {
				s.WriteSeconds(cmd.OutOrStdout())
				return nil
			}
			s.WriteText(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.From, "from", 0, "start of the window, since the trace's first event")
	fl.DurationVar(&o.To, "to", 0, "end of the window (0: the trace's end)")
	fl.StringVar(&o.Request, "request", "net/http.(*conn).serve", "root function of the goroutines that serve requests")
	fl.IntVar(&rows, "rows", 15, "rows of each table")
	fl.BoolVar(&perSecond, "per-second", false, "print the request goroutines' share of a core per second")
	return cmd
}
