package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"shortener/region"
)

// The control socket of a running `shortener dev`: region-down and
// region-up ask the supervisor, which owns the processes.
func controlSocket(dir string) string { return filepath.Join(dir, "control.sock") }

// procInfo is the answer of the control socket about one process.
type procInfo struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Running bool      `json:"running"`
	At      time.Time `json:"at"` // when it was killed, stopped or started
	// For a stop: when the process had exited, and whether it had to be
	// SIGKILLed because it did not exit within 15 s of SIGTERM.
	Exited time.Time `json:"exited,omitzero"`
	Forced bool      `json:"forced,omitempty"`
}

func (sv *supervisor) listenControl() (io.Closer, error) {
	path := controlSocket(sv.o.dir)
	if err := os.MkdirAll(sv.o.dir, 0o755); err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("a dev cluster is already running on %s (stop it with Ctrl-C in its terminal)", sv.o.dir)
	}
	_ = os.Remove(path) // left by a supervisor that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /down/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, at, err := sv.kill(r.PathValue("name"))
		if err != nil {
			writeCtlError(w, err)
			return
		}
		p := procInfo{Name: c.name, PID: c.cmd.Process.Pid, At: at}
		sv.journal("down", p)
		_ = json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("POST /stop/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, at, forced, err := sv.stop(r.PathValue("name"))
		if err != nil {
			writeCtlError(w, err)
			return
		}
		p := procInfo{Name: c.name, PID: c.cmd.Process.Pid, At: at, Forced: forced, Exited: time.Now()}
		sv.journal("stop", p)
		_ = json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("POST /reset-projection/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		at, err := sv.resetProjection(name)
		if err != nil {
			writeCtlError(w, err)
			return
		}
		p := procInfo{Name: name, At: at}
		sv.journal("reset-projection", p)
		_ = json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("POST /up/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "switch" {
			writeCtlError(w, fmt.Errorf("no region %q in this dev cluster", name))
			return
		}
		at := time.Now()
		c, err := sv.start(name)
		if err != nil {
			writeCtlError(w, err)
			return
		}
		p := procInfo{Name: c.name, PID: c.cmd.Process.Pid, Running: true, At: at}
		sv.journal("up", p)
		_ = json.NewEncoder(w).Encode(p)
	})
	sv.chaosRoutes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return closerFunc(func() error { err := srv.Close(); _ = os.Remove(path); return err }), nil
}

// journalFile keeps every region-down and region-up of a dev cluster, with
// times, for `shortener load analyze` and the drills.
func journalFile(dir string) string { return filepath.Join(dir, "journal.jsonl") }

// journalEntry is one line of the journal.
type journalEntry struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // "down" (SIGKILL sent), "stop" (SIGTERM sent), "up" (process started), "pause", "resume"; link faults are netEntry lines
	Region string    `json:"region"`
	PID    int       `json:"pid"`
}

func (sv *supervisor) journal(action string, p procInfo) {
	line, _ := json.Marshal(journalEntry{Time: p.At.UTC(), Action: action, Region: p.Name, PID: p.PID})
	sv.appendJournal(line)
}

