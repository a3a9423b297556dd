package region

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"

	"shortener/events"
)

// CachePurgeResponse is the answer of POST /api/v1/admin/cache/purge.
type CachePurgeResponse struct {
	Region string    `json:"region"`
	Purged int       `json:"purged"` // entries in the cache just before
	At     time.Time `json:"at"`
}

// purgeCache empties the redirect cache in front of the projection (the
// cache flush drill): redirects read from Pebble until it refills. It needs
// the API key (it sits in the authenticated /api/v1 group).
func (r *Region) purgeCache(c echo.Context) error {
	n := r.store.CacheLen()
	r.store.CachePurge()
	r.log.Warn("redirect cache purged by an operator", "entries", n, "actor", c.Get(actorKey))
	return c.JSON(http.StatusOK, CachePurgeResponse{Region: r.cfg.Name, Purged: n, At: time.Now().UTC()})
}

// checkpointsDir holds the Pebble checkpoints being sent to a backup; it
// is emptied when the region starts (a checkpoint left by a crash is of no
// use).
func (r *Region) checkpointsDir() string { return filepath.Join(r.cfg.DataDir, "checkpoints") }

// projectionCheckpoint is GET /api/v1/admin/projection/checkpoint (for
// shortener backup): a Pebble checkpoint of the projection, taken now
// while the region keeps serving, sent as a tar of the store's files. The
// checkpoint holds rows and per-stream checkpoints of one commit, so it is
// the projection of the log up to exactly the sequences it records.
func (r *Region) projectionCheckpoint(c echo.Context) error {
	if err := os.MkdirAll(r.checkpointsDir(), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(r.checkpointsDir(), "cp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "projection")
	start := time.Now()
	if err := r.store.CheckpointTo(dir); err != nil {
		return events.Wrap(events.Unavailable, err, "the projection could not be checkpointed")
	}
	var files []string
	var total int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files, total = append(files, p), total+fi.Size()
		return nil
	})
	if err != nil {
		return err
	}
	r.log.Info("projection checkpoint for a backup", "files", len(files), "bytes", total,
		"took", time.Since(start).Round(time.Millisecond), "actor", c.Get(actorKey))
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-tar")
	w.Header().Set("X-Shortener-Region", r.cfg.Name)
	w.Header().Set("X-Shortener-Bytes", fmt.Sprint(total))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w.Writer)
	tw := tar.NewWriter(w)
	for _, p := range files {
		// The server's WriteTimeout is for API calls; a store of some GB
		// takes longer over a slow link. Each file gets its own minute.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if err := tarFile(tw, dir, p); err != nil {
			// The status is sent: cut the stream short, which the reader
			// sees as a truncated tar.
			r.log.Error("projection checkpoint: sending failed", "file", p, "err", err)
			return nil
		}
	}
	if err := tw.Close(); err != nil {
		r.log.Error("projection checkpoint: sending failed", "err", err)
	}
	return nil
}

func tarFile(tw *tar.Writer, root, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}
