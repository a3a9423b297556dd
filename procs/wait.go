package procs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// WaitReadyVerbose polls a region's /readyz (ready: caught up with the
// other regions), printing what it waits for whenever
// that changes, until it answers 200, and returns when it did.
func WaitReadyVerbose(ctx context.Context, out io.Writer, url string, since time.Time, timeout time.Duration) (time.Time, error) {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	said := ""
	for time.Now().Before(deadline) {
		var rd struct {
			Checks map[string]string `json:"checks"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		why := "not answering yet"
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&rd)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
			var waits []string
			for k, v := range rd.Checks {
				if v != "ok" {
					waits = append(waits, k+": "+v)
				}
			}
			why = strings.Join(waits, "; ")
		}
		if why != said {
			fmt.Fprintf(out, "%s  waiting (%.0f s): %s\n", time.Now().Format("15:04:05.000"), time.Since(since).Seconds(), why)
			said = why
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return time.Time{}, fmt.Errorf("not ready after %s", timeout)
}
