package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"shortener/replicator"
)

// ManifestVersion is the version of the manifest format this package
// writes and reads.
const ManifestVersion = 1

// Manifest describes a backup: what it holds, how big, and how to check
// it. It is manifest.json in the backup's directory.
type Manifest struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"` // the directory's name: the start time, 20261205T231500Z
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Source names what was backed up (NATS URLs, region endpoints).
	Source      string       `json:"source"`
	Streams     []StreamFile `json:"streams"`
	Projections []ProjFile   `json:"projections"`
	// Mirrors lists the mirrors found and not backed up (copies of origins
	// that are in the backup).
	Mirrors []string `json:"mirrors_not_backed_up,omitempty"`
	// Size is the bytes of every file of the backup; Previous and Growth
	// compare it with the newest earlier backup in the same directory.
	Size     int64  `json:"size_bytes"`
	Previous string `json:"previous,omitempty"`
	PrevSize int64  `json:"previous_size_bytes,omitempty"`
	Growth   int64  `json:"growth_bytes"`
}

// StreamFile is one stream's snapshot.
type StreamFile struct {
	Name   string                 `json:"name"`
	Kind   string                 `json:"kind"` // log, clicks, aliases, other
	Config json.RawMessage        `json:"config"`
	State  replicator.StreamState `json:"state"`
	File   string                 `json:"file"` // relative to the backup's directory
	Size   int64                  `json:"size_bytes"`
	SHA256 string                 `json:"sha256"`
	Took   time.Duration          `json:"took_ns"`
}

// ProjFile is one region's projection checkpoint.
type ProjFile struct {
	Region string `json:"region"`
	File   string `json:"file"` // a tar of the Pebble checkpoint
	Size   int64  `json:"size_bytes"`
	SHA256 string `json:"sha256"`
	// Checkpoints are the sequences of every stream the projection had
	// applied (its own stream and its mirrors of the others).
	Checkpoints map[string]uint64 `json:"checkpoints"`
	Digest      string            `json:"digest"`
	Links       int               `json:"links"`
	Took        time.Duration     `json:"took_ns"`
}

// StreamKind classifies a stream by its name.
func StreamKind(name string) string {
	switch {
	case strings.HasPrefix(name, "LINKS_"):
		return "log"
	case strings.HasPrefix(name, "CLICKS_"):
		return "clicks"
	case name == "KV_ALIASES":
		return "aliases"
	}
	return "other"
}

// ReadManifest reads and checks the manifest of the backup in dir (not
// the files: Verify does).
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a backup: no manifest.json", dir)
		}
		return nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s/manifest.json: %w", dir, err)
	}
	return m, nil
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest version %d; this shortener reads version %d", m.Version, ManifestVersion)
	}
	seen := map[string]bool{}
	check := func(file, sum string, size int64) error {
		if !localName(file) {
			return fmt.Errorf("file %q: not a plain path inside the backup", file)
		}
		if seen[file] {
			return fmt.Errorf("file %q listed twice", file)
		}
		seen[file] = true
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("file %q: sha256 %q is not 64 hex digits", file, sum)
		}
		if size < 0 {
			return fmt.Errorf("file %q: negative size", file)
		}
		return nil
	}
	names := map[string]bool{}
	for _, s := range m.Streams {
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(s.Config, &named); err != nil || named.Name != s.Name || s.Name == "" {
			return nil, fmt.Errorf("stream %q: its configuration does not name it", s.Name)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("stream %q listed twice", s.Name)
		}
		names[s.Name] = true
		if err := check(s.File, s.SHA256, s.Size); err != nil {
			return nil, err
		}
	}
	regions := map[string]bool{}
	for _, p := range m.Projections {
		if p.Region == "" || regions[p.Region] || !localName(p.Region) {
			return nil, fmt.Errorf("projection of region %q: empty, listed twice or not a plain name", p.Region)
		}
		regions[p.Region] = true
		if err := check(p.File, p.SHA256, p.Size); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// localName reports whether p is a relative path that stays inside its
// directory.
func localName(p string) bool {
	return p != "" && filepath.IsLocal(p) && !strings.Contains(p, `\`)
}

// Verify reads the manifest of the backup in dir and checks every file
// against its size and SHA-256 sum.
func Verify(dir string) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	var bad []string
	check := func(file, sum string, size int64) {
		got, n, err := sumFile(filepath.Join(dir, file))
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case n != size:
			bad = append(bad, fmt.Sprintf("%s: %d bytes, the manifest says %d", file, n, size))
		case got != sum:
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, the manifest says %s", file, got, sum))
		}
	}
	for _, s := range m.Streams {
		check(s.File, s.SHA256, s.Size)
	}
	for _, p := range m.Projections {
		check(p.File, p.SHA256, p.Size)
	}
	if len(bad) > 0 {
		return m, fmt.Errorf("backup %s is damaged: %s", dir, strings.Join(bad, "; "))
	}
	return m, nil
}

func sumFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// previous finds the newest complete backup in root older than id.
func previous(root, id string) (*Manifest, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, false
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && e.Name() < id {
			names = append(names, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		if m, err := ReadManifest(filepath.Join(root, n)); err == nil {
			return m, true
		}
	}
	return nil, false
}

// Messages is the number of messages in the backed-up streams.
func (m *Manifest) Messages() uint64 {
	var n uint64
	for _, s := range m.Streams {
		n += s.State.Msgs
	}
	return n
}

// WriteSummary writes what shortener backup prints of the backup m in dir:
// its streams, size, growth since the previous one, and how long it took.
func (m *Manifest) WriteSummary(w io.Writer, dir string) {
	fmt.Fprintf(w, "backup %s in %s\n", m.ID, dir)
	fmt.Fprintf(w, "  %d streams, %d messages; %d projections; mirrors not backed up: %d\n", len(m.Streams), m.Messages(), len(m.Projections), len(m.Mirrors))
	growth := "first backup in " + filepath.Dir(dir)
	if m.Previous != "" {
		growth = fmt.Sprintf("%+d bytes since %s (%s)", m.Growth, m.Previous, Human(m.PrevSize))
	}
	fmt.Fprintf(w, "  size %s (%d bytes); growth: %s\n", Human(m.Size), m.Size, growth)
	fmt.Fprintf(w, "  took %s\n", m.Finished.Sub(m.Started).Round(time.Millisecond))
}
