package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"shortener/auditor"
	"shortener/backup"
	"shortener/events"
	"shortener/procs"
)

// clusterFlags say which cluster a backup or a restore check talks to:
// the dev cluster on --dir, or --nats and --endpoint.
type clusterFlags struct {
	dir       string
	nats      string
	endpoints []string
	keyFile   string
	creds     natsSecretFlags
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "var/dev", "state directory of the running dev cluster (make run), when --nats is not given")
	fl.StringVar(&f.nats, "nats", "", "NATS URLs of the supercluster, comma-separated (default the dev cluster's)")
	fl.StringArrayVar(&f.endpoints, "endpoint", nil, "a region's API, NAME=http://host:port (repeatable; default the dev cluster's)")
	fl.StringVar(&f.keyFile, "api-key-file", "", "file holding the API key ($SHORTENER_API_KEY wins; default <dir>/api-key)")
	f.creds.register(fl, false)
	fl.Lookup("secrets").Usage = "folder of the NATS credentials (default <dir>/secrets; $SHORTENER_SECRETS)"
}

// liveCluster is a running cluster as the backup commands see it.
type liveCluster struct {
	nats        string
	endpoints   map[string]string
	clusterURLs map[string]string // cluster -> a NATS URL in it
	key         string
	keyFile     string
	creds       natsSecretFlags
}

// keys are the regions' signing keys, from the cluster's users table.
func (f *clusterFlags) keys() (*events.KeyRing, error) {
	creds := f.creds
	if creds.Secrets == "" {
		creds.Secrets = procs.SecretsDir(f.dir)
	}
	return creds.keys("restore")
}

func (f *clusterFlags) resolve() (*liveCluster, error) {
	lc := &liveCluster{endpoints: map[string]string{}, clusterURLs: map[string]string{}, keyFile: f.keyFile, creds: f.creds}
	if lc.creds.Secrets == "" {
		lc.creds.Secrets = procs.SecretsDir(f.dir)
	}
	if lc.keyFile == "" {
		lc.keyFile = filepath.Join(f.dir, "api-key")
	}
	if f.nats == "" || len(f.endpoints) == 0 {
		topo, err := procs.LoadTopology(f.dir)
		if err != nil {
			return nil, usageError{fmt.Errorf("%w, or give --nats and --endpoint", err)}
		}
		lc.clusterURLs = topo.ClusterURLs()
		if len(f.endpoints) == 0 {
			lc.endpoints = topo.Endpoints()
		}
		if f.nats == "" {
			lc.nats = strings.Join(topo.NATSURLs(), ",")
		}
	}
	if f.nats != "" {
		lc.nats = f.nats
	}
	for _, e := range f.endpoints {
		name, u, ok := strings.Cut(e, "=")
		if pu, err := url.Parse(u); !ok || name == "" || err != nil || pu.Host == "" {
			return nil, usageError{fmt.Errorf("--endpoint %q: want NAME=http://host:port", e)}
		}
		lc.endpoints[name] = strings.TrimRight(u, "/")
	}
	key, err := apiKey(lc.keyFile, false)
	if err != nil {
		return nil, err
	}
	lc.key = key
	return lc, nil
}

// natsOptions authenticate the backup tool's connections.
func (lc *liveCluster) natsOptions() ([]nats.Option, error) {
	cred, err := lc.creds.client("backup")
	if err != nil {
		return nil, err
	}
	return cred.NATSOptions(), nil
}

