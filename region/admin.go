package region

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
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
