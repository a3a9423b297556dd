package drills

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"shortener/auditor"
	"shortener/backup"
	"shortener/dnsswitch"
	"shortener/events"
	"shortener/procs"
	"shortener/secrets"
)

// OpenDev is the dev cluster running on dir (make run) as the drills see
// it: DevCluster, with the switch's admin API for Drain and SwitchAnswer,
// audit verify as the audit tool user, and the backup drill's backup and
// restore into staging as the backup tool user. It reads the cluster's
// topology, API key and secrets; it connects to nothing until a drill
// asks.
func OpenDev(dir string) (*Cluster, error) {
	topo, err := procs.LoadTopology(dir)
	if err != nil {
		return nil, err
	}
	key, err := procs.APIKey(filepath.Join(dir, "api-key"), false)
	if err != nil {
		return nil, err
	}
	d := devTools{dir: dir, topo: topo, key: key}
	c := DevCluster(dir, topo, key)
	sw := &dnsswitch.Client{Addr: topo.SwitchAdmin, APIKey: key, HTTP: &http.Client{Timeout: 5 * time.Second}}
	c.Drain = func(ctx context.Context, name string, on bool) error { return sw.Drain(ctx, name, on) }
	c.SwitchAnswer = sw.Answer
	c.Verify = d.verify
	c.BackupRestore = d.backupRestore
	return c, nil
}

// devTools reach the dev cluster on dir as the operator tools do.
type devTools struct {
	dir  string
	topo procs.Topology
	key  string
}

// creds loads user's NATS credentials from the cluster's secrets.
func (d devTools) creds(user string) (*secrets.Client, error) {
	return secrets.LoadClient(user, secrets.Paths{Dir: procs.SecretsDir(d.dir)}.Resolve(user))
}

// keys are the regions' signing keys, from the cluster's users table.
func (d devTools) keys() (*events.KeyRing, error) {
	users, err := secrets.LoadUsers(secrets.Paths{Dir: procs.SecretsDir(d.dir)}.Resolve("audit").Users)
	if err != nil {
		return nil, err
	}
	return users.KeyRing()
}

// auditor opens an auditor on the cluster as the audit tool user.
func (d devTools) auditor(ctx context.Context, progress io.Writer) (*auditor.Auditor, error) {
	cred, err := d.creds("audit")
	if err != nil {
		return nil, err
	}
	keys, err := d.keys()
	if err != nil {
		return nil, err
	}
	return auditor.Open(ctx, auditor.Options{NATS: strings.Join(d.topo.NATSURLs(), ","), NATSOptions: cred.NATSOptions(),
		Endpoints: d.topo.Endpoints(), APIKey: func() (string, error) { return d.key, nil }, Keys: keys, Progress: progress})
}

// verify runs audit verify, bounded by 2 minutes, and returns its report.
func (d devTools) verify(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a, err := d.auditor(ctx, io.Discard)
	if err != nil {
		return "", err
	}
	defer a.Close()
	var out bytes.Buffer
	err = a.Verify(ctx, &out, 4096)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("audit verify did not finish in 2 min: %w", err)
	}
	return out.String(), err
}

// backupRestore takes a backup into root, restores it into a staging
// region beside it and checks it against the live cluster. The staging
// copy is removed when every check passed, kept otherwise.
func (d devTools) backupRestore(ctx context.Context, root string, log io.Writer) (*BackupOutcome, error) {
	cred, err := d.creds("backup")
	if err != nil {
		return nil, err
	}
	urls := strings.Join(d.topo.NATSURLs(), ",")
	nc, err := nats.Connect(urls, append(cred.NATSOptions(), nats.Name("shortener drills backup"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("backup: connect to nats %s: %w", urls, err)
	}
	defer nc.Close()
	begin := time.Now()
	m, bdir, err := backup.Take(ctx, nc, backup.Options{Endpoints: d.topo.Endpoints(), APIKey: d.key, Root: root,
		Source: urls, Progress: log, ClusterURLs: d.topo.ClusterURLs(), NATSOptions: cred.NATSOptions()})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	out := &BackupOutcome{ID: m.ID, Dir: bdir, Size: m.Size, Growth: m.Growth, Previous: m.Previous,
		Streams: len(m.Streams), Projections: len(m.Projections), Took: time.Since(begin), Messages: m.Messages()}
	out.Staging = filepath.Join(root, "staging-"+m.ID)
	keys, err := d.keys()
	if err != nil {
		return nil, err
	}
	begin = time.Now()
	res, st, err := auditor.CheckRestore(ctx, auditor.RestoreOptions{Backup: bdir, Staging: out.Staging, Host: "127.0.0.1",
		Spot: 20, Keys: keys, Out: io.Discard, Progress: log,
		Live: func(ctx context.Context) (*auditor.Auditor, error) { return d.auditor(ctx, log) }})
	if st != nil {
		st.Close()
	}
	out.StageTook = time.Since(begin)
	for _, c := range res {
		out.Checks = append(out.Checks, Criterion(c))
	}
	if err != nil {
		return out, fmt.Errorf("restore into staging: %w", err)
	}
	if res.Passed() {
		os.RemoveAll(out.Staging) // a copy of the backup; kept when a check failed
	}
	return out, nil
}