func (lc *liveCluster) connect() (*nats.Conn, error) {
	opts, err := lc.natsOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(lc.nats, append(opts, nats.Name("shortener backup"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w (is the cluster running: make run?)", lc.nats, err)
	}
	return nc, nil
}

// auditor opens an auditor on the cluster, as the audit tool user.
func (lc *liveCluster) auditor(ctx context.Context, progress io.Writer) (*auditor.Auditor, error) {
	var eps []string
	for n, u := range lc.endpoints {
		eps = append(eps, n+"="+u)
	}
	return openAuditor(ctx, &auditOpts{nats: lc.nats, endpoints: eps, keyFile: lc.keyFile, key: lc.key, creds: lc.creds}, progress)
}

// stageAndCheck restores the backup in dir into a fresh staging region
// and checks it (against the live cluster lc when not nil).
func stageAndCheck(ctx context.Context, dir, staging, host string, lc *liveCluster, keys *events.KeyRing, spot int, out, progress io.Writer) (auditor.Checks, *backup.Staging, error) {
	o := auditor.RestoreOptions{Backup: dir, Staging: staging, Host: host, Spot: spot, Keys: keys, Out: out, Progress: progress}
	if lc != nil {
		o.Live = func(ctx context.Context) (*auditor.Auditor, error) { return lc.auditor(ctx, progress) }
	}
	return auditor.CheckRestore(ctx, o)
}

func takeBackup(ctx context.Context, lc *liveCluster, root string, progress io.Writer) (*backup.Manifest, string, error) {
	nc, err := lc.connect()
	if err != nil {
		return nil, "", err
	}
	defer nc.Close()
	opts, err := lc.natsOptions()
	if err != nil {
		return nil, "", err
	}
	return backup.Take(ctx, nc, backup.Options{Endpoints: lc.endpoints, APIKey: lc.key, Root: root,
		Source: lc.nats, Progress: progress, ClusterURLs: lc.clusterURLs, NATSOptions: opts})
}

func backupCmd() *cobra.Command {
	var cf clusterFlags
	var out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up every origin stream (JetStream snapshots) and every region's projection (Pebble checkpoints)",
		Long: `Takes a backup of a running cluster into --out/<UTC time>: each region's
projection first (a Pebble checkpoint sent by GET /api/v1/admin/projection/checkpoint,
taken while the region serves), then a JetStream snapshot of every origin stream
(LINKS_*, CLICKS_*, the alias register KV_ALIASES; mirrors are copies of these
and are not backed up). manifest.json lists every file with its size and SHA-256,
each stream's state and each projection's sequences and digest, and the size and
growth against the previous backup in --out. The backup is written to
<id>.partial and renamed once whole. Progress goes to stderr.
Check a backup with: shortener restore DIR (into a fresh staging region).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc, err := cf.resolve()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			m, dir, err := takeBackup(ctx, lc, out, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			m.WriteSummary(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&out, "out", "var/backups", "directory of backups; this one goes to a new directory in it")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "bound on the whole backup")
	return cmd
}

func restoreCmd() *cobra.Command {
	var cf clusterFlags
	var staging, into, projRegion, dataDir, host string
	var streams []string
	var spot int
	var noLive, serve bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restore BACKUP_DIR",
		Short: "Restore a backup: into a fresh staging region and check it (default), into a NATS, or a region's projection into a data directory",
		Long: `Without --into or --projection: verifies every file of the backup against its
manifest, starts a fresh staging region (a NATS server of its own on --host, its
JetStream in --staging) and restores every stream into it, unpacks every region's
projection, and checks, per region: the number of links, unique and valid codes,
no empty URL, the restored projection's digest against a replay of the restored log
up to the sequences the backup recorded and, unless --no-live, against a replay of
the live log up to the same sequences (the live state at the backup's sequence),
and --spot random codes against what the live region serves. Exits 1 when a check
fails. --serve keeps the staging NATS server up until Ctrl-C (inspect it with
shortener audit --nats URL).

--into nats://...: restores the backed-up streams (all, or --stream NAME...) into
that NATS with their configuration as it was; a stream that exists is refused.
--projection REGION --data DIR: unpacks REGION's projection into DIR/projection,
to start a region on (DIR/projection must not exist or be empty).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			out, progress := cmd.OutOrStdout(), cmd.ErrOrStderr()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			switch {
			case into != "" && projRegion != "":
				return usageError{errors.New("--into and --projection are separate restores: give one")}
			case projRegion != "" || dataDir != "":
				if projRegion == "" || dataDir == "" {
					return usageError{errors.New("--projection REGION needs --data DIR, and --data needs --projection")}
				}
				m, err := backup.Verify(dir)
				if err != nil {
					return err
				}
				for _, p := range m.Projections {
					if p.Region == projRegion {
						target := filepath.Join(dataDir, "projection")
						if err := backup.UnpackProjection(filepath.Join(dir, p.File), target); err != nil {
							return err
						}
						fmt.Fprintf(out, "projection of %s from backup %s unpacked into %s: %d links, checkpoints %v\n", projRegion, m.ID, target, p.Links, p.Checkpoints)
						return nil
					}
				}
				return fmt.Errorf("backup %s holds no projection of %q", m.ID, projRegion)
			case into != "":
				creds := cf.creds
				if creds.Secrets == "" {
					creds.Secrets = procs.SecretsDir(cf.dir)
				}
				cred, err := creds.client("restore")
				if err != nil {
					return err
				}
				nc, err := nats.Connect(into, append(cred.NATSOptions(), nats.Name("shortener restore"), nats.Timeout(5*time.Second))...)
				if err != nil {
					return fmt.Errorf("connect to nats %s: %w", into, err)
				}
				defer nc.Close()
				if err := backup.RestoreStreams(ctx, nc, dir, streams, progress); err != nil {
					return err
				}
				fmt.Fprintf(out, "restored into %s\n", into)
				return nil
			}
			var lc *liveCluster
			if !noLive {
				var err error
				if lc, err = cf.resolve(); err != nil {
					return fmt.Errorf("%w (or --no-live to check the backup against itself only)", err)
				}
			}
			if staging == "" {
				m, err := backup.ReadManifest(dir)
				if err != nil {
					return err
				}
				staging = filepath.Join("var", "staging", m.ID+"-"+time.Now().UTC().Format("150405"))
			}
			keys, err := cf.keys()
			if err != nil {
				return err
			}
			res, st, err := stageAndCheck(ctx, dir, staging, host, lc, keys, spot, out, progress)
			if st != nil {
				defer st.Close()
			}
			if err != nil {
				return err
			}
			if serve {
				fmt.Fprintf(out, "staging NATS server at %s; Ctrl-C stops it\n", st.URL)
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				select {
				case <-sig:
				case <-ctx.Done():
				}
			}
			if !res.Passed() {
				return fmt.Errorf("the restored backup failed %d checks", res.Failed())
			}
			return nil
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&staging, "staging", "", "directory of the staging region (default var/staging/<backup id>-<time>)")
	f.StringVar(&host, "host", "127.0.0.1", "loopback address the staging NATS server listens on")
	f.IntVar(&spot, "spot", 20, "random codes per region compared with what the live region serves")
	f.BoolVar(&noLive, "no-live", false, "check the restored copy against itself only, not against a live cluster")
	f.BoolVar(&serve, "serve", false, "keep the staging NATS server up after the checks until Ctrl-C")
	f.StringVar(&into, "into", "", "restore the streams into this NATS instead of a staging region")
	f.StringSliceVar(&streams, "stream", nil, "with --into: only these streams")
	f.StringVar(&projRegion, "projection", "", "unpack this region's projection (with --data) instead")
	f.StringVar(&dataDir, "data", "", "with --projection: the region's data directory")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "bound on the whole restore")
	return cmd
}