func (sv *supervisor) appendJournal(line []byte) {
	sv.journalMu.Lock()
	defer sv.journalMu.Unlock()
	f, err := os.OpenFile(journalFile(sv.o.dir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(sv.out, "journal: %v\n", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

// lastOutage returns the last region-down of region in the journal and the
// region-up after it (zero if none yet).
func lastOutage(dir, region string) (down, up time.Time, err error) {
	data, err := os.ReadFile(journalFile(dir))
	if err != nil {
		return down, up, fmt.Errorf("no journal of region-down/up in %s: give --killed-at", dir)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var e journalEntry
		if json.Unmarshal([]byte(line), &e) != nil || e.Region != region {
			continue
		}
		switch e.Action {
		case "down":
			down, up = e.Time, time.Time{}
		case "up":
			if !down.IsZero() {
				up = e.Time
			}
		}
	}
	if down.IsZero() {
		return down, up, fmt.Errorf("the journal %s has no region-down of %s: give --killed-at", journalFile(dir), region)
	}
	return down, up, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func writeCtlError(w http.ResponseWriter, err error) {
	w.WriteHeader(http.StatusConflict)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// control asks the running dev cluster's supervisor.
func control(ctx context.Context, dir, path string) (procInfo, error) {
	sock := controlSocket(dir)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://dev"+path, nil)
	if err != nil {
		return procInfo{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return procInfo{}, fmt.Errorf("no dev cluster is running under %s (start one with make run)", dir)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return procInfo{}, errors.New(e.Error)
	}
	var p procInfo
	return p, json.NewDecoder(resp.Body).Decode(&p)
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func devDownCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down REGION",
		Short: "SIGKILL a region of the running dev cluster (a crash, not a shutdown); what make region-down runs",
		Args:  exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := loadTopology(dir)
			if err != nil {
				return err
			}
			if _, err := topo.region(name); err != nil {
				return err
			}
			// What the others would lose if this region never came back: the
			// RPO they report just before the kill.
			rpos := reportedRPOs(ctx, topo, name)
			p, err := control(ctx, dir, "/down/"+name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  %s killed with SIGKILL (pid %d) at %s\n", stamp(p.At), name, p.PID, p.At.UTC().Format(time.RFC3339Nano))
			for _, r := range rpos {
				fmt.Fprintf(out, "              RPO %s reported for %s just before: %s\n", r.region, name, r.text)
			}
			to, at, err := waitSwitch(ctx, topo.SwitchAdmin, name, func(answer string) bool { return answer != name }, 15*time.Second)
			if err != nil {
				fmt.Fprintf(out, "              the switch has not moved %s's clients: %v\n", name, err)
				return nil
			}
			fmt.Fprintf(out, "%s  the switch answers %s's clients with %s (%.1f s after the kill; clients follow within the 1 s TTL)\n", stamp(at), name, to, at.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	return cmd
}

func devUpCmd() *cobra.Command {
	var dir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "up REGION",
		Short: "Start a killed region of the running dev cluster again on the same state; what make region-up runs",
		Args:  exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := loadTopology(dir)
			if err != nil {
				return err
			}
			r, err := topo.region(name)
			if err != nil {
				return err
			}
			p, err := control(ctx, dir, "/up/"+name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  %s started (pid %d) on its state in %s\n", stamp(p.At), name, p.PID, filepath.Join(dir, name))
			readyAt, err := waitReadyVerbose(ctx, out, "http://"+r.Host+":8080/readyz", p.At, timeout)
			if err != nil {
				return fmt.Errorf("%s: %w (see %s)", name, err, filepath.Join(dir, name, "region.log"))
			}
			fmt.Fprintf(out, "%s  %s ready: caught up with the other regions (%.1f s after the start)\n", stamp(readyAt), name, readyAt.Sub(p.At).Seconds())
			_, at, err := waitSwitch(ctx, topo.SwitchAdmin, name, func(answer string) bool { return answer == name }, 30*time.Second)
			if err != nil {
				fmt.Fprintf(out, "              the switch does not answer %s's clients with %s yet: %v (make status)\n", name, name, err)
				return nil
			}
			fmt.Fprintf(out, "%s  the switch answers %s's clients with %s again (%.1f s after the start)\n", stamp(at), name, name, at.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for the region to be ready")
	return cmd
}

type reportedRPO struct{ region, text string }

// reportedRPOs asks every other dev region for the RPO bound it reports
// for origin now.
func reportedRPOs(ctx context.Context, topo devTopology, origin string) []reportedRPO {
	var out []reportedRPO
	hc := &http.Client{Timeout: time.Second}
	for _, r := range topo.Regions {
		if r.Name == origin {
			continue
		}
		var rr region.RegionsResponse
		if err := getJSON(ctx, hc, "http://"+r.Host+":8080/api/v1/regions", &rr); err != nil {
			out = append(out, reportedRPO{r.Name, "unreachable"})
			continue
		}
		for _, o := range rr.Origins {
			if o.Origin != origin {
				continue
			}
			text := fmt.Sprintf("at most %d events, %.1f s (lag %d events)", o.RPOEvents, o.RPOSeconds, o.LagEvents)
			if !o.RPOKnown {
				text = "UNKNOWN (mirror never seen live)"
			}
			out = append(out, reportedRPO{r.Name, text})
		}
	}
	return out
}

// waitSwitch polls the switch until its answer to home's clients
// satisfies ok, and returns it and when it was seen.
func waitSwitch(ctx context.Context, admin, home string, ok func(string) bool, timeout time.Duration) (string, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for time.Now().Before(deadline) {
		a, err := switchAnswer(ctx, admin, home)
		if err == nil && ok(a) {
			return a, time.Now(), nil
		}
		last, lastErr = a, err
		select {
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return "", time.Time{}, lastErr
	}
	return "", time.Time{}, fmt.Errorf("still %s after %s", last, timeout)
}

// waitReadyVerbose polls a /readyz, printing what it waits for whenever
// that changes, until it answers 200.
func waitReadyVerbose(ctx context.Context, out io.Writer, url string, since time.Time, timeout time.Duration) (time.Time, error) {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	said := ""
	for time.Now().Before(deadline) {
		var rd region.Readiness
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
			fmt.Fprintf(out, "%s  waiting (%.0f s): %s\n", stamp(time.Now()), time.Since(since).Seconds(), why)
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

func devStopCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "stop REGION",
		Short: "Stop a region of the running dev cluster gracefully (SIGTERM: drain, close); what make region-stop runs",
		Long: `Sends SIGTERM to a region's process: it stops taking connections, lets the
requests in flight finish (up to 5 s), closes its projection and NATS servers
and exits. A process still running 15 s later is SIGKILLed (reported as forced).
Drain it at the switch first (make region-drain) so that its clients are
elsewhere; make region-up starts it again.`,
		Args: exactArgs(1, "REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[0]
			topo, err := loadTopology(dir)
			if err != nil {
				return err
			}
			if _, err := topo.region(name); err != nil {
				return err
			}
			p, err := control(ctx, dir, "/stop/"+name)
			if err != nil {
				return err
			}
			how := "exited"
			if p.Forced {
				how = "did not exit within 15 s: SIGKILLed"
			}
			fmt.Fprintf(out, "%s  %s stopped with SIGTERM (pid %d): %s after %.2f s\n", stamp(p.At), name, p.PID, how, p.Exited.Sub(p.At).Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	return cmd
}
