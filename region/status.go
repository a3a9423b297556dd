package region

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// The status page: plain HTML and a little JavaScript embedded in the
// binary (no build chain, nothing fetched from elsewhere). The page polls
// GET /status/data, which this region assembles server-side from the DNS
// switch's admin API and every region's /readyz and /api/v1/regions, so the
// browser talks to one origin only.

//go:embed web/status.html web/status.js web/status.css
var web embed.FS

// StatusData is the answer of GET /status/data.
type StatusData struct {
	Time    time.Time       `json:"time"`
	Served  string          `json:"served_by"`    // the region that assembled this
	Switch  json.RawMessage `json:"switch"`       // GET /v1/state of the switch, or null
	SwitchE string          `json:"switch_error"` // why it is missing
	Regions []RegionStatus  `json:"regions"`
}

// RegionStatus is one region as the status page shows it.
type RegionStatus struct {
	Name      string           `json:"name"`
	URL       string           `json:"url"`
	Reachable bool             `json:"reachable"`
	Error     string           `json:"error,omitempty"`
	Ready     *Readiness       `json:"ready,omitempty"`
	View      *RegionsResponse `json:"view,omitempty"` // its /api/v1/regions: lag and RPO per origin
}

var statusClient = &http.Client{Timeout: 1500 * time.Millisecond}

func (r *Region) statusPage(c echo.Context) error {
	page, err := web.ReadFile("web/status.html")
	if err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, page)
}

// statusAsset serves the page's script and style sheet.
func (r *Region) statusAsset(c echo.Context) error {
	name := c.Param("asset")
	types := map[string]string{"status.js": "text/javascript; charset=utf-8", "status.css": "text/css; charset=utf-8"}
	ct, ok := types[name]
	if !ok {
		return echo.ErrNotFound
	}
	b, err := web.ReadFile("web/" + name)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ct, b)
}

func (r *Region) statusData(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	return c.JSON(http.StatusOK, r.Status(ctx))
}

// Status assembles what the status page shows: the switch's state and, for
// every region (those the switch knows, else this one and its peers on
// this region's HTTP port), its readiness and its view of lag and RPO.
// This region's own part is read directly, not over HTTP.
func (r *Region) Status(ctx context.Context) StatusData {
	d := StatusData{Time: r.cfg.Now().UTC(), Served: r.cfg.Name, Switch: json.RawMessage("null")}
	type target struct{ name, url string }
	var targets []target
	if r.cfg.SwitchAdmin != "" {
		var st struct { // the part of the switch's state (dnsswitch.State) read here
			Regions []struct{ Name, URL string }
		}
		raw, err := getJSON(ctx, "http://"+r.cfg.SwitchAdmin+"/v1/state", &st)
		if err != nil {
			d.SwitchE = err.Error()
		} else {
			d.Switch = raw
			for _, sr := range st.Regions {
				targets = append(targets, target{sr.Name, sr.URL})
			}
		}
	} else {
		d.SwitchE = "no switch admin address configured (--switch-admin)"
	}
	if len(targets) == 0 {
		_, port, _ := net.SplitHostPort(r.cfg.HTTPAddr)
		targets = append(targets, target{r.cfg.Name, "http://" + r.cfg.HTTPAddr})
		for _, p := range r.cfg.Peers {
			targets = append(targets, target{p.Name, "http://" + net.JoinHostPort(p.Host, port)})
		}
	}
	d.Regions = make([]RegionStatus, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		d.Regions[i] = RegionStatus{Name: t.name, URL: t.url}
		rs := &d.Regions[i]
		if t.name == r.cfg.Name {
			rd, view := r.Ready(ctx), r.Regions(ctx)
			rs.Reachable, rs.Ready, rs.View = true, &rd, &view
			continue
		}
		if t.url == "" {
			rs.Error = "no address"
			continue
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			var rd Readiness
			if _, err := getJSON(ctx, t.url+"/readyz", &rd); err != nil && rd.Region == "" {
				rs.Error = err.Error()
				return
			}
			rs.Ready = &rd
		}()
		go func() {
			defer wg.Done()
			var view RegionsResponse
			if _, err := getJSON(ctx, t.url+"/api/v1/regions", &view); err == nil {
				rs.View = &view
			}
		}()
	}
	wg.Wait()
	for i := range d.Regions {
		rs := &d.Regions[i]
		rs.Reachable = rs.Ready != nil
		if rs.Reachable {
			rs.Error = ""
		}
	}
	return d
}

// getJSON GETs url into v and returns the body. A non-200 answer is an
// error, but v is still filled from its body (/readyz answers 503 with the
// checks that failed).
func getJSON(ctx context.Context, url string, v any) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := statusClient.Do(req)
	if err != nil {
		return nil, shortErr(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	jerr := json.Unmarshal(body, v)
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: %s", url, resp.Status)
	}
	if jerr != nil {
		return nil, fmt.Errorf("%s: %w", url, jerr)
	}
	return body, nil
}

// shortErr trims Go's "Get \"url\": dial tcp ...: connect: connection
// refused" to what a person needs.
func shortErr(err error) error {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i > 0 && strings.Contains(s, "dial tcp") {
		return fmt.Errorf("unreachable (%s)", s[i+2:])
	}
	return err
}
