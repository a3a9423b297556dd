package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"shortener/projections"
	"shortener/replicator"
)

// Options says what to back up and where.
type Options struct {
	// Endpoints are the regions' APIs (region name -> base URL) whose
	// projections are checkpointed; APIKey authenticates.
	Endpoints map[string]string
	APIKey    string
	// Root is the directory of backups; this one goes to Root/<ID>.
	Root string
	// Source describes the cluster in the manifest.
	Source string
	// Progress receives a line per second during long transfers and a
	// line per file; nil for none.
	Progress io.Writer
	// Now is the clock (for the ID); default time.Now.
	Now func() time.Time
	// ClusterURLs are NATS URLs by cluster name (a region, "global"): a
	// stream placed in one of them is snapshotted through a connection to
	// it. A snapshot's chunks go to an inbox whose interest does not cross
	// a gateway at once, and the server waits 2 s for it.
	ClusterURLs map[string]string
	// NATSOptions authenticate the connections to ClusterURLs (the
	// backup user's credentials, secrets.Client.NATSOptions).
	NATSOptions []nats.Option
}

// Take backs up every region's projection and then every origin stream
// reachable through nc into Root/<ID>, written as Root/<ID>.partial and
// renamed once complete, and returns the manifest and the directory.
func Take(ctx context.Context, nc *nats.Conn, o Options) (*Manifest, string, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	start := o.Now().UTC()
	m := &Manifest{Version: ManifestVersion, ID: start.Format("20060102T150405Z"), Started: start, Source: o.Source}
	final := filepath.Join(o.Root, m.ID)
	if _, err := os.Stat(final); err == nil {
		return nil, "", fmt.Errorf("%s exists: one backup per second at most", final)
	}
	dir := final + ".partial"
	if err := os.MkdirAll(filepath.Join(dir, "streams"), 0o755); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "projections"), 0o755); err != nil {
		return nil, "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()

	// Projections first: the streams snapshotted afterwards then hold
	// every event a projection applied.
	regions := make([]string, 0, len(o.Endpoints))
	for r := range o.Endpoints {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		p, err := fetchProjection(ctx, o, dir, r)
		if err != nil {
			return nil, "", fmt.Errorf("projection of %s: %w", r, err)
		}
		m.Projections = append(m.Projections, p)
		fmt.Fprintf(o.Progress, "projection %-9s %s, %d links, checkpoints %s (%s)\n", r, human(p.Size), p.Links, cpString(p.Checkpoints), p.Took.Round(time.Millisecond))
	}

	streams, err := replicator.ListStreams(ctx, nc)
	if err != nil {
		return nil, "", fmt.Errorf("list streams: %w", err)
	}
	var names []string
	placed := map[string]string{} // stream -> cluster
	for _, s := range streams {
		if s.Mirror {
			m.Mirrors = append(m.Mirrors, s.Name)
			continue
		}
		names = append(names, s.Name)
		if s.Cluster != "" {
			placed[s.Name] = s.Cluster
		}
	}
	sort.Strings(names)
	sort.Strings(m.Mirrors)
	if !slices.ContainsFunc(names, func(n string) bool { return StreamKind(n) == "log" }) {
		return nil, "", fmt.Errorf("no event log (LINKS_* streams) in this NATS")
	}
	conns := map[string]*nats.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, name := range names {
		via := nc
		if u, ok := o.ClusterURLs[placed[name]]; ok {
			if conns[u] == nil {
				c, err := nats.Connect(u, append(slices.Clone(o.NATSOptions), nats.Name("shortener backup"), nats.Timeout(5*time.Second))...)
				if err != nil {
					return nil, "", fmt.Errorf("connect to %s's NATS %s: %w", placed[name], u, err)
				}
				conns[u] = c
			}
			via = conns[u]
		}
		s, err := snapshotTo(ctx, via, o.Progress, dir, name)
		if err != nil {
			return nil, "", err
		}
		m.Streams = append(m.Streams, s)
	}

	for _, s := range m.Streams {
		m.Size += s.Size
	}
	for _, p := range m.Projections {
		m.Size += p.Size
	}
	if prev, ok := previous(o.Root, m.ID); ok {
		m.Previous, m.PrevSize, m.Growth = prev.ID, prev.Size, m.Size-prev.Size
	}
	m.Finished = o.Now().UTC()
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileSync(filepath.Join(dir, "manifest.json"), append(data, '\n')); err != nil {
		return nil, "", err
	}
	if err := os.Rename(dir, final); err != nil {
		return nil, "", err
	}
	ok = true
	return m, final, nil
}

