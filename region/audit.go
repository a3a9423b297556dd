package region

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"shortener/events"
	"shortener/projections"
)

// ProjectionDigests is the answer of GET /api/v1/projection/digests: the
// projection's digest, per-bucket digests and checkpoints, all from one
// snapshot, so that an auditor can replay the log up to exactly these
// checkpoints and compare. With ?buckets=3,17 it also lists a hash of the
// row of every code in those buckets, to name the codes that differ.
type ProjectionDigests struct {
	Region string `json:"region"`
	projections.Digests
	Rows map[string]string `json:"rows,omitempty"` // code -> SHA-256 of its row, for the buckets asked
}

// projectionDigests serves GET /api/v1/projection/digests. A bad bucket
// list is a 400 naming the field.
func (r *Region) projectionDigests(c echo.Context) error {
	var buckets []int
	if q := c.QueryParam("buckets"); q != "" {
		for _, s := range strings.Split(q, ",") {
			b, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || b < 0 || b >= projections.DigestBuckets {
				return events.FieldError("buckets", "a comma-separated list of bucket numbers from 0 to 255")
			}
			buckets = append(buckets, b)
		}
	}
	d, rows, err := r.store.DigestsAndRows(buckets)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ProjectionDigests{Region: r.cfg.Name, Digests: d, Rows: rows})
}
