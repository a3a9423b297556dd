// Command shortener runs regions of the link shortener, the dev cluster, and
// the operator tools (load, bench).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"shortener/flagconf"
	"shortener/procs"
	"shortener/telemetry"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line: one line and exit status 2.
type usageError struct{ error }

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "shortener: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

var regionEnvOnce sync.Once

// rootCmd returns the shortener command with every subcommand (the runbook
// test checks the runbooks' command lines against it).
func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "shortener",
		Short:         "An event-sourced link shortener that keeps redirecting through the loss of a region",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	region := regionCmd()
	regionEnvOnce.Do(func() { // children do not inherit these (procs.inherited)
		region.Flags().VisitAll(func(f *pflag.Flag) { procs.RegionFlagEnv[flagconf.EnvName("SHORTENER", f.Name)] = true })
	})
	root.AddCommand(region, devCmd(), chaosCmd(), statusCmd(), loadCmd(), benchCmd(), baselineCmd(), switchCmd(), auditCmd(), drillsCmd(), backupCmd(), restoreCmd(), healthcheckCmd(), requestCmd(), secretsCmd(), versionCmd())
	return root
}

// newLogger returns the JSON logger every process of shortener logs with.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("log level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build: version, commit and its time, Go (also the shortener_build_info metric)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), telemetry.Build())
			return err
		},
	}
}