// snapshotTo writes stream's snapshot to dir/streams/<name>.snap.
func snapshotTo(ctx context.Context, nc *nats.Conn, progress io.Writer, dir, name string) (StreamFile, error) {
	rel := filepath.Join("streams", name+".snap")
	f, err := os.Create(filepath.Join(dir, rel))
	if err != nil {
		return StreamFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	var got atomic.Int64
	stop := ticker(progress, func() string { return fmt.Sprintf("stream %s: %s so far", name, human(got.Load())) })
	begin := time.Now()
	cfg, state, err := replicator.Snapshot(ctx, nc, name, io.MultiWriter(f, h), func(n int64) { got.Store(n) })
	stop()
	if err != nil {
		return StreamFile{}, err
	}
	if err := f.Sync(); err != nil {
		return StreamFile{}, err
	}
	s := StreamFile{Name: name, Kind: StreamKind(name), Config: cfg, State: state, File: filepath.ToSlash(rel),
		Size: got.Load(), SHA256: hex.EncodeToString(h.Sum(nil)), Took: time.Since(begin)}
	fmt.Fprintf(progress, "stream %-22s %s, %d messages #%d..#%d (%s)\n", name, human(s.Size), state.Msgs, state.FirstSeq, state.LastSeq, s.Took.Round(time.Millisecond))
	return s, nil
}

// fetchProjection downloads region's projection checkpoint into
// dir/projections/<region>.tar and reads what it holds.
func fetchProjection(ctx context.Context, o Options, dir, region string) (ProjFile, error) {
	begin := time.Now()
	base := strings.TrimRight(o.Endpoints[region], "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/admin/projection/checkpoint", nil)
	if err != nil {
		return ProjFile{}, err
	}
	req.Header.Set("X-Api-Key", o.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ProjFile{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return ProjFile{}, fmt.Errorf("%s: %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	if got := resp.Header.Get("X-Shortener-Region"); got != region {
		return ProjFile{}, fmt.Errorf("%s is region %q, not %q", base, got, region)
	}
	rel := filepath.Join("projections", region+".tar")
	f, err := os.Create(filepath.Join(dir, rel))
	if err != nil {
		return ProjFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	var got atomic.Int64
	stop := ticker(o.Progress, func() string { return fmt.Sprintf("projection %s: %s so far", region, human(got.Load())) })
	_, err = io.Copy(io.MultiWriter(f, h, countWriter{&got}), resp.Body)
	stop()
	if err != nil {
		return ProjFile{}, fmt.Errorf("download: %w", err)
	}
	if err := f.Sync(); err != nil {
		return ProjFile{}, err
	}
	p := ProjFile{Region: region, File: filepath.ToSlash(rel), Size: got.Load(), SHA256: hex.EncodeToString(h.Sum(nil))}
	// Open the checkpoint to read its positions: this also proves the tar
	// is whole and a Pebble store.
	tmp, err := os.MkdirTemp(dir, "check-")
	if err != nil {
		return ProjFile{}, err
	}
	defer os.RemoveAll(tmp)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ProjFile{}, err
	}
	if err := Untar(f, tmp); err != nil {
		return ProjFile{}, err
	}
	st, err := projections.OpenReadOnly(tmp)
	if err != nil {
		return ProjFile{}, err
	}
	defer st.Close()
	p.Checkpoints = st.Checkpoints()
	if p.Digest, err = st.Digest(); err != nil {
		return ProjFile{}, err
	}
	if p.Links, err = st.Count(); err != nil {
		return ProjFile{}, err
	}
	p.Took = time.Since(begin)
	return p, nil
}

// Untar extracts a projection checkpoint's tar into dir, which must
// exist. Only regular files with plain relative names are accepted.
func Untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("projection tar: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || !localName(hdr.Name) || hdr.Size < 0 || sparse(hdr) {
			return fmt.Errorf("projection tar: entry %q (type %q) is not a plain file inside the store", hdr.Name, hdr.Typeflag)
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("projection tar: %w", err)
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("projection tar: %s: %w", hdr.Name, err)
		}
		files++
	}
	if files == 0 {
		return errors.New("projection tar: empty")
	}
	return nil
}

// sparse reports a GNU sparse file in PAX form: its holes read as zeros,
// so a few bytes of tar could claim (and write) exabytes.
func sparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// ticker prints line() to w every second until stop is called; stop
// returns once the ticker writes no more.
func ticker(w io.Writer, line func() string) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line())
			}
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(done)
		}
		<-exited // no line written after stop returns: w is the caller's again
	}
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Human prints a byte count for people.
func Human(n int64) string { return human(n) }

func cpString(cps map[string]uint64) string {
	var parts []string
	for s, q := range cps {
		parts = append(parts, fmt.Sprintf("%s #%d", s, q))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
