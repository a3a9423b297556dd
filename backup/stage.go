package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"shortener/replicator"
)

// Staging is a fresh staging region a backup was restored into: a NATS
// server of its own (JetStream in Dir/nats, a random port on Host) holding
// the backed-up streams, and each region's projection unpacked from its
// checkpoint into Dir/projections/<region>.
type Staging struct {
	Dir         string
	URL         string
	Server      *server.Server
	Conn        *nats.Conn
	Manifest    *Manifest
	Projections map[string]string // region -> store directory
	Restored    map[string]replicator.StreamState
}

// Close stops the staging server; the directory stays.
func (s *Staging) Close() {
	if s.Conn != nil {
		s.Conn.Close()
	}
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
}

// Stage verifies the backup in dir against its manifest and restores it
// into a fresh staging region in stagingDir (which must not exist or be
// empty), listening on host (a loopback address). Streams are restored
// with one replica and no placement (a lone server); each restored
// stream's state must equal the state its snapshot recorded.
func Stage(ctx context.Context, dir, stagingDir, host string, progress io.Writer) (_ *Staging, err error) {
	if progress == nil {
		progress = io.Discard
	}
	m, err := Verify(dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "backup %s verified: %d streams, %d projections, %s, every SHA-256 sum matches\n", m.ID, len(m.Streams), len(m.Projections), human(m.Size))
	if entries, err := os.ReadDir(stagingDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("staging directory %s is not empty", stagingDir)
	}
	st := &Staging{Dir: stagingDir, Manifest: m, Projections: map[string]string{}, Restored: map[string]replicator.StreamState{}}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	opts := &server.Options{ServerName: "staging", Host: host, Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: filepath.Join(stagingDir, "nats"), MaxPayload: 8 << 20}
	if st.Server, err = server.NewServer(opts); err != nil {
		return nil, fmt.Errorf("staging server: %w", err)
	}
	go st.Server.Start()
	if !st.Server.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("staging server not ready in 10 s")
	}
	st.URL = st.Server.ClientURL()
	if st.Conn, err = nats.Connect(st.URL, nats.Name("shortener restore (staging)")); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "staging NATS server at %s (JetStream in %s)\n", st.URL, opts.StoreDir)
	for _, s := range m.Streams {
		cfg, err := Standalone(s.Config)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.Name, err)
		}
		got, err := restoreFile(ctx, st.Conn, progress, filepath.Join(dir, s.File), s, cfg)
		if err != nil {
			return nil, err
		}
		if got.Msgs != s.State.Msgs || got.LastSeq != s.State.LastSeq || (got.Msgs > 0 && got.FirstSeq != s.State.FirstSeq) {
			return nil, fmt.Errorf("stream %s restored with %d messages #%d..#%d; the backup recorded %d #%d..#%d",
				s.Name, got.Msgs, got.FirstSeq, got.LastSeq, s.State.Msgs, s.State.FirstSeq, s.State.LastSeq)
		}
		st.Restored[s.Name] = got
	}
	for _, p := range m.Projections {
		d := filepath.Join(stagingDir, "projections", p.Region)
		if err := UnpackProjection(filepath.Join(dir, p.File), d); err != nil {
			return nil, fmt.Errorf("projection of %s: %w", p.Region, err)
		}
		st.Projections[p.Region] = d
		fmt.Fprintf(progress, "projection %-9s unpacked into %s\n", p.Region, d)
	}
	return st, nil
}

// restoreFile restores one stream from its snapshot file.
func restoreFile(ctx context.Context, nc *nats.Conn, progress io.Writer, path string, s StreamFile, cfg json.RawMessage) (replicator.StreamState, error) {
	f, err := os.Open(path)
	if err != nil {
		return replicator.StreamState{}, err
	}
	defer f.Close()
	var sent atomic.Int64
	stop := ticker(progress, func() string {
		return fmt.Sprintf("restore %s: %s of %s", s.Name, human(sent.Load()), human(s.Size))
	})
	begin := time.Now()
	got, err := replicator.Restore(ctx, nc, cfg, s.State, f, func(n int64) { sent.Store(n) })
	stop()
	if err != nil {
		return replicator.StreamState{}, err
	}
	fmt.Fprintf(progress, "restored %-22s %d messages #%d..#%d (%s)\n", s.Name, got.Msgs, got.FirstSeq, got.LastSeq, time.Since(begin).Round(time.Millisecond))
	return got, nil
}

// RestoreStreams restores the backed-up streams named (all when names is
// empty) into the NATS behind nc with their configuration as it was
// (placement and replicas included: a cluster shaped like the backed-up
// one). It refuses a stream that exists.
func RestoreStreams(ctx context.Context, nc *nats.Conn, dir string, names []string, progress io.Writer) error {
	m, err := Verify(dir)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	done := 0
	for _, s := range m.Streams {
		if len(names) > 0 && !want[s.Name] {
			continue
		}
		delete(want, s.Name)
		got, err := restoreFile(ctx, nc, progress, filepath.Join(dir, s.File), s, s.Config)
		if err != nil {
			return err
		}
		if got.LastSeq != s.State.LastSeq {
			return fmt.Errorf("stream %s restored up to #%d; the backup recorded #%d", s.Name, got.LastSeq, s.State.LastSeq)
		}
		done++
	}
	for n := range want {
		return fmt.Errorf("no stream %s in backup %s", n, m.ID)
	}
	if done == 0 {
		return fmt.Errorf("backup %s holds no stream", m.ID)
	}
	return nil
}

// UnpackProjection unpacks a projection checkpoint's tar into dir, which
// must not exist or be empty: the store of a region to be started on it.
func UnpackProjection(tarPath, dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty: a projection is there already", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return Untar(f, dir)
}

// Standalone returns cfg for a lone server: one replica, no placement.
func Standalone(cfg json.RawMessage) (json.RawMessage, error) {
	var c map[string]any
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, fmt.Errorf("stream configuration: %w", err)
	}
	delete(c, "placement")
	c["num_replicas"] = 1
	return json.Marshal(c)
}
