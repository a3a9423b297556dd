package region

import (
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"shortener/events"
)

// Fault injection (Config.FaultInjection, --fault-injection): the faults of
// the chaos runs (chaos/schedule.go) that cannot be made from outside the
// process. Off by default: the routes are not even registered, so a
// production region answers 404. Every fault is logged at WARN with the
// actor who asked for it.
//
//	GET  /api/v1/admin/faults                  what is injected now
//	POST /api/v1/admin/faults/disk-full        {"on": true|false}
//	POST /api/v1/admin/faults/clock            {"skew": "90s"} ("0s" ends it)
//	POST /api/v1/admin/faults/projector-crash  {} (202: armed)
//
// disk-full fails every write of the projection store with ENOSPC, just
// before the write reaches Pebble: the projector retries its batch with
// backoff and loses nothing, readiness reports the stall, creates time out
// (503) and alias claims are given back. JetStream's own files are not
// affected. clock moves the region's clock (Config.Now) by the skew: event
// times, heartbeats, expiry and lag are all read from it. projector-crash
// makes the region SIGKILL itself once its projector has built its next
// batch and before it commits it.
type faults struct {
	diskFull atomic.Bool
	skew     atomic.Int64 // ns added to the clock
	crash    atomic.Bool
}

// FaultsState is the answer of the fault injection endpoints.
type FaultsState struct {
	Region         string `json:"region"`
	DiskFull       bool   `json:"disk_full"`
	ClockSkew      string `json:"clock_skew"` // a Go duration
	ProjectorCrash bool   `json:"projector_crash_armed"`
}

// maxSkew bounds an injected clock skew.
const maxSkew = 24 * time.Hour

// skewedClock returns now moved by the injected skew.
func (f *faults) skewedClock(now func() time.Time) func() time.Time {
	return func() time.Time { return now().Add(time.Duration(f.skew.Load())) }
}

// storeFault is the projection store's write hook.
func (r *Region) storeFault(what string) error {
	f := r.faults
	if what == "batch" && f.crash.Load() {
		r.log.Warn("fault injection: projector crash, SIGKILL in the middle of a batch")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; nothing of the batch is committed
	}
	if f.diskFull.Load() {
		return fmt.Errorf("injected fault: %w", syscall.ENOSPC)
	}
	return nil
}

func (r *Region) faultRoutes(api *echo.Group) {
	api.GET("/admin/faults", r.faultsState)
	api.POST("/admin/faults/disk-full", r.faultDiskFull)
	api.POST("/admin/faults/clock", r.faultClock)
	api.POST("/admin/faults/projector-crash", r.faultProjectorCrash)
}

func (r *Region) faultsNow() FaultsState {
	f := r.faults
	return FaultsState{Region: r.cfg.Name, DiskFull: f.diskFull.Load(),
		ClockSkew: time.Duration(f.skew.Load()).String(), ProjectorCrash: f.crash.Load()}
}

func (r *Region) faultsState(c echo.Context) error { return c.JSON(http.StatusOK, r.faultsNow()) }

func (r *Region) faultDiskFull(c echo.Context) error {
	var req struct {
		On *bool `json:"on"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.On == nil {
		return events.FieldError("on", "required: true or false")
	}
	r.faults.diskFull.Store(*req.On)
	r.log.Warn("fault injection: disk full", "on", *req.On, "actor", c.Get(actorKey))
	return c.JSON(http.StatusOK, r.faultsNow())
}

func (r *Region) faultClock(c echo.Context) error {
	var req struct {
		Skew *string `json:"skew"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Skew == nil {
		return events.FieldError("skew", `required: a duration such as "90s" or "-2m" ("0s" ends the skew)`)
	}
	d, err := time.ParseDuration(*req.Skew)
	if err != nil || d > maxSkew || d < -maxSkew {
		return events.FieldError("skew", "must be a duration within ±24h, such as \"90s\" or \"-2m\"")
	}
	r.faults.skew.Store(int64(d))
	r.log.Warn("fault injection: clock skew", "skew", d, "actor", c.Get(actorKey))
	return c.JSON(http.StatusOK, r.faultsNow())
}

func (r *Region) faultProjectorCrash(c echo.Context) error {
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r.faults.crash.Store(true)
	r.log.Warn("fault injection: projector crash armed; the region kills itself at its next batch", "actor", c.Get(actorKey))
	return c.JSON(http.StatusAccepted, r.faultsNow())
}
