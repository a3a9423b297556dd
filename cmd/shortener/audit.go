package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/auditor"
	"shortener/events"
	"shortener/projections"
)

type auditOpts struct {
	nats      string
	endpoints []string
	keyFile   string
	key       string // the API key, when not from the environment or --api-key-file
	timeout   time.Duration
	jsonOut   bool
	creds     natsSecretFlags
	digits    string
}

func auditCmd() *cobra.Command {
	o := &auditOpts{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Replay the event log, show what every link pointed to and when, and verify every copy",
		Long: `Tools for auditors, who trust the event log and not the live stores. They read
the log (every region's stream LINKS_<REGION> and its mirrors LINKS_<X>_AT_<Y>)
through ordered consumers, which leave nothing behind on the servers, and ask
each region's API for its projection's digests (GET /api/v1/projection/digests,
with the API key). Without flags they talk to the dev cluster of make run.
Progress goes to stderr; errors are one line and a non-zero exit status.`,
	}
	pf := cmd.PersistentFlags()
	var urls []string
	for _, r := range devRegions {
		urls = append(urls, r.NATSURL())
	}
	pf.StringVar(&o.nats, "nats", strings.Join(urls, ","), "NATS URLs of the supercluster, comma-separated (any one reachable server will do)")
	pf.StringArrayVar(&o.endpoints, "endpoint", nil, "a region's API, NAME=http://host:port (repeatable; default the dev cluster's)")
	pf.StringVar(&o.keyFile, "api-key-file", "var/dev/api-key", "file holding the API key ($SHORTENER_API_KEY wins)")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole command")
	o.creds.register(pf, false)
	pf.Lookup("secrets").DefValue, o.creds.Secrets = "var/dev/secrets", cmp.Or(o.creds.Secrets, "var/dev/secrets")
	pf.BoolVar(&o.jsonOut, "json", false, "print JSON (lines) instead of tables")
	pf.StringVar(&o.digits, "digits", events.FormatDigits(events.DefaultDigits), "every region's digit, as the regions were given it (--digits): a replay checks events as the regions do")
	cmd.AddCommand(auditReplayCmd(o), auditHistoryCmd(o), auditAtCmd(o), auditVerifyCmd(o), auditExportCmd(o))
	return cmd
}

// openAuditor opens an auditor on the cluster o names, connecting as the
// audit tool user of o's secrets; progress goes to progress.
func openAuditor(ctx context.Context, o *auditOpts, progress io.Writer) (*auditor.Auditor, error) {
	// The drills and the backup commands open an auditor without the
	// flag: the default table, as the flag's default.
	digits, err := events.ParseDigits(cmp.Or(o.digits, events.FormatDigits(events.DefaultDigits)))
	if err != nil {
		return nil, usageError{fmt.Errorf("--digits: %w", err)}
	}
	endpoints := map[string]string{}
	if len(o.endpoints) == 0 {
		for _, r := range devRegions {
			endpoints[r.Name] = r.URL()
		}
	}
	for _, e := range o.endpoints {
		name, u, ok := strings.Cut(e, "=")
		if !ok || name == "" || !strings.HasPrefix(u, "http") {
			return nil, usageError{fmt.Errorf("--endpoint %q: want NAME=http://host:port", e)}
		}
		endpoints[name] = strings.TrimRight(u, "/")
	}
	cred, err := o.creds.client("audit")
	if err != nil {
		return nil, err
	}
	keys, err := o.creds.keys("audit")
	if err != nil {
		return nil, err
	}
	return auditor.Open(ctx, auditor.Options{NATS: o.nats, NATSOptions: cred.NATSOptions(), Endpoints: endpoints,
		APIKey: o.apiKey, Digits: digits, Keys: keys, JSON: o.jsonOut, Progress: progress})
}

