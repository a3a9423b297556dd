package backup_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"shortener/backup"
	"shortener/events"
	"shortener/projections"
	"shortener/region/regiontest"
	"shortener/replicator"
)

// TestBackupAndStagingRestore: a real region (embedded NATS, Pebble) takes
// writes while it is backed up; the backup restores into a fresh staging
// server; the restored streams hold what the snapshots recorded, and each
// restored projection equals a replay of the restored log up to the
// sequences it records. A second backup reports its growth; a damaged
// file and a restore over an existing stream are refused with a message.
func TestBackupAndStagingRestore(t *testing.T) {
	reg := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		body := map[string]any{"url": fmt.Sprintf("https://example.com/%d", i)}
		if i%30 == 0 {
			body["alias"] = fmt.Sprintf("al-%d", i)
		}
		r, err := c.Create(ctx, body)
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create %d: %v %d %s", i, err, r.Status, r.Raw)
		}
	}
	// Writers keep going during the backup.
	stop := make(chan struct{})
	var writers sync.WaitGroup
	var during atomic.Int64
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if r, err := c.Create(ctx, map[string]any{"url": fmt.Sprintf("https://example.com/during/%d/%d", w, i)}); err == nil && r.Status == http.StatusCreated {
					during.Add(1)
				}
			}
		}()
	}
	nc, err := nats.Connect(reg.NATSURL(), regiontest.NATSOptions("backup")...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	root := t.TempDir()
	// The projection checkpoint needs the API key; nothing is left behind.
	if _, _, err := backup.Take(ctx, nc, backup.Options{Endpoints: map[string]string{"us-east": reg.URL}, APIKey: "wrong", Root: root}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("backup with a wrong API key: %v; want a 401", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("a failed backup left %d entries in %s", len(entries), root)
	}
	var progress strings.Builder
	m, dir, err := backup.Take(ctx, nc, backup.Options{Endpoints: map[string]string{"us-east": reg.URL}, APIKey: regiontest.APIKey, Root: root, Progress: &progress})
	close(stop)
	writers.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, progress.String())
	}
	t.Logf("backup %s: %s; %d creates while it ran\n%s", m.ID, backup.Human(m.Size), during.Load(), progress.String())
	kinds := map[string]bool{}
	for _, s := range m.Streams {
		kinds[s.Kind] = true
		if s.Size == 0 {
			t.Errorf("stream %s: empty snapshot", s.Name)
		}
	}
	for _, k := range []string{"log", "clicks", "aliases"} {
		if !kinds[k] {
			t.Errorf("no %s stream in the backup: %+v", k, m.Streams)
		}
	}
	if len(m.Projections) != 1 || m.Projections[0].Links < 300 || m.Projections[0].Checkpoints["LINKS_US_EAST"] == 0 {
		t.Fatalf("projections: %+v", m.Projections)
	}
	if m.Previous != "" {
		t.Errorf("first backup names a previous one: %q", m.Previous)
	}

	staging := filepath.Join(t.TempDir(), "staging")
	st, err := backup.Stage(ctx, dir, staging, "127.0.0.1", &progress)
	if err != nil {
		t.Fatalf("stage: %v\n%s", err, progress.String())
	}
	defer st.Close()
	for _, s := range m.Streams {
		if got := st.Restored[s.Name]; got.LastSeq != s.State.LastSeq || got.Msgs != s.State.Msgs {
			t.Errorf("%s restored %+v; snapshot %+v", s.Name, got, s.State)
		}
	}
	// The restored projection is the restored log up to its checkpoints.
	p := m.Projections[0]
	store, err := projections.OpenReadOnly(st.Projections["us-east"])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := store.Digest()
	n, _ := store.Count()
	store.Close()
	if got != p.Digest || n != p.Links {
		t.Errorf("unpacked projection: %d links %.12s; manifest %d %.12s", n, got, p.Links, p.Digest)
	}
	rc, err := replicator.Connect(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := projections.Open(t.TempDir(), projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for stream, to := range p.Checkpoints {
		err := replicator.Read(ctx, rc, stream, replicator.ReadOptions{From: 1, To: to}, func(recs []events.Record) error {
			_, err := fresh.Apply(recs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if want, _ := fresh.Digest(); want != p.Digest {
		t.Errorf("replay of the restored log up to %v: digest %.12s; the backed-up projection %.12s", p.Checkpoints, want, p.Digest)
	}

	// Restoring over an existing stream is refused.
	if err := backup.RestoreStreams(ctx, st.Conn, dir, []string{"LINKS_US_EAST"}, &progress); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("restore over an existing stream: %v; want a refusal", err)
	}

	// A second backup reports the first and the growth.
	if _, err := c.Create(ctx, map[string]any{"url": "https://example.com/after"}); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return m.Started.Add(time.Minute) } // IDs are by the second
	m2, _, err := backup.Take(ctx, nc, backup.Options{Endpoints: map[string]string{"us-east": reg.URL}, APIKey: regiontest.APIKey, Root: root, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Previous != m.ID || m2.PrevSize != m.Size || m2.Growth != m2.Size-m.Size {
		t.Errorf("second backup: previous %q (%d B), growth %d; want %q (%d B), %d", m2.Previous, m2.PrevSize, m2.Growth, m.ID, m.Size, m2.Size-m.Size)
	}

	// A damaged file is named.
	snap := filepath.Join(dir, m.Streams[0].File)
	data, _ := os.ReadFile(snap)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(snap, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(dir); err == nil || !strings.Contains(err.Error(), m.Streams[0].File) {
		t.Errorf("verify of a damaged backup: %v; want an error naming %s", err, m.Streams[0].File)
	}
	if _, err := backup.Stage(ctx, dir, filepath.Join(t.TempDir(), "s2"), "127.0.0.1", nil); err == nil {
		t.Error("a damaged backup was staged")
	}
}
