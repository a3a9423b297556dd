package procs

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
	"syscall"
	"time"
)

// ControlSocket is the control socket of a running dev cluster on dir:
// region-down, region-up and region-stop ask the supervisor, which owns
// the processes.
func ControlSocket(dir string) string { return filepath.Join(dir, "control.sock") }

// ProcInfo is the control socket's answer about one process.
type ProcInfo struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Running bool      `json:"running"`
	At      time.Time `json:"at"` // when it was killed, stopped or started
	// For a stop: when the process had exited, and whether it had to be
	// SIGKILLed because it did not exit within 15 s of SIGTERM.
	Exited time.Time `json:"exited,omitzero"`
	Forced bool      `json:"forced,omitempty"`
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// listenControl serves the control socket: POST /down/NAME (SIGKILL),
// /stop/NAME (SIGTERM), /up/NAME, /reset-projection/NAME, /pause/NAME
// (SIGSTOP), /resume/NAME (SIGCONT), GET /procs, and Options.Routes.
func (sv *Supervisor) listenControl() (io.Closer, error) {
	dir := sv.o.Dir
	path := ControlSocket(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("a dev cluster is already running on %s (stop it with Ctrl-C in its terminal)", dir)
	}
	_ = os.Remove(path) // left by a supervisor that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	answer := func(w http.ResponseWriter, action string, p ProcInfo) {
		sv.journal(action, p)
		_ = json.NewEncoder(w).Encode(p)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /down/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, at, err := sv.Kill(r.PathValue("name"))
		if err != nil {
			WriteError(w, err)
			return
		}
		answer(w, "down", ProcInfo{Name: p.Name(), PID: p.PID(), At: at})
	})
	mux.HandleFunc("POST /stop/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, at, forced, err := sv.Stop(r.PathValue("name"))
		if err != nil {
			WriteError(w, err)
			return
		}
		answer(w, "stop", ProcInfo{Name: p.Name(), PID: p.PID(), At: at, Forced: forced, Exited: time.Now()})
	})
	mux.HandleFunc("POST /reset-projection/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		at, err := sv.ResetProjection(name)
		if err != nil {
			WriteError(w, err)
			return
		}
		answer(w, "reset-projection", ProcInfo{Name: name, At: at})
	})
	mux.HandleFunc("POST /up/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "switch" {
			WriteError(w, fmt.Errorf("no region %q in this dev cluster", name))
			return
		}
		at := time.Now()
		p, err := sv.Start(name)
		if err != nil {
			WriteError(w, err)
			return
		}
		answer(w, "up", ProcInfo{Name: p.Name(), PID: p.PID(), Running: true, At: at})
	})
	sig := func(action string, s syscall.Signal) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			p, err := sv.Signal(r.PathValue("name"), s)
			if err != nil {
				WriteError(w, err)
				return
			}
			answer(w, action, ProcInfo{Name: p.Name(), PID: p.PID(), Running: true, At: at})
		}
	}
	mux.HandleFunc("POST /pause/{name}", sig("pause", syscall.SIGSTOP))
	mux.HandleFunc("POST /resume/{name}", sig("resume", syscall.SIGCONT))
	mux.HandleFunc("GET /procs", func(w http.ResponseWriter, r *http.Request) {
		sv.mu.Lock()
		var out []ProcInfo
		for _, rg := range sv.o.Topology.Regions {
			if p := sv.procs[rg.Name]; p != nil {
				out = append(out, ProcInfo{Name: rg.Name, PID: p.PID(), Running: p.Running()})
			}
		}
		sv.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	})
	if sv.o.Routes != nil {
		sv.o.Routes(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return closerFunc(func() error { err := srv.Close(); _ = os.Remove(path); return err }), nil
}

// WriteError answers a control request that failed (409 and the error).
func WriteError(w http.ResponseWriter, err error) {
	w.WriteHeader(http.StatusConflict)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Call asks the running dev cluster's supervisor on dir and decodes the
// answer into out (nil: discard it). A refused request's error is the
// supervisor's.
func Call(ctx context.Context, dir, method, path string, out any) error {
	sock := ControlSocket(dir)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://dev"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no dev cluster is running under %s (start one with make run)", dir)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Control POSTs path (/down/NAME, /up/NAME, ...) to the supervisor on dir
// and returns what it says about the process.
func Control(ctx context.Context, dir, path string) (ProcInfo, error) {
	var p ProcInfo
	err := Call(ctx, dir, http.MethodPost, path, &p)
	return p, err
}

// JournalFile keeps every region-down and region-up of a dev cluster, with
// times, for `shortener load analyze` and the drills.
func JournalFile(dir string) string { return filepath.Join(dir, "journal.jsonl") }

// JournalEntry is one line of the journal about a process.
type JournalEntry struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // "down" (SIGKILL sent), "stop" (SIGTERM sent), "up" (process started), "pause", "resume"; link faults are lines of their own
	Region string    `json:"region"`
	PID    int       `json:"pid"`
}

func (sv *Supervisor) journal(action string, p ProcInfo) {
	line, _ := json.Marshal(JournalEntry{Time: p.At.UTC(), Action: action, Region: p.Name, PID: p.PID})
	sv.Journal(line)
}

// Journal appends a line (JSON, without the newline) to the journal.
func (sv *Supervisor) Journal(line []byte) {
	sv.journalMu.Lock()
	defer sv.journalMu.Unlock()
	f, err := os.OpenFile(JournalFile(sv.o.Dir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(sv.out, "journal: %v\n", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

// LastOutage returns the last region-down of region in the journal of the
// dev cluster on dir and the region-up after it (zero if none yet).
func LastOutage(dir, region string) (down, up time.Time, err error) {
	data, err := os.ReadFile(JournalFile(dir))
	if err != nil {
		return down, up, fmt.Errorf("no journal of region-down/up in %s: give --killed-at", dir)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var e JournalEntry
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
		return down, up, fmt.Errorf("the journal %s has no region-down of %s: give --killed-at", JournalFile(dir), region)
	}
	return down, up, nil
}