// apiKey is o.key, else $SHORTENER_API_KEY, else the key in --api-key-file.
func (o *auditOpts) apiKey() (string, error) {
	if o.key != "" {
		return o.key, nil
	}
	if k := os.Getenv("SHORTENER_API_KEY"); k != "" {
		return k, nil
	}
	b, err := os.ReadFile(o.keyFile)
	if err != nil {
		return "", fmt.Errorf("API key: set $SHORTENER_API_KEY or --api-key-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// auditRun runs fn with an auditor, bounded by --timeout.
func auditRun(cmd *cobra.Command, o *auditOpts, fn func(ctx context.Context, a *auditor.Auditor) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	a, err := openAuditor(ctx, o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer a.Close()
	err = fn(ctx, a)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("gave up after --timeout %s: %w", o.timeout, err)
	}
	return err
}

// validCode is a usage error when code is malformed (checked once the
// auditor is open, as it always was).
func validCode(code string) error {
	if err := events.ValidateCode(code); err != nil {
		return usageError{fmt.Errorf("code %q: %v", code, err)}
	}
	return nil
}

func auditReplayCmd(o *auditOpts) *cobra.Command {
	var regions []string
	var until, storeDir, outDir string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Rebuild a region's projection from the log into a fresh store and compare it with the live one",
		Long: `Reads the copies of the log a region folds (its own stream and its mirrors),
up to exactly the checkpoints its live projection reports, into a fresh
Pebble store, and compares the digests; where they differ it names the
differing codes (per-bucket digests, then per-code row hashes). Without
--region it does so for every region. --store DIR compares with a stopped
region's store instead of its API. --until TIME|SEQ replays a past state
(producer time, or at most that sequence of every stream) and prints its
digest without comparing. Progress and the rate in events/s go to stderr
and stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u projections.Until
			if until != "" {
				var err error
				if u, err = projections.ParseUntil(until); err != nil {
					return usageError{err}
				}
			}
			if storeDir != "" && len(regions) != 1 {
				return usageError{errors.New("--store needs exactly one --region: the region whose store it is")}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor.Auditor) error {
				out := cmd.OutOrStdout()
				regions, err := a.Regions(regions)
				if err != nil {
					return err
				}
				if u.IsZero() && outDir == "" {
					return a.Compare(ctx, out, regions, storeDir)
				}
				if len(regions) != 1 && outDir != "" {
					return usageError{errors.New("--out keeps one store: give one --region")}
				}
				for _, reg := range regions {
					if err := a.ReplayBounded(ctx, out, reg, u, outDir); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&regions, "region", nil, "the region(s) to replay and compare (default every region)")
	cmd.Flags().StringVar(&until, "until", "", "replay up to a TIME (RFC 3339) or a SEQ (every stream), without comparing")
	cmd.Flags().StringVar(&storeDir, "store", "", "compare with this (stopped) region's store directory instead of its API")
	cmd.Flags().StringVar(&outDir, "out", "", "keep the replayed store in this new directory (with --until, or one region)")
	return cmd
}

func auditHistoryCmd(o *auditOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "history CODE",
		Short: "Every event of a link from every region, in fold order, with what it changed",
		Long: `Reads the events of CODE from every region's log (the subject links.<region>.CODE
of each origin's stream, or of a mirror when the origin is unreachable) and
prints them in fold order (producer time, then event id), each with its origin
region, stream and sequence, time, actor, payload, and the link's state after it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditRun(cmd, o, func(ctx context.Context, a *auditor.Auditor) error {
				if err := validCode(args[0]); err != nil {
					return err
				}
				steps, err := a.History(ctx, args[0])
				if err != nil {
					return err
				}
				return a.WriteHistory(cmd.OutOrStdout(), steps)
			})
		},
	}
}

func auditAtCmd(o *auditOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "at TIME [CODE]",
		Short: "What one code, or every code, pointed to at a moment",
		Long: `Folds the events with a producer time up to and including TIME (RFC 3339,
e.g. 2026-11-22T12:00:00Z; a date alone is midnight UTC) and prints what the
link redirected to then: active (status and URL), expired, deleted, or absent.
Without CODE it replays every origin's log up to TIME and prints every code.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := projections.ParseTime(args[0])
			if err != nil {
				return usageError{err}
			}
			code := ""
			if len(args) == 2 {
				code = args[1]
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor.Auditor) error {
				if code != "" {
					if err := validCode(code); err != nil {
						return err
					}
				}
				rows, err := a.At(ctx, t, code)
				if err != nil {
					return err
				}
				return a.WriteAt(cmd.OutOrStdout(), rows)
			})
		},
	}
}

func auditVerifyCmd(o *auditOpts) *cobra.Command {
	var rangeSize int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every mirror against its origin and every region's projection against a replay",
		Long: `1. Every mirror LINKS_<X>_AT_<Y> against its origin LINKS_<X>, up to the last
   sequence both hold: a SHA-256 per range of --range-size sequences on each
   side, then, in the first range that differs, record by record for the
   first differing sequence. A mirror behind its origin is not a mismatch
   (the lag is reported).
2. Every region's live projection against a replay of the copies it folds,
   up to its own checkpoints (as audit replay does), naming differing codes.
Exits non-zero on any mismatch, or if anything could not be checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rangeSize < 1 {
				return usageError{errors.New("--range-size must be at least 1")}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor.Auditor) error {
				return a.Verify(ctx, cmd.OutOrStdout(), rangeSize)
			})
		},
	}
	cmd.Flags().IntVar(&rangeSize, "range-size", 4096, "sequences per range digest")
	return cmd
}

func auditExportCmd(o *auditOpts) *cobra.Command {
	var reg, until, outPath string
	var skipHeartbeats bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the whole log as JSON lines, for external tools",
		Long: `Writes one JSON object per stored record: {"stream", "origin", "seq", "event"},
"event" being the envelope exactly as stored, every origin's stream in turn in
sequence order (or the copies one region holds, with --region). A record that
is not a valid event is written with "invalid" (why) and "data" instead.
--until bounds it by producer time or by sequence.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u projections.Until
			if until != "" {
				var err error
				if u, err = projections.ParseUntil(until); err != nil {
					return usageError{err}
				}
			}
			return auditRun(cmd, o, func(ctx context.Context, a *auditor.Auditor) error {
				out := cmd.OutOrStdout()
				if outPath != "" {
					f, err := os.Create(outPath)
					if err != nil {
						return err
					}
					defer f.Close()
					out = f
				}
				n, err := a.Export(ctx, out, reg, u, skipHeartbeats)
				if err == nil && outPath != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records to %s\n", n, outPath)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reg, "region", "", "export the copies this region holds instead of every origin's stream")
	cmd.Flags().StringVar(&until, "until", "", "up to a TIME (RFC 3339) or a SEQ of every stream")
	cmd.Flags().StringVarP(&outPath, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().BoolVar(&skipHeartbeats, "skip-heartbeats", false, "leave out RegionHeartbeat events")
	return cmd
}
