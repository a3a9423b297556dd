package drills

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"shortener/backup"
	"shortener/chaos/load"
)

// backupDrill: the seeds' backup and restore drill. Under load, a backup
// of every origin stream (JetStream snapshots) and every region's
// projection (Pebble checkpoints) is taken, restored into a fresh staging
// region (a NATS server of its own and the unpacked stores), and checked:
// every file against the manifest's SHA-256, the restored streams against
// the snapshots' states, and per region the number of links, unique and
// valid codes, no empty URL, the restored projection's digest against a
// replay of the restored log and of the live log up to the backup's
// sequences, and random codes against what the live region serves. The
// backup's size and its growth since the last one are reported. Serving
// must not notice: no failed request.
func backupDrill() *Drill {
	return &Drill{
		Name:       "backup",
		Title:      "Backup and restore",
		Hypothesis: "as for failover",
		Steady:     steady(90 * time.Second),
		Load: func(o Options) load.Config {
			return load.Config{Rate: o.Rate, CreateRatio: 0.2, Duration: 30 * time.Minute, Workers: 32, Seed: time.Now().UnixNano()}
		},
		Method: backupMethod,
		Rollback: func(ctx context.Context, r *Run) error {
			r.Logf("rollback", "nothing to undo: the staging region stopped with the check; the backup stays in %s", backupRoot(r))
			return nil
		},
		Judge: backupJudge,
	}
}

func backupRoot(r *Run) string { return filepath.Join(r.Opts.ReportDir, "backups") }

// journalWriter turns progress lines into journal entries.
type journalWriter struct {
	r     *Run
	phase string
	buf   []byte
}

func (w *journalWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.r.Logf(w.phase, "%s", line)
		}
		w.buf = w.buf[i+1:]
	}
}

var _ io.Writer = (*journalWriter)(nil)

func backupMethod(ctx context.Context, r *Run) error {
	if r.Cluster.BackupRestore == nil {
		return fmt.Errorf("this cluster cannot take backups")
	}
	r.Logf("method", "steady load for 5 s")
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	r.Logf("method", "backup of every stream and projection into %s, under load", backupRoot(r))
	out, err := r.Cluster.BackupRestore(ctx, backupRoot(r), &journalWriter{r: r, phase: "method"})
	if out != nil {
		r.set("backup", out)
	}
	if err != nil {
		return err
	}
	r.Logf("method", "backup %s: %d streams (%d messages), %d projections, %s in %s; restored into %s in %s",
		out.ID, out.Streams, out.Messages, out.Projections, backup.Human(out.Size), out.Took.Round(time.Millisecond), out.Staging, out.StageTook.Round(time.Millisecond))
	r.Logf("method", "load goes on for 3 s after the check")
	return sleep(ctx, 3*time.Second)
}

func backupJudge(ctx context.Context, r *Run) error {
	out, _ := r.get("backup").(*BackupOutcome)
	if out == nil {
		r.Check("backup taken and restored", "completed", "no backup", false)
		return nil
	}
	growth := "the first backup in " + backupRoot(r)
	if out.Previous != "" {
		growth = fmt.Sprintf("%+.1f KiB since %s", float64(out.Growth)/1024, out.Previous)
	}
	r.Check("backup taken under load", "completed; size and growth reported",
		fmt.Sprintf("%s: %s (%s), %d streams, %d messages, %d projections, %s", out.ID, backup.Human(out.Size), growth, out.Streams, out.Messages, out.Projections, out.Took.Round(time.Millisecond)),
		out.Size > 0 && out.Streams > 0 && out.Projections == len(r.Cluster.Regions))
	for _, c := range out.Checks {
		r.Check(c.Name, c.Target, c.Measured, c.Pass)
	}
	ops, failed := r.live.healthy("")
	r.Check("requests failed during the backup", "0", fmt.Sprintf("%d of %d", failed, ops), failed == 0 && ops > 0)
	return nil
}
